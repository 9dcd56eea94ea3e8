//! A tenant's own LLM providers and routes: its admins add a provider (a
//! kind, a base URL, a key, the models it serves), route model names over
//! providers with fallbacks, and remove them; the next call uses them.
//!
//! A key is sealed with the server's master key before it is stored and is
//! never given back: every answer shows its last four characters only.

use serde::{Deserialize, Serialize};
use serde_json::json;

use super::{audit, internal, Access, Caller};
use crate::app::App;
use crate::domain::plans::Feature;
use crate::domain::providers::{ProviderSpec, RouteSpec, StoredProvider, StoredRoute};
use crate::error::{ApiError, ErrorCode};

/// A provider as the API shows it: the spec and the key's hint.
#[derive(Debug, Serialize)]
pub struct ProviderView {
    #[serde(flatten)]
    pub spec: ProviderSpec,
    /// `…abcd` when it has a key.
    pub key: Option<String>,
    pub updated_at: u64,
}

impl From<&StoredProvider> for ProviderView {
    fn from(stored: &StoredProvider) -> Self {
        Self {
            spec: stored.spec.clone(),
            key: stored.key.as_ref().map(|k| k.hint.clone()),
            updated_at: stored.updated_at,
        }
    }
}

/// What an admin sends to add or replace a provider.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProviderInput {
    #[serde(flatten)]
    pub spec: ProviderSpec,
    /// The provider's API key; kept as it is when absent on a replace,
    /// removed when `""`.
    pub api_key: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct Catalog {
    pub providers: Vec<ProviderView>,
    pub routes: Vec<RouteSpec>,
    /// The server's providers, which every tenant may route to too.
    pub server_providers: Vec<String>,
}

fn invalid(message: impl Into<String>) -> ApiError {
    ApiError::new(ErrorCode::InvalidParameter, message)
}

/// `GET /admin/v1/tenants/{t}/providers`.
pub fn list(app: &App, caller: &Caller, tenant: &str) -> Result<Catalog, ApiError> {
    caller.may(Access::ReadSetup, tenant)?;
    let directory = app.db.directory();
    let entry = directory.tenant(tenant);
    let providers = entry.map_or(Vec::new(), |e| e.providers.iter().map(Into::into).collect());
    let routes = entry.map_or(Vec::new(), |e| {
        e.routes.iter().map(|r| r.route.clone()).collect()
    });
    Ok(Catalog {
        providers,
        routes,
        server_providers: app
            .config
            .providers
            .iter()
            .map(|p| p.name.clone())
            .collect(),
    })
}

/// `PUT /admin/v1/tenants/{t}/providers/{name}`: adds or replaces one.
pub fn put(
    app: &App,
    caller: &Caller,
    tenant: &str,
    name: &str,
    input: ProviderInput,
) -> Result<ProviderView, ApiError> {
    caller.may(Access::Administer, tenant)?;
    super::subscription::require_feature(app, tenant, Feature::OwnProviders)?;
    let mut spec = input.spec;
    if !spec.name.is_empty() && spec.name != name {
        return Err(invalid(format!(
            "the body names provider '{}' and the path '{name}'",
            spec.name
        )));
    }
    spec.name = name.to_string();
    if spec.api_key_env.is_some() {
        return Err(invalid(
            "api_key_env is for the server's configuration; send the key as api_key",
        ));
    }
    if let Some(problem) = spec.problem() {
        return Err(invalid(problem));
    }
    // Built once here, so a bad header or URL is refused now, not at a call.
    let reach = app.providers.tenant_reach();
    crate::providers::ProviderClient::new(&spec, None, TIMEOUTS, reach)
        .map_err(|e| invalid(format!("{e:#}")))?;
    let previous = app
        .db
        .directory()
        .tenant(tenant)
        .and_then(|e| e.providers.iter().find(|p| p.spec.name == name).cloned());
    let key = match input.api_key.as_deref() {
        Some("") => None,
        Some(key) => {
            let master = app.providers.master().ok_or_else(|| {
                ApiError::new(
                    ErrorCode::InvalidSettings,
                    "this server has no master key to seal provider keys with; its operator \
                     sets WARDEN_MASTER_KEY or master_key_file",
                )
            })?;
            Some(master.seal(key.trim()))
        }
        None => previous.and_then(|p| p.key),
    };
    let stored = StoredProvider {
        tenant_id: tenant.to_string(),
        spec,
        key,
        updated_at: crate::clock::now_ms(),
    };
    app.db.put_provider(&stored).map_err(internal)?;
    let details = json!({
        "kind": stored.spec.kind().as_str(),
        "base_url": stored.spec.base_url,
        "models": stored.spec.models,
        "key": stored.key.as_ref().map(|k| k.hint.clone()),
    });
    audit(app, caller, tenant, "provider.put", name, None, details)?;
    Ok((&stored).into())
}

