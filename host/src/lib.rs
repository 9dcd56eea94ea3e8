//! Warden: an LLM access gateway. A hyper proxy that runs every request
//! through a chain of sandboxed WebAssembly policy components.
//!
//! Module map, in the order a request meets them:
//! - [`server`]: listener, TLS, HTTP/1.1 + HTTP/2;
//! - [`api`]: routes (`/v1/chat/completions`, `/v1/models`, `/healthz`);
//! - [`auth`] and [`token`]: bearer-token verification;
//! - [`pipeline`]: the five stages in order, over [`chain`] (per-tenant
//!   plugin chains) and [`runtime`] (wasmtime engine, sandbox, host imports);
//! - [`upstream`]: the provider client and stream metering;
//! - [`state`]: sled storage, in-memory directory and activity counters.

// The lower crates, under the names the modules here have always used.
pub use warden_domain::{self as domain, calendar, clock, pricing};
pub use warden_runtime as runtime;
pub use warden_state as state;

pub mod adapters;
pub mod admin;
pub mod admin_api;
pub mod api;
pub mod app;
pub mod auth;
pub mod chain;
pub mod config;
pub mod demo;
pub mod embedded_intent;
pub mod error;
pub mod eval;
pub mod evidence;
pub mod failpoints;
pub mod guardrails;
pub mod http;
pub mod ledger;
pub mod metrics;
pub mod mock_llm;
pub mod pipeline;
pub mod plugin_store;
pub mod plugin_test;
pub mod policy;
pub mod ratelimit;
pub mod reload;
pub mod scaffold;
pub mod server;
pub mod simulate;
pub mod sse;
pub mod token;
pub mod train;
pub mod ui;
pub mod upstream;
