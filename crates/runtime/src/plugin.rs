//! A compiled plugin, and its per-tenant instances.
//!
//! Instances are never shared between tenants: each tenant's chain holds its
//! own [`TenantPlugin`], with its own scope (config, key-value prefix) and its
//! own pool of warm instances (bounded process-wide: see [`super::warm`]).
//! Within one tenant a healthy instance is reused for up to `max_reuse` calls
//! (a fresh instance costs ~50 µs for a Rust component and ~1.7 ms for a
//! Python or JavaScript one; a call on a live one 2-60 µs); an instance that
//! trapped, ran out of time or hit its memory cap is dropped, never reused.

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use wasmtime::component::InstancePre;
use wasmtime::{Store, Trap};

use super::bindings::{auth, deviation, guardrail, intent, quota, task_validation, types};
use super::call_budget::{CallBudget, Overrun};
use super::embeddings::Embeddings;
use super::host_imports::{PluginScope, PluginState};
use super::stage::{Stage, StageExports, StageGuest};
use super::tenant::TenantSandbox;
use super::warm::{WarmInstance, WarmPool};

/// Instantiation may take this many call deadlines.
const INSTANTIATE_BUDGET_FACTOR: u64 = 10;

/// A component compiled and type-checked against the host's imports. The
/// compiled code is shared by every plugin loaded from the same bytes (a
/// thousand tenants uploading one redactor hold one copy).
pub struct CompiledPlugin {
    pub name: String,
    pub stage: Stage,
    loaded: Arc<LoadedComponent>,
}

/// What compiling one component's bytes produced.
pub(super) struct LoadedComponent {
    stage: Stage,
    pre: InstancePre<PluginState>,
    exports: StageExports,
    /// It imports `warden:policy/embeddings`: only then does the host
    /// embed a call's prompt and task for it.
    uses_embeddings: bool,
}

impl LoadedComponent {
    pub(super) fn new(pre: InstancePre<PluginState>) -> anyhow::Result<Self> {
        let (stage, exports) = StageExports::detect(&pre)?;
        let uses_embeddings = pre
            .component()
            .component_type()
            .imports(pre.engine())
            .any(|(name, _)| name.starts_with("warden:policy/embeddings"));
        Ok(Self {
            stage,
            pre,
            exports,
            uses_embeddings,
        })
    }
}

impl CompiledPlugin {
    pub(super) fn new(name: String, loaded: Arc<LoadedComponent>) -> Self {
        Self {
            name,
            stage: loaded.stage,
            loaded,
        }
    }
}

/// Sandbox limits applied to every call of one tenant's plugin.
#[derive(Clone, Debug)]
pub struct SandboxLimits {
    /// Time budget of one call: CPU time, plus time waiting in host calls
    /// (see [`super::call_budget`]).
    pub deadline: Duration,
    /// Cap on each linear memory of an instance.
    pub memory_bytes: usize,
    /// Calls served by one instance before it is recycled; 1 = a fresh
    /// instance per call.
    pub max_reuse: u32,
    /// Idle instances kept per (tenant, plugin).
    pub warm_instances: usize,
}

impl Default for SandboxLimits {
    fn default() -> Self {
        Self {
            deadline: Duration::from_millis(10),
            memory_bytes: 32 << 20,
            max_reuse: 1000,
            warm_instances: 4,
        }
    }
}

impl SandboxLimits {
    /// These limits for the first call of a component in this process: it
    /// touches the compiled code and the memory image for the first time,
    /// and gets the instantiation budget instead of a call's.
    pub fn cold_start(&self) -> SandboxLimits {
        SandboxLimits {
            deadline: self.deadline * INSTANTIATE_BUDGET_FACTOR as u32,
            max_reuse: 1,
            ..self.clone()
        }
    }
}

