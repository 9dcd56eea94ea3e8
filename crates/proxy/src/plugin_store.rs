//! Versions of a tenant's uploaded plugins, kept next to the live file:
//!
//! ```text
//! <plugin_dir>/tenants/<tenant>/<name>.wasm                 the live version
//! <plugin_dir>/tenants/<tenant>/.versions/<name>/<n>.wasm    every upload, n = 1, 2, …
//! <plugin_dir>/tenants/<tenant>/.versions/<name>/LIVE        n of the live version
//! ```
//!
//! The live file is replaced by a rename, so the hot-reload watcher (and a
//! restart) always reads a whole component.

use std::path::{Path, PathBuf};

use serde::Serialize;

/// What is kept of one plugin of one tenant.
#[derive(Debug, Serialize)]
pub struct PluginVersions {
    pub name: String,
    pub live: Option<u32>,
    pub versions: Vec<VersionInfo>,
}

#[derive(Debug, Serialize)]
pub struct VersionInfo {
    pub version: u32,
    pub bytes: u64,
    /// Unix seconds.
    pub uploaded_at: u64,
}

pub struct PluginStore {
    tenant_dir: PathBuf,
}

/// Plugin names appear in paths and policies: keep them plain.
pub fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && !name.starts_with('.')
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

impl PluginStore {
    pub fn new(plugin_dir: &Path, tenant: &str) -> Self {
        Self {
            tenant_dir: crate::chain::tenant_plugin_dir(plugin_dir, tenant),
        }
    }

    fn versions_dir(&self, name: &str) -> PathBuf {
        self.tenant_dir.join(".versions").join(name)
    }

    pub fn live_path(&self, name: &str) -> PathBuf {
        self.tenant_dir.join(format!("{name}.wasm"))
    }

    fn version_path(&self, name: &str, version: u32) -> PathBuf {
        self.versions_dir(name).join(format!("{version}.wasm"))
    }

    /// The versions of a plugin, oldest first, and which one is live.
    pub fn versions(&self, name: &str) -> PluginVersions {
        let dir = self.versions_dir(name);
        let mut versions: Vec<VersionInfo> = std::fs::read_dir(&dir)
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|entry| {
                let path = entry.path();
                let version = path.file_stem()?.to_str()?.parse().ok()?;
                let meta = entry.metadata().ok()?;
                let uploaded_at = meta
                    .modified()
                    .ok()?
                    .duration_since(std::time::UNIX_EPOCH)
                    .ok()?
                    .as_secs();
                Some(VersionInfo {
                    version,
                    bytes: meta.len(),
                    uploaded_at,
                })
            })
            .collect();
        versions.sort_by_key(|v| v.version);
        let live = std::fs::read_to_string(dir.join("LIVE"))
            .ok()
            .and_then(|s| s.trim().parse().ok());
        PluginVersions {
            name: name.to_string(),
            live,
            versions,
        }
    }

    /// Every plugin with stored versions.
    pub fn list(&self) -> Vec<PluginVersions> {
        let mut names: Vec<String> = std::fs::read_dir(self.tenant_dir.join(".versions"))
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|e| e.file_name().to_str().map(str::to_string))
            .collect();
        names.sort();
        names.iter().map(|n| self.versions(n)).collect()
    }

    /// Stores a new version (not yet live); returns its number.
    pub fn add(&self, name: &str, wasm: &[u8]) -> std::io::Result<u32> {
        let next = self
            .versions(name)
            .versions
            .last()
            .map_or(1, |v| v.version + 1);
        std::fs::create_dir_all(self.versions_dir(name))?;
        write_atomically(&self.version_path(name, next), wasm)?;
        Ok(next)
    }

    pub fn read_version(&self, name: &str, version: u32) -> std::io::Result<Vec<u8>> {
        std::fs::read(self.version_path(name, version))
    }

    /// Makes a stored version the live file.
    pub fn make_live(&self, name: &str, version: u32) -> std::io::Result<()> {
        let wasm = std::fs::read(self.version_path(name, version))?;
        write_atomically(&self.live_path(name), &wasm)?;
        write_atomically(
            &self.versions_dir(name).join("LIVE"),
            version.to_string().as_bytes(),
        )
    }

    /// Puts the live file back as it was: `previous`, or no live file.
    pub fn restore_live(&self, name: &str, previous: Option<u32>) -> std::io::Result<()> {
        match previous {
            Some(previous) => self.make_live(name, previous),
            None => {
                let _ = std::fs::remove_file(self.live_path(name));
                let _ = std::fs::remove_file(self.versions_dir(name).join("LIVE"));
                Ok(())
            }
        }
    }

    /// Forgets a stored version (one that never went live).
    pub fn remove_version(&self, name: &str, version: u32) -> std::io::Result<()> {
        std::fs::remove_file(self.version_path(name, version))
    }

    /// The stored version before the live one.
    pub fn previous(&self, name: &str) -> Option<u32> {
        let versions = self.versions(name);
        let live = versions.live?;
        versions
            .versions
            .iter()
            .map(|v| v.version)
            .rfind(|v| *v < live)
    }

    /// Removes the live file and every version.
    pub fn delete(&self, name: &str) -> std::io::Result<()> {
        match std::fs::remove_file(self.live_path(name)) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
            _ => {}
        }
        match std::fs::remove_dir_all(self.versions_dir(name)) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        }
    }
}

fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)?;
    }
    let tmp = path.with_extension("partial");
    std::fs::write(&tmp, bytes)?;
    std::fs::rename(&tmp, path)
}
