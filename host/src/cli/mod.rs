//! The command line's admin verbs (`tenant`, `user`, `task`, `token`,
//! `usage`, `logs`, `events`): each is one admin API call, sent to a running
//! server (`--server URL --token ADMIN_TOKEN`) or run in-process on a
//! stopped server's state directory.

mod backend;
mod groups;
mod invitations;
mod migrate;
mod policy;
mod providers;
mod table;
mod verbs;

use std::path::PathBuf;

use clap::Args;
pub use verbs::{
    EventArgs, LogArgs, LoginLinkArgs, MisuseCommand, OnTaskArgs, PluginCommand, ReviewArgs,
    TaskCommand, TenantCommand, TokenCommand, UsageArgs, UserCommand,
};

pub use groups::GroupCommand;
pub use invitations::InvitationCommand;
pub use migrate::migrate;
pub use policy::PolicyCommand;
pub use providers::{new_master_key, rotate_master_key, ProviderCommand};

use backend::{Backend, Call};
use verbs::View;

/// Where admin verbs go, and how they print.
#[derive(Args)]
pub struct Target {
    /// The sled state directory, used when no --server is given
    /// [default: .warden/state; for `demo`, .warden/demo].
    #[arg(long, global = true)]
    pub state_dir: Option<PathBuf>,
    /// A running server's base URL, e.g. http://127.0.0.1:8080.
    #[arg(long, env = "WARDEN_SERVER", global = true)]
    pub server: Option<String>,
    /// An admin token for --server.
    #[arg(
        long,
        env = "WARDEN_ADMIN_TOKEN",
        global = true,
        hide_env_values = true
    )]
    pub token: Option<String>,
    /// Print the API's JSON instead of a table.
    #[arg(long, global = true)]
    pub json: bool,
}

/// Runs one admin call against the target and prints the answer.
pub async fn run(target: &Target, (call, view): (Call, View)) -> anyhow::Result<()> {
    let backend = match &target.server {
        Some(server) => {
            let token = target.token.clone().ok_or_else(|| {
                anyhow::anyhow!("--server needs an admin token: --token or WARDEN_ADMIN_TOKEN")
            })?;
            Backend::remote(server, token)?
        }
        None => Backend::local(
            target
                .state_dir
                .as_deref()
                .unwrap_or(std::path::Path::new(".warden/state")),
        )?,
    };
    let answer = backend.call(call).await;
    backend.close().await;
    println!("{}", verbs::show(&view, &answer?, target.json));
    Ok(())
}