/// Why a plugin call failed. Every failure fails the request closed (503)
/// unless the tenant's policy marks the stage fail-open.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureKind {
    Instantiate,
    Trap,
    Deadline,
    Memory,
    /// It returned something the host refuses (too large to copy out, a
    /// rewrite that breaks the request's shape, over its size cap).
    Output,
    /// Refused without running: it failed repeatedly just before.
    Tripped,
    /// Refused without running: the tenant's plugins hold all the
    /// instances it may have at once.
    Busy,
}

#[derive(Debug, Clone)]
pub struct PluginError {
    pub stage: Stage,
    pub plugin: String,
    pub kind: FailureKind,
    pub detail: String,
}

impl std::fmt::Display for PluginError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let what = match self.kind {
            FailureKind::Instantiate => "could not be instantiated",
            FailureKind::Trap => "trapped",
            FailureKind::Deadline => "exceeded its time limit",
            FailureKind::Memory => "exceeded its memory limit",
            FailureKind::Output => "returned output the host refuses",
            FailureKind::Tripped => "failed repeatedly and is paused",
            FailureKind::Busy => "is at its tenant's cap of instances in use",
        };
        write!(
            f,
            "the {} stage plugin '{}' {what}",
            self.stage, self.plugin
        )
    }
}

/// After this many failed calls in a row a tenant's plugin is paused: its
/// calls fail at once for `PAUSE`, then one call probes it again. A plugin
/// that loops to its deadline on every call would otherwise spend that
/// deadline of CPU on every request, and slow other tenants' requests that
/// share the worker thread (measured: bench/isolation.py).
const TRIP_AFTER: u32 = 3;
const PAUSE: Duration = Duration::from_secs(5);

/// The pause state of one tenant's plugin.
#[derive(Default)]
struct Breaker {
    failures_in_a_row: AtomicU32,
    /// Calls in a row whose output the host refused after the call itself
    /// succeeded (counted apart: the call's success resets the other).
    refused_outputs_in_a_row: AtomicU32,
    /// Until when (ms on `Breaker::now_ms`'s clock) calls are refused.
    paused_until: AtomicU64,
}

impl Breaker {
    fn now_ms() -> u64 {
        static START: OnceLock<Instant> = OnceLock::new();
        START.get_or_init(Instant::now).elapsed().as_millis() as u64
    }

    fn paused(&self) -> bool {
        Self::now_ms() < self.paused_until.load(Ordering::Relaxed)
    }

    fn record(&self, ok: bool) {
        if ok {
            // Read first: a healthy plugin's calls then never write this
            // cache line, which every worker shares.
            if self.failures_in_a_row.load(Ordering::Relaxed) != 0 {
                self.failures_in_a_row.store(0, Ordering::Relaxed);
            }
        } else if self.failures_in_a_row.fetch_add(1, Ordering::Relaxed) + 1 >= TRIP_AFTER {
            self.pause();
        }
    }

    fn record_output(&self, accepted: bool) {
        let refused = &self.refused_outputs_in_a_row;
        if accepted {
            if refused.load(Ordering::Relaxed) != 0 {
                refused.store(0, Ordering::Relaxed);
            }
        } else if refused.fetch_add(1, Ordering::Relaxed) + 1 >= TRIP_AFTER {
            refused.store(0, Ordering::Relaxed);
            self.pause();
        }
    }

    fn pause(&self) {
        let until = Self::now_ms() + PAUSE.as_millis() as u64;
        self.paused_until.store(until, Ordering::Relaxed);
    }
}

/// Instances created since start (all tenants); exported on `/metrics`.
pub static INSTANCES_CREATED: AtomicU64 = AtomicU64::new(0);

/// One tenant's use of a compiled plugin.
pub struct TenantPlugin {
    compiled: Arc<CompiledPlugin>,
    scope: Arc<PluginScope>,
    limits: SandboxLimits,
    warm: Arc<WarmPool>,
    breaker: Breaker,
    tenant: Arc<TenantSandbox>,
    embeddings: Option<Arc<Embeddings>>,
}

