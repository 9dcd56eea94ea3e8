//! A tenant's own examples for a task: prompts an admin confirmed as
//! on-task (from the review queue, or written into the task). A prompt
//! close enough to one of them is on-task for that tenant, whatever the
//! model says: the correction is exact, immediate and explainable ("like
//! the example the admin confirmed"), and nothing is retrained.
//!
//! Close means the same meaning (cosine of the mean word vectors) or
//! mostly the same words (Jaccard of the content stems).

use crate::features::{content_stems, Words};
use crate::vectors::{dot, WordVectors, DIMS};

/// Cosine of mean word vectors from which two prompts mean the same.
pub const SAME_MEANING: f32 = 0.9;
/// Share of content stems from which two prompts say the same.
pub const SAME_WORDS: f32 = 0.6;

/// One task's examples, prepared once per change of the list.
#[derive(Default, Clone)]
pub struct Examples {
    vectors: Vec<[f32; DIMS]>,
    stems: Vec<Vec<String>>,
}

impl Examples {
    /// The examples of `list`: one prompt per line.
    pub fn new(vectors: &WordVectors, list: &str, words: &mut Words) -> Self {
        let mut examples = Self::default();
        for line in list.lines().filter(|l| !l.trim().is_empty()) {
            words.read(line);
            examples.vectors.push(vectors.mean(words.raw()).0);
            examples.stems.push(content_stems(words));
        }
        examples
    }

    pub fn is_empty(&self) -> bool {
        self.vectors.is_empty()
    }

    /// How close the prompt whose mean vector and content stems are given
    /// comes to the closest example: the larger of the cosine (scaled so
    /// `SAME_MEANING` is 1) and the Jaccard share (scaled so `SAME_WORDS`
    /// is 1). 1 or more: the same as an example.
    pub fn closeness(&self, vector: &[f32; DIMS], stems: &[String]) -> f32 {
        let mut best = 0.0f32;
        for (v, s) in self.vectors.iter().zip(&self.stems) {
            let meaning = dot(vector, v) / SAME_MEANING;
            let shared = s.iter().filter(|w| stems.contains(w)).count();
            let union = s.len() + stems.len() - shared;
            let jaccard = shared as f32 / union.max(1) as f32 / SAME_WORDS;
            best = best.max(meaning).max(jaccard);
        }
        best
    }
}
