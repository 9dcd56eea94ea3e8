//! Compiled components cached on disk, so a restart does not recompile every
//! tenant's plugins (compiling is milliseconds for a Rust component, seconds
//! for Python or JavaScript ones).
//!
//! An artifact is named by the SHA-256 of the component's bytes and a hash
//! of the engine's settings: a different component, or a different wasmtime
//! or configuration, is a miss, never a wrong artifact.

use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};

use sha2::Sha256;
use wasmtime::component::Component;
use wasmtime::Engine;

/// The SHA-256 of a component's bytes.
pub type Digest = [u8; 32];

pub fn digest(wasm: &[u8]) -> Digest {
    use sha2::Digest as _;
    Sha256::digest(wasm).into()
}

pub struct ArtifactCache {
    dir: PathBuf,
}

impl ArtifactCache {
    pub fn new(dir: &Path) -> Self {
        Self {
            dir: dir.to_path_buf(),
        }
    }

    fn path(&self, engine: &Engine, digest: &Digest) -> PathBuf {
        let mut settings = std::collections::hash_map::DefaultHasher::new();
        engine.precompile_compatibility_hash().hash(&mut settings);
        let digest: String = digest.iter().map(|b| format!("{b:02x}")).collect();
        self.dir
            .join(format!("{digest}-{:016x}.cwasm", settings.finish()))
    }

    /// The cached artifact of `wasm` (whose SHA-256 is `digest`), or a
    /// fresh compilation (then cached). Returns whether it came from the cache.
    // The one unsafe call of the host's crates: loading precompiled code.
    #[allow(unsafe_code)]
    pub fn load_or_compile(
        &self,
        engine: &Engine,
        wasm: &[u8],
        digest: &Digest,
    ) -> wasmtime::Result<(Component, bool)> {
        let path = self.path(engine, digest);
        if path.is_file() {
            // SAFETY: the file is an artifact this process wrote from these
            // exact bytes with these exact engine settings (both are in its
            // name), in Warden's own state directory.
            match unsafe { Component::deserialize_file(engine, &path) } {
                Ok(component) => return Ok((component, true)),
                Err(e) => {
                    tracing::warn!(file = %path.display(), error = %e, "ignoring a bad cached artifact")
                }
            }
        }
        let component = Component::new(engine, wasm)?;
        if let Err(e) = self.store(&path, &component) {
            tracing::warn!(error = %e, "cannot cache a compiled plugin");
        }
        Ok((component, false))
    }

    fn store(&self, path: &Path, component: &Component) -> anyhow::Result<()> {
        std::fs::create_dir_all(&self.dir)?;
        // Unique per writer: servers sharing the directory may compile the
        // same component at once; the last rename wins, and both are equal.
        static WRITES: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let n = WRITES.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let tmp = path.with_extension(format!("{}-{n}.partial", std::process::id()));
        let artifact = component
            .serialize()
            .map_err(|e| anyhow::anyhow!("{e:#}"))?;
        std::fs::write(&tmp, artifact)?;
        std::fs::rename(&tmp, path)?;
        Ok(())
    }
}
