//! Request-log retention: records older than the configured number of days
//! are deleted by the state writer, a bounded batch at a time, so the log
//! (about 1–2 KiB of disk per request) does not grow without end. Usage
//! rollups and the audit log are kept: they are small and are the history.

use super::db::{compound_key, Db};
use super::queries::time_key;

/// Most records removed in one pass, so a pass never holds the writer long.
pub const PRUNE_BATCH: usize = 10_000;

impl Db {
    /// Deletes up to `max` request records older than `cutoff_ms`, oldest
    /// first, across tenants; returns how many it deleted.
    pub fn prune_logs(&self, cutoff_ms: u64, max: usize) -> anyhow::Result<usize> {
        #[derive(serde::Deserialize)]
        struct Owners {
            user_id: String,
            task_id: String,
        }
        let mut batch = sled::Batch::default();
        let (mut by_user, mut by_task) = (sled::Batch::default(), sled::Batch::default());
        let mut removed = 0;
        let tenants: Vec<String> = self.directory().tenants.keys().cloned().collect();
        for tenant in tenants {
            if removed >= max {
                break;
            }
            let range = time_key(&tenant, 0)..time_key(&tenant, cutoff_ms);
            for item in self.logs.range(range).take(max - removed) {
                let (key, value) = item?;
                // The index entries share the log key's tail (log_index.rs).
                if let Ok(owners) = serde_json::from_slice::<Owners>(&value) {
                    let tail = &key[compound_key(&[&tenant]).len()..];
                    for (batch, owner) in [
                        (&mut by_user, &owners.user_id),
                        (&mut by_task, &owners.task_id),
                    ] {
                        let mut index = compound_key(&[&tenant, owner]);
                        index.extend_from_slice(tail);
                        batch.remove(index);
                    }
                }
                batch.remove(key);
                removed += 1;
            }
        }
        self.logs.apply_batch(batch)?;
        self.logs_by_user.apply_batch(by_user)?;
        self.logs_by_task.apply_batch(by_task)?;
        Ok(removed)
    }
}

#[cfg(test)]
mod tests {
    use crate::model::RequestRecord;
    use crate::{log_for_test, sample_record as record, test_db};

    #[test]
    fn old_records_go_in_bounded_batches_and_recent_ones_stay() {
        let (db, dir) = test_db("retention", &["acme", "globex"]);
        let day = 86_400_000;
        let records: Vec<RequestRecord> = (0..6)
            .flat_map(|i| {
                [
                    record("acme", &format!("a{i}"), i * day),
                    record("globex", &format!("g{i}"), i * day),
                ]
            })
            .collect();
        log_for_test(&db, &records);

        // Keep the last three days: six records are older, removed 4 + 2.
        let cutoff = 3 * day;
        assert_eq!(db.prune_logs(cutoff, 4).unwrap(), 4);
        assert_eq!(db.prune_logs(cutoff, 4).unwrap(), 2);
        assert_eq!(db.prune_logs(cutoff, 4).unwrap(), 0);
        for tenant in ["acme", "globex"] {
            let left: Vec<u64> = db
                .recent_requests(tenant, 100)
                .unwrap()
                .iter()
                .map(|r| r.at_ms / day)
                .collect();
            assert_eq!(left, [5, 4, 3], "{tenant}");
        }
        // The indexes lost the pruned records' entries with them.
        assert_eq!(db.logs_by_user.len(), 6);
        assert_eq!(db.logs_by_task.len(), 6);
        drop(db);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
