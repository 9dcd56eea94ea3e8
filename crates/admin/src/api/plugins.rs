//! A tenant's own plugins: upload (validate, compile off the request path,
//! self-test in the sandbox, then go live atomically), list with versions,
//! roll back, delete. Files and versions: see plugin_store.rs.

use std::sync::Arc;

use bytes::Bytes;
use serde::Serialize;
use serde_json::json;

use super::tenants::Reason;
use super::{audit, internal, require_reason, Access, Caller, List};
use crate::app::App;
use crate::chain::Chains;
use crate::domain::plans::Feature;
use crate::error::{ApiError, ErrorCode};
use crate::plugin_store::{valid_name, PluginStore, PluginVersions};

/// Replicas sharing one state get the plugin's files as they now are.
fn share(app: &App, tenant: &str, name: &str) -> Result<(), ApiError> {
    crate::replication::share_plugin(app, tenant, name).map_err(internal)
}

/// Largest component accepted (Python and JS components run to tens of MiB).
pub const MAX_PLUGIN_BYTES: usize = 64 << 20;

pub(super) fn chains(app: &App) -> Result<&Chains, ApiError> {
    app.chains.as_ref().ok_or_else(|| {
        ApiError::new(
            ErrorCode::ChainDisabled,
            "this server runs without the plugin chain",
        )
    })
}

fn checked_name(name: &str) -> Result<(), ApiError> {
    if valid_name(name) {
        Ok(())
    } else {
        Err(ApiError::new(
            ErrorCode::InvalidPluginName,
            format!("invalid plugin name '{name}': use 1-64 letters, digits, '-' or '_'"),
        ))
    }
}

fn rejected(message: String) -> ApiError {
    ApiError::new(ErrorCode::PluginRejected, message)
}

/// `GET /admin/v1/tenants/{t}/plugins`: the tenant's plugins and versions.
pub fn list(app: &App, caller: &Caller, tenant: &str) -> Result<List<PluginVersions>, ApiError> {
    caller.may(Access::ReadSetup, tenant)?;
    let store = PluginStore::new(chains(app)?.plugin_dir(), tenant);
    Ok(store.list().into())
}

/// Compiles a component in the blocking pool: compiling takes from
/// milliseconds (Rust) to seconds (Python, JS), never on a worker thread.
async fn compile_off_worker(
    app: &Arc<App>,
    name: &str,
    wasm: Bytes,
) -> Result<Arc<crate::runtime::CompiledPlugin>, ApiError> {
    chains(app)?;
    let (app, name) = (app.clone(), name.to_string());
    tokio::task::spawn_blocking(move || {
        app.chains
            .as_ref()
            .expect("checked by the caller")
            .compile(&name, &wasm)
    })
    .await
    .map_err(|e| ApiError::internal(e.to_string()))?
    .map_err(|e| rejected(format!("{e:#}")))
}

/// Compiles `wasm` off the request path, self-tests it, stores it as a new
/// version and makes it live for the tenant; returns (version, stage, what
/// the self-test checked).
async fn go_live(
    app: &Arc<App>,
    tenant: &str,
    name: &str,
    wasm: Bytes,
) -> Result<(u32, String, String, Published), ApiError> {
    let chains = chains(app)?;
    let compiled = compile_off_worker(app, name, wasm.clone()).await?;
    let stage = compiled.stage.to_string();
    let self_test = chains
        .self_test(tenant, compiled.clone())
        .await
        .map_err(|e| rejected(format!("{e:#}")))?;
    let store = PluginStore::new(chains.plugin_dir(), tenant);
    let _reloading = chains.reload_lock();
    let version = store.add(name, &wasm).map_err(|e| internal(e.into()))?;
    match publish(chains, &store, tenant, name, version, compiled) {
        Ok(published) => Ok((version, stage, self_test, published)),
        Err(e) => {
            store
                .remove_version(name, version)
                .map_err(|e| internal(e.into()))?;
            Err(e)
        }
    }
}

