//! `warden invitation …`: invite people into a tenant by e-mail, one at a
//! time or from a CSV file (`email,name,role`, a report line per row),
//! list, cancel and resend. The e-mails go to the server's outbox.

use std::path::PathBuf;

use clap::Subcommand;
use hyper::Method;
use serde_json::json;

use super::backend::Call;
use super::table::Column;
use super::verbs::View;

#[derive(Subcommand)]
pub enum InvitationCommand {
    /// The tenant's invitations and their status.
    List {
        #[arg(long)]
        tenant: String,
    },
    /// Invite one person.
    Send {
        #[arg(long)]
        tenant: String,
        email: String,
        #[arg(long)]
        name: Option<String>,
        /// user (default), viewer, manager or admin.
        #[arg(long, default_value = "user")]
        role: String,
        /// Groups the account joins (repeat the flag).
        #[arg(long = "group")]
        groups: Vec<String>,
    },
    /// Invite everyone in a CSV file: email,name,role,groups per line
    /// (groups separated by ';'; a header line is skipped); prints what
    /// happened to each row.
    Bulk {
        #[arg(long)]
        tenant: String,
        csv: PathBuf,
    },
    /// Cancel a pending invitation: its link stops working.
    Cancel {
        #[arg(long)]
        tenant: String,
        id: String,
    },
    /// Send a pending invitation again, with a new link valid 7 days.
    Resend {
        #[arg(long)]
        tenant: String,
        id: String,
    },
}

const INVITATIONS: &[Column] = &[
    ("id", "/id"),
    ("email", "/email"),
    ("role", "/role"),
    ("status", "/status"),
    ("sent", "/sent"),
    ("user", "/user_id"),
];

const ROWS: &[Column] = &[
    ("row", "/row"),
    ("email", "/email"),
    ("status", "/status"),
    ("id", "/id"),
    ("error", "/error"),
];

impl InvitationCommand {
    pub fn call(&self) -> anyhow::Result<(Call, View)> {
        let path = |tenant: &str, rest: &str| format!("tenants/{tenant}/invitations{rest}");
        Ok(match self {
            Self::List { tenant } => (Call::get(path(tenant, "")), View::Table(INVITATIONS)),
            Self::Send {
                tenant,
                email,
                name,
                role,
                groups,
            } => {
                let name = name.clone().unwrap_or_default();
                let body = json!({ "email": email, "name": name, "role": role, "groups": groups });
                (
                    Call::send(Method::POST, path(tenant, ""), body),
                    View::Record,
                )
            }
            Self::Bulk { tenant, csv } => {
                let text = std::fs::read_to_string(csv)
                    .map_err(|e| anyhow::anyhow!("reading {}: {e}", csv.display()))?;
                let call = Call::send(Method::POST, path(tenant, "/bulk"), json!({ "csv": text }));
                (call, View::Table(ROWS))
            }
            Self::Cancel { tenant, id } => {
                let call = Call::send(Method::DELETE, path(tenant, &format!("/{id}")), json!({}));
                (call, View::Record)
            }
            Self::Resend { tenant, id } => {
                let call = Call::send(
                    Method::POST,
                    path(tenant, &format!("/{id}/resend")),
                    json!({}),
                );
                (call, View::Record)
            }
        })
    }
}
