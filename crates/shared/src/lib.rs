//! The state several Warden replicas share: PostgreSQL as the source of
//! truth of the shared trees (identity, configuration, sessions, the audit
//! log), followed by every replica through its change log; Redis for the
//! quota counters that must be atomic across replicas and for users'
//! deviation memory.
//!
//! One replica alone needs none of it: sled and memory (`warden-state`)
//! are the embedded default.

pub mod postgres;
pub mod redis_counters;
pub mod redis_deviation;

pub use postgres::{Feed, Position, Postgres, Snapshot, Subscriber};
pub use redis_counters::RedisCounters;
