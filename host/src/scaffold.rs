//! `warden plugin new --lang rust|python|js NAME`: a working guardrail
//! project to start from: the source, a copy of the WIT package this binary
//! speaks, a build script that installs its toolchain, a sample request and
//! a README with the build → test → upload steps. The templates live in
//! `host/templates/guardrail/` and are embedded in the binary.

use std::path::{Path, PathBuf};

/// The WIT package the host was built with, copied into every project.
const WIT: &str = include_str!("../../wit/warden.wit");
const SAMPLE_REQUEST: &str = include_str!("../../examples/guardrails/sample-request.json");
const README: &str = include_str!("../templates/guardrail/README.md");

/// Toolchain versions the templates pin; the same as the examples in
/// `examples/guardrails/` (a unit test keeps them equal).
pub const WIT_BINDGEN_VERSION: &str = "0.61.1";
pub const COMPONENTIZE_PY_VERSION: &str = "0.25.1";
pub const COMPONENTIZE_JS_VERSION: &str = "0.23.0";

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Lang {
    Rust,
    Python,
    Js,
}

impl Lang {
    fn language(self) -> &'static str {
        match self {
            Lang::Rust => "Rust, wit-bindgen",
            Lang::Python => "Python, componentize-py",
            Lang::Js => "JavaScript, componentize-js",
        }
    }

    fn flag(self) -> &'static str {
        match self {
            Lang::Rust => "rust",
            Lang::Python => "python",
            Lang::Js => "js",
        }
    }

    /// (path in the project, template) for this language's own files.
    fn sources(self) -> &'static [(&'static str, &'static str)] {
        match self {
            Lang::Rust => &[
                (
                    "Cargo.toml",
                    include_str!("../templates/guardrail/rust/Cargo.toml"),
                ),
                (
                    "src/lib.rs",
                    include_str!("../templates/guardrail/rust/src/lib.rs"),
                ),
                (
                    "build.sh",
                    include_str!("../templates/guardrail/rust/build.sh"),
                ),
            ],
            Lang::Python => &[
                (
                    "app.py",
                    include_str!("../templates/guardrail/python/app.py"),
                ),
                (
                    "requirements.txt",
                    include_str!("../templates/guardrail/python/requirements.txt"),
                ),
                (
                    "build.sh",
                    include_str!("../templates/guardrail/python/build.sh"),
                ),
            ],
            Lang::Js => &[
                (
                    "guardrail.js",
                    include_str!("../templates/guardrail/js/guardrail.js"),
                ),
                (
                    "package.json",
                    include_str!("../templates/guardrail/js/package.json"),
                ),
                (
                    "build.sh",
                    include_str!("../templates/guardrail/js/build.sh"),
                ),
            ],
        }
    }
}

/// `0.1.0` from `package warden:policy@0.1.0;`.
pub fn wit_version() -> &'static str {
    crate::runtime::version::host_version()
}

/// A name usable as a plugin name, a crate name and a file name.
fn check_name(name: &str) -> anyhow::Result<()> {
    let ok = name.len() <= 64
        && name.starts_with(|c: char| c.is_ascii_lowercase())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_');
    anyhow::ensure!(
        ok,
        "invalid plugin name '{name}': use 1-64 lowercase letters, digits, '-' or '_', starting with a letter"
    );
    Ok(())
}

fn render(template: &str, lang: Lang, name: &str) -> String {
    [
        ("{{name}}", name),
        ("{{crate}}", &name.replace('-', "_")),
        ("{{lang}}", lang.flag()),
        ("{{language}}", lang.language()),
        ("{{wit_version}}", wit_version()),
        ("{{wit_bindgen_version}}", WIT_BINDGEN_VERSION),
        ("{{componentize_py_version}}", COMPONENTIZE_PY_VERSION),
        ("{{componentize_js_version}}", COMPONENTIZE_JS_VERSION),
    ]
    .iter()
    .fold(template.to_string(), |text, (key, value)| {
        text.replace(key, value)
    })
}

/// Writes the project into `parent/name/` (which must not exist or be
/// empty); returns its directory and the files written.
pub fn create(lang: Lang, name: &str, parent: &Path) -> anyhow::Result<(PathBuf, Vec<String>)> {
    check_name(name)?;
    let dir = parent.join(name);
    if dir
        .read_dir()
        .is_ok_and(|mut entries| entries.next().is_some())
    {
        anyhow::bail!("{} already exists and is not empty", dir.display());
    }
    let common = [
        ("README.md", README),
        ("sample-request.json", SAMPLE_REQUEST),
        ("wit/warden.wit", WIT),
    ];
    let mut written = Vec::new();
    for (path, template) in lang.sources().iter().chain(&common) {
        let target = dir.join(path);
        std::fs::create_dir_all(target.parent().expect("a file in the project"))?;
        let text = if *path == "wit/warden.wit" {
            template.to_string()
        } else {
            render(template, lang, name)
        };
        std::fs::write(&target, text)
            .map_err(|e| anyhow::anyhow!("writing {}: {e}", target.display()))?;
        written.push(path.to_string());
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(dir.join("build.sh"), std::fs::Permissions::from_mode(0o755))?;
    }
    Ok((dir, written))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn repo_file(path: &str) -> String {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        std::fs::read_to_string(root.join(path)).unwrap()
    }

    #[test]
    fn templates_pin_the_toolchains_the_examples_are_built_with() {
        assert!(repo_file("Cargo.toml").contains(&format!(
            "wit-bindgen = {{ version = \"={WIT_BINDGEN_VERSION}\""
        )));
        assert_eq!(
            repo_file("examples/guardrails/secret-scanner-py/requirements.txt").trim(),
            format!("componentize-py=={COMPONENTIZE_PY_VERSION}")
        );
        assert!(
            repo_file("examples/guardrails/blocked-words-js/package.json").contains(&format!(
                "\"@bytecodealliance/componentize-js\": \"{COMPONENTIZE_JS_VERSION}\""
            ))
        );
        assert_eq!(wit_version(), "0.1.0");
    }

    #[test]
    fn every_placeholder_is_filled() {
        let dir = std::env::temp_dir().join(format!("warden-scaffold-{}", std::process::id()));
        for lang in [Lang::Rust, Lang::Python, Lang::Js] {
            let (project, files) = create(lang, "my-guard", &dir.join(lang.flag())).unwrap();
            for file in files {
                let text = std::fs::read_to_string(project.join(&file)).unwrap();
                assert!(!text.contains("{{"), "{lang:?} {file} keeps a placeholder");
            }
        }
        assert!(create(Lang::Rust, "my-guard", &dir.join("rust")).is_err());
        assert!(create(Lang::Rust, "My Guard", &dir).is_err());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
