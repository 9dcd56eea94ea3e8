//! Secondary indexes of the request log, by user and by task: a page of
//! one user's (or one task's) requests reads that user's entries only, not
//! the tenant's whole log, however large it is.
//!
//! - `logs_by_user`: tenant \0 user \0 at_ms(be u64) \0 request id → ()
//! - `logs_by_task`: tenant \0 task \0 at_ms(be u64) \0 request id → ()
//!
//! An index key ends exactly as its log key does (`\0 at_ms \0 id`), so the
//! log key is the tenant's prefix followed by that tail. Entries are written
//! in the same transaction as the log record (rollup.rs) and deleted with
//! it (retention.rs).

use super::db::{compound_key, Db};
use super::model::RequestRecord;

/// The index key of `record` under `owner` (its user or its task).
pub(crate) fn index_key(record: &RequestRecord, owner: &str) -> Vec<u8> {
    let mut key = compound_key(&[&record.tenant_id, owner]);
    key.push(0);
    key.extend_from_slice(&record.at_ms.to_be_bytes());
    key.push(0);
    key.extend_from_slice(record.id.as_bytes());
    key
}

/// The log key an index key under `prefix` (tenant \0 owner) points at.
pub(crate) fn log_key_of(tenant: &str, prefix_len: usize, index_key: &[u8]) -> Vec<u8> {
    let mut key = compound_key(&[tenant]);
    key.extend_from_slice(&index_key[prefix_len..]);
    key
}

impl Db {
    /// Builds the indexes of a log written before they existed (once, at open).
    pub(crate) fn index_logs_if_needed(&self) -> anyhow::Result<()> {
        if !self.logs_by_user.is_empty() || self.logs.is_empty() {
            return Ok(());
        }
        let started = std::time::Instant::now();
        let (mut users, mut tasks) = (sled::Batch::default(), sled::Batch::default());
        let mut count = 0usize;
        for item in self.logs.iter() {
            let (_, value) = item?;
            let record: RequestRecord = serde_json::from_slice(&value)?;
            users.insert(index_key(&record, &record.user_id), &[]);
            tasks.insert(index_key(&record, &record.task_id), &[]);
            count += 1;
        }
        self.logs_by_user.apply_batch(users)?;
        self.logs_by_task.apply_batch(tasks)?;
        self.logs_by_user.flush()?;
        tracing::info!(
            records = count,
            ms = started.elapsed().as_millis() as u64,
            "indexed the request log by user and task"
        );
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use crate::{log_for_test, sample_record, test_db, Db, LogFilter};

    fn filter(user: Option<&str>, task: Option<&str>) -> LogFilter {
        LogFilter {
            user: user.map(String::from),
            task: task.map(String::from),
            ..Default::default()
        }
    }

    #[test]
    fn filtered_pages_walk_the_index_and_rebuild_it_when_missing() {
        let (db, dir) = test_db("log-index", &["acme"]);
        // 500 records of a busy user, 3 of a rare one on another task.
        let mut records: Vec<_> = (0..500)
            .map(|i| sample_record("acme", &format!("r{i:04}"), 1_000 + i))
            .collect();
        for (n, at) in [(0, 1_100), (1, 1_250), (2, 1_400)] {
            let mut rare = sample_record("acme", &format!("rare{n}"), at);
            rare.user_id = "bo".into();
            rare.task_id = "docs".into();
            records.push(rare);
        }
        log_for_test(&db, &records);

        let check = |db: &Db| {
            for f in [
                filter(Some("bo"), None),
                filter(None, Some("docs")),
                filter(Some("bo"), Some("docs")),
            ] {
                let first = db.query_requests("acme", &f, None, 2).unwrap();
                let ids: Vec<_> = first.data.iter().map(|r| r.id.as_str()).collect();
                assert_eq!(ids, ["rare2", "rare1"], "{f:?}");
                let rest = db
                    .query_requests("acme", &f, first.next_cursor.as_deref(), 2)
                    .unwrap();
                assert_eq!(rest.data.len(), 1);
                assert_eq!(rest.data[0].id, "rare0");
                assert!(rest.next_cursor.is_none());
            }
            // Filters on another owner than the index's still apply.
            let none = db
                .query_requests("acme", &filter(Some("bo"), Some("t")), None, 10)
                .unwrap();
            assert!(none.data.is_empty());
            // A cursor of one tenant's index is refused for another.
            let busy = db
                .query_requests("acme", &filter(Some("ali"), None), None, 10)
                .unwrap();
            assert_eq!(busy.data.len(), 10);
            assert!(db
                .query_requests(
                    "globex",
                    &filter(Some("ali"), None),
                    busy.next_cursor.as_deref(),
                    10
                )
                .is_err());
        };
        check(&db);

        // A log written before the indexes existed is indexed at open.
        db.logs_by_user.clear().unwrap();
        db.logs_by_task.clear().unwrap();
        drop(db);
        let db = Db::open(&dir).unwrap();
        assert_eq!(db.logs_by_user.len(), 503);
        check(&db);
        drop(db);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
