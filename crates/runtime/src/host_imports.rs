//! What a plugin may call on the host: structured log, clock, its own config
//! values and a key-value store scoped to (tenant, plugin). WASI is linked
//! with an empty context so components from any toolchain instantiate, but
//! they get no files, sockets, environment or stdio.

use std::collections::HashMap;
use std::sync::Arc;

use wasmtime::component::ResourceTable;
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

use super::bindings::warden::policy::{clock, config, kv, log, types};
use super::embeddings::Embeddings;
use super::limits::PluginLimiter;
use super::tenant::{KvUsage, TenantSandbox};

/// Maximum key and value sizes in a plugin's key-value store.
const KV_MAX_KEY: usize = 256;
const KV_MAX_VALUE: usize = 64 * 1024;

/// Everything a plugin instance is scoped to. Shared (via `Arc`) by every
/// instance of one plugin for one tenant, never across tenants.
pub struct PluginScope {
    pub tenant_id: Arc<str>,
    pub plugin: Arc<str>,
    pub config: HashMap<String, String>,
    /// The sled tree holding every plugin's keys; `kv_prefix` confines this
    /// plugin to `tenant \0 plugin \0`.
    pub kv_tree: sled::Tree,
    kv_prefix: Vec<u8>,
    /// The server's clock (tests and simulations move it), read by the
    /// `clock` import so plugins and the host agree on the time.
    clock: Arc<warden_domain::clock::Clock>,
}

/// `tenant \0 plugin \0`: where one plugin's keys of one tenant start.
fn kv_prefix(tenant_id: &str, plugin: &str) -> Vec<u8> {
    let mut prefix = Vec::with_capacity(tenant_id.len() + plugin.len() + 2);
    prefix.extend_from_slice(tenant_id.as_bytes());
    prefix.push(0);
    prefix.extend_from_slice(plugin.as_bytes());
    prefix.push(0);
    prefix
}

impl PluginScope {
    pub fn new(
        tenant_id: Arc<str>,
        plugin: Arc<str>,
        config: HashMap<String, String>,
        kv_tree: sled::Tree,
    ) -> Self {
        let kv_prefix = kv_prefix(&tenant_id, &plugin);
        Self {
            tenant_id,
            plugin,
            config,
            kv_tree,
            kv_prefix,
            clock: Arc::default(),
        }
    }

    /// This scope reading time from `clock` instead of the system clock.
    pub fn with_clock(mut self, clock: Arc<warden_domain::clock::Clock>) -> Self {
        self.clock = clock;
        self
    }

    fn kv_key(&self, key: &str) -> Vec<u8> {
        let mut full = Vec::with_capacity(self.kv_prefix.len() + key.len());
        full.extend_from_slice(&self.kv_prefix);
        full.extend_from_slice(key.as_bytes());
        full
    }

    /// The size (key plus value) of the entry at `full`, if any.
    fn stored_size(&self, full: &[u8]) -> Option<u64> {
        let value = self.kv_tree.get(full).ok().flatten()?;
        Some((full.len() + value.len()) as u64)
    }

    /// Keys and bytes every plugin of this tenant stores (a scan: once per
    /// tenant and process).
    fn tenant_kv_usage(&self) -> KvUsage {
        let mut tenant_prefix = self.tenant_id.as_bytes().to_vec();
        tenant_prefix.push(0);
        self.kv_tree.scan_prefix(tenant_prefix).flatten().fold(
            KvUsage::default(),
            |usage, (k, v)| KvUsage {
                keys: usage.keys + 1,
                bytes: usage.bytes + (k.len() + v.len()) as u64,
            },
        )
    }

    /// The full key of `key` in the store of (tenant, plugin): for the
    /// host writing data a plugin reads (a task's confirmed examples).
    pub fn key_of(tenant_id: &str, plugin: &str, key: &str) -> Vec<u8> {
        let mut full = kv_prefix(tenant_id, plugin);
        full.extend_from_slice(key.as_bytes());
        full
    }
}

