//! Administration of a Warden server: provisioning (tenants, users, tasks;
//! the verbs the CLI, the demo and the tests share) and the JSON admin API
//! (`/admin/v1/...`) built on it and on the proxy's state.

pub mod api;
pub mod billing;
pub mod mail;
pub mod mail_relay;
pub mod provision;
pub mod public;

// The proxy's modules, under the names these modules have always used.
use warden_proxy::{
    app, auth, calendar, chain, clock, config, domain, error, http, plugin_store, providers,
    replication, runtime, signature, state, token,
};
