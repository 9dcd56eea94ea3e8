//! Where a call goes: the server's providers and routes (configuration),
//! each tenant's own (managed through the admin API, keys sealed in the
//! state), and the route of a model name through them.
//!
//! A model name resolves, first match wins, to:
//! 1. a tenant route, then a server route of that name: its targets in
//!    order, the first one tried first, the rest its fallbacks;
//! 2. the first tenant provider, then server provider, whose `models`
//!    serve it (a name or a `*` pattern): that one target.
//!
//! A tenant's catalog is built from the directory when its providers or
//! routes change (keys opened once then, held only in sensitive header
//! values) and shared by its calls until the next change.

pub mod client;
pub mod reach;
pub mod secrets;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use arc_swap::ArcSwap;

use crate::config::Config;
use crate::domain::providers::{
    ProviderKind, ProviderSpec, RouteSpec, StoredProvider, StoredRoute,
};
use crate::error::{ApiError, ErrorCode};
use crate::state::{Db, TenantEntry};
pub use client::{ProviderClient, Timeouts};
pub use reach::Reach;
pub use secrets::MasterKey;

/// One place a call may go: a provider and the model name it is sent.
#[derive(Clone, Debug)]
pub struct Target {
    pub provider: Arc<ProviderClient>,
    pub model: String,
}

/// Providers and routes of one scope (the server, or one tenant).
#[derive(Default, Debug)]
pub struct Catalog {
    providers: Vec<Arc<ProviderClient>>,
    routes: Vec<RouteSpec>,
}

impl Catalog {
    fn provider(&self, name: &str) -> Option<&Arc<ProviderClient>> {
        self.providers.iter().find(|p| p.name == name)
    }

    fn route(&self, model: &str) -> Option<&RouteSpec> {
        self.routes.iter().find(|r| r.model == model)
    }

    fn serving(&self, model: &str) -> Option<&Arc<ProviderClient>> {
        self.providers.iter().find(|p| p.spec().serves(model))
    }

    /// Model names it offers: routes, then providers' exact names.
    fn offered(&self) -> impl Iterator<Item = (&str, &str)> {
        let routes = self.routes.iter().map(|r| {
            let owner = r.targets().next().map_or("warden", |(p, _)| p);
            (r.model.as_str(), owner)
        });
        let exact = self.providers.iter().flat_map(|p| {
            let names = p.spec().models.iter().filter(|m| !m.contains('*'));
            names.map(|m| (m.as_str(), p.name.as_str()))
        });
        routes.chain(exact)
    }
}

/// A tenant's catalog and what it was built from.
struct TenantCatalog {
    providers: Vec<StoredProvider>,
    routes: Vec<StoredRoute>,
    catalog: Arc<Catalog>,
}

pub struct Providers {
    server: Catalog,
    /// Extra model names `/v1/models` offers (the legacy `[upstream]`).
    offered: Vec<String>,
    master: Option<MasterKey>,
    defaults: Timeouts,
    /// Where tenants' own providers may point.
    tenant_reach: Reach,
    tenants: ArcSwap<HashMap<String, Arc<TenantCatalog>>>,
    /// Serialises rebuilding tenants' catalogs (rare; reads never wait).
    rebuild: Mutex<()>,
}

