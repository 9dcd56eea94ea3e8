//! One replica among several sharing a PostgreSQL state (`[shared] state`):
//! at start its local sled becomes a copy of the shared store, every write
//! is committed there first (`Db::share_through`), and every change any
//! replica commits is applied here within a notification's delay, with
//! what it changes in this process: a tenant's policy rebuilds its chain,
//! its misuse settings likewise, a task's examples reach its intent plugin.
//! A revoked token or a blocked user is in the next snapshot like any
//! other change.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Weak};

use anyhow::Context;
use warden_shared::{Feed, Position, Postgres};
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
    /// Where this replica starts following: the snapshot's last change, and
    /// the last shared request record it logged before it stopped.
    start: Position,
}

/// The local cursor of the shared request log.
const LOG_CURSOR: &str = "request_log";
/// Records shipped per round trip, and how often the shipper looks.
const SHIP_BATCH: usize = 500;
const SHIP_EVERY: std::time::Duration = std::time::Duration::from_millis(100);

/// Makes `db` a replica of the shared store `config` names, if any: its
/// shared trees are replaced by the store's snapshot, and its writes go to
/// the store first from now on.
pub fn join(config: &SharedConfig, db: &Db, name: &str) -> anyhow::Result<Option<Replica>> {
    let Some(url) = &config.state else {
        return Ok(None);
    };
    let name = name.to_string();
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
    let start = Position {
        change: snapshot.seq,
        record: db.cursor(LOG_CURSOR)?,
    };
    Ok(Some(Replica {
        postgres,
        name,
        start,
    }))
}

/// Applies every change committed after the snapshot and every record
/// other replicas ship, from a thread of its own (never the database
/// link's: a change may wait for a chain being rebuilt by a request that
/// itself waits on the database); ships this replica's records from
/// another. Both threads end with the app.
pub fn follow(app: &Arc<App>, replica: &Replica) -> anyhow::Result<()> {
    let (send, feed) = std::sync::mpsc::channel::<Feed>();
    replica.postgres.follow(
        replica.start,
        Box::new(move |batch| {
            let _ = send.send(batch);
        }),
    );
    let weak: Weak<App> = Arc::downgrade(app);
    std::thread::Builder::new()
        .name("warden-replication".into())
        .spawn(move || {
            while let Ok(batch) = feed.recv() {
                let Some(app) = weak.upgrade() else { return };
                match batch {
                    Feed::Changes(changes) => apply(&app, &changes),
                    Feed::Records { seq, records } => log_records(&app.db, seq, &records),
                }
            }
        })?;
    let weak: Weak<App> = Arc::downgrade(app);
    std::thread::Builder::new()
        .name("warden-log-shipper".into())
        .spawn(move || loop {
            std::thread::sleep(SHIP_EVERY);
            let Some(app) = weak.upgrade() else { return };
            let Some(replica) = &app.replica else { return };
            while let Ok(true) = ship(&app.db, &replica.postgres) {}
        })?;
    Ok(())
}

/// Ships one batch of this replica's records; whether a full batch went
/// (more may wait). A failure leaves them queued for the next try.
fn ship(db: &Db, postgres: &Postgres) -> anyhow::Result<bool> {
    let batch = db.unshipped(SHIP_BATCH)?;
    if batch.is_empty() {
        return Ok(false);
    }
    let full = batch.len() == SHIP_BATCH;
    let (keys, records): (Vec<_>, Vec<_>) = batch.into_iter().unzip();
    if let Err(e) = postgres.ship(records) {
        tracing::warn!(error = %format!("{e:#}"), "shipping request records; they stay queued");
        return Err(e);
    }
    db.shipped(&keys)?;
    Ok(full)
}

/// Logs the records other replicas served, and how far this replica is.
fn log_records(db: &Db, seq: i64, records: &[Vec<u8>]) {
    let decoded: Vec<crate::state::model::RequestRecord> = records
        .iter()
        .filter_map(|r| serde_json::from_slice(r).ok())
        .collect();
    let logged = db
        .log_served_elsewhere(&decoded)
        .and_then(|()| db.set_cursor(LOG_CURSOR, seq));
    if let Err(e) = logged {
        tracing::error!(error = %format!("{e:#}"), "logging other replicas' records");
    }
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
    if change.tree == "plugin_files" {
        return write_plugin_file(&app.config.plugin_dir, change);
    }
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

/// The file a `plugin_files` key stands for under `plugin_dir`; `None` for
/// a path that would leave the tenant's directory.
fn plugin_path(plugin_dir: &Path, key: &[u8]) -> Option<PathBuf> {
    let key = std::str::from_utf8(key).ok()?;
    let (tenant, path) = key.split_once('\0')?;
    let relative = Path::new(path);
    let plain = |p: &Path| {
        p.components()
            .all(|c| matches!(c, std::path::Component::Normal(_)))
    };
    if !crate::plugin_store::valid_name(tenant) || !plain(relative) {
        return None;
    }
    Some(crate::chain::tenant_plugin_dir(plugin_dir, tenant).join(relative))
}

/// Writes (or removes) one shared plugin file here, unless it is already
/// so: the hot-reload watcher then loads a new live version as it does any
/// file, and this replica's own uploads, coming back, change nothing.
fn write_plugin_file(plugin_dir: &Path, change: &Change) -> anyhow::Result<()> {
    let Some(path) = plugin_path(plugin_dir, &change.key) else {
        anyhow::bail!("a shared plugin file outside its tenant's directory");
    };
    match &change.value {
        Some(bytes) => {
            if std::fs::read(&path).is_ok_and(|current| current == *bytes) {
                return Ok(());
            }
            if let Some(parent) = path.parent() {
                std::fs::create_dir_all(parent)?;
            }
            // Whole files only (the watcher must never read half a component).
            let partial = path.with_extension("partial");
            std::fs::write(&partial, bytes)?;
            std::fs::rename(&partial, &path)?;
        }
        None => match std::fs::remove_file(&path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e.into()),
            _ => {}
        },
    }
    Ok(())
}

/// Writes every shared plugin file into this replica's plugin directory
/// (at start, before the chains load).
pub fn materialize_plugins(db: &Db, plugin_dir: &Path) -> anyhow::Result<()> {
    for (tenant, path, bytes) in db.plugin_files()? {
        let key = format!("{tenant}\0{path}").into_bytes();
        write_plugin_file(plugin_dir, &Change::put("plugin_files", key, bytes))?;
    }
    Ok(())
}

/// After an upload, a rollback or a deletion through this replica: the
/// plugin's files as they now are, committed to the shared store, so every
/// replica holds the same files and loads the same live version.
pub fn share_plugin(app: &App, tenant: &str, name: &str) -> anyhow::Result<()> {
    let Some(chains) = &app.chains else {
        return Ok(());
    };
    if !app.db.is_shared() {
        return Ok(());
    }
    let dir = crate::chain::tenant_plugin_dir(chains.plugin_dir(), tenant);
    let mut files = Vec::new();
    let live = format!("{name}.wasm");
    if let Ok(bytes) = std::fs::read(dir.join(&live)) {
        files.push((live, bytes));
    }
    let versions = format!(".versions/{name}");
    for entry in std::fs::read_dir(dir.join(&versions)).into_iter().flatten() {
        let entry = entry?;
        let file = entry.file_name().to_string_lossy().into_owned();
        if file.ends_with(".partial") {
            continue;
        }
        files.push((format!("{versions}/{file}"), std::fs::read(entry.path())?));
    }
    app.db.put_plugin_files(tenant, name, files)
}
