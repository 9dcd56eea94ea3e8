//! Per-tenant plugin chains. Compiled plugins are shared process-wide (and a
//! tenant may bring its own, found first); each tenant gets its own
//! [`TenantChain`] (its own scopes and warm instances): the five stages and
//! its guardrails. Chains are built at start-up (or on a new tenant's first
//! request), rebuilt when plugins or policies change (reload.rs, uploads),
//! and kept behind an `ArcSwap` so the request path reads them without a
//! lock. A request holds its chain's `Arc` for its whole life, so swapping a
//! chain never disturbs requests in flight.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;

use crate::policy::{Policy, PolicyOrigin, PolicySource, StagePolicy};
use crate::runtime::{samples, CompiledPlugin, PluginRuntime, PluginScope, Stage, TenantPlugin};
use crate::state::model::MisuseSettings;

/// One stage of a tenant's chain.
pub struct StageSlot {
    pub plugin: TenantPlugin,
    pub fail_open: bool,
}

/// The five stages as one tenant runs them.
pub struct TenantChain {
    pub auth: StageSlot,
    pub task_validation: StageSlot,
    pub quota: StageSlot,
    pub intent: StageSlot,
    pub deviation: StageSlot,
    /// The tenant's guardrails, in policy order.
    pub guardrails: Vec<StageSlot>,
    /// Whether streamed answers are held until the guardrails screened them.
    pub screen_streams: bool,
    /// Whether the answering model is asked to label each prompt.
    pub embedded_intent: bool,
    /// The policy this chain was built from, parsed once.
    pub policy: Arc<Policy>,
}

/// The deviation stage's thresholds in force for a tenant (its policy's
/// config, then its own misuse settings); `None` where neither sets one
/// and the plugin's own default applies.
#[derive(Debug, Clone, Copy, Default, PartialEq, serde::Serialize)]
pub struct Thresholds {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub warn_at: Option<f32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub flag_at: Option<f32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub block_at: Option<f32>,
}

impl Thresholds {
    /// Each action's name and threshold, mildest first.
    pub fn named(&self) -> [(&'static str, Option<f32>); 3] {
        [
            ("warn", self.warn_at),
            ("flag", self.flag_at),
            ("block", self.block_at),
        ]
    }
}

/// Compiled plugins by name.
pub type PluginSet = HashMap<String, Arc<CompiledPlugin>>;

pub struct Chains {
    runtime: PluginRuntime,
    plugin_dir: PathBuf,
    /// Plugins every tenant may name: `<plugin_dir>/<name>.wasm`.
    shared: ArcSwap<PluginSet>,
    /// Each tenant's own plugins, found before shared ones:
    /// `<plugin_dir>/tenants/<tenant>/<name>.wasm`.
    own: ArcSwap<HashMap<String, PluginSet>>,
    policies: PolicySource,
    kv_tree: sled::Tree,
    /// The server's clock, handed to every plugin's `clock` import.
    clock: Arc<crate::clock::Clock>,
    by_tenant: ArcSwap<HashMap<String, Arc<TenantChain>>>,
    /// Each tenant's own misuse settings (from its record, set through the
    /// admin API), over its policy's deviation config.
    misuse: ArcSwap<HashMap<String, MisuseSettings>>,
    build_lock: std::sync::Mutex<()>,
    /// Held by whoever changes plugin files and the plugin sets together
    /// (the hot-reload watcher, an upload), so they never interleave.
    reload_lock: std::sync::Mutex<()>,
    /// Each tenant's last plugin failures, newest last (the console's plugin health).
    failures: std::sync::Mutex<HashMap<String, std::collections::VecDeque<PluginFailure>>>,
}

/// A plugin call that failed a request (trap, deadline, memory, bad output).
#[derive(Debug, Clone)]
pub struct PluginFailure {
    pub at_ms: u64,
    pub message: String,
}

/// Failures remembered per tenant.
const FAILURES_KEPT: usize = 5;

/// One slot of a tenant's policy as the console shows it.
#[derive(Debug, Clone)]
pub struct SlotInfo {
    pub stage: Stage,
    pub plugin: String,
    /// The tenant's own upload (else a shared plugin).
    pub own: bool,
    /// Compiled and ready; false when the file is missing.
    pub loaded: bool,
    pub fail_open: bool,
}

/// Where a tenant's own plugins live.
pub fn tenant_plugin_dir(plugin_dir: &Path, tenant_id: &str) -> PathBuf {
    plugin_dir.join("tenants").join(tenant_id)
}

impl Chains {
    /// Compiles the shared plugins and every tenant's own plugins.
    pub fn load(
        runtime: PluginRuntime,
        plugin_dir: &Path,
        policies: PolicySource,
        kv_tree: sled::Tree,
        clock: Arc<crate::clock::Clock>,
    ) -> anyhow::Result<Self> {
        let shared = runtime.compile_dir(plugin_dir)?;
        let mut own = HashMap::new();
        if let Ok(entries) = std::fs::read_dir(plugin_dir.join("tenants")) {
            for entry in entries.flatten() {
                if entry.path().is_dir() {
                    let tenant = entry.file_name().to_string_lossy().into_owned();
                    own.insert(tenant, runtime.compile_dir(&entry.path())?);
                }
            }
        }
        Ok(Self {
            runtime,
            plugin_dir: plugin_dir.to_path_buf(),
            shared: ArcSwap::from_pointee(shared),
            own: ArcSwap::from_pointee(own),
            policies,
            kv_tree,
            clock,
            by_tenant: ArcSwap::from_pointee(HashMap::new()),
            misuse: ArcSwap::from_pointee(HashMap::new()),
            build_lock: std::sync::Mutex::new(()),
            reload_lock: std::sync::Mutex::new(()),
            failures: Default::default(),
        })
    }

