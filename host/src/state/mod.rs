//! Tenant, user, task, token and usage state: sled on disk, snapshots and
//! counters in memory for the request path.

mod activity;
mod db;
mod journal;
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
