//! `warden migrate`: copies a stopped server's sled state, its request log
//! and its tenants' uploaded plugins into PostgreSQL, so replicas can start
//! from it (`warden serve --state postgres://…`).

use std::path::{Path, PathBuf};

use warden_shared::Postgres;
use warden_state::shared::{Change, ChangeLog};

/// Copies every shared tree of `state_dir` and the tenants' plugin files
/// under `plugin_dir` into the store at `url` (its schema migrated first),
/// in one transaction, then the request log in batches; refuses a store
/// that holds state already, so nothing is overwritten.
pub fn migrate(state_dir: &Path, plugin_dir: &Path, url: &str) -> anyhow::Result<()> {
    let db = warden::state::Db::open(state_dir)?;
    let mut rows = db.shared_rows()?;
    rows.extend(plugin_files(plugin_dir)?);
    let (postgres, snapshot) = Postgres::connect(url, "warden-migrate")?;
    anyhow::ensure!(
        snapshot.rows.is_empty(),
        "PostgreSQL already holds Warden state ({} rows): nothing was copied",
        snapshot.rows.len()
    );
    if !rows.is_empty() {
        postgres.commit(&rows)?;
    }
    let mut trees: std::collections::BTreeMap<&str, usize> = Default::default();
    for row in &rows {
        *trees.entry(row.tree).or_default() += 1;
    }
    let mut records = 0;
    db.request_log_batches(500, |batch| {
        records += batch.len();
        postgres.ship(batch)
    })?;
    println!("copied {} rows from {}:", rows.len(), state_dir.display());
    for (tree, count) in trees {
        println!("  {tree:<18} {count}");
    }
    println!("  {:<18} {records}", "request_log");
    Ok(())
}

/// Every tenant's uploaded plugin files (`<plugin_dir>/tenants/<tenant>/`,
/// live versions and history), as rows of the shared `plugin_files` tree.
fn plugin_files(plugin_dir: &Path) -> anyhow::Result<Vec<Change>> {
    let mut rows = Vec::new();
    let tenants = plugin_dir.join("tenants");
    for tenant in std::fs::read_dir(&tenants).into_iter().flatten() {
        let tenant = tenant?;
        let name = tenant.file_name().to_string_lossy().into_owned();
        let root = tenant.path();
        for file in files_under(&root)? {
            let relative = file.strip_prefix(&root)?.to_string_lossy().into_owned();
            if relative.ends_with(".partial") {
                continue;
            }
            let key = format!("{name}\0{relative}").into_bytes();
            rows.push(Change::put("plugin_files", key, std::fs::read(&file)?));
        }
    }
    Ok(rows)
}

fn files_under(dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.is_dir() {
            files.extend(files_under(&path)?);
        } else {
            files.push(path);
        }
    }
    Ok(files)
}
