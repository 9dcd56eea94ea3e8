//! Hot reload of plugins and policies while serving.
//!
//! notify watches the plugin directory (shared plugins, and each tenant's own
//! under `tenants/<tenant>/`) and the policy directory. Changes are debounced,
//! compiled on this thread (never on the request path), and each affected
//! tenant's chain is rebuilt and swapped in atomically; requests in flight
//! finish on the chain they started with. A plugin that does not compile or a
//! policy that does not build is rejected: the running chain keeps serving
//! and the failure is logged, counted and written to the tenant's events.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::sync::Arc;
use std::time::Duration;

use notify::{EventKind, RecursiveMode, Watcher as _};

use crate::app::App;

/// Quiet time after the last change before reloading: editors and copies
/// write a file in several steps.
const DEBOUNCE: Duration = Duration::from_millis(100);

/// The running watcher; dropping it stops the thread.
pub struct Watcher {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Drop for Watcher {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// What a batch of file changes asks for.
#[derive(Debug, Default, PartialEq, Eq)]
struct Changes {
    /// (tenant for a tenant's own plugin, plugin name, file).
    plugins: BTreeSet<(Option<String>, String, PathBuf)>,
    /// Tenants whose chains must be rebuilt; `None` = every live tenant.
    tenants: BTreeSet<Option<String>>,
}

fn stem(path: &Path) -> Option<String> {
    Some(path.file_stem()?.to_str()?.to_string())
}

/// Sorts one changed path into plugin and tenant changes.
fn classify(changes: &mut Changes, plugin_dir: &Path, policy_dir: &Path, path: &Path) {
    let ext = path.extension().and_then(|e| e.to_str());
    let parent = path.parent();
    if ext == Some("wasm") {
        let Some(name) = stem(path) else { return };
        if parent == Some(plugin_dir) {
            changes.plugins.insert((None, name, path.to_path_buf()));
            changes.tenants.insert(None);
        } else if parent.and_then(Path::parent) == Some(&plugin_dir.join("tenants")) {
            let Some(tenant) = parent.and_then(stem) else {
                return;
            };
            changes
                .plugins
                .insert((Some(tenant.clone()), name, path.to_path_buf()));
            changes.tenants.insert(Some(tenant));
        }
    } else if ext == Some("toml") && parent == Some(policy_dir) {
        match stem(path).as_deref() {
            Some("default") => changes.tenants.insert(None),
            Some(tenant) => changes.tenants.insert(Some(tenant.to_string())),
            None => false,
        };
    }
}

/// The files a changed path stands for: itself, or, for a directory that
/// just appeared (a new tenant's plugin directory), the files in it and in
/// its subdirectories, which may have been written before the watch on the
/// new directory was in place.
fn expand(path: &Path) -> Vec<PathBuf> {
    if !path.is_dir() {
        return vec![path.to_path_buf()];
    }
    let Ok(entries) = std::fs::read_dir(path) else {
        return Vec::new();
    };
    entries
        .flatten()
        .flat_map(|entry| expand(&entry.path()))
        .collect()
}

/// Starts watching the app's plugin and policy directories.
pub fn spawn(app: &Arc<App>) -> anyhow::Result<Option<Watcher>> {
    let Some(chains) = &app.chains else {
        return Ok(None);
    };
    // Canonical paths: notify reports them resolved.
    let plugin_dir = std::fs::canonicalize(chains.plugin_dir())?;
    let policy_dir = std::fs::canonicalize(chains.policy_dir()).ok();
    let (tx, rx) = mpsc::channel();
    let mut watcher = notify::recommended_watcher(move |event| {
        let _ = tx.send(event);
    })?;
    watcher.watch(&plugin_dir, RecursiveMode::Recursive)?;
    if let Some(dir) = &policy_dir {
        watcher.watch(dir, RecursiveMode::NonRecursive)?;
    }
    let stop = Arc::new(AtomicBool::new(false));
    let weak = Arc::downgrade(app);
    let stopping = stop.clone();
    let thread = std::thread::Builder::new()
        .name("warden-reload".into())
        .spawn(move || {
            let _watcher = watcher; // lives as long as the thread
            let policy_dir = policy_dir.unwrap_or_default();
            while !stopping.load(Ordering::Relaxed) {
                let first = match rx.recv_timeout(Duration::from_millis(200)) {
                    Ok(event) => event,
                    Err(mpsc::RecvTimeoutError::Timeout) => continue,
                    Err(mpsc::RecvTimeoutError::Disconnected) => break,
                };
                let mut changes = Changes::default();
                let mut add = |event: notify::Result<notify::Event>| {
                    if let Ok(event) = event {
                        if !matches!(event.kind, EventKind::Access(_)) {
                            let created = matches!(event.kind, EventKind::Create(_));
                            for path in &event.paths {
                                let paths = if created {
                                    expand(path)
                                } else {
                                    vec![path.clone()]
                                };
                                for path in paths {
                                    classify(&mut changes, &plugin_dir, &policy_dir, &path);
                                }
                            }
                        }
                    }
                };
                add(first);
                while let Ok(event) = rx.recv_timeout(DEBOUNCE) {
                    add(event);
                }
                if changes == Changes::default() {
                    continue;
                }
                let Some(app) = weak.upgrade() else { break };
                apply(&app, changes);
            }
        })?;
    Ok(Some(Watcher {
        stop,
        thread: Some(thread),
    }))
}

/// Recompiles changed plugins, then rebuilds the affected tenants' chains.
fn apply(app: &App, changes: Changes) {
    let Some(chains) = &app.chains else { return };
    let _reloading = chains.reload_lock();
    let started = std::time::Instant::now();
    for (tenant, name, path) in &changes.plugins {
        if let Err(e) = chains.reload_plugin(tenant.as_deref(), name, path) {
            let message =
                format!("plugin '{name}' was rejected, the previous version keeps serving: {e:#}");
            app.metrics.reload_failure();
            tracing::error!(plugin = %name, tenant = ?tenant, "{message}");
            if let Some(tenant) = tenant {
                record(app, tenant, "plugin.rejected", name, message);
            }
        }
    }
    let tenants: BTreeSet<String> = if changes.tenants.contains(&None) {
        chains.live_tenants().into_iter().collect()
    } else {
        changes.tenants.into_iter().flatten().collect()
    };
    for tenant in tenants {
        match chains.rebuild(&tenant) {
            Ok(()) => {
                app.metrics.reload();
                tracing::info!(tenant = %tenant, ms = started.elapsed().as_millis() as u64, "chain reloaded");
                record(
                    app,
                    &tenant,
                    "chain.reload",
                    &tenant,
                    "plugins or policy changed".into(),
                );
            }
            Err(e) => {
                let message =
                    format!("the new policy or plugins were rejected, the running chain keeps serving: {e:#}");
                app.metrics.reload_failure();
                tracing::error!(tenant = %tenant, "{message}");
                record(app, &tenant, "chain.rejected", &tenant, message);
            }
        }
    }
}

/// Writes a reload outcome to the tenant's audit log (actor `warden`).
fn record(app: &App, tenant: &str, action: &str, target: &str, reason: String) {
    let event = app.event(
        tenant,
        "warden".into(),
        action,
        target,
        Some(reason),
        serde_json::json!({}),
    );
    if let Err(e) = app.db.append_event(&event) {
        tracing::error!(error = %e, "cannot record a reload event");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn changes_are_sorted_by_what_they_affect() {
        let (plugins, policies) = (Path::new("/p"), Path::new("/pol"));
        let mut changes = Changes::default();
        for path in [
            "/p/auth.wasm",
            "/p/tenants/acme/guard.wasm",
            "/p/auth.wasm.tmp",
            "/pol/globex.toml",
            "/pol/notes.txt",
            "/elsewhere/x.wasm",
        ] {
            classify(&mut changes, plugins, policies, Path::new(path));
        }
        let plugin_names: Vec<_> = changes
            .plugins
            .iter()
            .map(|(t, n, _)| (t.as_deref(), n.as_str()))
            .collect();
        assert_eq!(plugin_names, [(None, "auth"), (Some("acme"), "guard")]);
        let tenants: Vec<_> = changes.tenants.iter().map(Option::as_deref).collect();
        assert_eq!(tenants, [None, Some("acme"), Some("globex")]);
    }
}
