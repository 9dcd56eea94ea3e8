//! Warden's proxy: the listener, the API routes a client calls, and each
//! call's path through the tenant's chain of sandboxed plugins to the
//! provider and back.
//!
//! In the order a request meets them:
//! - [`server`]: listener, TLS, HTTP/1.1 + HTTP/2, over the routes a
//!   [`server::Routes`] composes (the binary adds the admin API and console);
//! - [`api`]: `/v1/chat/completions`, `/v1/models`, `/v1/me`, health, metrics;
//! - [`auth`] and [`token`]: bearer-token verification;
//! - [`ledger`]: one call's record and quota reservation, finished once;
//! - [`pipeline`]: the five stages in order, over [`chain`] (per-tenant
//!   plugin chains built from [`policy`]) and the runtime crate, with
//!   [`adapters`] at the WIT edge; then the tenant's [`guardrails`];
//! - [`upstream`]: the provider client and stream metering ([`sse`]);
//! - [`app`]: what every request shares (state, chains, upstream, metrics).

// The lower crates, under the names these modules have always used.
pub use warden_domain::{self as domain, calendar, clock, pricing};
pub use warden_runtime as runtime;
pub use warden_state as state;

pub mod adapters;
pub mod admission;
pub mod api;
pub mod app;
pub mod auth;
pub mod chain;
pub mod config;
pub mod embedded_intent;
pub mod error;
pub mod evidence;
pub mod failpoints;
pub mod guardrails;
pub mod http;
pub mod ledger;
pub mod log_throttle;
pub mod metrics;
pub mod pipeline;
pub mod plugin_store;
pub mod policy;
pub mod providers;
pub mod ratelimit;
pub mod reload;
pub mod replication;
pub mod server;
pub mod signature;
pub mod sse;
pub mod thresholds;
pub mod token;
pub mod translate;
pub mod upstream;
pub mod webhooks;
