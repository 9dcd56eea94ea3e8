//! Tenant, user, task, token and usage state: sled on disk, snapshots and
//! counters in memory for the request path.

mod activity;
mod db;
mod journal;
mod log_index;
pub mod model;
mod queries;
mod retention;
mod rollup;
mod sessions;
mod writer;

pub use activity::{Activity, HistoryItem, OffTaskPrompt, UserActivity};
pub(crate) use db::compound_key;
pub use db::{Db, Directory, TenantEntry};
pub use queries::{EventFilter, LogFilter, Page};
pub use rollup::{usage_report, DailyUsage, Grouping, UsageQuery, UsageRow};
pub use sessions::{LoginCode, Session};
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
