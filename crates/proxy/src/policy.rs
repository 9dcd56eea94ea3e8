//! Per-tenant policies: which plugin runs at each stage, with which config
//! values and sandbox limits. A policy the tenant's admins set through the
//! admin API (stored, versioned) wins over `policies/<tenant>.toml`, which
//! wins over `policies/default.toml`, which wins over the copy embedded in
//! the binary.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};

use crate::runtime::{SandboxLimits, Stage};

pub const EMBEDDED_DEFAULT: &str = include_str!("../../../policies/default.toml");

/// A tenant's policy, parsed and checked once (see [`Policy::parse`]).
#[derive(Debug, Clone)]
pub struct Policy {
    pub sandbox: SandboxSection,
    pub stages: Stages,
    /// The tenant's own guardrail plugins, run in this order after the
    /// five stages.
    pub guardrails: Vec<StagePolicy>,
    /// Hold a streamed answer until the guardrails have screened all of it.
    pub screen_streamed_answers: bool,
    /// Ask the answering model to label each prompt too.
    pub embedded_intent: bool,
    /// When the shared quota counters (Redis) cannot be reached: for how
    /// long a replica may keep answering on its own counters (a local
    /// per-replica budget); 0 refuses at once (503).
    pub counters_outage_grace: std::time::Duration,
}

/// The plugin of each of the five stages.
#[derive(Debug, Clone)]
pub struct Stages {
    pub auth: StagePolicy,
    pub task_validation: StagePolicy,
    pub quota: StagePolicy,
    pub intent: StagePolicy,
    pub deviation: StagePolicy,
}

impl Stages {
    /// `None` for [`Stage::Guardrail`]: guardrails are a list, not a stage.
    pub fn get(&self, stage: Stage) -> Option<&StagePolicy> {
        match stage {
            Stage::Auth => Some(&self.auth),
            Stage::TaskValidation => Some(&self.task_validation),
            Stage::Quota => Some(&self.quota),
            Stage::Intent => Some(&self.intent),
            Stage::Deviation => Some(&self.deviation),
            Stage::Guardrail => None,
        }
    }

    /// The five stages in the order they run.
    pub fn iter(&self) -> impl Iterator<Item = (Stage, &StagePolicy)> {
        Stage::ALL
            .into_iter()
            .filter_map(|s| Some((s, self.get(s)?)))
    }
}

/// The policy file as written: stages by name, checked by [`Policy::parse`].
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct PolicyFile {
    #[serde(default)]
    sandbox: SandboxSection,
    stages: HashMap<Stage, StagePolicy>,
    /// `[[guardrails]]` tables.
    #[serde(default)]
    guardrails: Vec<StagePolicy>,
    /// `true` by default; `false` streams answers unscreened, for speed.
    #[serde(default = "screen_streams_by_default")]
    screen_streamed_answers: bool,
    /// See embedded_intent.rs; the label is logged beside the local one.
    #[serde(default)]
    embedded_intent: bool,
    /// Seconds a replica may answer on its own counters while the shared
    /// ones are unreachable (replicas sharing Redis); 0: refuse (503).
    #[serde(default)]
    counters_outage_grace_secs: u64,
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
            .iter()
            .map(|(_, s)| s)
            .chain(&self.guardrails)
            .find(|s| s.plugin == name)
    }

    pub fn parse(text: &str, origin: &str) -> anyhow::Result<Self> {
        let mut file: PolicyFile =
            toml::from_str(text).map_err(|e| anyhow::anyhow!("{origin}: {e}"))?;
        if file.stages.contains_key(&Stage::Guardrail) {
            anyhow::bail!(
                "{origin}: guardrails are listed as [[guardrails]], not [stages.guardrail]"
            );
        }
        for (stage, p) in &file.stages {
            if p.fail_open && matches!(stage, Stage::Auth | Stage::TaskValidation | Stage::Quota) {
                anyhow::bail!("{origin}: the '{stage}' stage cannot fail open");
            }
        }
        let mut take = |stage: Stage| {
            let missing = || anyhow::anyhow!("{origin}: no plugin for the '{stage}' stage");
            file.stages.remove(&stage).ok_or_else(missing)
        };
        let stages = Stages {
            auth: take(Stage::Auth)?,
            task_validation: take(Stage::TaskValidation)?,
            quota: take(Stage::Quota)?,
            intent: take(Stage::Intent)?,
            deviation: take(Stage::Deviation)?,
        };
        Ok(Policy {
            sandbox: file.sandbox,
            stages,
            guardrails: file.guardrails,
            screen_streamed_answers: file.screen_streamed_answers,
            embedded_intent: file.embedded_intent,
            counters_outage_grace: std::time::Duration::from_secs(file.counters_outage_grace_secs),
        })
    }
}

