//! The default intent classifier, shared by the intent plugin (inference,
//! inside the sandbox) and `warden train intent` (training, on the host), so
//! both compute exactly the same features.
//!
//! A prompt becomes a set of hashed features: its words, how many of them
//! belong to the task (title, description, keywords), and the concepts of
//! its words (clusters of multilingual word vectors, so "Rezept" and
//! "recipe" are one feature); and dense inputs: the mean vector of its
//! words (256 dimensions), its product with the task's, and how close the
//! prompt's words come to the task's. Two softmax heads (drift: on-task,
//! slight, major; label: code, test, doc, analysis) sit on one linear layer
//! over all of it, the average of fits on several shuffles. A prompt is a
//! major deviation when its probability passes a threshold chosen on
//! held-out tasks at training time. The file (`data/intent/model.bin`) is
//! the parameters as little-endian `f32`s, then the threshold.

#[cfg(feature = "train")]
pub mod dataset;
mod examples;
mod features;
#[cfg(feature = "train")]
pub mod fitting;
mod sentence;
mod train;
pub mod vectors;

pub use examples::Examples;
pub use features::{content_stems, features, Features, TaskProfile, TaskTerms, Words, DENSE};
pub use sentence::{
    combine, head_inputs, task_passage, Blend, HeadModel, HeadOptions, SentenceHead, HEAD_INPUTS,
    SENTENCE_DIMS,
};
pub use train::{train, Example, TrainOptions};
pub use vectors::WordVectors;

/// Hashed feature space.
pub const BUCKETS: usize = 1 << 14;
/// Weight rows: one per sparse bucket, then one per dense input.
const ROWS: usize = BUCKETS + DENSE;
pub const DRIFTS: [&str; 3] = ["on-task", "slight", "major"];
/// Work labels; a major deviation is labelled `off_topic` instead.
pub const LABELS: [&str; 4] = ["code", "test", "doc", "analysis"];
const OUTPUTS: usize = DRIFTS.len() + LABELS.len();
/// Parameters: `ROWS` rows of `OUTPUTS` weights.
const PARAMS: usize = ROWS * OUTPUTS;
const PARAM_BYTES: usize = PARAMS * 4;

/// Read access to a parameter list, in memory or in place in its bytes.
trait Params {
    fn at(&self, index: usize) -> f32;
}

impl Params for [f32] {
    fn at(&self, index: usize) -> f32 {
        self[index]
    }
}

/// Weights being trained: the parameters, flat.
pub struct Model {
    params: Vec<f32>,
    /// Probability of "major" from which a prompt is called a major deviation.
    pub major_threshold: f32,
}

/// Trained weights read in place from their bytes (see [`Model::to_bytes`]):
/// a plugin instance starts without copying or parsing them.
#[derive(Clone, Copy)]
pub struct Weights<'a> {
    bytes: &'a [u8],
    major_threshold: f32,
}

impl Params for Weights<'_> {
    fn at(&self, index: usize) -> f32 {
        let w = &self.bytes[index * 4..index * 4 + 4];
        f32::from_le_bytes([w[0], w[1], w[2], w[3]])
    }
}

/// The logits: a weight row per sparse feature, a row per dense input
/// times its value.
fn forward<P: Params + ?Sized>(params: &P, features: &Features) -> [f32; OUTPUTS] {
    let mut logits = [0.0f32; OUTPUTS];
    for &f in &features.sparse {
        let row = f as usize * OUTPUTS;
        for (k, l) in logits.iter_mut().enumerate() {
            *l += params.at(row + k);
        }
    }
    for (i, &x) in features.dense.iter().enumerate() {
        let row = (BUCKETS + i) * OUTPUTS;
        for (k, l) in logits.iter_mut().enumerate() {
            *l += params.at(row + k) * x;
        }
    }
    logits
}

impl<'a> Weights<'a> {
    /// `None` when `bytes` is not a model of this crate's shape.
    pub fn new(bytes: &'a [u8]) -> Option<Self> {
        let (bytes, threshold) =
            (bytes.len() == PARAM_BYTES + 4).then(|| bytes.split_at(PARAM_BYTES))?;
        Some(Self {
            bytes,
            major_threshold: f32::from_le_bytes(threshold.try_into().ok()?),
        })
    }

    pub fn predict(&self, features: &Features) -> Prediction {
        Prediction::from_logits(forward(self, features), self.major_threshold)
    }
}

/// What the model says of one prompt.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Prediction {
    /// Probabilities of on-task, slight, major.
    pub drift: [f32; 3],
    /// Probabilities of code, test, doc, analysis.
    pub label: [f32; 4],
    major_threshold: f32,
}

impl Prediction {
    fn from_logits(l: [f32; OUTPUTS], major_threshold: f32) -> Self {
        Self {
            drift: softmax([l[0], l[1], l[2]]),
            label: softmax([l[3], l[4], l[5], l[6]]),
            major_threshold,
        }
    }