/// The data of one plugin `Store`.
pub struct PluginState {
    wasi: WasiCtx,
    table: ResourceTable,
    pub limiter: PluginLimiter,
    pub scope: Arc<PluginScope>,
    /// The tenant's log and kv budgets.
    tenant: Arc<TenantSandbox>,
    /// The process's sentence encoder, if it has one.
    pub(crate) embeddings: Option<Arc<Embeddings>>,
}

impl PluginState {
    pub fn new(
        scope: Arc<PluginScope>,
        tenant: Arc<TenantSandbox>,
        max_memory_bytes: usize,
        embeddings: Option<Arc<Embeddings>>,
    ) -> Self {
        Self {
            // No preopens, no env, no args, no inherited stdio, no network.
            wasi: WasiCtx::builder().allow_tcp(false).allow_udp(false).build(),
            table: ResourceTable::new(),
            limiter: PluginLimiter::new(max_memory_bytes),
            scope,
            tenant,
            embeddings,
        }
    }
}

impl WasiView for PluginState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl types::Host for PluginState {}

impl log::Host for PluginState {
    /// Capped per line and rate-limited per tenant: a plugin logging in a
    /// loop must not fill the disk or slow other tenants' requests.
    fn emit(&mut self, level: types::LogLevel, message: String, fields: Vec<(String, String)>) {
        if !self.tenant.admit_log_line() {
            return;
        }
        let (message, cut) = self.tenant.cap_log_line(&message);
        let fields: Vec<_> = fields
            .iter()
            .take(16)
            .map(|(k, v)| (self.tenant.cap_log_line(k).0, self.tenant.cap_log_line(v).0))
            .collect();
        let scope = &*self.scope;
        let (tenant, plugin) = (&*scope.tenant_id, &*scope.plugin);
        macro_rules! emit {
            ($lvl:expr) => {
                tracing::event!(target: "warden::plugin", $lvl, tenant, plugin, ?fields, cut, "{message}")
            };
        }
        match level {
            types::LogLevel::Trace => emit!(tracing::Level::TRACE),
            types::LogLevel::Debug => emit!(tracing::Level::DEBUG),
            types::LogLevel::Info => emit!(tracing::Level::INFO),
            types::LogLevel::Warn => emit!(tracing::Level::WARN),
            types::LogLevel::Error => emit!(tracing::Level::ERROR),
        }
    }
}

impl clock::Host for PluginState {
    fn now_ms(&mut self) -> u64 {
        self.scope.clock.now_ms()
    }
}

impl config::Host for PluginState {
    fn get(&mut self, key: String) -> Option<String> {
        self.scope.config.get(&key).cloned()
    }
}

impl kv::Host for PluginState {
    fn get(&mut self, key: String) -> Option<Vec<u8>> {
        if key.len() > KV_MAX_KEY {
            return None;
        }
        let full = self.scope.kv_key(&key);
        self.scope
            .kv_tree
            .get(full)
            .ok()
            .flatten()
            .map(|v| v.to_vec())
    }

    /// Within the tenant's key and byte quota (all its plugins together).
    fn set(&mut self, key: String, value: Vec<u8>) -> bool {
        if key.len() > KV_MAX_KEY || value.len() > KV_MAX_VALUE {
            return false;
        }
        let (scope, full) = (&self.scope, self.scope.kv_key(&key));
        let size = (full.len() + value.len()) as u64;
        self.tenant
            .kv_write(
                || scope.tenant_kv_usage(),
                || scope.stored_size(&full),
                Some(size),
                || scope.kv_tree.insert(&full, value).is_ok(),
            )
            .unwrap_or(false)
    }

    fn delete(&mut self, key: String) {
        if key.len() <= KV_MAX_KEY {
            let (scope, full) = (&self.scope, self.scope.kv_key(&key));
            let _ = self.tenant.kv_write(
                || scope.tenant_kv_usage(),
                || scope.stored_size(&full),
                None,
                || scope.kv_tree.remove(&full),
            );
        }
    }
}