/// What tenants' admins may put in a policy they set through the API; the
/// operator's ceilings, from the server config's `[self_service]`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct SelfServiceLimits {
    /// Highest `deadline_ms` for any plugin.
    pub max_deadline_ms: u64,
    /// Highest `memory_mib` for any plugin.
    pub max_memory_mib: usize,
    /// Highest `warm_instances` for any plugin.
    pub max_warm_instances: usize,
    /// Stages whose plugin a tenant may choose (its own upload or another
    /// shared plugin). Every other stage runs the plugin the server's
    /// policy names, with the tenant's config values. Guardrails are always
    /// the tenant's choice.
    pub tenant_stages: Vec<Stage>,
}

impl Default for SelfServiceLimits {
    fn default() -> Self {
        Self {
            max_deadline_ms: 1000,
            max_memory_mib: 128,
            max_warm_instances: 16,
            tenant_stages: vec![Stage::Intent, Stage::Deviation],
        }
    }
}

impl SelfServiceLimits {
    /// Why `policy` may not be set by a tenant's admin, if it may not:
    /// `server` is the policy the tenant would have without one.
    pub fn refusal(&self, policy: &Policy, server: &Policy) -> Option<String> {
        for (stage, entry) in policy.stages.iter() {
            let fixed = &server.stages.get(stage)?.plugin;
            if !self.tenant_stages.contains(&stage) && entry.plugin != *fixed {
                return Some(format!(
                    "the {stage} stage runs the server's plugin '{fixed}'; this server lets tenants choose the plugin of {} only",
                    self.stage_list()
                ));
            }
        }
        let entries = policy
            .stages
            .iter()
            .map(|(_, e)| e)
            .chain(&policy.guardrails);
        for entry in entries {
            let limits = policy.sandbox.with(&entry.sandbox);
            let over = [
                ("deadline_ms", limits.deadline_ms, self.max_deadline_ms),
                (
                    "memory_mib",
                    limits.memory_mib as u64,
                    self.max_memory_mib as u64,
                ),
                (
                    "warm_instances",
                    limits.warm_instances as u64,
                    self.max_warm_instances as u64,
                ),
            ];
            if let Some((name, value, max)) = over.into_iter().find(|(_, v, max)| v > max) {
                return Some(format!(
                    "plugin '{}': {name} = {value} is over this server's ceiling of {max}",
                    entry.plugin
                ));
            }
        }
        None
    }

    fn stage_list(&self) -> String {
        if self.tenant_stages.is_empty() {
            return "no stage".into();
        }
        let names: Vec<String> = self.tenant_stages.iter().map(|s| s.to_string()).collect();
        names.join(", ")
    }
}

/// Where a tenant's policy comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PolicyOrigin {
    /// Set through the admin API: this version.
    Api { version: u32 },
    /// `policies/<tenant>.toml` on the server.
    File,
    /// The server's default policy.
    Default,
}

/// A policy sent as JSON (the policy file's structure) as the TOML text
/// it is checked and stored as.
pub fn toml_from_json(value: &serde_json::Value) -> anyhow::Result<String> {
    let table: toml::Table = serde_json::from_value(value.clone()).map_err(|e| {
        anyhow::anyhow!("the policy is not a table of the policy file's sections: {e}")
    })?;
    Ok(toml::to_string(&table)?)
}

/// A policy's TOML text as JSON, the same structure.
pub fn json_from_toml(text: &str) -> anyhow::Result<serde_json::Value> {
    let table: toml::Table = toml::from_str(text)?;
    Ok(serde_json::to_value(table)?)
}

/// Finds the policy of a tenant: the one set through the API, else always
/// the current file, parsed once per version of it (a `stat` tells a file
/// that changed).
pub struct PolicySource {
    dir: PathBuf,
    parsed: Mutex<HashMap<PathBuf, (FileVersion, Arc<Policy>)>>,
    /// Policies set through the admin API: (version, text, parsed).
    stored: Mutex<HashMap<String, StoredText>>,
}

#[derive(Clone)]
struct StoredText {
    version: u32,
    text: Arc<str>,
    policy: Arc<Policy>,
}

/// What tells one version of a file from the next: its modification time
/// (nanoseconds on Linux) and length.
type FileVersion = (SystemTime, u64);

impl PolicySource {
    pub fn new(dir: &Path) -> Self {
        Self {
            dir: dir.to_path_buf(),
            parsed: Mutex::default(),
            stored: Mutex::default(),
        }
    }

    /// Sets (or, with `None`, clears) the policy a tenant's admins set
    /// through the API; the caller rebuilds the chain.
    pub fn set_stored(&self, tenant_id: &str, stored: Option<(u32, &str, Arc<Policy>)>) {
        let mut all = self.stored.lock().unwrap_or_else(PoisonError::into_inner);
        match stored {
            Some((version, text, policy)) => {
                let text = Arc::from(text);
                all.insert(
                    tenant_id.to_string(),
                    StoredText {
                        version,
                        text,
                        policy,
                    },
                )
            }
            None => all.remove(tenant_id),
        };
    }