    /// See `reload_lock`: never held across an `.await`.
    pub fn reload_lock(&self) -> std::sync::MutexGuard<'_, ()> {
        self.reload_lock.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The sentence encoder behind the intent stage's `embeddings` import.
    pub fn embeddings(&self) -> Option<&Arc<crate::runtime::Embeddings>> {
        self.runtime.embeddings()
    }

    pub fn plugin_dir(&self) -> &Path {
        &self.plugin_dir
    }

    pub fn policy_dir(&self) -> &Path {
        self.policies.dir()
    }

    /// The tenant's chain, built on first use.
    pub fn for_tenant(&self, tenant_id: &str) -> anyhow::Result<Arc<TenantChain>> {
        if let Some(chain) = self.by_tenant.load().get(tenant_id) {
            return Ok(chain.clone());
        }
        let _building = self.build_lock.lock().expect("chain build lock");
        if let Some(chain) = self.by_tenant.load().get(tenant_id) {
            return Ok(chain.clone());
        }
        let policy = self.policy(tenant_id)?;
        let chain = Arc::new(self.build(tenant_id, policy)?);
        self.install(tenant_id, chain.clone());
        Ok(chain)
    }

    /// Swaps in a tenant's chain; requests holding the old one finish on it.
    fn install(&self, tenant_id: &str, chain: Arc<TenantChain>) {
        let mut next = HashMap::clone(&self.by_tenant.load());
        next.insert(tenant_id.to_string(), chain);
        self.by_tenant.store(Arc::new(next));
    }

    /// Builds every listed tenant's chain from the current files (at start-up:
    /// a broken policy stops the server instead of failing requests later).
    pub fn build_all<'a>(
        &self,
        tenants: impl IntoIterator<Item = &'a String>,
    ) -> anyhow::Result<()> {
        for tenant in tenants {
            self.rebuild(tenant)?;
        }
        Ok(())
    }

    /// Rebuilds a tenant's chain from its current policy and plugins and
    /// swaps it in; on error the running chain stays.
    pub fn rebuild(&self, tenant_id: &str) -> anyhow::Result<()> {
        let _building = self.build_lock.lock().expect("chain build lock");
        let policy = self.policy(tenant_id)?;
        let chain = self.build(tenant_id, policy)?;
        self.install(tenant_id, Arc::new(chain));
        Ok(())
    }

    /// Sets the policy of a tenant's admins (`Some`), or hands the tenant
    /// back to the server's policy (`None`): the chain is built with it
    /// first, then `persist` stores it, then the chain is swapped in. If
    /// either fails nothing changes and the running chain keeps serving.
    pub fn apply_policy(
        &self,
        tenant_id: &str,
        stored: Option<(u32, &str, Arc<Policy>)>,
        persist: impl FnOnce() -> anyhow::Result<()>,
    ) -> anyhow::Result<()> {
        let _building = self.build_lock.lock().expect("chain build lock");
        let policy = match &stored {
            Some((_, _, policy)) => policy.clone(),
            None => self.policies.server_policy(tenant_id)?,
        };
        let chain = self.build(tenant_id, policy)?;
        persist()?;
        self.policies.set_stored(tenant_id, stored);
        self.install(tenant_id, Arc::new(chain));
        Ok(())
    }

