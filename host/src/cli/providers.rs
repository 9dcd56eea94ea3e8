//! `warden provider …`: a tenant's own LLM providers and routes (admin API
//! calls, like every admin verb), and the two local verbs of the master key
//! that seals providers' keys: `new-master-key` and `rotate-master-key`.

use std::io::Read;
use std::path::PathBuf;

use clap::Subcommand;
use hyper::Method;
use serde_json::{json, Value};
use warden::providers::MasterKey;

use super::backend::Call;
use super::verbs::View;

#[derive(Subcommand)]
pub enum ProviderCommand {
    /// A tenant's providers (keys shown by their last four characters) and routes.
    List {
        #[arg(long)]
        tenant: String,
    },
    /// Add or replace a tenant's provider. The key is read from stdin
    /// (--api-key-stdin) or an environment variable, never from the
    /// command line, and sealed with the server's master key.
    Add {
        #[arg(long)]
        tenant: String,
        name: String,
        /// openai, anthropic, azure_openai or openai_compatible.
        #[arg(long)]
        kind: String,
        #[arg(long)]
        base_url: Option<String>,
        /// Azure's api-version, or Anthropic's anthropic-version.
        #[arg(long)]
        api_version: Option<String>,
        /// A model name or pattern it serves (repeat), e.g. 'gpt-4o*'.
        #[arg(long = "model", required = true)]
        models: Vec<String>,
        /// An extra header on every call, NAME=VALUE (repeat).
        #[arg(long = "header")]
        headers: Vec<String>,
        /// Read the API key from stdin.
        #[arg(long)]
        api_key_stdin: bool,
        /// Read the API key from this environment variable.
        #[arg(long)]
        api_key_env: Option<String>,
    },
    /// Remove a tenant's provider (refused while a route names it).
    Remove {
        #[arg(long)]
        tenant: String,
        name: String,
        #[arg(long)]
        reason: Option<String>,
    },
    /// Route a model name: targets in order, `provider` or `provider/model`;
    /// the first is tried first, the rest are its fallbacks.
    Route {
        #[arg(long)]
        tenant: String,
        model: String,
        #[arg(long = "target", required = true)]
        targets: Vec<String>,
    },
    /// Remove a tenant's route.
    Unroute {
        #[arg(long)]
        tenant: String,
        model: String,
    },
}

impl ProviderCommand {
    pub fn call(&self) -> anyhow::Result<(Call, View)> {
        let path = |tenant: &str, rest: &str| format!("tenants/{tenant}/{rest}");
        Ok(match self {
            Self::List { tenant } => (Call::get(path(tenant, "providers")), View::Record),
            Self::Add {
                tenant,
                name,
                kind,
                base_url,
                api_version,
                models,
                headers,
                api_key_stdin,
                api_key_env,
            } => {
                let mut body = json!({
                    "kind": kind, "base_url": base_url, "api_version": api_version,
                    "models": models, "headers": header_map(headers)?,
                });
                if let Some(key) = read_key(*api_key_stdin, api_key_env.as_deref())? {
                    body["api_key"] = key.into();
                }
                let body = Value::Object(
                    body.as_object()
                        .into_iter()
                        .flatten()
                        .filter(|(_, v)| !v.is_null())
                        .map(|(k, v)| (k.clone(), v.clone()))
                        .collect(),
                );
                let call = Call::send(
                    Method::PUT,
                    path(tenant, &format!("providers/{name}")),
                    body,
                );
                (call, View::Record)
            }
            Self::Remove {
                tenant,
                name,
                reason,
            } => {
                let body = json!({ "reason": reason });
                let call = Call::send(
                    Method::DELETE,
                    path(tenant, &format!("providers/{name}")),
                    body,
                );
                (call, View::Record)
            }
            Self::Route {
                tenant,
                model,
                targets,
            } => {
                let body = json!({ "targets": targets });
                let call = Call::send(Method::PUT, path(tenant, &format!("routes/{model}")), body);
                (call, View::Record)
            }
            Self::Unroute { tenant, model } => {
                let call = Call::send(
                    Method::DELETE,
                    path(tenant, &format!("routes/{model}")),
                    json!({}),
                );
                (call, View::Record)
            }
        })
    }
}

fn header_map(headers: &[String]) -> anyhow::Result<Value> {
    let mut map = serde_json::Map::new();
    for header in headers {
        let (name, value) = header
            .split_once('=')
            .ok_or_else(|| anyhow::anyhow!("--header '{header}': expected NAME=VALUE"))?;
        map.insert(name.trim().into(), value.trim().into());
    }
    Ok(Value::Object(map))
}

fn read_key(stdin: bool, env: Option<&str>) -> anyhow::Result<Option<String>> {
    if stdin {
        let mut key = String::new();
        std::io::stdin().read_to_string(&mut key)?;
        return Ok(Some(key.trim().to_string()));
    }
    match env {
        Some(var) => std::env::var(var)
            .map(Some)
            .map_err(|_| anyhow::anyhow!("--api-key-env: {var} is not set")),
        None => Ok(None),
    }
}

/// `warden new-master-key`: a fresh random master key (64 hex digits).
pub fn new_master_key() {
    println!("{}", MasterKey::generate());
}

/// `warden rotate-master-key`: re-seals every tenant's provider key under
/// a new master key, on a stopped server's state directory. The old key
/// comes from `WARDEN_MASTER_KEY` or --old-key-file, the new one from
/// --new-key-file; afterwards the server starts with the new one only.
pub fn rotate_master_key(
    state_dir: &std::path::Path,
    old_file: Option<PathBuf>,
    new_file: PathBuf,
) -> anyhow::Result<()> {
    let old = MasterKey::load(old_file.as_deref())?.ok_or_else(|| {
        anyhow::anyhow!("the old master key: set WARDEN_MASTER_KEY or --old-key-file")
    })?;
    let new_text = std::fs::read_to_string(&new_file)
        .map_err(|e| anyhow::anyhow!("reading {}: {e}", new_file.display()))?;
    let new = MasterKey::parse(&new_text)?;
    let db = warden::state::Db::open(state_dir)?;
    if let Some(check) = db.master_check()? {
        anyhow::ensure!(
            old.opens(&check) || new.opens(&check),
            "neither key is the one the state's provider keys were sealed with"
        );
    }
    let mut providers = db.all_providers()?;
    let mut resealed = 0;
    for provider in &mut providers {
        let Some(sealed) = &provider.key else {
            continue;
        };
        // A rotation cut short left some keys under the new key already.
        let secret = old
            .open(sealed)
            .or_else(|| new.open(sealed))
            .ok_or_else(|| {
                anyhow::anyhow!(
                    "the key of provider '{}' (tenant '{}') opens with neither master key",
                    provider.spec.name,
                    provider.tenant_id
                )
            })?;
        provider.key = Some(new.seal(&secret));
        resealed += 1;
    }
    db.reseal(&new.check(), &providers)?;
    db.flush()?;
    println!("re-sealed {resealed} provider keys under the new master key");
    Ok(())
}
