//! The five stages of the chain plus tenant guardrails, and how to find a
//! plugin's exports in a component. A plugin exports exactly one of them.

use std::fmt;

use wasmtime::component::{Instance, InstancePre};
use wasmtime::Store;

use super::bindings::{auth, deviation, guardrail, intent, quota, task_validation};
use super::host_imports::PluginState;

/// A stage of the request chain, in the order the chain runs them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Stage {
    Auth,
    TaskValidation,
    Quota,
    Intent,
    Deviation,
    /// A tenant guardrail: not one of the five, run after them in the order
    /// the tenant's policy lists its guardrails.
    Guardrail,
}

impl Stage {
    pub const ALL: [Stage; 5] = [
        Stage::Auth,
        Stage::TaskValidation,
        Stage::Quota,
        Stage::Intent,
        Stage::Deviation,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Stage::Auth => "auth",
            Stage::TaskValidation => "task-validation",
            Stage::Quota => "quota",
            Stage::Intent => "intent",
            Stage::Deviation => "deviation",
            Stage::Guardrail => "guardrail",
        }
    }
}

impl fmt::Display for Stage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Pre-resolved export indices of the one stage a component implements.
#[derive(Clone)]
pub enum StageExports {
    Auth(auth::GuestIndices),
    TaskValidation(task_validation::GuestIndices),
    Quota(quota::GuestIndices),
    Intent(intent::GuestIndices),
    Deviation(deviation::GuestIndices),
    Guardrail(guardrail::GuestIndices),
}

/// The typed exports of one live instance.
pub enum StageGuest {
    Auth(auth::Guest),
    TaskValidation(task_validation::Guest),
    Quota(quota::Guest),
    Intent(intent::Guest),
    Deviation(deviation::Guest),
    Guardrail(guardrail::Guest),
}

impl StageExports {
    /// Finds which stage `pre` implements; a component exporting none (or a
    /// different major version of the package) is refused with a clear reason.
    pub fn detect(pre: &InstancePre<PluginState>) -> anyhow::Result<(Stage, StageExports)> {
        let found: Vec<(Stage, StageExports)> = [
            auth::GuestIndices::new(pre).map(|i| (Stage::Auth, StageExports::Auth(i))),
            task_validation::GuestIndices::new(pre)
                .map(|i| (Stage::TaskValidation, StageExports::TaskValidation(i))),
            quota::GuestIndices::new(pre).map(|i| (Stage::Quota, StageExports::Quota(i))),
            intent::GuestIndices::new(pre).map(|i| (Stage::Intent, StageExports::Intent(i))),
            deviation::GuestIndices::new(pre)
                .map(|i| (Stage::Deviation, StageExports::Deviation(i))),
            guardrail::GuestIndices::new(pre)
                .map(|i| (Stage::Guardrail, StageExports::Guardrail(i))),
        ]
        .into_iter()
        .filter_map(Result::ok)
        .collect();
        match found.len() {
            1 => Ok(found.into_iter().next().expect("one stage")),
            0 => anyhow::bail!(
                "the component exports no warden:policy@0.1.x interface \
                 (auth, task-validation, quota, intent, deviation or guardrail)"
            ),
            _ => anyhow::bail!(
                "the component exports more than one stage; a plugin implements exactly one"
            ),
        }
    }

    pub fn load(
        &self,
        store: &mut Store<PluginState>,
        instance: &Instance,
    ) -> wasmtime::Result<StageGuest> {
        Ok(match self {
            StageExports::Auth(i) => StageGuest::Auth(i.load(store, instance)?),
            StageExports::TaskValidation(i) => StageGuest::TaskValidation(i.load(store, instance)?),
            StageExports::Quota(i) => StageGuest::Quota(i.load(store, instance)?),
            StageExports::Intent(i) => StageGuest::Intent(i.load(store, instance)?),
            StageExports::Deviation(i) => StageGuest::Deviation(i.load(store, instance)?),
            StageExports::Guardrail(i) => StageGuest::Guardrail(i.load(store, instance)?),
        })
    }
}