    /// Index into [`DRIFTS`]: major from the threshold on, otherwise the
    /// likelier of on-task and slight.
    pub fn drift(&self) -> usize {
        if self.drift[2] >= self.major_threshold {
            2
        } else {
            argmax(&self.drift[..2])
        }
    }

    /// Index into [`LABELS`].
    pub fn label(&self) -> usize {
        argmax(&self.label)
    }
}

fn argmax(values: &[f32]) -> usize {
    let mut best = 0;
    for (i, v) in values.iter().enumerate() {
        if *v > values[best] {
            best = i;
        }
    }
    best
}

fn softmax<const N: usize>(logits: [f32; N]) -> [f32; N] {
    let max = logits.iter().copied().fold(f32::MIN, f32::max);
    let mut out = logits.map(|l| (l - max).exp());
    let sum: f32 = out.iter().sum();
    out.iter_mut().for_each(|p| *p /= sum);
    out
}

impl Model {
    pub fn zeros() -> Self {
        Self {
            params: vec![0.0; PARAMS],
            major_threshold: 0.5,
        }
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        let params = self.params.iter().flat_map(|w| w.to_le_bytes());
        params.chain(self.major_threshold.to_le_bytes()).collect()
    }

    pub fn predict(&self, features: &Features) -> Prediction {
        Prediction::from_logits(forward(&self.params[..], features), self.major_threshold)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sparse(ids: &[u32]) -> Features {
        Features {
            sparse: ids.to_vec(),
            ..Features::default()
        }
    }

    #[test]
    fn weights_read_in_place_predict_as_the_model_does() {
        let mut model = Model::zeros();
        model.params[5 * OUTPUTS + 2] = 1.5;
        model.params[9 * OUTPUTS + 4] = -0.5;
        model.params[(BUCKETS + 3) * OUTPUTS + 1] = 2.0;
        let bytes = model.to_bytes();
        let weights = Weights::new(&bytes).unwrap();
        let mut both = sparse(&[5, 9]);
        both.dense[3] = 0.5;
        assert_eq!(weights.predict(&both), model.predict(&both));
        assert_eq!(model.predict(&sparse(&[5])).drift(), 2);
        model.major_threshold = 0.9;
        assert_eq!(
            Weights::new(&model.to_bytes())
                .unwrap()
                .predict(&sparse(&[5]))
                .drift(),
            0
        );
        assert!(Weights::new(&bytes[1..]).is_none());
    }
}

/// The shipped model (`data/intent/model.bin`) on prompts in four
/// languages, for the demo's task: on-task work must not be called a major
/// deviation, personal use must. None of these prompts is in the training
/// set.
#[cfg(test)]
mod shipped_model {
    use super::*;

    static MODEL: &[u8] = include_bytes!("../../../data/intent/model.bin");

    fn drift_of(prompt: &str) -> &'static str {
        let vectors = WordVectors::default_table();
        let task = TaskProfile::new(
            &vectors,
            "Invoice backend",
            "Build the REST API and database layer that creates, stores and sends invoices.",
            &[
                "invoice", "invoices", "billing", "api", "rest", "postgres", "pdf", "tax",
                "customer",
            ]
            .map(String::from),
        );
        let mut features_out = Features::default();
        features(
            prompt,
            &task,
            &vectors,
            &mut Words::default(),
            &mut features_out,
        );
        let prediction = Weights::new(MODEL).unwrap().predict(&features_out);
        DRIFTS[prediction.drift()]
    }

    #[test]
    fn on_task_work_in_four_languages_is_not_major() {
        for prompt in [
            "Write a unit test for the function that computes the VAT of an invoice",
            "Schreib einen Unit-Test für die Funktion, die die Mehrwertsteuer einer Rechnung berechnet",
            "Écris un test unitaire pour la fonction qui calcule la TVA d'une facture",
            "Escribe una prueba unitaria para la función que calcula el IVA de una factura",
            "Wie speichere ich Rechnungsnummern fortlaufend in Postgres?",
            "Comment générer le PDF de la facture avec le logo du client ?",
            "¿Cómo envío la factura por correo al cliente cuando se crea?",
        ] {
            assert_ne!(drift_of(prompt), "major", "{prompt}");
        }
    }

    #[test]
    fn personal_use_in_four_languages_is_major() {
        for prompt in [
            "What should I cook tonight for my kids? Something with pasta",
            "Was soll ich heute Abend für meine Kinder kochen? Etwas mit Nudeln",
            "Qu'est-ce que je peux cuisiner ce soir pour mes enfants ? Quelque chose avec des pâtes",
            "¿Qué cocino esta noche para mis hijos? Algo con pasta",
            "Schreib mir eine Bewerbung als Krankenpfleger im Klinikum",
            "Aide-moi à écrire un message à mon ex pour m'excuser",
            "¿Me duele la espalda desde hace una semana, qué hago?",
        ] {
            assert_eq!(drift_of(prompt), "major", "{prompt}");
        }
    }
}
