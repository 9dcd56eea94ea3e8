//! Sentence vectors of a whole labelled set at once, for `warden train
//! intent`: the encoder on every core, and an optional file cache so the
//! next run (a cross-validation after a training) does not pay again.

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use warden_encoder::Encoder;
use warden_intent_model::SENTENCE_DIMS;

/// How a text is embedded: a prompt as a query, a task as a passage.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug)]
pub enum Kind {
    Query,
    Passage,
}

/// FNV-1a of the kind and the text: the cache's key.
fn key(kind: Kind, text: &str) -> u64 {
    let tag = [kind as u8];
    tag.iter()
        .chain(text.as_bytes())
        .fold(0xcbf2_9ce4_8422_2325, |h: u64, b| {
            (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
        })
}

pub struct SentenceVectors {
    encoder: Arc<Encoder>,
    known: HashMap<u64, Vec<f32>>,
    /// Entries are appended here: a key, then the vector (little-endian).
    cache: Option<PathBuf>,
}

const ENTRY_BYTES: usize = 8 + SENTENCE_DIMS * 4;

impl SentenceVectors {
    pub fn open(model: &Path, cache: Option<PathBuf>) -> anyhow::Result<Self> {
        let encoder = warden_encoder::shared(model)?;
        anyhow::ensure!(
            encoder.dimensions() == SENTENCE_DIMS,
            "the sentence model gives {} dimensions, the head reads {SENTENCE_DIMS}",
            encoder.dimensions()
        );
        let mut known = HashMap::new();
        if let Some(bytes) = cache.as_deref().and_then(|c| std::fs::read(c).ok()) {
            for entry in bytes.chunks_exact(ENTRY_BYTES) {
                let (k, v) = entry.split_at(8);
                let vector = v
                    .chunks_exact(4)
                    .map(|f| f32::from_le_bytes(f.try_into().unwrap()))
                    .collect();
                known.insert(u64::from_le_bytes(k.try_into().unwrap()), vector);
            }
        }
        Ok(Self {
            encoder,
            known,
            cache,
        })
    }

    /// Embeds every text not known yet, on all cores, and appends them to
    /// the cache file.
    pub fn embed_all(&mut self, texts: &[(Kind, &str)]) -> anyhow::Result<()> {
        let mut missing: Vec<(Kind, &str)> = texts
            .iter()
            .copied()
            .filter(|(kind, text)| !self.known.contains_key(&key(*kind, text)))
            .collect();
        missing.sort_unstable();
        missing.dedup();
        if missing.is_empty() {
            return Ok(());
        }
        let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
        let chunk = missing.len().div_ceil(threads);
        let encoder = &self.encoder;
        let done: Vec<(u64, Vec<f32>)> = std::thread::scope(|scope| {
            let workers: Vec<_> = missing
                .chunks(chunk)
                .map(|part| {
                    scope.spawn(move || {
                        part.iter()
                            .map(|&(kind, text)| {
                                let vector = match kind {
                                    Kind::Query => encoder.query(text),
                                    Kind::Passage => encoder.passage(text),
                                };
                                (key(kind, text), vector)
                            })
                            .collect::<Vec<_>>()
                    })
                })
                .collect();
            workers
                .into_iter()
                .flat_map(|w| w.join().expect("an embedding thread panicked"))
                .collect()
        });
        if let Some(path) = &self.cache {
            let mut file = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)?;
            let mut bytes = Vec::with_capacity(done.len() * ENTRY_BYTES);
            for (k, vector) in &done {
                bytes.extend(k.to_le_bytes());
                bytes.extend(vector.iter().flat_map(|f| f.to_le_bytes()));
            }
            file.write_all(&bytes)?;
        }
        self.known.extend(done);
        Ok(())
    }

    /// A vector [`Self::embed_all`] made.
    pub fn get(&self, kind: Kind, text: &str) -> Option<&[f32]> {
        self.known.get(&key(kind, text)).map(Vec::as_slice)
    }
}