impl Providers {
    /// The server's providers from the configuration: `[[providers]]`, or
    /// else one `default` provider from `[upstream]` serving every model.
    /// Checks the master key against the state's (a wrong key stops here).
    pub fn new(config: &Config, db: &Db) -> anyhow::Result<Self> {
        let upstream = &config.upstream;
        let defaults = Timeouts {
            connect_secs: upstream.connect_timeout_secs,
            response_secs: upstream.response_timeout_secs,
            idle_secs: upstream.idle_timeout_secs,
        };
        let mut server = Catalog::default();
        let mut offered = Vec::new();
        if config.providers.is_empty() {
            let spec = ProviderSpec {
                name: "default".into(),
                kind: Some(ProviderKind::OpenAiCompatible),
                base_url: Some(upstream.base_url.clone()),
                models: vec!["*".into()],
                ..ProviderSpec::default()
            };
            let key = upstream
                .api_key_override
                .clone()
                .or_else(|| std::env::var(&upstream.api_key_env).ok());
            if key.is_none() {
                tracing::warn!(var = %upstream.api_key_env, "no provider API key in the environment");
            }
            let client = ProviderClient::new(&spec, key.as_deref(), defaults, Reach::Anywhere)?;
            server.providers.push(Arc::new(client));
            offered.clone_from(&upstream.models);
        }
        for spec in &config.providers {
            if server.provider(&spec.name).is_some() {
                anyhow::bail!("provider '{}' is configured twice", spec.name);
            }
            let key = config.provider_keys.get(&spec.name).cloned().or_else(|| {
                let var = spec.api_key_env.as_deref()?;
                let key = std::env::var(var).ok();
                if key.is_none() {
                    tracing::warn!(provider = %spec.name, var, "no API key in the environment");
                }
                key
            });
            let client = ProviderClient::new(spec, key.as_deref(), defaults, Reach::Anywhere)?;
            server.providers.push(Arc::new(client));
        }
        for route in &config.routes {
            check_route(route, |name| server.provider(name).is_some())
                .map_err(|e| anyhow::anyhow!("[[routes]] '{}': {e}", route.model))?;
        }
        server.routes.clone_from(&config.routes);
        let master = MasterKey::load(config.master_key_file.as_deref())?;
        check_master(db, master.as_ref())?;
        Ok(Self {
            server,
            offered,
            master,
            defaults,
            tenant_reach: if config.routing.tenant_private_addresses {
                Reach::Anywhere
            } else {
                Reach::PublicOnly
            },
            tenants: ArcSwap::default(),
            rebuild: Mutex::new(()),
        })
    }

    pub fn master(&self) -> Option<&MasterKey> {
        self.master.as_ref()
    }

    /// Where a tenant's own providers may point.
    pub fn tenant_reach(&self) -> Reach {
        self.tenant_reach
    }

    /// Whether `name` is a provider this tenant may route to.
    pub fn known(&self, entry: Option<&TenantEntry>, name: &str) -> bool {
        self.server.provider(name).is_some()
            || entry.is_some_and(|e| e.providers.iter().any(|p| p.spec.name == name))
    }

    /// The targets of `model` for a tenant, first choice first.
    pub fn route(&self, entry: &TenantEntry, model: &str) -> Result<Vec<Target>, ApiError> {
        let own = self.tenant_catalog(entry)?;
        let own = own.as_deref();
        let lookup = |name: &str| {
            own.and_then(|c| c.provider(name))
                .or_else(|| self.server.provider(name))
        };
        let route = own
            .and_then(|c| c.route(model))
            .or_else(|| self.server.route(model));
        if let Some(route) = route {
            return Ok(route
                .targets()
                .filter_map(|(name, upstream)| {
                    let provider = lookup(name)?.clone();
                    Some(Target {
                        provider,
                        model: upstream.to_string(),
                    })
                })
                .collect());
        }
        let serving = own
            .and_then(|c| c.serving(model))
            .or_else(|| self.server.serving(model));
        match serving {
            Some(provider) => Ok(vec![Target {
                provider: provider.clone(),
                model: model.to_string(),
            }]),
            None => Err(ApiError::new(
                ErrorCode::ModelNotFound,
                format!(
                    "the model '{model}' does not exist or no provider of this gateway serves it"
                ),
            )),
        }
    }

    /// Model names a tenant may call, with the provider that serves each.
    pub fn offered(&self, entry: Option<&TenantEntry>) -> Vec<(String, String)> {
        let own = entry.and_then(|e| self.tenant_catalog(e).ok().flatten());
        let mut names: Vec<(String, String)> = Vec::new();
        let legacy = self.offered.iter().map(|m| (m.as_str(), "default"));
        let all = own
            .iter()
            .flat_map(|c| c.offered())
            .chain(self.server.offered())
            .chain(legacy);
        for (model, owner) in all {
            if !names.iter().any(|(m, _)| m == model) {
                names.push((model.to_string(), owner.to_string()));
            }
        }
        names
    }