    /// Keeps a stored policy for the tenant's next build (start-up).
    pub fn set_stored_policy_quietly(
        &self,
        tenant_id: &str,
        version: u32,
        text: &str,
    ) -> anyhow::Result<()> {
        let origin = format!("tenant '{tenant_id}' policy version {version}");
        let policy = Arc::new(Policy::parse(text, &origin)?);
        self.policies
            .set_stored(tenant_id, Some((version, text, policy)));
        Ok(())
    }

    /// The policy a tenant has without one of its own set through the API.
    pub fn server_policy(&self, tenant_id: &str) -> anyhow::Result<Arc<Policy>> {
        self.policies.server_policy(tenant_id)
    }

    /// A tenant's policy as text, and where it comes from.
    pub fn policy_text(&self, tenant_id: &str) -> anyhow::Result<(PolicyOrigin, String)> {
        self.policies.text_for(tenant_id)
    }

    /// A tenant's current policy (its file as it is now; the live chain
    /// may still run an earlier one that built).
    pub fn policy(&self, tenant_id: &str) -> anyhow::Result<Arc<Policy>> {
        self.policies.for_tenant(tenant_id)
    }

    /// A tenant's misuse settings (see `MisuseSettings`): kept for every
    /// later build, and its chain rebuilt with them now.
    pub fn set_misuse(&self, tenant_id: &str, settings: &MisuseSettings) -> anyhow::Result<()> {
        self.set_misuse_quietly(tenant_id, settings);
        self.rebuild(tenant_id)
    }

    /// Keeps a tenant's misuse settings for its next build (start-up).
    pub fn set_misuse_quietly(&self, tenant_id: &str, settings: &MisuseSettings) {
        let mut all = HashMap::clone(&self.misuse.load());
        if settings.is_empty() {
            all.remove(tenant_id);
        } else {
            all.insert(tenant_id.to_string(), settings.clone());
        }
        self.misuse.store(Arc::new(all));
    }

    /// The deviation stage's config for a tenant: its policy's, then its
    /// own misuse settings.
    fn deviation_config(
        &self,
        tenant_id: &str,
        stage_policy: &StagePolicy,
    ) -> HashMap<String, String> {
        let mut config = stage_policy.config_strings();
        if let Some(settings) = self.misuse.load().get(tenant_id) {
            config.extend(
                settings
                    .config()
                    .into_iter()
                    .map(|(k, v)| (k.to_string(), v)),
            );
        }
        config
    }

    /// Writes a task's confirmed examples where the tenant's intent plugin
    /// reads them: its key-value store, key `examples/<task>`, one per line.
    pub fn publish_examples(
        &self,
        tenant_id: &str,
        task_id: &str,
        examples: &[String],
    ) -> anyhow::Result<()> {
        let policy = self.policy(tenant_id)?;
        let plugin = &policy.stages.intent.plugin;
        let key = PluginScope::key_of(tenant_id, plugin, &format!("examples/{task_id}"));
        if examples.is_empty() {
            self.kv_tree.remove(key)?;
        } else {
            let lines: Vec<String> = examples
                .iter()
                .map(|e| e.replace(['\n', '\r'], " "))
                .collect();
            self.kv_tree.insert(key, lines.join("\n").into_bytes())?;
        }
        Ok(())
    }

    /// Idle warm instances across all tenants, and their linear memory.
    pub fn warm_idle(&self) -> (usize, usize) {
        self.runtime.warm_idle()
    }

    /// Tenants with a live chain.
    pub fn live_tenants(&self) -> Vec<String> {
        self.by_tenant.load().keys().cloned().collect()
    }

    /// Recompiles one plugin file (shared, or the tenant's own) and swaps it
    /// into its set; a file that is gone is dropped. Compiling happens here,
    /// off the request path; chains pick the new version up on rebuild.
    pub fn reload_plugin(
        &self,
        tenant: Option<&str>,
        name: &str,
        path: &Path,
    ) -> anyhow::Result<()> {
        let compiled = if path.is_file() {
            let bytes = std::fs::read(path)?;
            Some(self.compile(name, &bytes)?)
        } else {
            None
        };
        self.install_plugin(tenant, name, compiled);
        Ok(())
    }

    /// Compiles and type-checks a component (slow: never on the request path).
    pub fn compile(&self, name: &str, wasm: &[u8]) -> anyhow::Result<Arc<CompiledPlugin>> {
        Ok(Arc::new(self.runtime.compile(name, wasm)?))
    }

