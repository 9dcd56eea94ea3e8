//! Off-request-path persistence. Each finished request is appended to the
//! journal (one `write()`, see journal.rs) and sent over a channel; user
//! activity is marked dirty in memory. Every `TICK` one task writes both to
//! sled in batches, and every `CHECKPOINT` it flushes sled and drops the
//! journal files it covers. The request path never waits on sled.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use tokio::sync::mpsc;

use super::activity::Activity;
use super::db::{compound_key, Db};
use super::journal::{Journal, JournalEntry};
use super::model::RequestRecord;

const TICK: Duration = Duration::from_millis(20);
/// Ticks between sled flushes (each drops the journal files it covers).
const CHECKPOINT_TICKS: u32 = 50;
/// Ticks between two request-log retention passes (a minute).
const RETENTION_TICKS: u32 = 3_000;

#[derive(Clone)]
pub struct StateWriter {
    inner: Arc<WriterInner>,
}

struct WriterInner {
    /// Held while appending *and* sending, so that once the writer has
    /// rotated the journal (under this lock) every record of the old file is
    /// already in the channel.
    journal: Mutex<Journal>,
    tx: mpsc::UnboundedSender<RequestRecord>,
    /// The last write or flush that failed, until one succeeds again.
    failing: Mutex<Option<String>>,
}

pub(crate) fn log_key(record: &RequestRecord) -> Vec<u8> {
    record_key(&record.tenant_id, record.at_ms, &record.id)
}

pub(crate) fn record_key(tenant: &str, at_ms: u64, id: &str) -> Vec<u8> {
    let mut key = compound_key(&[tenant]);
    key.push(0);
    key.extend_from_slice(&at_ms.to_be_bytes());
    key.push(0);
    key.extend_from_slice(id.as_bytes());
    key
}

/// Writes the records and the dirty counters to sled; the first error, if any.
fn persist(db: &Db, activity: &Activity, records: &mut Vec<RequestRecord>) -> Result<(), String> {
    let entries: Vec<_> = records
        .iter()
        .filter_map(|record| match serde_json::to_vec(record) {
            Ok(value) => Some((log_key(record), value, record)),
            Err(e) => {
                tracing::error!(error = %e, "cannot encode a request record");
                None
            }
        })
        .collect();
    let mut failed = None;
    if let Err(e) = super::rollup::log_and_count(db, &entries, db.is_shared()) {
        tracing::error!(error = %e, "writing request records failed");
        failed = Some(format!("writing request records: {e}"));
    }
    records.clear();
    let mut usage = sled::Batch::default();
    for (key, value) in activity.take_dirty() {
        usage.insert(key, value);
    }
    if let Err(e) = db.usage.apply_batch(usage) {
        tracing::error!(error = %e, "writing usage counters failed");
        failed.get_or_insert(format!("writing usage counters: {e}"));
    }
    failed.map_or(Ok(()), Err)
}

fn remove(files: Vec<PathBuf>) {
    for file in files {
        if let Err(e) = std::fs::remove_file(&file) {
            tracing::warn!(file = %file.display(), error = %e, "cannot remove a journal file");
        }
    }
}

impl StateWriter {
    /// Replays leftover journal files from `dir`, then starts the writer task
    /// on the current runtime. The task ends (after a last write and a
    /// flush) when every `StateWriter` clone is dropped.
    pub fn spawn(
        db: Arc<Db>,
        activity: Arc<Activity>,
        dir: &Path,
        retention: Option<Duration>,
    ) -> anyhow::Result<(Self, tokio::task::JoinHandle<()>)> {
        let mut replayed = Vec::new();
        let (journal, recovered) = Journal::recover(dir, &activity, |r| replayed.push(r))?;
        persist(&db, &activity, &mut replayed).map_err(anyhow::Error::msg)?;
        db.flush()?;
        remove(recovered);

        let (tx, mut rx) = mpsc::unbounded_channel::<RequestRecord>();
        let inner = Arc::new(WriterInner {
            journal: Mutex::new(journal),
            tx,
            failing: Mutex::new(None),
        });
        let weak = Arc::downgrade(&inner);
        let dir = dir.to_path_buf();
        let task = tokio::spawn(async move {
            let mut ticker = tokio::time::interval(TICK);
            ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            let mut records = Vec::with_capacity(1024);
            let mut ticks = 0u32;
            loop {
                ticker.tick().await;
                ticks += 1;
                let checkpoint = ticks.is_multiple_of(CHECKPOINT_TICKS);
                // Rotate before draining: the old file then holds only
                // records that are already in the channel.
                let old = match (checkpoint, weak.upgrade()) {
                    (true, Some(inner)) => {
                        let mut journal =
                            inner.journal.lock().unwrap_or_else(PoisonError::into_inner);
                        journal
                            .rotate()
                            .map_err(|e| tracing::error!(error = %e, "journal rotation failed"))
                            .ok()
                    }
                    _ => None,
                };
                let open = loop {
                    match rx.try_recv() {
                        Ok(record) => records.push(record),
                        Err(mpsc::error::TryRecvError::Empty) => break true,
                        Err(mpsc::error::TryRecvError::Disconnected) => break false,
                    }
                };
                let mut outcome = persist(&db, &activity, &mut records);
                if let (Some(keep), true) = (retention, ticks.is_multiple_of(RETENTION_TICKS)) {
                    let cutoff =
                        warden_domain::clock::now_ms().saturating_sub(keep.as_millis() as u64);
                    match db.prune_logs(cutoff, super::retention::PRUNE_BATCH) {
                        Ok(0) => {}
                        Ok(n) => tracing::info!(removed = n, "request log retention"),
                        Err(e) => tracing::error!(error = %e, "request log retention failed"),
                    }
                }
                if let Some(old) = old {
                    match db.flush() {
                        Ok(_) => remove(vec![old]),
                        Err(e) => {
                            tracing::error!(error = %e, "flushing sled failed; the journal is kept");
                            outcome = outcome.and(Err(format!("flushing sled: {e}")));
                        }
                    }
                }
                if let Some(inner) = weak.upgrade() {
                    *inner.failing.lock().unwrap_or_else(PoisonError::into_inner) = outcome.err();
                }
                if !open {
                    break;
                }
            }
            // Closed cleanly: every record is in sled, so no journal file is
            // needed (replaying one later would restore stale counters).
            if db.flush().is_ok() {
                if let Ok(files) = super::journal::existing(&dir) {
                    remove(files.into_iter().map(|(_, p)| p).collect());
                }
            }
        });
        Ok((Self { inner }, task))
    }

    /// Whether records reach sled: the writer task runs and its last write
    /// succeeded. What `/readyz` reports.
    pub fn health(&self) -> Result<(), String> {
        if self.inner.tx.is_closed() {
            return Err("the state writer has stopped".into());
        }
        let failing = self
            .inner
            .failing
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        match failing.as_ref() {
            Some(error) => Err(format!("{error} (records are kept in the journal)")),
            None => Ok(()),
        }
    }

    /// Journals a finished request (one `write()`) and queues it for sled.
    pub fn record(&self, record: RequestRecord, counters: Option<super::Settled>) {
        let mut journal = self
            .inner
            .journal
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let (counters, pools) = match counters {
            Some(settled) => (Some(settled.user), settled.pools),
            None => (None, Vec::new()),
        };
        let entry = JournalEntry {
            record,
            counters,
            pools,
        };
        if let Err(e) = journal.append(&entry) {
            tracing::error!(error = %e, "cannot append to the request journal");
        }
        if self.inner.tx.send(entry.record).is_err() {
            tracing::warn!("state writer stopped; a request record was dropped");
        }
    }
}
