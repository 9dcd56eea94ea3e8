//! Tenant, user, task, token and usage state: sled on disk, snapshots and
//! counters in memory for the request path.

mod activity;
mod db;
mod journal;
pub mod keys;
mod log_index;
mod queries;
mod retention;
mod rollup;
pub mod sessions;
pub mod shared;
mod store;
mod writer;

pub use warden_domain::model;

pub use activity::{Activity, Counters, HistoryItem, OffTaskPrompt, UserActivity};
pub(crate) use db::compound_key;
pub use db::{Db, Directory, TenantEntry};
pub use queries::{EventFilter, LogFilter, Page};
pub use rollup::{usage_report, DailyUsage, Grouping, UsageQuery, UsageRow};
pub use sessions::{LoginCode, Session};
pub use store::{
    AnswerBudget, AuditLog, CountersUnavailable, DeviationMemory, IdentityStore, PastCall, Payer,
    Pending, QuotaCounters, Recall, RequestJournal, Reserved, Reserving, Scored, Settled, Stores,
};
pub use writer::StateWriter;

/// A request record for tests: user `ali`, task `t`, one token each way.
#[cfg(test)]
pub(crate) fn sample_record(tenant: &str, id: &str, at_ms: u64) -> model::RequestRecord {
    model::RequestRecord {
        id: id.into(),
        at_ms,
        tenant_id: tenant.into(),
        user_id: "ali".into(),
        task_id: "t".into(),
        endpoint: "chat.completions".into(),
        model: "m".into(),
        prompt: "p".into(),
        status: 200,
        tokens_in: 1,
        tokens_out: 1,
        response_bytes: 1,
        latency_ms: 1,
        ..Default::default()
    }
}

/// A database in a fresh temporary directory with UTC tenants, for tests.
#[cfg(test)]
pub(crate) fn test_db(name: &str, tenants: &[&str]) -> (Db, std::path::PathBuf) {
    let dir = std::env::temp_dir().join(format!("warden-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let db = Db::open(&dir).unwrap();
    for tenant in tenants {
        db.put_tenant(&model::Tenant {
            id: tenant.to_string(),
            name: tenant.to_string(),
            status: model::TenantStatus::Active,
            created_at: 0,
            timezone: "UTC".into(),
            misuse: Default::default(),
            subscription: None,
            branding: Default::default(),
        })
        .unwrap();
    }
    (db, dir)
}

/// Logs records as the state writer does (log, indexes and rollups at once).
#[cfg(test)]
pub(crate) fn log_for_test(db: &Db, records: &[model::RequestRecord]) {
    let entries: Vec<_> = records
        .iter()
        .map(|r| (writer::log_key(r), serde_json::to_vec(r).unwrap(), r))
        .collect();
    rollup::log_and_count(db, &entries, false).unwrap();
}
