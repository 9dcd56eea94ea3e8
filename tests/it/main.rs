//! Warden's integration tests, one binary (each test binary links wasmtime:
//! one link instead of fifteen is most of CI's build time on two cores).
//! Each module is one area; `common` starts real servers, the mock LLM and
//! processes.

mod common;

mod admin;
mod branding;
mod cli;
mod console;
mod demo;
mod durability;
mod guardrails;
mod hostile_plugins;
mod invitations;
mod languages;
mod ledger;
mod misuse;
mod overload;
mod plans;
mod plugins;
mod policy;
mod provider_faults;
mod providers;
mod proxy;
mod quota_windows;
mod reload;
mod replicas;
mod roles;
mod sandbox;
mod task_rules;
mod tokens;
mod webhooks;