    /// Calls a freshly compiled plugin inside the tenant's sandbox before it
    /// may go live, with a typical request of its stage: a first call that
    /// warms the process up (code and memory image touched for the first
    /// time), then a call on a fresh instance within the limits and config
    /// the policy gives it. Returns what was checked.
    pub async fn self_test(
        &self,
        tenant_id: &str,
        compiled: Arc<CompiledPlugin>,
    ) -> anyhow::Result<String> {
        let policy = self.policy(tenant_id)?;
        let name = compiled.name.clone();
        let config = policy
            .entry(&name)
            .map(|s| s.config_strings())
            .unwrap_or_default();
        let scope = Arc::new(
            PluginScope::new(
                Arc::from(tenant_id),
                Arc::from(name.as_str()),
                config,
                self.kv_tree.clone(),
            )
            .with_clock(self.clock.clone()),
        );
        let stage = compiled.stage;
        let limits = policy.limits_of(&name);
        let mut fresh_call = Duration::ZERO;
        for limits in [limits.cold_start(), limits] {
            let plugin =
                self.runtime
                    .instantiate_for_tenant(compiled.clone(), scope.clone(), limits);
            let started = Instant::now();
            samples::call(&plugin, tenant_id)
                .await
                .map_err(|e| anyhow::anyhow!("self-test: {e}: {}", e.detail))?;
            fresh_call = started.elapsed();
        }
        let what = if stage == Stage::Guardrail {
            "on-request and on-response answered a sample call"
        } else {
            "answered a sample call of its stage"
        };
        Ok(format!(
            "{what} within the sandbox limits (on a fresh instance: {} µs)",
            fresh_call.as_micros()
        ))
    }

    /// The tenant's own compiled plugin of that name, if any.
    pub fn own_plugin(&self, tenant_id: &str, name: &str) -> Option<Arc<CompiledPlugin>> {
        self.own.load().get(tenant_id)?.get(name).cloned()
    }

    /// Whether the tenant's current policy names this plugin.
    pub fn policy_uses(&self, tenant_id: &str, name: &str) -> bool {
        !self.policy_stages(tenant_id, name).is_empty()
    }

    /// The stages the tenant's current policy runs this plugin at.
    pub fn policy_stages(&self, tenant_id: &str, name: &str) -> Vec<Stage> {
        let Ok(policy) = self.policy(tenant_id) else {
            return Vec::new();
        };
        let stages = policy
            .stages
            .iter()
            .filter(|(_, s)| s.plugin == name)
            .map(|(stage, _)| stage);
        let guardrail = policy
            .guardrails
            .iter()
            .any(|g| g.plugin == name)
            .then_some(Stage::Guardrail);
        stages.chain(guardrail).collect()
    }

    /// The stages and guardrails of the tenant's policy, in the order they run.
    pub fn describe(&self, tenant_id: &str) -> anyhow::Result<Vec<SlotInfo>> {
        let policy = self.policy(tenant_id)?;
        let slot = |stage: Stage, s: &crate::policy::StagePolicy| SlotInfo {
            stage,
            plugin: s.plugin.clone(),
            own: self.own_plugin(tenant_id, &s.plugin).is_some(),
            loaded: self.resolve(tenant_id, &s.plugin).is_some(),
            fail_open: s.fail_open,
        };
        let stages = policy.stages.iter().map(|(stage, s)| slot(stage, s));
        let guardrails = policy.guardrails.iter().map(|g| slot(Stage::Guardrail, g));
        Ok(stages.chain(guardrails).collect())
    }

    /// The deviation stage's thresholds in force for a tenant.
    pub fn deviation_thresholds(&self, tenant_id: &str) -> Thresholds {
        let Ok(policy) = self.policy(tenant_id) else {
            return Thresholds::default();
        };
        let config = self.deviation_config(tenant_id, &policy.stages.deviation);
        let read = |key: &str| config.get(key).and_then(|v| v.parse().ok());
        Thresholds {
            warn_at: read("warn_at"),
            flag_at: read("flag_at"),
            block_at: read("block_at"),
        }
    }

    /// Remembers a plugin failure of a tenant's request.
    pub fn note_failure(&self, tenant_id: &str, at_ms: u64, message: &str) {
        let mut failures = self.failures.lock().expect("failures lock");
        let list = failures.entry(tenant_id.to_string()).or_default();
        if list.len() == FAILURES_KEPT {
            list.pop_front();
        }
        list.push_back(PluginFailure {
            at_ms,
            message: message.to_string(),
        });
    }

    /// A tenant's last plugin failures, newest first.
    pub fn failures(&self, tenant_id: &str) -> Vec<PluginFailure> {
        let failures = self.failures.lock().expect("failures lock");
        failures
            .get(tenant_id)
            .map(|l| l.iter().rev().cloned().collect())
            .unwrap_or_default()
    }

