//! The wasm plugin runtime: one wasmtime `Engine` and one `Linker` for the
//! process, components compiled off the request path into `InstancePre`s,
//! and sandboxed per-tenant instances (see [`plugin`]).

pub mod bindings;
mod cache;
mod call_budget;
pub mod convert;
pub mod embeddings;
mod host_imports;
mod limits;
mod plugin;
pub mod samples;
mod stage;
pub mod tenant;
pub mod version;
mod warm;

use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use anyhow::Context;
use wasmtime::component::{Component, HasSelf, Linker};
use wasmtime::{Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig};

pub use embeddings::Embeddings;
pub use host_imports::{PluginScope, PluginState};
use plugin::LoadedComponent;
pub use plugin::{
    CompiledPlugin, FailureKind, PluginError, SandboxLimits, TenantPlugin, INSTANCES_CREATED,
};
pub use stage::Stage;
pub use tenant::TenantLimits;
use tenant::TenantSandboxes;
use warm::WarmBudget;
pub use warm::WarmLimits;

/// How often the epoch advances; deadlines are counted in these ticks.
pub(crate) const EPOCH_TICK: Duration = Duration::from_millis(1);
/// Idle warm instances past their TTL are dropped about once a second.
const SWEEP_EVERY_TICKS: u32 = 1000;

/// Process-wide sizing of the instance pool.
#[derive(Clone, Debug)]
pub struct RuntimeConfig {
    /// Component instances that may be live at once (warm + in flight).
    pub max_instances: u32,
    /// Ceiling for any one linear memory; tenants' caps are at most this.
    pub max_memory_bytes: usize,
    /// Where compiled components are cached (`None`: compile every time).
    pub artifact_dir: Option<std::path::PathBuf>,
    /// Idle warm instances kept across all tenants.
    pub warm: WarmLimits,
    /// What one tenant's plugins may hold together.
    pub tenant: TenantLimits,
    /// The sentence encoder behind the `embeddings` import (`None`: the
    /// import answers `none`).
    pub embeddings: Option<Arc<Embeddings>>,
}

impl Default for RuntimeConfig {
    fn default() -> Self {
        Self {
            max_instances: 1000,
            max_memory_bytes: 256 << 20,
            artifact_dir: None,
            warm: WarmLimits {
                max_instances: 500,
                max_bytes: 1 << 30,
                idle_ttl: Duration::from_secs(120),
            },
            tenant: TenantLimits::default(),
            embeddings: None,
        }
    }
}

impl RuntimeConfig {
    /// A small runtime for running plugins outside a server (`warden plugin
    /// test`, `warden eval`).
    pub fn local() -> Self {
        Self {
            max_instances: 8,
            ..Self::default()
        }
    }
}

/// A key-value tree in a temporary database, for plugins run outside a
/// server: their `kv` import works and nothing is kept.
pub fn scratch_kv_tree() -> anyhow::Result<sled::Tree> {
    Ok(sled::Config::new()
        .temporary(true)
        .open()?
        .open_tree("plugin_kv")?)
}

pub struct PluginRuntime {
    engine: Engine,
    linker: Linker<PluginState>,
    ticker_stop: Arc<AtomicBool>,
    cache: Option<cache::ArtifactCache>,
    warm: Arc<WarmBudget>,
    tenants: TenantSandboxes,
    embeddings: Option<Arc<Embeddings>>,
    /// Compiled components by the SHA-256 of their bytes, while in use.
    loaded: Mutex<HashMap<cache::Digest, Weak<LoadedComponent>>>,
}

impl PluginRuntime {
    pub fn new(config: &RuntimeConfig) -> anyhow::Result<Self> {
        let mut pool = PoolingAllocationConfig::default();
        let n = config.max_instances;
        pool.total_component_instances(n)
            .total_core_instances(n * 4)
            .total_memories(n)
            .total_tables(n * 4)
            .total_stacks(n)
            .max_memory_size(config.max_memory_bytes)
            // Keep recycled pages resident instead of madvise + fault again:
            // every plugin call runs on a pooled fiber stack.
            .async_stack_keep_resident(128 << 10)
            .linear_memory_keep_resident(1 << 20)
            .table_keep_resident(64 << 10);
        let mut wasm = Config::new();
        wasm.wasm_component_model(true)
            .epoch_interruption(true)
            .allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
        let engine = Engine::new(&wasm).map_err(|e| wasm_error("creating the wasm engine", e))?;

        let mut linker = Linker::new(&engine);
        wasmtime_wasi::p2::add_to_linker_async(&mut linker)
            .map_err(|e| wasm_error("linking WASI", e))?;
        bindings::AllStages::add_to_linker::<_, HasSelf<PluginState>>(&mut linker, |s| s)
            .map_err(|e| wasm_error("linking host imports", e))?;

        // Never more idle instances than half the pool: the rest is kept
        // for calls in flight.
        let warm = WarmBudget::new(WarmLimits {
            max_instances: config.warm.max_instances.min(n as usize / 2),
            ..config.warm.clone()
        });
        let ticker_stop = Arc::new(AtomicBool::new(false));
        let (stop, ticking, sweeping) = (ticker_stop.clone(), engine.clone(), warm.clone());
        std::thread::Builder::new()
            .name("warden-epoch".into())
            .spawn(move || {
                let mut ticks = 0u32;
                while !stop.load(Ordering::Relaxed) {
                    std::thread::sleep(EPOCH_TICK);
                    ticking.increment_epoch();
                    ticks = ticks.wrapping_add(1);
                    if ticks.is_multiple_of(SWEEP_EVERY_TICKS) {
                        sweeping.sweep();
                    }
                }
            })?;
        Ok(Self {
            engine,
            linker,
            ticker_stop,
            cache: config
                .artifact_dir
                .as_deref()
                .map(cache::ArtifactCache::new),
            warm,
            tenants: TenantSandboxes::new(config.tenant.clone()),
            embeddings: config.embeddings.clone(),
            loaded: Mutex::new(HashMap::new()),
        })
    }

