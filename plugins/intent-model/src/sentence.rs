//! The sentence head: a linear softmax over a multilingual sentence
//! encoder's vectors (multilingual-e5-small, run by the host: see the
//! `embeddings` import in `wit/warden.wit`) of the prompt, as a query, and
//! of the task, as a passage. Its inputs are `[4q, 16·q∘t, 4·cos(q, t), 1]`:
//! what the prompt is about, which of its meanings the task shares, and how
//! close the two are. It reads sentences, not words, so "the best *places*
//! to see the northern lights" is not on-task for a sales pipeline because
//! *places* is a word of its field.
//!
//! Its drift probabilities are combined with the word model's by a weighted
//! geometric mean (their log-probabilities averaged, then normalised): a
//! prompt is called major when both lean that way, or one is sure. The
//! file (`data/intent/sentence-head.bin`) is the weights as little-endian
//! `f32`s, then the word model's share and the combined threshold.

use crate::{softmax, Params, Prediction};

/// Width of a sentence vector.
pub const SENTENCE_DIMS: usize = 384;
/// Inputs of the head: the prompt, its product with the task, their cosine,
/// and a bias.
pub const HEAD_INPUTS: usize = 2 * SENTENCE_DIMS + 2;
const DRIFT_COUNT: usize = 3;
const HEAD_PARAMS: usize = HEAD_INPUTS * DRIFT_COUNT;
const HEAD_BYTES: usize = HEAD_PARAMS * 4;

/// Scales that bring each input group to a similar size (unit vectors have
/// components of about 1/20, their products about 1/400).
const PROMPT_SCALE: f32 = 4.0;
const PRODUCT_SCALE: f32 = 16.0;
const COSINE_SCALE: f32 = 4.0;

/// The text of a task the host embeds as a passage, and `warden train
/// intent` with it: one place, so both compute the same vector.
pub fn task_passage(title: &str, description: &str, keywords: &[String]) -> String {
    if keywords.is_empty() {
        format!("{title}. {description}")
    } else {
        format!("{title}. {description} ({})", keywords.join(", "))
    }
}

/// The head's inputs for a prompt's vector `query` and its task's `task`
/// (both unit length); `None` when either has the wrong width.
pub fn head_inputs(query: &[f32], task: &[f32]) -> Option<Vec<f32>> {
    if query.len() != SENTENCE_DIMS || task.len() != SENTENCE_DIMS {
        return None;
    }
    let mut inputs = Vec::with_capacity(HEAD_INPUTS);
    inputs.extend(query.iter().map(|q| PROMPT_SCALE * q));
    inputs.extend(query.iter().zip(task).map(|(q, t)| PRODUCT_SCALE * q * t));
    let cosine: f32 = query.iter().zip(task).map(|(q, t)| q * t).sum();
    inputs.push(COSINE_SCALE * cosine);
    inputs.push(1.0);
    Some(inputs)
}

/// Weights are stored a drift class at a time (`HEAD_INPUTS` each), so
/// each logit is one contiguous dot product.
fn head_logits<P: Params + ?Sized>(params: &P, inputs: &[f32]) -> [f32; DRIFT_COUNT] {
    std::array::from_fn(|k| {
        let row = k * HEAD_INPUTS;
        let mut lanes = [0.0f32; 8];
        for (i, &x) in inputs.iter().enumerate() {
            lanes[i % 8] += params.at(row + i) * x;
        }
        lanes.iter().sum()
    })
}

/// Drift probabilities of the word model and of the sentence head, combined:
/// `word_share` of the word model's log-probabilities plus the rest of the
/// head's, normalised.
pub fn combine(word: [f32; 3], sentence: [f32; 3], word_share: f32) -> [f32; 3] {
    let mut logits = [0.0f32; 3];
    for (k, l) in logits.iter_mut().enumerate() {
        *l = word_share * word[k].max(1e-7).ln() + (1.0 - word_share) * sentence[k].max(1e-7).ln();
    }
    softmax(logits)
}

/// How the two models' answers are joined, and where "major" starts.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Blend {
    /// The word model's share of the combined log-probabilities.
    pub word_share: f32,
    /// Combined probability of "major" from which a prompt is major.
    pub major_threshold: f32,
}

impl Prediction {
    /// This (word model) prediction joined with the sentence head's drift
    /// probabilities; the work label stays the word model's.
    pub fn with_sentence(self, sentence: [f32; 3], blend: Blend) -> Prediction {
        Prediction {
            drift: combine(self.drift, sentence, blend.word_share),
            label: self.label,
            major_threshold: blend.major_threshold,
        }
    }
}

/// A trained head read in place from its bytes.
#[derive(Clone, Copy)]
pub struct SentenceHead<'a> {
    bytes: &'a [u8],
    pub blend: Blend,
}

impl Params for SentenceHead<'_> {
    fn at(&self, index: usize) -> f32 {
        let w = &self.bytes[index * 4..index * 4 + 4];
        f32::from_le_bytes([w[0], w[1], w[2], w[3]])
    }
}