impl TenantPlugin {
    pub(super) fn new(
        compiled: Arc<CompiledPlugin>,
        scope: Arc<PluginScope>,
        limits: SandboxLimits,
        warm: Arc<WarmPool>,
        tenant: Arc<TenantSandbox>,
        embeddings: Option<Arc<Embeddings>>,
    ) -> Self {
        Self {
            compiled,
            scope,
            limits,
            warm,
            breaker: Breaker::default(),
            tenant,
            embeddings,
        }
    }

    pub fn name(&self) -> &str {
        &self.compiled.name
    }

    pub fn stage(&self) -> Stage {
        self.compiled.stage
    }

    /// The sentence encoder, when the server has one and this plugin
    /// imports it: what to embed before calling it.
    pub fn embeddings(&self) -> Option<&Arc<Embeddings>> {
        self.embeddings
            .as_ref()
            .filter(|_| self.compiled.loaded.uses_embeddings)
    }

    /// Linear memory held by this tenant's idle warm instances.
    pub fn warm_memory_bytes(&self) -> usize {
        self.warm.idle_bytes()
    }

    fn error(&self, kind: FailureKind, detail: String) -> PluginError {
        PluginError {
            stage: self.compiled.stage,
            plugin: self.compiled.name.clone(),
            kind,
            detail,
        }
    }

    async fn checkout(&self) -> Result<WarmInstance, PluginError> {
        if let Some(warm) = self.warm.take() {
            return Ok(warm);
        }
        INSTANCES_CREATED.fetch_add(1, Ordering::Relaxed);
        let state = PluginState::new(
            self.scope.clone(),
            self.tenant.clone(),
            self.limits.memory_bytes,
            self.embeddings.clone(),
        );
        let mut store = Store::new(self.compiled.loaded.pre.engine(), state);
        store.limiter(|s| &mut s.limiter);
        let budget = Arc::new(CallBudget::default());
        let meter = budget.clone();
        store.epoch_deadline_callback(move |_| Ok(meter.on_epoch()));
        // Creating an instance is mostly host work (and slower when the
        // process is busy): it gets a larger budget than a call, which
        // still bounds a component whose start function never returns.
        let ticks = budget.start(self.limits.deadline * INSTANTIATE_BUDGET_FACTOR as u32);
        store.set_epoch_deadline(ticks);
        let instantiating = self.compiled.loaded.pre.instantiate_async(&mut store);
        let instance = budget
            .metered(instantiating)
            .await
            .map_err(|o| self.overrun(o))?
            .map_err(|e| self.classify(&store, e))?;
        let guest = self
            .compiled
            .loaded
            .exports
            .load(&mut store, &instance)
            .map_err(|e| self.error(FailureKind::Instantiate, format!("{e:#}")))?;
        Ok(WarmInstance::new(store, guest, budget))
    }

    /// A call cut by its budget while it waited in a host call (wasm code
    /// that spends it is interrupted instead, as a trap).
    fn overrun(&self, overrun: Overrun) -> PluginError {
        self.error(
            FailureKind::Deadline,
            format!(
                "still waiting after {} ms (a sleep or poll counts against the deadline)",
                overrun.waited.as_millis()
            ),
        )
    }

    /// Counts output the host refused after a call that itself succeeded
    /// as a failure of the plugin, towards its pause: a plugin that
    /// returns such output on every call would otherwise cost the host a
    /// copy of it on every request.
    pub fn output_refused(&self) {
        self.breaker.record_output(false);
    }

    /// The host took what a call returned (after [`Self::output_refused`]
    /// calls, it is no longer refusing in a row).
    pub fn output_accepted(&self) {
        self.breaker.record_output(true);
    }

    fn classify(&self, store: &Store<PluginState>, err: wasmtime::Error) -> PluginError {
        let kind = if store.data().limiter.memory_exceeded {
            FailureKind::Memory
        } else if matches!(err.downcast_ref::<Trap>(), Some(Trap::Interrupt)) {
            FailureKind::Deadline
        } else if err.downcast_ref::<Trap>().is_some() {
            FailureKind::Trap
        } else {
            FailureKind::Instantiate
        };
        self.error(kind, format!("{err:#}"))
    }

