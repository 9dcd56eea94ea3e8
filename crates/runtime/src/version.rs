//! The version of the `warden:policy` WIT package a component was built
//! against, checked before linking: a plugin built for another major version
//! gets a message that says so, not a missing-import error.
//!
//! Rules (semver, as WIT packages use it): in `0.x` every minor version is a
//! major one, so `0.1.*` plugins run on a `0.1.*` host; from `1.0` on, a host
//! runs plugins of its own major version up to its own minor version.

use wasmtime::component::Component;
use wasmtime::Engine;

const WIT: &str = include_str!("../../../wit/warden.wit");
const PACKAGE: &str = "warden:policy";

/// The package version this host was built with, e.g. `0.1.0`.
pub fn host_version() -> &'static str {
    WIT.lines()
        .find_map(|l| l.trim().strip_prefix("package warden:policy@"))
        .and_then(|v| v.strip_suffix(';'))
        .expect("wit/warden.wit declares its package version")
}

fn parse(version: &str) -> Option<(u64, u64, u64)> {
    let core = version.split(['-', '+']).next()?;
    let mut parts = core.split('.').map(|p| p.parse::<u64>().ok());
    Some((parts.next()??, parts.next()??, parts.next()??))
}

/// Whether a plugin built against `plugin` runs on a host built with `host`.
pub fn compatible(host: &str, plugin: &str) -> bool {
    match (parse(host), parse(plugin)) {
        (Some((0, host_minor, _)), Some((0, minor, _))) => minor == host_minor,
        (Some((host_major, host_minor, _)), Some((major, minor, _))) => {
            host_major > 0 && major == host_major && minor <= host_minor
        }
        _ => false,
    }
}

/// Refuses a component that imports or exports `warden:policy` interfaces of
/// a version this host cannot serve.
pub fn check(engine: &Engine, component: &Component, name: &str) -> anyhow::Result<()> {
    let host = host_version();
    let ty = component.component_type();
    let names = ty
        .imports(engine)
        .map(|(n, _)| n)
        .chain(ty.exports(engine).map(|(n, _)| n));
    for interface in names {
        let Some(rest) = interface
            .strip_prefix(PACKAGE)
            .and_then(|r| r.strip_prefix('/'))
        else {
            continue;
        };
        let version = rest.split_once('@').map(|(_, v)| v).unwrap_or("none");
        if !compatible(host, version) {
            anyhow::bail!(
                "plugin '{name}' was built against {PACKAGE}@{version} ({interface}), but this \
                 Warden serves {PACKAGE}@{host}: rebuild it against the wit/warden.wit of this \
                 release (`warden plugin new` writes a copy)"
            );
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zero_minor_versions_are_major() {
        assert!(compatible("0.1.0", "0.1.0"));
        assert!(compatible("0.1.0", "0.1.7"));
        assert!(!compatible("0.1.0", "0.2.0"));
        assert!(!compatible("0.1.0", "1.0.0"));
        assert!(!compatible("0.1.0", "none"));
    }

    #[test]
    fn from_one_on_a_host_serves_its_major_up_to_its_minor() {
        assert!(compatible("1.2.0", "1.0.3"));
        assert!(compatible("1.2.0", "1.2.9"));
        assert!(!compatible("1.2.0", "1.3.0"));
        assert!(!compatible("1.2.0", "2.0.0"));
        assert!(!compatible("2.0.0", "1.9.0"));
    }

    #[test]
    fn the_host_version_is_the_wit_packages() {
        assert!(parse(host_version()).is_some());
    }
}