/// What publishing a version achieved.
enum Published {
    /// The tenant's chain was rebuilt with it: the next request uses it.
    Live,
    /// Stored and loaded, but the policy also names plugins not uploaded
    /// yet (listed): the running chain stays until they are.
    Waiting(Vec<String>),
}

/// A version made live (an upload or a rollback), as the admin sees it.
#[derive(Debug, Serialize)]
pub struct PluginVersion {
    pub name: String,
    pub version: u32,
    /// The stage it implements (uploads only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stage: Option<String>,
    /// What its self-test checked (uploads only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub self_test: Option<String>,
    /// Whether it is loaded for the tenant: its policy may name it.
    pub live: bool,
    /// Whether the tenant's policy names it, so requests run it now. An
    /// upload that is live but not in use does nothing until the policy
    /// (`PUT …/policy`) names it.
    pub in_use: bool,
    /// Plugins the policy also names that are not loaded yet.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub waiting_for: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

impl PluginVersion {
    fn new(name: &str, version: u32, published: Published) -> Self {
        let (live, waiting_for, note) = match published {
            Published::Live => (true, None, None),
            Published::Waiting(missing) => {
                let names: Vec<String> = missing.iter().map(|m| format!("'{m}'")).collect();
                let note = format!(
                    "the tenant's policy also names {}, not loaded yet; the running chain stays until it is uploaded",
                    names.join(", ")
                );
                (false, Some(missing), Some(note))
            }
        };
        Self {
            name: name.to_string(),
            version,
            stage: None,
            self_test: None,
            live,
            in_use: false,
            waiting_for,
            note,
        }
    }
}

impl PluginVersion {
    /// Says whether the tenant's policy runs it, and how to make it.
    fn with_use(mut self, chains: &Chains, tenant: &str) -> Self {
        self.in_use = chains.policy_uses(tenant, &self.name);
        if self.live && !self.in_use {
            self.note = Some(format!(
                "loaded, but the tenant's policy does not name '{}': requests do not run it until \
                 the policy does (PUT /admin/v1/tenants/{tenant}/policy, `warden policy`, or the \
                 console's Policy page)",
                self.name
            ));
        }
        self
    }
}

/// Makes a stored version live: its file first, then the swap into the
/// tenant's plugin set and chain. A component of another stage than the
/// policy runs it at is refused first. If the chain still does not build
/// with it for a reason of its own, the previous plugin and live file are
/// put back and the change is refused; if only other plugins the policy
/// names are missing, it stays loaded and waits for them. Callers hold the
/// reload lock, so the watcher, which sees these files too, only ever reads
/// the newest version.
fn publish(
    chains: &Chains,
    store: &PluginStore,
    tenant: &str,
    name: &str,
    version: u32,
    compiled: Arc<crate::runtime::CompiledPlugin>,
) -> Result<Published, ApiError> {
    let expected = chains.policy_stages(tenant, name);
    if !expected.is_empty() && !expected.contains(&compiled.stage) {
        let expected: Vec<String> = expected.iter().map(|s| s.to_string()).collect();
        return Err(rejected(format!(
            "the policy of tenant '{tenant}' runs '{name}' as the {} stage, but this component implements the {} stage",
            expected.join(" and "),
            compiled.stage
        )));
    }
    let live_before = store.versions(name).live;
    store
        .make_live(name, version)
        .map_err(|e| internal(e.into()))?;
    let running = chains.own_plugin(tenant, name);
    chains.install_plugin(Some(tenant), name, Some(compiled));
    let Err(e) = chains.rebuild(tenant) else {
        return Ok(Published::Live);
    };
    match chains.missing_plugins(tenant) {
        missing if !missing.is_empty() => Ok(Published::Waiting(missing)),
        _ => {
            chains.install_plugin(Some(tenant), name, running);
            store
                .restore_live(name, live_before)
                .map_err(|e| internal(e.into()))?;
            Err(rejected(format!(
                "the tenant's chain does not build with it; the running version stays: {e:#}"
            )))
        }
    }
}

/// `PUT /admin/v1/tenants/{t}/plugins/{name}` with the component's bytes.
pub async fn upload(
    app: &Arc<App>,
    caller: &Caller,
    tenant: &str,
    name: &str,
    wasm: Bytes,
) -> Result<PluginVersion, ApiError> {
    caller.may(Access::Administer, tenant)?;
    checked_name(name)?;
    super::subscription::require_feature(app, tenant, Feature::OwnPlugins)?;
    if wasm.is_empty() {
        return Err(rejected("the body must be the component's bytes".into()));
    }
    let (version, stage, self_test, published) = go_live(app, tenant, name, wasm.clone()).await?;
    share(app, tenant, name)?;
    audit(
        app,
        caller,
        tenant,
        "plugin.upload",
        name,
        None,
        json!({ "version": version, "stage": stage, "bytes": wasm.len() }),
    )?;
    Ok(PluginVersion {
        stage: Some(stage),
        self_test: Some(self_test),
        ..PluginVersion::new(name, version, published).with_use(chains(app)?, tenant)
    })
}

/// `POST /admin/v1/tenants/{t}/plugins/{name}/rollback {reason}`: the
/// version before the live one goes live again (compiled and self-tested
/// like an upload).
pub async fn rollback(
    app: &Arc<App>,
    caller: &Caller,
    tenant: &str,
    name: &str,
    body: Reason,
) -> Result<PluginVersion, ApiError> {
    caller.may(Access::Administer, tenant)?;
    checked_name(name)?;
    let reason = require_reason(body.reason)?;
    let chains = chains(app)?;
    let store = PluginStore::new(chains.plugin_dir(), tenant);
    let previous = store.previous(name).ok_or_else(|| {
        ApiError::new(
            ErrorCode::NoPreviousVersion,
            format!("plugin '{name}' has no version before the live one"),
        )
    })?;
    let bytes = store
        .read_version(name, previous)
        .map_err(|e| internal(e.into()))?;
    let compiled = compile_off_worker(app, name, bytes.into()).await?;
    let _reloading = chains.reload_lock();
    let published = publish(chains, &store, tenant, name, previous, compiled)?;
    share(app, tenant, name)?;
    audit(
        app,
        caller,
        tenant,
        "plugin.rollback",
        name,
        Some(reason),
        json!({ "version": previous }),
    )?;
    Ok(PluginVersion::new(name, previous, published).with_use(chains, tenant))
}

/// `POST /admin/v1/tenants/{t}/plugins/{name}/delete {reason}`: refused
/// while the tenant's policy names the plugin.
pub fn delete(
    app: &App,
    caller: &Caller,
    tenant: &str,
    name: &str,
    body: Reason,
) -> Result<Deleted, ApiError> {
    caller.may(Access::Administer, tenant)?;
    checked_name(name)?;
    let reason = require_reason(body.reason)?;
    let chains = chains(app)?;
    if chains.policy_uses(tenant, name) {
        return Err(ApiError::new(
            ErrorCode::PluginInUse,
            format!(
                "the policy of tenant '{tenant}' names plugin '{name}'; change the policy first"
            ),
        ));
    }
    let store = PluginStore::new(chains.plugin_dir(), tenant);
    if store.versions(name).versions.is_empty() && !store.live_path(name).exists() {
        return Err(ApiError::not_found(format!(
            "no plugin '{name}' in tenant '{tenant}'"
        )));
    }
    store.delete(name).map_err(|e| internal(e.into()))?;
    chains.install_plugin(Some(tenant), name, None);
    share(app, tenant, name)?;
    audit(
        app,
        caller,
        tenant,
        "plugin.delete",
        name,
        Some(reason),
        json!({}),
    )?;
    Ok(Deleted {
        name: name.to_string(),
        deleted: true,
    })
}

/// A deleted plugin: its file and versions are gone.
#[derive(Debug, Serialize)]
pub struct Deleted {
    pub name: String,
    pub deleted: bool,
}