    fn stored(&self, tenant_id: &str) -> Option<StoredText> {
        let all = self.stored.lock().unwrap_or_else(PoisonError::into_inner);
        all.get(tenant_id).cloned()
    }

    /// A tenant's policy text and where it comes from.
    pub fn text_for(&self, tenant_id: &str) -> anyhow::Result<(PolicyOrigin, String)> {
        if let Some(stored) = self.stored(tenant_id) {
            let origin = PolicyOrigin::Api {
                version: stored.version,
            };
            return Ok((origin, stored.text.to_string()));
        }
        match self.file_of(tenant_id) {
            Some((path, origin)) => Ok((origin, std::fs::read_to_string(path)?)),
            None => Ok((PolicyOrigin::Default, EMBEDDED_DEFAULT.to_string())),
        }
    }

    /// The policy a tenant has without one set through the API.
    pub fn server_policy(&self, tenant_id: &str) -> anyhow::Result<Arc<Policy>> {
        match self.file_of(tenant_id) {
            Some((path, _)) => {
                let meta = std::fs::metadata(&path)?;
                self.parsed(&path, (meta.modified()?, meta.len()))
            }
            None => Ok(Arc::new(Policy::parse(
                EMBEDDED_DEFAULT,
                "embedded default policy",
            )?)),
        }
    }

    /// The tenant's own file, else the default file, if there is one.
    fn file_of(&self, tenant_id: &str) -> Option<(PathBuf, PolicyOrigin)> {
        let safe = !tenant_id.is_empty()
            && tenant_id
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
        let own = self.dir.join(format!("{tenant_id}.toml"));
        let default = self.dir.join("default.toml");
        [
            safe.then_some((own, PolicyOrigin::File)),
            Some((default, PolicyOrigin::Default)),
        ]
        .into_iter()
        .flatten()
        .find(|(path, _)| path.is_file())
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn for_tenant(&self, tenant_id: &str) -> anyhow::Result<Arc<Policy>> {
        match self.stored(tenant_id) {
            Some(stored) => Ok(stored.policy),
            None => self.server_policy(tenant_id),
        }
    }

    fn parsed(&self, path: &Path, version: FileVersion) -> anyhow::Result<Arc<Policy>> {
        let mut parsed = self.parsed.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some((seen, policy)) = parsed.get(path) {
            if *seen == version {
                return Ok(policy.clone());
            }
        }
        let text = std::fs::read_to_string(path)?;
        let policy = Arc::new(Policy::parse(&text, &path.display().to_string())?);
        parsed.insert(path.to_path_buf(), (version, policy.clone()));
        Ok(policy)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedded_default_names_every_stage() {
        let p = Policy::parse(EMBEDDED_DEFAULT, "default").unwrap();
        assert_eq!(p.stages.deviation.config_strings()["block_at"], "2.0");
        assert_eq!(p.sandbox.limits().deadline, Duration::from_millis(10));
    }

    #[test]
    fn a_policy_file_is_parsed_once_per_version() {
        let dir = std::env::temp_dir().join(format!("warden-policy-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("acme.toml");
        std::fs::write(&file, EMBEDDED_DEFAULT).unwrap();
        let source = PolicySource::new(&dir);
        let first = source.for_tenant("acme").unwrap();
        assert!(Arc::ptr_eq(&first, &source.for_tenant("acme").unwrap()));
        // A new version (other length) is read again, and its stages typed.
        let quota = "[stages.quota]\nplugin = \"quota\"";
        let edited = EMBEDDED_DEFAULT.replace(quota, &format!("{quota}\nconfig = {{ x = 1 }}"));
        std::fs::write(&file, edited).unwrap();
        let second = source.for_tenant("acme").unwrap();
        assert!(!Arc::ptr_eq(&first, &second));
        assert_eq!(second.stages.quota.config_strings()["x"], "1");
        assert_eq!(second.stages.get(Stage::Guardrail).map(|s| &s.plugin), None);
        std::fs::remove_dir_all(&dir).unwrap();
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

    /// Fuzz target: any policy text is accepted or refused with an error,
    /// never a panic; an accepted one yields its limits (see README,
    /// Reliability, for a long run).
    #[test]
    fn any_policy_text_parses_or_is_refused() {
        bolero::check!().for_each(|text: &[u8]| {
            let Ok(text) = std::str::from_utf8(text) else {
                return;
            };
            if let Ok(policy) = Policy::parse(text, "fuzz") {
                for (_, stage) in policy.stages.iter() {
                    let _ = policy.limits_for(stage);
                }
            }
        });
    }
}