impl<'a> SentenceHead<'a> {
    /// `None` when `bytes` is not a head of this shape.
    pub fn new(bytes: &'a [u8]) -> Option<Self> {
        if bytes.len() != HEAD_BYTES + 8 {
            return None;
        }
        let (bytes, tail) = bytes.split_at(HEAD_BYTES);
        let float = |at: usize| f32::from_le_bytes(tail[at..at + 4].try_into().unwrap());
        Some(Self {
            bytes,
            blend: Blend {
                word_share: float(0),
                major_threshold: float(4),
            },
        })
    }

    /// Drift probabilities (on-task, slight, major) for `inputs`
    /// (see [`head_inputs`]).
    pub fn drift(&self, inputs: &[f32]) -> [f32; 3] {
        softmax(head_logits(self, inputs))
    }
}

/// A head being trained, and its blend.
#[derive(Clone)]
pub struct HeadModel {
    params: Vec<f32>,
    pub blend: Blend,
}

/// Full-batch gradient descent: the inputs are dense and few, so every
/// step sees every example, and the same data gives the same bytes.
pub struct HeadOptions {
    pub epochs: usize,
    pub learning_rate: f32,
    pub l2: f32,
}

impl Default for HeadOptions {
    fn default() -> Self {
        Self {
            epochs: 1500,
            learning_rate: 1.0,
            l2: 1e-4,
        }
    }
}

impl HeadModel {
    /// Fits the head on `(inputs, drift)` pairs, each drift class weighing
    /// the square root of its share's inverse (as the word model does).
    pub fn train(examples: &[(&[f32], usize)], options: &HeadOptions) -> Self {
        let mut counts = [0usize; 3];
        examples.iter().for_each(|(_, d)| counts[*d] += 1);
        let n = examples.len().max(1) as f32;
        let class_weight = counts.map(|c| (n / (3 * c.max(1)) as f32).sqrt());
        let mut params = vec![0.0f32; HEAD_PARAMS];
        let mut gradient = vec![0.0f32; HEAD_PARAMS];
        for _ in 0..options.epochs {
            gradient.iter_mut().for_each(|g| *g = 0.0);
            for (inputs, drift) in examples {
                let p = softmax(head_logits(&params[..], inputs));
                let weight = class_weight[*drift] / n;
                for (k, row) in gradient.chunks_exact_mut(HEAD_INPUTS).enumerate() {
                    let error = (p[k] - f32::from(u8::from(k == *drift))) * weight;
                    for (g, &x) in row.iter_mut().zip(inputs.iter()) {
                        *g += error * x;
                    }
                }
            }
            for (w, g) in params.iter_mut().zip(&gradient) {
                *w -= options.learning_rate * (g + options.l2 * *w);
            }
        }
        Self {
            params,
            blend: Blend {
                word_share: 0.5,
                major_threshold: 0.5,
            },
        }
    }

    pub fn drift(&self, inputs: &[f32]) -> [f32; 3] {
        softmax(head_logits(&self.params[..], inputs))
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        let tail = [self.blend.word_share, self.blend.major_threshold];
        self.params
            .iter()
            .chain(&tail)
            .flat_map(|w| w.to_le_bytes())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unit(seed: usize) -> Vec<f32> {
        let v: Vec<f32> = (0..SENTENCE_DIMS)
            .map(|i| ((i * 31 + seed * 17) % 13) as f32 - 6.0)
            .collect();
        let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
        v.iter().map(|x| x / norm).collect()
    }

    #[test]
    fn a_trained_head_reads_back_in_place_and_separates_its_classes() {
        let (task, near, far) = (unit(1), unit(1), unit(5));
        let on = head_inputs(&near, &task).unwrap();
        let off = head_inputs(&far, &task).unwrap();
        let examples = [(&on[..], 0), (&off[..], 2)];
        let options = HeadOptions {
            epochs: 200,
            ..HeadOptions::default()
        };
        let mut model = HeadModel::train(&examples, &options);
        assert!(model.drift(&on)[0] > 0.8 && model.drift(&off)[2] > 0.8);
        model.blend.major_threshold = 0.7;
        let bytes = model.to_bytes();
        let head = SentenceHead::new(&bytes).unwrap();
        assert_eq!(head.drift(&on), model.drift(&on));
        assert_eq!(head.blend, model.blend);
        assert!(SentenceHead::new(&bytes[4..]).is_none());
        assert!(head_inputs(&near[1..], &task).is_none());
    }

    #[test]
    fn the_blend_is_a_normalised_geometric_mean() {
        let sure = [0.05, 0.05, 0.9];
        assert!((combine(sure, sure, 0.5)[2] - 0.9).abs() < 1e-5);
        let doubt = combine([0.6, 0.1, 0.3], [0.1, 0.1, 0.8], 0.5);
        assert!(doubt[2] > 0.3 && doubt[2] < 0.8);
        assert!((doubt.iter().sum::<f32>() - 1.0).abs() < 1e-5);
    }
}
