//! Warden: an LLM access gateway. A hyper proxy that runs every request
//! through a chain of sandboxed WebAssembly policy components.
//!
//! This crate is the top of the workspace: the [`server`] with every route
//! (the proxy's, the admin API, the console), and the `warden` binary's
//! command line and tools (demo, mock LLM, evaluation, simulation,
//! training, plugin scaffolding and testing). The layers below, each its
//! own crate, from the bottom up:
//! - `warden-domain`: records, intent/drift/action values, clock, calendars, pricing;
//! - `warden-runtime`: the wasm engine, WIT bindings and sandbox;
//! - `warden-state`: sled storage, directory snapshots, activity counters, journal;
//! - `warden-proxy`: listener, API routes, a call's path through the chain;
//! - `warden-admin`: provisioning and the admin API; `warden-console`: the web console.
//!
//! Their modules are re-exported here under the names they always had.

pub use warden_admin::{api as admin_api, provision as admin};
pub use warden_console as ui;
pub use warden_domain::{self as domain, calendar, clock, pricing};
pub use warden_proxy::{
    adapters, api, app, auth, chain, config, embedded_intent, error, evidence, failpoints,
    guardrails, http, ledger, metrics, pipeline, plugin_store, policy, providers, ratelimit,
    reload, signature, sse, token, translate, upstream, webhooks,
};
pub use warden_runtime as runtime;
pub use warden_state as state;

pub mod demo;
pub mod eval;
pub mod mock_llm;
pub mod plugin_test;
pub mod scaffold;
pub mod sentence_vectors;
pub mod server;
pub mod simulate;
pub mod train;