    /// The tenant's own catalog, rebuilt when its providers or routes
    /// changed; `None` when it has none.
    fn tenant_catalog(&self, entry: &TenantEntry) -> Result<Option<Arc<Catalog>>, ApiError> {
        if entry.providers.is_empty() && entry.routes.is_empty() {
            return Ok(None);
        }
        let Some(tenant) = entry
            .providers
            .first()
            .map(|p| p.tenant_id.clone())
            .or_else(|| entry.routes.first().map(|r| r.tenant_id.clone()))
        else {
            return Ok(None);
        };
        let fresh = |c: &TenantCatalog| c.providers == entry.providers && c.routes == entry.routes;
        if let Some(cached) = self.tenants.load().get(&tenant).filter(|c| fresh(c)) {
            return Ok(Some(cached.catalog.clone()));
        }
        let _one_at_a_time = self.rebuild.lock().unwrap_or_else(|e| e.into_inner());
        let catalog = Arc::new(self.build_tenant(entry).map_err(|e| {
            ApiError::new(
                ErrorCode::UpstreamUnavailable,
                format!("the tenant's providers cannot be used: {e:#}"),
            )
        })?);
        let built = Arc::new(TenantCatalog {
            providers: entry.providers.clone(),
            routes: entry.routes.clone(),
            catalog: catalog.clone(),
        });
        let mut next = HashMap::clone(&self.tenants.load());
        next.insert(tenant, built);
        self.tenants.store(Arc::new(next));
        Ok(Some(catalog))
    }

    fn build_tenant(&self, entry: &TenantEntry) -> anyhow::Result<Catalog> {
        let mut catalog = Catalog::default();
        for stored in &entry.providers {
            let key = match (&stored.key, &self.master) {
                (None, _) => None,
                (Some(sealed), Some(master)) => Some(master.open(sealed).ok_or_else(|| {
                    anyhow::anyhow!(
                        "the key of provider '{}' does not open with this server's master key",
                        stored.spec.name
                    )
                })?),
                (Some(_), None) => anyhow::bail!(
                    "provider '{}' has a sealed key and the server has no master key",
                    stored.spec.name
                ),
            };
            let client = ProviderClient::new(
                &stored.spec,
                key.as_deref(),
                self.defaults,
                self.tenant_reach,
            )?;
            catalog.providers.push(Arc::new(client));
        }
        catalog.routes = entry.routes.iter().map(|r| r.route.clone()).collect();
        Ok(catalog)
    }
}

/// A route's problem: no targets, or a target naming no provider.
pub fn check_route(route: &RouteSpec, known: impl Fn(&str) -> bool) -> Result<(), String> {
    if route.model.is_empty() || route.targets.is_empty() {
        return Err("a route needs a model name and at least one target".into());
    }
    for (name, model) in route.targets() {
        if !known(name) {
            return Err(format!("target '{name}' names no provider"));
        }
        if model.is_empty() {
            return Err(format!("target '{name}/' names no model"));
        }
    }
    Ok(())
}

/// The state's keys must open with this master key: checked at start-up,
/// and the check written the first time a key is there to check.
fn check_master(db: &Db, master: Option<&MasterKey>) -> anyhow::Result<()> {
    let check = db.master_check()?;
    let sealed_keys = db.all_providers()?.iter().any(|p| p.key.is_some());
    match (check, master) {
        (Some(check), Some(master)) if !master.opens(&check) => anyhow::bail!(
            "the master key ({} or master_key_file) is not the one the stored provider keys \
             were sealed with; start with the right key, or rotate with \
             `warden providers rotate-master-key`",
            secrets::MASTER_KEY_ENV
        ),
        (Some(_), None) if sealed_keys => anyhow::bail!(
            "tenants' provider keys are stored sealed, and no master key is set: set {} or \
             master_key_file",
            secrets::MASTER_KEY_ENV
        ),
        (None, Some(master)) => db.reseal(&master.check(), &[]),
        _ => Ok(()),
    }
}
