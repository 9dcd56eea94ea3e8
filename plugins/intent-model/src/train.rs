//! Training: stochastic gradient descent on the softmax cross-entropy of
//! both heads, with a fixed seed so the same data gives the same bytes.

use crate::{forward, softmax, Features, HeadOptions, Model, BUCKETS, DRIFTS, OUTPUTS};

/// One labelled prompt, as features.
#[derive(Clone)]
pub struct Example {
    pub features: Features,
    /// Index into [`crate::DRIFTS`].
    pub drift: usize,
    /// Index into [`crate::LABELS`]; `None` for a major deviation.
    pub label: Option<usize>,
}

pub struct TrainOptions {
    pub epochs: usize,
    pub learning_rate: f32,
    /// L2 penalty per step on the sparse weights an example touches.
    pub l2: f32,
    /// L2 penalty per step on the dense weights (every example touches them).
    pub dense_l2: f32,
    pub seed: u64,
    /// Models fitted on different shuffles and averaged: the model is
    /// linear, so averaged weights give the averaged logits, and the
    /// result depends far less on one shuffle's luck.
    pub shuffles: usize,
    /// The sentence head's fit (when the data has sentence vectors).
    pub sentence: HeadOptions,
    /// The word model's share of the blended drift probabilities.
    pub word_share: f32,
}

impl Default for TrainOptions {
    fn default() -> Self {
        Self {
            epochs: 40,
            learning_rate: 0.2,
            l2: 3e-3,
            dense_l2: 1e-4,
            seed: 7,
            shuffles: 5,
            sentence: HeadOptions::default(),
            word_share: 0.5,
        }
    }
}

/// xorshift64*: a tiny deterministic generator for the shuffles.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
}

/// One stochastic gradient step on one example, given the gradient of the
/// loss with respect to the logits.
fn step(
    params: &mut [f32],
    features: &Features,
    gradient: &[f32; OUTPUTS],
    rate: f32,
    options: &TrainOptions,
) {
    for &f in &features.sparse {
        let row = &mut params[f as usize * OUTPUTS..][..OUTPUTS];
        for (w, g) in row.iter_mut().zip(gradient) {
            *w -= rate * (g + options.l2 * *w);
        }
    }
    for (i, &x) in features.dense.iter().enumerate() {
        let row = &mut params[(BUCKETS + i) * OUTPUTS..][..OUTPUTS];
        for (w, g) in row.iter_mut().zip(gradient) {
            *w -= rate * (g * x + options.dense_l2 * *w);
        }
    }
}

/// The average of [`TrainOptions::shuffles`] fits, each from its own seed.
pub fn train(examples: &[Example], options: &TrainOptions) -> Model {
    let count = options.shuffles.max(1);
    let mut average = Model::zeros();
    for k in 0..count {
        let seed = options.seed.wrapping_add(2 * k as u64);
        let fitted = train_one(examples, options, seed);
        for (a, w) in average.params.iter_mut().zip(&fitted.params) {
            *a += w / count as f32;
        }
    }
    average
}

fn train_one(examples: &[Example], options: &TrainOptions, seed: u64) -> Model {
    let mut model = Model::zeros();
    let mut order: Vec<usize> = (0..examples.len()).collect();
    let mut rng = Rng(seed | 1);
    // Each drift class weighs the same in total, however rare it is.
    let mut counts = [0usize; 3];
    examples.iter().for_each(|e| counts[e.drift] += 1);
    let class_weight =
        counts.map(|c| (examples.len() as f32 / (DRIFTS.len() * c.max(1)) as f32).sqrt());
    for epoch in 0..options.epochs {
        for i in (1..order.len()).rev() {
            order.swap(i, (rng.next() % (i as u64 + 1)) as usize);
        }
        let rate = options.learning_rate / (1.0 + epoch as f32 * 0.1);
        for &i in &order {
            let example = &examples[i];
            let logits = forward(&model.params[..], &example.features);
            let drift = softmax([logits[0], logits[1], logits[2]]);
            let label = softmax([logits[3], logits[4], logits[5], logits[6]]);
            let mut gradient = [0.0f32; OUTPUTS];
            let weight = class_weight[example.drift];
            for (k, p) in drift.iter().enumerate() {
                let target = if k == example.drift { 1.0 } else { 0.0 };
                gradient[k] = (p - target) * weight;
            }
            if let Some(want) = example.label {
                for (k, p) in label.iter().enumerate() {
                    let target = if k == want { 1.0 } else { 0.0 };
                    gradient[3 + k] = p - target;
                }
            }
            step(
                &mut model.params,
                &example.features,
                &gradient,
                rate,
                options,
            );
        }
    }
    model
}
