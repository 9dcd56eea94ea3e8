//! `warden migrate`: copies a stopped server's sled state into PostgreSQL,
//! so replicas can start from it (`warden serve --state postgres://…`).

use std::path::Path;

use warden_shared::Postgres;
use warden_state::shared::ChangeLog;

/// Copies every shared tree of `state_dir` into the store at `url` (its
/// schema migrated first), in one transaction; refuses a store that holds
/// state already, so nothing is overwritten.
pub fn migrate(state_dir: &Path, url: &str) -> anyhow::Result<()> {
    let db = warden::state::Db::open(state_dir)?;
    let rows = db.shared_rows()?;
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
    println!("copied {} rows from {}:", rows.len(), state_dir.display());
    for (tree, count) in trees {
        println!("  {tree:<18} {count}");
    }
    Ok(())
}
