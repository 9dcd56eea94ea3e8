//! Per-tenant plugin chains. Compiled plugins are shared process-wide; each
//! tenant gets its own [`TenantChain`] (its own scopes and warm instances),
//! built on the tenant's first request and cached behind an `ArcSwap` so the
//! request path reads it without a lock. A request holds its chain's `Arc`
//! for its whole life, so swapping a chain never disturbs requests in flight.

use std::collections::HashMap;
use std::sync::Arc;

use arc_swap::ArcSwap;

use crate::policy::{Policy, PolicySource};
use crate::runtime::bindings::types::{Drift, IntentLabel};
use crate::runtime::{CompiledPlugin, PluginRuntime, PluginScope, Stage, TenantPlugin};

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
}

pub struct Chains {
    runtime: PluginRuntime,
    plugins: HashMap<String, Arc<CompiledPlugin>>,
    policies: PolicySource,
    kv_tree: sled::Tree,
    by_tenant: ArcSwap<HashMap<String, Arc<TenantChain>>>,
    build_lock: std::sync::Mutex<()>,
}

impl Chains {
    pub fn new(
        runtime: PluginRuntime,
        plugins: HashMap<String, Arc<CompiledPlugin>>,
        policies: PolicySource,
        kv_tree: sled::Tree,
    ) -> Self {
        Self {
            runtime,
            plugins,
            policies,
            kv_tree,
            by_tenant: ArcSwap::from_pointee(HashMap::new()),
            build_lock: std::sync::Mutex::new(()),
        }
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
        let policy = self.policies.for_tenant(tenant_id)?;
        let chain = Arc::new(self.build(tenant_id, &policy)?);
        let mut next = HashMap::clone(&self.by_tenant.load());
        next.insert(tenant_id.to_string(), chain.clone());
        self.by_tenant.store(Arc::new(next));
        Ok(chain)
    }

    /// Checks that every tenant policy present resolves (at start-up).
    pub fn validate_policy(&self, tenant_id: &str) -> anyhow::Result<()> {
        let policy = self.policies.for_tenant(tenant_id)?;
        self.build(tenant_id, &policy).map(drop)
    }

    fn build(&self, tenant_id: &str, policy: &Policy) -> anyhow::Result<TenantChain> {
        let tenant: Arc<str> = Arc::from(tenant_id);
        let limits = policy.sandbox.limits();
        let slot = |stage: Stage,
                    stage_policy: &crate::policy::StagePolicy|
         -> anyhow::Result<StageSlot> {
            let compiled = self.plugins.get(&stage_policy.plugin).ok_or_else(|| {
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
            let scope = Arc::new(PluginScope::new(
                tenant.clone(),
                Arc::from(compiled.name.as_str()),
                stage_policy.config_strings(),
                self.kv_tree.clone(),
            ));
            Ok(StageSlot {
                plugin: self.runtime.instantiate_for_tenant(
                    compiled.clone(),
                    scope,
                    limits.clone(),
                ),
                fail_open: stage_policy.fail_open,
            })
        };
        let stage = |stage: Stage| slot(stage, &policy.stages[&stage]);
        Ok(TenantChain {
            auth: stage(Stage::Auth)?,
            task_validation: stage(Stage::TaskValidation)?,
            quota: stage(Stage::Quota)?,
            intent: stage(Stage::Intent)?,
            deviation: stage(Stage::Deviation)?,
            guardrails: policy
                .guardrails
                .iter()
                .map(|g| slot(Stage::Guardrail, g))
                .collect::<anyhow::Result<_>>()?,
        })
    }
}

pub fn label_str(label: IntentLabel) -> &'static str {
    match label {
        IntentLabel::Code => "code",
        IntentLabel::Test => "test",
        IntentLabel::Doc => "doc",
        IntentLabel::Analysis => "analysis",
        IntentLabel::OffTopic => "off_topic",
    }
}

pub fn parse_label(s: &str) -> IntentLabel {
    match s {
        "code" => IntentLabel::Code,
        "test" => IntentLabel::Test,
        "doc" => IntentLabel::Doc,
        "analysis" => IntentLabel::Analysis,
        _ => IntentLabel::OffTopic,
    }
}

pub fn drift_str(drift: Drift) -> &'static str {
    match drift {
        Drift::OnTask => "on-task",
        Drift::Slight => "slight",
        Drift::Major => "major",
    }
}

pub fn parse_drift(s: &str) -> Drift {
    match s {
        "on-task" => Drift::OnTask,
        "slight" => Drift::Slight,
        _ => Drift::Major,
    }
}
