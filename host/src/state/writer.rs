//! Off-request-path persistence. Request records go over a channel; user
//! activity is marked dirty in memory. Every `TICK` one task writes both to
//! sled in batches, so the request path never waits on the database and
//! never wakes the writer itself.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;

use super::activity::Activity;
use super::db::{compound_key, Db};
use super::model::RequestRecord;

const TICK: Duration = Duration::from_millis(20);

#[derive(Clone)]
pub struct StateWriter {
    tx: mpsc::UnboundedSender<RequestRecord>,
}

fn log_key(record: &RequestRecord) -> Vec<u8> {
    let mut key = compound_key(&[&record.tenant_id]);
    key.push(0);
    key.extend_from_slice(&record.at_ms.to_be_bytes());
    key.push(0);
    key.extend_from_slice(record.id.as_bytes());
    key
}

fn persist(db: &Db, activity: &Activity, records: &mut Vec<RequestRecord>) {
    let mut logs = sled::Batch::default();
    for record in records.drain(..) {
        match serde_json::to_vec(&record) {
            Ok(value) => logs.insert(log_key(&record), value),
            Err(e) => tracing::error!(error = %e, "cannot encode a request record"),
        }
    }
    let mut usage = sled::Batch::default();
    for (key, value) in activity.take_dirty() {
        usage.insert(key, value);
    }
    if let Err(e) = db
        .logs
        .apply_batch(logs)
        .and_then(|_| db.usage.apply_batch(usage))
    {
        tracing::error!(error = %e, "writing request records failed");
    }
}

impl StateWriter {
    /// Starts the writer task on the current runtime. It ends (after a last
    /// write and a flush) when every `StateWriter` clone is dropped.
    pub fn spawn(db: Arc<Db>, activity: Arc<Activity>) -> (Self, tokio::task::JoinHandle<()>) {
        let (tx, mut rx) = mpsc::unbounded_channel::<RequestRecord>();
        let task = tokio::spawn(async move {
            let mut ticker = tokio::time::interval(TICK);
            ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            let mut records = Vec::with_capacity(1024);
            loop {
                ticker.tick().await;
                let open = loop {
                    match rx.try_recv() {
                        Ok(record) => records.push(record),
                        Err(mpsc::error::TryRecvError::Empty) => break true,
                        Err(mpsc::error::TryRecvError::Disconnected) => break false,
                    }
                };
                persist(&db, &activity, &mut records);
                if !open {
                    break;
                }
            }
            let _ = db.flush();
        });
        (Self { tx }, task)
    }

    pub fn record(&self, record: RequestRecord) {
        if self.tx.send(record).is_err() {
            tracing::warn!("state writer stopped; a request record was dropped");
        }
    }
}
