//! Request-log retention: records older than the configured number of days
//! are deleted by the state writer, a bounded batch at a time, so the log
//! (about 1–2 KiB of disk per request) does not grow without end. Usage
//! rollups and the audit log are kept: they are small and are the history.

use super::db::Db;
use super::queries::time_key;

/// Most records removed in one pass, so a pass never holds the writer long.
pub const PRUNE_BATCH: usize = 10_000;

impl Db {
    /// Deletes up to `max` request records older than `cutoff_ms`, oldest
    /// first, across tenants; returns how many it deleted.
    pub fn prune_logs(&self, cutoff_ms: u64, max: usize) -> anyhow::Result<usize> {
        let mut batch = sled::Batch::default();
        let mut removed = 0;
        let tenants: Vec<String> = self.directory().tenants.keys().cloned().collect();
        for tenant in tenants {
            if removed >= max {
                break;
            }
            let range = time_key(&tenant, 0)..time_key(&tenant, cutoff_ms);
            for key in self.logs.range(range).keys().take(max - removed) {
                batch.remove(key?);
                removed += 1;
            }
        }
        self.logs.apply_batch(batch)?;
        Ok(removed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::model::{RequestRecord, Tenant, TenantStatus};

    fn record(tenant: &str, id: &str, at_ms: u64) -> RequestRecord {
        RequestRecord {
            id: id.into(),
            at_ms,
            tenant_id: tenant.into(),
            user_id: "ali".into(),
            task_id: "t".into(),
            endpoint: "chat.completions".into(),
            model: "m".into(),
            prompt: "p".into(),
            status: 200,
            stream: false,
            tokens_in: 1,
            tokens_out: 1,
            response_bytes: 1,
            latency_ms: 1,
            intent: None,
            confidence: None,
            drift: None,
            deviation_delta: None,
            deviation_score: None,
            action: None,
            error: None,
            model_intent: None,
        }
    }

    #[test]
    fn old_records_go_in_bounded_batches_and_recent_ones_stay() {
        let dir = std::env::temp_dir().join(format!("warden-retention-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let db = Db::open(&dir).unwrap();
        for tenant in ["acme", "globex"] {
            db.put_tenant(&Tenant {
                id: tenant.into(),
                name: tenant.into(),
                status: TenantStatus::Active,
                created_at: 0,
                timezone: "UTC".into(),
            })
            .unwrap();
        }
        let day = 86_400_000;
        let records: Vec<RequestRecord> = (0..6)
            .flat_map(|i| {
                [
                    record("acme", &format!("a{i}"), i * day),
                    record("globex", &format!("g{i}"), i * day),
                ]
            })
            .collect();
        let entries: Vec<_> = records
            .iter()
            .map(|r| {
                (
                    crate::state::writer::log_key(r),
                    serde_json::to_vec(r).unwrap(),
                    r,
                )
            })
            .collect();
        crate::state::rollup::log_and_count(&db, &entries).unwrap();

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
        drop(db);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