    /// A failed call: as [`Self::classify`], except that an error that is
    /// neither a trap nor a limit came from the host refusing the call's
    /// results (wasmtime's copy limit, invalid strings), not from
    /// instantiating.
    fn classify_call(&self, store: &Store<PluginState>, err: wasmtime::Error) -> PluginError {
        let mut error = self.classify(store, err);
        if error.kind == FailureKind::Instantiate {
            error.kind = FailureKind::Output;
        }
        error
    }

    fn busy_error(&self) -> PluginError {
        let in_use = self.tenant.instances_in_use();
        self.error(
            FailureKind::Busy,
            format!("{in_use} instances of this tenant's plugins are in use"),
        )
    }

    fn paused_error(&self) -> PluginError {
        self.error(
            FailureKind::Tripped,
            format!(
                "{TRIP_AFTER} calls in a row failed; its calls are refused for {} s after the last failure",
                PAUSE.as_secs()
            ),
        )
    }

    /// Returns a healthy instance to the warm pool (or drops it).
    fn checkin(&self, mut warm: WarmInstance) {
        warm.calls += 1;
        if warm.calls < self.limits.max_reuse {
            self.warm.put(warm, self.limits.warm_instances);
        }
    }
}

/// Generates one typed call method per stage: refuse at once while the
/// plugin is paused; otherwise check out an instance, arm its deadline, call
/// the export, check the instance back in only if the call succeeded, and
/// count the outcome towards the pause.
macro_rules! stage_call {
    ($method:ident, $variant:ident, $export:ident, ($($arg:ident: $ty:ty),*), $out:ty) => {
        pub async fn $method(&self, $($arg: $ty),*) -> Result<$out, PluginError> {
            if self.breaker.paused() {
                return Err(self.paused_error());
            }
            let result = async {
                let _in_use = self.tenant.try_slot().ok_or_else(|| self.busy_error())?;
                let mut warm = self.checkout().await?;
                let StageGuest::$variant(guest) = &warm.guest else {
                    return Err(self.error(
                        FailureKind::Instantiate,
                        format!("plugin does not implement the {} stage", self.stage()),
                    ));
                };
                let guest = guest.clone();
                let ticks = warm.budget.start(self.limits.deadline);
                warm.store.set_epoch_deadline(ticks);
                let call = guest.$export(&mut warm.store, $($arg),*);
                match warm.budget.metered(call).await.map_err(|o| self.overrun(o))? {
                    Ok(out) => {
                        self.checkin(warm);
                        Ok(out)
                    }
                    Err(e) => Err(self.classify_call(&warm.store, e)),
                }
            }
            .await;
            // A refusal for the tenant's load says nothing of the plugin.
            if !matches!(&result, Err(e) if e.kind == FailureKind::Busy) {
                self.breaker.record(result.is_ok());
            }
            result
        }
    };
}

impl TenantPlugin {
    stage_call!(auth, Auth, call_check, (request: &auth::AuthRequest), types::Verdict);
    stage_call!(
        validate_task,
        TaskValidation,
        call_validate,
        (request: &task_validation::TaskRequest),
        types::Verdict
    );
    stage_call!(
        quota,
        Quota,
        call_check,
        (request: &quota::QuotaRequest),
        quota::QuotaVerdict
    );
    stage_call!(
        intent,
        Intent,
        call_classify,
        (request: &intent::IntentRequest),
        types::Intent
    );
    stage_call!(
        deviation,
        Deviation,
        call_score,
        (request: &deviation::DeviationRequest),
        deviation::DeviationOutcome
    );
    stage_call!(
        on_request,
        Guardrail,
        call_on_request,
        (context: &guardrail::CallContext, messages: &[guardrail::Message]),
        guardrail::RequestDecision
    );
    stage_call!(
        on_response,
        Guardrail,
        call_on_response,
        (context: &guardrail::CallContext, text: &str),
        guardrail::ResponseDecision
    );
}