    /// Compiles and type-checks a component. Slow (milliseconds to seconds):
    /// never call it on the request path. Bytes already loaded (another
    /// tenant's copy of the same plugin) share that compilation.
    pub fn compile(&self, name: &str, wasm: &[u8]) -> anyhow::Result<CompiledPlugin> {
        let digest = cache::digest(wasm);
        if let Some(loaded) = self.loaded(&digest) {
            return Ok(CompiledPlugin::new(name.to_string(), loaded));
        }
        let started = std::time::Instant::now();
        let (component, cached) = match &self.cache {
            Some(cache) => cache.load_or_compile(&self.engine, wasm, &digest),
            None => Component::new(&self.engine, wasm).map(|c| (c, false)),
        }
        .map_err(|e| wasm_error(&format!("plugin '{name}' is not a valid wasm component"), e))?;
        tracing::debug!(plugin = %name, cached, ms = started.elapsed().as_millis() as u64, "plugin loaded");
        version::check(&self.engine, &component, name)?;
        // Build the memory image now rather than on the first
        // instantiation, inside a request's time budget: for a component
        // with large data (the intent model's 18 MB of word vectors) that
        // is tens of milliseconds of copying.
        // An image that cannot be made now (a memfd refusing its seals, seen
        // once in CI) is not a reason to refuse the plugin: wasmtime tries
        // again on the first instantiation.
        if let Err(e) = component
            .initialize_copy_on_write_image()
            .or_else(|_| component.initialize_copy_on_write_image())
        {
            tracing::warn!(plugin = %name, error = %e, "memory image not prepared ahead; made on first use");
        }
        let pre = self.linker.instantiate_pre(&component).map_err(|e| {
            wasm_error(
                &format!(
                    "plugin '{name}' imports something the warden:policy worlds do not provide"
                ),
                e,
            )
        })?;
        let loaded =
            Arc::new(LoadedComponent::new(pre).with_context(|| format!("plugin '{name}'"))?);
        let mut all = self.loaded.lock().expect("loaded components lock");
        all.retain(|_, l| l.strong_count() > 0);
        all.insert(digest, Arc::downgrade(&loaded));
        Ok(CompiledPlugin::new(name.to_string(), loaded))
    }

    fn loaded(&self, digest: &cache::Digest) -> Option<Arc<LoadedComponent>> {
        let all = self.loaded.lock().expect("loaded components lock");
        all.get(digest).and_then(Weak::upgrade)
    }

    /// Compiles every `*.wasm` in `dir`, keyed by file stem.
    pub fn compile_dir(&self, dir: &Path) -> anyhow::Result<HashMap<String, Arc<CompiledPlugin>>> {
        let mut plugins = HashMap::new();
        let entries = std::fs::read_dir(dir)
            .with_context(|| format!("reading plugin directory {}", dir.display()))?;
        for entry in entries {
            let path = entry?.path();
            if path.extension().is_some_and(|e| e == "wasm") {
                let name = path
                    .file_stem()
                    .unwrap_or_default()
                    .to_string_lossy()
                    .into_owned();
                let bytes = std::fs::read(&path)?;
                let started = std::time::Instant::now();
                let compiled = self.compile(&name, &bytes)?;
                tracing::info!(plugin = %name, stage = %compiled.stage, ms = started.elapsed().as_millis() as u64, "plugin compiled");
                plugins.insert(name, Arc::new(compiled));
            }
        }
        Ok(plugins)
    }

    /// One tenant's handle on a compiled plugin.
    pub fn instantiate_for_tenant(
        &self,
        compiled: Arc<CompiledPlugin>,
        scope: Arc<PluginScope>,
        limits: SandboxLimits,
    ) -> TenantPlugin {
        let tenant = self.tenants.of(&scope.tenant_id);
        let embeddings = self.embeddings.clone();
        TenantPlugin::new(
            compiled,
            scope,
            limits,
            self.warm.pool(),
            tenant,
            embeddings,
        )
    }

    /// The sentence encoder plugins' `embed` reads from, if any.
    pub fn embeddings(&self) -> Option<&Arc<Embeddings>> {
        self.embeddings.as_ref()
    }

    /// Idle warm instances across all tenants, and their linear memory.
    pub fn warm_idle(&self) -> (usize, usize) {
        self.warm.idle()
    }
}

/// wasmtime has its own error type; keep its message chain in ours.
fn wasm_error(what: &str, e: wasmtime::Error) -> anyhow::Error {
    anyhow::anyhow!("{what}: {e:#}")
}

impl Drop for PluginRuntime {
    fn drop(&mut self) {
        self.ticker_stop.store(true, Ordering::Relaxed);
    }
}
