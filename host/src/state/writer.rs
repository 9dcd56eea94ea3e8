//! Off-request-path persistence: request records and activity counters are
//! sent over a channel and written to sled in batches by one task, so the
//! response never waits on the database.

use std::sync::Arc;

use tokio::sync::mpsc;

use super::db::{compound_key, Db};
use super::model::RequestRecord;

pub enum StateWrite {
    Request(Box<RequestRecord>),
    Activity { key: Vec<u8>, value: Vec<u8> },
}

#[derive(Clone)]
pub struct StateWriter {
    tx: mpsc::UnboundedSender<StateWrite>,
}

impl StateWriter {
    /// Starts the writer task on the current runtime.
    pub fn spawn(db: Arc<Db>) -> (Self, tokio::task::JoinHandle<()>) {
        let (tx, mut rx) = mpsc::unbounded_channel::<StateWrite>();
        let task = tokio::spawn(async move {
            let mut batch = Vec::with_capacity(256);
            while rx.recv_many(&mut batch, 256).await > 0 {
                let (mut logs, mut usage) = (sled::Batch::default(), sled::Batch::default());
                for write in batch.drain(..) {
                    match write {
                        StateWrite::Request(record) => {
                            let mut key = compound_key(&[&record.tenant_id]);
                            key.push(0);
                            key.extend_from_slice(&record.at_ms.to_be_bytes());
                            key.push(0);
                            key.extend_from_slice(record.id.as_bytes());
                            match serde_json::to_vec(&record) {
                                Ok(value) => logs.insert(key, value),
                                Err(e) => {
                                    tracing::error!(error = %e, "cannot encode request record")
                                }
                            }
                        }
                        StateWrite::Activity { key, value } => usage.insert(key, value),
                    }
                }
                if let Err(e) = db
                    .logs
                    .apply_batch(logs)
                    .and_then(|_| db.usage.apply_batch(usage))
                {
                    tracing::error!(error = %e, "writing request records failed");
                }
            }
            let _ = db.flush();
        });
        (Self { tx }, task)
    }

    pub fn send(&self, write: StateWrite) {
        if self.tx.send(write).is_err() {
            tracing::warn!("state writer stopped; a record was dropped");
        }
    }
}
