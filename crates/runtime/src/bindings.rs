//! The one `bindgen!` site: Rust types and traits for the WIT package in
//! `wit/`. The host binds `all-stages` (the union of every stage world) so
//! all stages share one set of types; each plugin exports only one stage,
//! which [`super::stage::StageExports`] checks when it is loaded.

wasmtime::component::bindgen!({
    path: "../../wit",
    world: "warden:policy/all-stages",
    exports: { default: async },
});

pub use exports::warden::policy::{auth, deviation, guardrail, intent, quota, task_validation};
pub use warden::policy::types;
