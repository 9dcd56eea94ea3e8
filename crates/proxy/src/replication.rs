//! One replica among several sharing a PostgreSQL state (`[shared] state`):
//! at start its local sled becomes a copy of the shared store, every write
//! is committed there first (`Db::share_through`), and every change any
//! replica commits is applied here within a notification's delay, with
//! what it changes in this process: a tenant's policy rebuilds its chain,
//! its misuse settings likewise, a task's examples reach its intent plugin.
//! A revoked token or a blocked user is in the next snapshot like any
//! other change.

use std::sync::{Arc, Weak};

use anyhow::Context;
use warden_shared::Postgres;
use warden_state::shared::Change;

use crate::app::App;
use crate::config::SharedConfig;
use crate::policy::Policy;
use crate::state::model::{Task, Tenant};
use crate::state::Db;

/// A replica's place in the shared state.
pub struct Replica {
    pub postgres: Arc<Postgres>,
    pub name: String,
    /// The last change the start-up snapshot included.
    seq: i64,
}

/// Makes `db` a replica of the shared store `config` names, if any: its
/// shared trees are replaced by the store's snapshot, and its writes go to
/// the store first from now on.
pub fn join(config: &SharedConfig, db: &Db) -> anyhow::Result<Option<Replica>> {
    let Some(url) = &config.state else {
        return Ok(None);
    };
    let name = config.replica_name();
    let (postgres, snapshot) = Postgres::connect(url, &name)?;
    if snapshot.rows.is_empty() && !db.shared_rows()?.is_empty() {
        anyhow::bail!(
            "PostgreSQL holds no Warden state yet, but this state directory does: copy it \
             there first (`warden migrate --to <postgres url>`), or start from an empty directory"
        );
    }
    db.replace_shared(&snapshot.rows)
        .context("copying the shared state into the local one")?;
    db.share_through(postgres.clone());
    tracing::info!(replica = %name, rows = snapshot.rows.len(), "joined the shared state");
    Ok(Some(Replica {
        postgres,
        name,
        seq: snapshot.seq,
    }))
}

/// Applies every change committed after the snapshot, from a thread of
/// its own (never the database link's: a change may wait for a chain being
/// rebuilt by a request that itself waits on the database). The thread
/// ends with the app.
pub fn follow(app: &Arc<App>, replica: &Replica) -> anyhow::Result<()> {
    let (send, changes) = std::sync::mpsc::channel::<Vec<Change>>();
    replica.postgres.follow(
        replica.seq,
        Box::new(move |batch| {
            let _ = send.send(batch.to_vec());
        }),
    );
    let app: Weak<App> = Arc::downgrade(app);
    std::thread::Builder::new()
        .name("warden-replication".into())
        .spawn(move || {
            while let Ok(batch) = changes.recv() {
                let Some(app) = app.upgrade() else { return };
                apply(&app, &batch);
            }
        })?;
    Ok(())
}

fn apply(app: &App, changes: &[Change]) {
    if let Err(e) = app.db.apply_shared(changes) {
        return tracing::error!(error = %format!("{e:#}"), "applying shared changes");
    }
    for change in changes {
        if let Err(e) = react(app, change) {
            tracing::error!(tree = change.tree, error = %format!("{e:#}"), "a shared change");
        }
    }
}

/// What a change means beyond the snapshot (rebuilt by `apply_shared`).
fn react(app: &App, change: &Change) -> anyhow::Result<()> {
    let (Some(chains), Some(value)) = (&app.chains, &change.value) else {
        return Ok(());
    };
    match change.tree {
        "tenants" => {
            let tenant: Tenant = serde_json::from_slice(value)?;
            chains.set_misuse(&tenant.id, &tenant.misuse)
        }
        "tasks" => {
            let task: Task = serde_json::from_slice(value)?;
            chains.publish_examples(&task.tenant_id, &task.id, &task.examples)
        }
        "policies" => {
            let stored: crate::domain::policies::StoredPolicy = serde_json::from_slice(value)?;
            let tenant = &stored.tenant_id;
            // Only the tenant's latest version runs (changes arrive in order,
            // but this replica may have read a later one already).
            let latest = app.db.policy_versions(tenant)?.last().map(|p| p.version);
            if latest != Some(stored.version) {
                return Ok(());
            }
            let parsed = match &stored.text {
                Some(text) => {
                    let origin = format!("tenant '{tenant}' policy version {}", stored.version);
                    Some((
                        stored.version,
                        text.as_str(),
                        Arc::new(Policy::parse(text, &origin)?),
                    ))
                }
                None => None,
            };
            chains.apply_policy(tenant, parsed, || Ok(()))
        }
        _ => Ok(()),
    }
}