/// Timeouts only for checking a spec builds; calls use the server's.
const TIMEOUTS: crate::providers::Timeouts = crate::providers::Timeouts {
    connect_secs: 10,
    response_secs: 120,
    idle_secs: 120,
};

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Removal {
    pub reason: Option<String>,
}

/// `DELETE /admin/v1/tenants/{t}/providers/{name}`; refused while a route
/// of the tenant still names it.
pub fn delete(
    app: &App,
    caller: &Caller,
    tenant: &str,
    name: &str,
    removal: Removal,
) -> Result<serde_json::Value, ApiError> {
    caller.may(Access::Administer, tenant)?;
    let directory = app.db.directory();
    let routes = directory
        .tenant(tenant)
        .map_or(&[][..], |e| e.routes.as_slice());
    if let Some(route) = routes
        .iter()
        .find(|r| r.route.targets().any(|(p, _)| p == name))
    {
        return Err(invalid(format!(
            "route '{}' still sends calls to provider '{name}'; change or remove it first",
            route.route.model
        )));
    }
    if !app.db.delete_provider(tenant, name).map_err(internal)? {
        return Err(ApiError::not_found(format!(
            "no provider '{name}' in tenant '{tenant}'"
        )));
    }
    audit(
        app,
        caller,
        tenant,
        "provider.delete",
        name,
        removal.reason,
        json!({}),
    )?;
    Ok(json!({ "deleted": name }))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteInput {
    pub targets: Vec<String>,
}

/// `PUT /admin/v1/tenants/{t}/routes/{model}`: the model name's targets in
/// order (the first tried first), each `provider` or `provider/model`.
pub fn put_route(
    app: &App,
    caller: &Caller,
    tenant: &str,
    model: &str,
    input: RouteInput,
) -> Result<RouteSpec, ApiError> {
    caller.may(Access::Administer, tenant)?;
    let route = RouteSpec {
        model: model.to_string(),
        targets: input.targets,
    };
    let directory = app.db.directory();
    let entry = directory.tenant(tenant);
    crate::providers::check_route(&route, |name| app.providers.known(entry, name))
        .map_err(invalid)?;
    let stored = StoredRoute {
        tenant_id: tenant.to_string(),
        route,
    };
    app.db.put_route(&stored).map_err(internal)?;
    let details = json!({ "targets": stored.route.targets });
    audit(app, caller, tenant, "route.put", model, None, details)?;
    Ok(stored.route)
}

/// `DELETE /admin/v1/tenants/{t}/routes/{model}`.
pub fn delete_route(
    app: &App,
    caller: &Caller,
    tenant: &str,
    model: &str,
    removal: Removal,
) -> Result<serde_json::Value, ApiError> {
    caller.may(Access::Administer, tenant)?;
    if !app.db.delete_route(tenant, model).map_err(internal)? {
        return Err(ApiError::not_found(format!(
            "no route '{model}' in tenant '{tenant}'"
        )));
    }
    audit(
        app,
        caller,
        tenant,
        "route.delete",
        model,
        removal.reason,
        json!({}),
    )?;
    Ok(json!({ "deleted": model }))
}
