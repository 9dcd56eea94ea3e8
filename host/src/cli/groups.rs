//! `warden group …`: a tenant's groups (teams, departments), the limits
//! their members share, and who is in them.

use clap::{Args, Subcommand};
use hyper::Method;
use serde_json::{json, Value};

use super::backend::Call;
use super::table::Column;
use super::verbs::View;

#[derive(Subcommand)]
pub enum GroupCommand {
    /// The tenant's groups, with their members and today's usage.
    List {
        #[arg(long)]
        tenant: String,
    },
    /// One group: members, limits and usage.
    Show {
        #[arg(long)]
        tenant: String,
        id: String,
    },
    /// A new group, with the limits its members share.
    Create {
        #[arg(long)]
        tenant: String,
        id: String,
        #[arg(long)]
        name: Option<String>,
        #[command(flatten)]
        limits: PoolLimitArgs,
    },
    /// Rename a group or replace its limits (unset limits become unlimited).
    Update {
        #[arg(long)]
        tenant: String,
        id: String,
        #[arg(long)]
        name: Option<String>,
        #[command(flatten)]
        limits: PoolLimitArgs,
        #[arg(long)]
        reason: Option<String>,
    },
    /// Put a user in a group.
    Add {
        #[arg(long)]
        tenant: String,
        id: String,
        user: String,
    },
    /// Take a user out of a group.
    Remove {
        #[arg(long)]
        tenant: String,
        id: String,
        user: String,
    },
    /// Delete a group: its members stay, without it.
    Delete {
        #[arg(long)]
        tenant: String,
        id: String,
        #[arg(long)]
        reason: Option<String>,
    },
}

/// A group's shared limits; unset is unlimited.
#[derive(Args)]
pub struct PoolLimitArgs {
    #[arg(long)]
    requests_per_day: Option<u64>,
    #[arg(long)]
    requests_per_month: Option<u64>,
    #[arg(long)]
    tokens_per_day: Option<u64>,
    #[arg(long)]
    tokens_per_month: Option<u64>,
}

impl PoolLimitArgs {
    fn json(&self) -> Value {
        json!({
            "requests_per_day": self.requests_per_day,
            "requests_per_month": self.requests_per_month,
            "tokens_per_day": self.tokens_per_day,
            "tokens_per_month": self.tokens_per_month,
        })
    }
}

const GROUPS: &[Column] = &[
    ("id", "/id"),
    ("name", "/name"),
    ("requests today", "/usage/requests_today"),
    ("requests/day", "/limits/requests_per_day"),
    ("tokens this month", "/usage/tokens_this_month"),
    ("tokens/month", "/limits/tokens_per_month"),
];

impl GroupCommand {
    pub fn call(&self) -> (Call, View) {
        let path = |tenant: &str, rest: &str| format!("tenants/{tenant}/groups{rest}");
        match self {
            Self::List { tenant } => (Call::get(path(tenant, "")), View::Table(GROUPS)),
            Self::Show { tenant, id } => (Call::get(path(tenant, &format!("/{id}"))), View::Record),
            Self::Create {
                tenant,
                id,
                name,
                limits,
            } => {
                let body = json!({ "id": id, "name": name, "limits": limits.json() });
                (
                    Call::send(Method::POST, path(tenant, ""), body),
                    View::Record,
                )
            }
            Self::Update {
                tenant,
                id,
                name,
                limits,
                reason,
            } => {
                let body = json!({ "name": name, "limits": limits.json(), "reason": reason });
                let call = Call::send(Method::PATCH, path(tenant, &format!("/{id}")), body);
                (call, View::Record)
            }
            Self::Add { tenant, id, user } | Self::Remove { tenant, id, user } => {
                let method = match self {
                    Self::Add { .. } => Method::PUT,
                    _ => Method::DELETE,
                };
                let members = path(tenant, &format!("/{id}/members/{user}"));
                (Call::send(method, members, json!({})), View::Record)
            }
            Self::Delete { tenant, id, reason } => {
                let body = json!({ "reason": reason });
                let call = Call::send(Method::DELETE, path(tenant, &format!("/{id}")), body);
                (call, View::Record)
            }
        }
    }
}
