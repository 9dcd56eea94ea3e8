//! The default intent classifier, shared by the intent plugin (inference,
//! inside the sandbox) and `warden train intent` (training, on the host), so
//! both compute exactly the same features.
//!
//! A prompt becomes a set of hashed features: its words and word pairs,
//! how many of them belong to the task (title, description, keywords), and
//! each word paired with "no overlap with the task", so the model can learn
//! that technical words with nothing of the task in them are a sign of
//! someone else's work. Two softmax heads share the features: drift
//! (on-task, slight, major) and label (code, test, doc, analysis). A prompt
//! is a major deviation when its probability passes a threshold chosen on
//! held-out tasks at training time. The file (`data/intent/model.bin`) is
//! the weights as little-endian `f32`s, then the threshold.

mod features;
mod train;

pub use features::{features, TaskTerms, Words};
pub use train::{train, Example, TrainOptions};

/// Hashed feature space.
pub const BUCKETS: usize = 1 << 14;
pub const DRIFTS: [&str; 3] = ["on-task", "slight", "major"];
/// Work labels; a major deviation is labelled `off_topic` instead.
pub const LABELS: [&str; 4] = ["code", "test", "doc", "analysis"];
const OUTPUTS: usize = DRIFTS.len() + LABELS.len();

const WEIGHT_BYTES: usize = BUCKETS * OUTPUTS * 4;

/// Weights being trained, `BUCKETS` rows of `OUTPUTS` columns.
pub struct Model {
    weights: Vec<f32>,
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

impl<'a> Weights<'a> {
    /// `None` when `bytes` is not a model of this crate's shape.
    pub fn new(bytes: &'a [u8]) -> Option<Self> {
        let (bytes, threshold) =
            (bytes.len() == WEIGHT_BYTES + 4).then(|| bytes.split_at(WEIGHT_BYTES))?;
        Some(Self {
            bytes,
            major_threshold: f32::from_le_bytes(threshold.try_into().ok()?),
        })
    }

    pub fn predict(&self, features: &[u32]) -> Prediction {
        let mut logits = [0.0f32; OUTPUTS];
        for &f in features {
            let row = &self.bytes[f as usize * OUTPUTS * 4..][..OUTPUTS * 4];
            for (l, w) in logits.iter_mut().zip(row.chunks_exact(4)) {
                *l += f32::from_le_bytes([w[0], w[1], w[2], w[3]]);
            }
        }
        Prediction::from_logits(logits, self.major_threshold)
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
            weights: vec![0.0; BUCKETS * OUTPUTS],
            major_threshold: 0.5,
        }
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        let weights = self.weights.iter().flat_map(|w| w.to_le_bytes());
        weights.chain(self.major_threshold.to_le_bytes()).collect()
    }

    fn logits(&self, features: &[u32]) -> [f32; OUTPUTS] {
        let mut logits = [0.0; OUTPUTS];
        for &f in features {
            let row = &self.weights[f as usize * OUTPUTS..][..OUTPUTS];
            for (l, w) in logits.iter_mut().zip(row) {
                *l += w;
            }
        }
        logits
    }

    pub fn predict(&self, features: &[u32]) -> Prediction {
        Prediction::from_logits(self.logits(features), self.major_threshold)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weights_read_in_place_predict_as_the_model_does() {
        let mut model = Model::zeros();
        model.weights[5 * OUTPUTS + 2] = 1.5;
        model.weights[9 * OUTPUTS + 4] = -0.5;
        let bytes = model.to_bytes();
        let weights = Weights::new(&bytes).unwrap();
        assert_eq!(weights.predict(&[5, 9]), model.predict(&[5, 9]));
        assert_eq!(model.predict(&[5]).drift(), 2);
        model.major_threshold = 0.9;
        assert_eq!(
            Weights::new(&model.to_bytes())
                .unwrap()
                .predict(&[5])
                .drift(),
            0
        );
        assert!(Weights::new(&bytes[1..]).is_none());
    }
}
