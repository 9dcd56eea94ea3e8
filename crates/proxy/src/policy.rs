//! Per-tenant policy files: which plugin runs at each stage, with which
//! config values and sandbox limits. `policies/<tenant>.toml` wins over
//! `policies/default.toml`, which wins over the copy embedded in the binary.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::runtime::{SandboxLimits, Stage};

pub const EMBEDDED_DEFAULT: &str = include_str!("../../../policies/default.toml");

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Policy {
    #[serde(default)]
    pub sandbox: SandboxSection,
    pub stages: HashMap<Stage, StagePolicy>,
    /// The tenant's own guardrail plugins, run in this order after the
    /// five stages (`[[guardrails]]` tables).
    #[serde(default)]
    pub guardrails: Vec<StagePolicy>,
    /// Hold a streamed answer until the guardrails have screened all of it
    /// (the default); `false` streams it unscreened, for speed.
    #[serde(default = "screen_streams_by_default")]
    pub screen_streamed_answers: bool,
    /// Ask the answering model to label each prompt too (see
    /// embedded_intent.rs); the label is logged beside the local one.
    #[serde(default)]
    pub embedded_intent: bool,
}

fn screen_streams_by_default() -> bool {
    true
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SandboxSection {
    pub deadline_ms: u64,
    pub memory_mib: usize,
    pub max_reuse: u32,
    pub warm_instances: usize,
}

impl Default for SandboxSection {
    fn default() -> Self {
        let d = SandboxLimits::default();
        Self {
            deadline_ms: d.deadline.as_millis() as u64,
            memory_mib: d.memory_bytes >> 20,
            max_reuse: d.max_reuse,
            warm_instances: d.warm_instances,
        }
    }
}

impl SandboxSection {
    /// These limits with one plugin's overrides applied.
    pub fn with(&self, o: &SandboxOverride) -> SandboxSection {
        SandboxSection {
            deadline_ms: o.deadline_ms.unwrap_or(self.deadline_ms),
            memory_mib: o.memory_mib.unwrap_or(self.memory_mib),
            max_reuse: o.max_reuse.unwrap_or(self.max_reuse),
            warm_instances: o.warm_instances.unwrap_or(self.warm_instances),
        }
    }

    pub fn limits(&self) -> SandboxLimits {
        SandboxLimits {
            deadline: Duration::from_millis(self.deadline_ms.max(1)),
            memory_bytes: self.memory_mib.max(1) << 20,
            max_reuse: self.max_reuse.max(1),
            warm_instances: self.warm_instances,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StagePolicy {
    /// Plugin name: `<plugin_dir>/<name>.wasm`.
    pub plugin: String,
    /// Values the plugin reads through the `config` import.
    #[serde(default)]
    pub config: HashMap<String, toml::Value>,
    /// Let the request continue when this plugin fails (intent and deviation only).
    #[serde(default)]
    pub fail_open: bool,
    /// This plugin's own sandbox limits, over the tenant's `[sandbox]`:
    /// e.g. a longer deadline for a Python guardrail, or `max_reuse = 1`
    /// for one that must start fresh on every call.
    #[serde(default)]
    pub sandbox: SandboxOverride,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SandboxOverride {
    pub deadline_ms: Option<u64>,
    pub memory_mib: Option<usize>,
    pub max_reuse: Option<u32>,
    pub warm_instances: Option<usize>,
}

impl StagePolicy {
    /// Config values as the strings the WIT `config.get` returns.
    pub fn config_strings(&self) -> HashMap<String, String> {
        self.config
            .iter()
            .map(|(k, v)| {
                let s = match v {
                    toml::Value::String(s) => s.clone(),
                    other => other.to_string(),
                };
                (k.clone(), s)
            })
            .collect()
    }
}

impl Policy {
    /// The sandbox limits of one plugin of this policy.
    pub fn limits_for(&self, plugin: &StagePolicy) -> SandboxLimits {
        self.sandbox.with(&plugin.sandbox).limits()
    }

    /// The limits the policy gives the plugin named `name` (the first entry
    /// naming it), or the tenant's `[sandbox]` if it names it nowhere.
    pub fn limits_of(&self, name: &str) -> SandboxLimits {
        self.entry(name)
            .map_or_else(|| self.sandbox.limits(), |s| self.limits_for(s))
    }

    /// The first stage or guardrail entry that names plugin `name`.
    pub fn entry(&self, name: &str) -> Option<&StagePolicy> {
        self.stages
            .values()
            .chain(&self.guardrails)
            .find(|s| s.plugin == name)
    }

    pub fn parse(text: &str, origin: &str) -> anyhow::Result<Self> {
        let policy: Policy = toml::from_str(text).map_err(|e| anyhow::anyhow!("{origin}: {e}"))?;
        for stage in Stage::ALL {
            if !policy.stages.contains_key(&stage) {
                anyhow::bail!("{origin}: no plugin for the '{stage}' stage");
            }
        }
        if policy.stages.contains_key(&Stage::Guardrail) {
            anyhow::bail!(
                "{origin}: guardrails are listed as [[guardrails]], not [stages.guardrail]"
            );
        }
        for (stage, p) in &policy.stages {
            if p.fail_open && matches!(stage, Stage::Auth | Stage::TaskValidation | Stage::Quota) {
                anyhow::bail!("{origin}: the '{stage}' stage cannot fail open");
            }
        }
        Ok(policy)
    }
}

/// Finds the policy of a tenant.
pub struct PolicySource {
    dir: PathBuf,
}

impl PolicySource {
    pub fn new(dir: &Path) -> Self {
        Self {
            dir: dir.to_path_buf(),
        }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn for_tenant(&self, tenant_id: &str) -> anyhow::Result<Policy> {
        let safe = !tenant_id.is_empty()
            && tenant_id
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
        let own = self.dir.join(format!("{tenant_id}.toml"));
        let default = self.dir.join("default.toml");
        for path in [safe.then_some(own), Some(default)].into_iter().flatten() {
            if path.is_file() {
                let text = std::fs::read_to_string(&path)?;
                return Policy::parse(&text, &path.display().to_string());
            }
        }
        Policy::parse(EMBEDDED_DEFAULT, "embedded default policy")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedded_default_names_every_stage() {
        let p = Policy::parse(EMBEDDED_DEFAULT, "default").unwrap();
        assert_eq!(
            p.stages[&Stage::Deviation].config_strings()["block_at"],
            "2.0"
        );
        assert_eq!(p.sandbox.limits().deadline, Duration::from_millis(10));
    }

    #[test]
    fn scoring_may_fail_open_but_auth_may_not() {
        let text = EMBEDDED_DEFAULT.replace(
            "[stages.auth]\nplugin = \"auth\"",
            "[stages.auth]\nplugin = \"auth\"\nfail_open = true",
        );
        assert!(Policy::parse(&text, "t")
            .unwrap_err()
            .to_string()
            .contains("cannot fail open"));
    }
}
