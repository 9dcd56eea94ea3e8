//! `warden policy …`: a tenant's policy, set by its admins through the
//! running server (`--server URL --token ADMIN_TOKEN`): show it, set it
//! from a policy file, list its versions, roll back, or hand the tenant back
//! to the server's policy. Each change is checked, built and live on the
//! next request, or refused with the running policy kept.

use std::path::PathBuf;

use clap::Subcommand;
use hyper::Method;
use serde_json::json;

use super::backend::Call;
use super::verbs::View;

#[derive(Subcommand)]
pub enum PolicyCommand {
    /// The tenant's policy (TOML), where it comes from, and the server's ceilings.
    Show {
        #[arg(long)]
        tenant: String,
    },
    /// Set the tenant's policy from a policy file (the format of policies/default.toml).
    Set {
        #[arg(long)]
        tenant: String,
        file: PathBuf,
        #[arg(long)]
        reason: Option<String>,
    },
    /// The tenant's policy versions, newest first.
    Versions {
        #[arg(long)]
        tenant: String,
    },
    /// Make an earlier version the policy again (as a new version).
    Rollback {
        #[arg(long)]
        tenant: String,
        version: u32,
        #[arg(long)]
        reason: String,
    },
    /// Drop the tenant's own policy: the server's applies again.
    Reset {
        #[arg(long)]
        tenant: String,
        #[arg(long)]
        reason: String,
    },
}

const VERSIONS: &[super::table::Column] = &[
    ("version", "/version"),
    ("current", "/current"),
    ("at", "/created_at"),
    ("by", "/actor"),
    ("note", "/note"),
];

impl PolicyCommand {
    pub fn call(&self) -> anyhow::Result<(Call, View)> {
        let path = |tenant: &str, rest: &str| format!("tenants/{tenant}/policy{rest}");
        Ok(match self {
            Self::Show { tenant } => (Call::get(path(tenant, "")), View::Record),
            Self::Set {
                tenant,
                file,
                reason,
            } => {
                let toml = std::fs::read_to_string(file)
                    .map_err(|e| anyhow::anyhow!("reading {}: {e}", file.display()))?;
                let body = json!({ "toml": toml, "reason": reason });
                (
                    Call::send(Method::PUT, path(tenant, ""), body),
                    View::Record,
                )
            }
            Self::Versions { tenant } => {
                (Call::get(path(tenant, "/versions")), View::Table(VERSIONS))
            }
            Self::Rollback {
                tenant,
                version,
                reason,
            } => {
                let body = json!({ "version": version, "reason": reason });
                let call = Call::send(Method::POST, path(tenant, "/rollback"), body);
                (call, View::Record)
            }
            Self::Reset { tenant, reason } => {
                let body = json!({ "reason": reason });
                (
                    Call::send(Method::DELETE, path(tenant, ""), body),
                    View::Record,
                )
            }
        })
    }
}