    /// Plugins the tenant's policy names that are loaded neither for the
    /// tenant nor shared: its chain cannot be built until they are.
    pub fn missing_plugins(&self, tenant_id: &str) -> Vec<String> {
        let Ok(policy) = self.policy(tenant_id) else {
            return Vec::new();
        };
        let mut missing: Vec<String> = policy
            .stages
            .iter()
            .map(|(_, s)| s)
            .chain(&policy.guardrails)
            .filter(|s| self.resolve(tenant_id, &s.plugin).is_none())
            .map(|s| s.plugin.clone())
            .collect();
        missing.sort();
        missing.dedup();
        missing
    }

    /// Puts a compiled plugin into the shared set or a tenant's own set
    /// (`None` removes it); chains pick it up on rebuild.
    pub fn install_plugin(
        &self,
        tenant: Option<&str>,
        name: &str,
        compiled: Option<Arc<CompiledPlugin>>,
    ) {
        let update = |set: &mut PluginSet| match &compiled {
            Some(c) => {
                set.insert(name.to_string(), c.clone());
            }
            None => {
                set.remove(name);
            }
        };
        match tenant {
            None => {
                let mut next = PluginSet::clone(&self.shared.load());
                update(&mut next);
                self.shared.store(Arc::new(next));
            }
            Some(tenant) => {
                let mut next = HashMap::clone(&self.own.load());
                update(next.entry(tenant.to_string()).or_default());
                self.own.store(Arc::new(next));
            }
        }
    }

    /// The plugins a tenant's policy may name: (name, stage, its own
    /// upload), its own first, then the shared ones it does not shadow.
    pub fn available(&self, tenant_id: &str) -> Vec<(String, Stage, bool)> {
        let own = self.own.load();
        let own = own.get(tenant_id);
        let mut all: Vec<(String, Stage, bool)> = own
            .into_iter()
            .flatten()
            .map(|(name, c)| (name.clone(), c.stage, true))
            .collect();
        let shared = self.shared.load();
        all.extend(
            shared
                .iter()
                .filter(|(name, _)| own.is_none_or(|set| !set.contains_key(*name)))
                .map(|(name, c)| (name.clone(), c.stage, false)),
        );
        all.sort_by(|a, b| (!a.2, &a.0).cmp(&(!b.2, &b.0)));
        all
    }

    fn resolve(&self, tenant_id: &str, name: &str) -> Option<Arc<CompiledPlugin>> {
        if let Some(own) = self.own.load().get(tenant_id).and_then(|set| set.get(name)) {
            return Some(own.clone());
        }
        self.shared.load().get(name).cloned()
    }

    fn build(&self, tenant_id: &str, policy: Arc<Policy>) -> anyhow::Result<TenantChain> {
        let tenant: Arc<str> = Arc::from(tenant_id);
        let slot = |stage: Stage,
                    stage_policy: &crate::policy::StagePolicy|
         -> anyhow::Result<StageSlot> {
            let compiled = self.resolve(tenant_id, &stage_policy.plugin).ok_or_else(|| {
                anyhow::anyhow!(
                    "tenant '{tenant_id}': plugin '{}' for the {stage} stage is not loaded (is it in the plugin directory?)",
                    stage_policy.plugin
                )
            })?;
            if compiled.stage != stage {
                anyhow::bail!(
                    "tenant '{tenant_id}': plugin '{}' implements the {} stage, not {stage}",
                    compiled.name,
                    compiled.stage
                );
            }
            let config = if stage == Stage::Deviation {
                self.deviation_config(tenant_id, stage_policy)
            } else {
                stage_policy.config_strings()
            };
            let scope = Arc::new(
                PluginScope::new(
                    tenant.clone(),
                    Arc::from(compiled.name.as_str()),
                    config,
                    self.kv_tree.clone(),
                )
                .with_clock(self.clock.clone()),
            );
            Ok(StageSlot {
                plugin: self.runtime.instantiate_for_tenant(
                    compiled,
                    scope,
                    policy.limits_for(stage_policy),
                ),
                fail_open: stage_policy.fail_open,
            })
        };
        let stages = &policy.stages;
        Ok(TenantChain {
            auth: slot(Stage::Auth, &stages.auth)?,
            task_validation: slot(Stage::TaskValidation, &stages.task_validation)?,
            quota: slot(Stage::Quota, &stages.quota)?,
            intent: slot(Stage::Intent, &stages.intent)?,
            deviation: slot(Stage::Deviation, &stages.deviation)?,
            guardrails: policy
                .guardrails
                .iter()
                .map(|g| slot(Stage::Guardrail, g))
                .collect::<anyhow::Result<_>>()?,
            screen_streams: policy.screen_streamed_answers,
            embedded_intent: policy.embedded_intent,
            policy: policy.clone(),
        })
    }
}
