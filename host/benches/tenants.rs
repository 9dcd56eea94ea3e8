//! Memory with many tenants: resident memory (RSS) as 1,000 tenants' plugins
//! are loaded and called, the way a server holds them. Needs the plugins and
//! examples built (scripts/build-plugins.sh).
//!
//!     cargo bench -p warden --bench tenants

use std::sync::Arc;
use std::time::Instant;

use warden::runtime::{
    samples, PluginRuntime, PluginScope, RuntimeConfig, SandboxLimits, TenantPlugin,
};

const TENANTS: usize = 1000;

fn rss_mib() -> f64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap();
    let pages: f64 = statm.split_whitespace().nth(1).unwrap().parse().unwrap();
    pages * 4096.0 / f64::from(1 << 20)
}

/// Proportional set size: a page shared by N mappings counts 1/N. Pages of
/// a component's memory image that instances only read are mapped once per
/// instance but held once, which RSS counts N times and PSS once.
fn pss_mib() -> f64 {
    let rollup = std::fs::read_to_string("/proc/self/smaps_rollup").unwrap();
    let kib: f64 = rollup
        .lines()
        .find(|l| l.starts_with("Pss:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or_default();
    kib / 1024.0
}

/// The same component with a custom section appended: other bytes, so it
/// is compiled and held on its own, like a tenant's own build would be.
fn distinct(wasm: &[u8], n: usize) -> Vec<u8> {
    let name = b"warden-bench";
    let payload = n.to_le_bytes();
    let size = 1 + name.len() + payload.len();
    assert!(size < 128, "one-byte LEB128 sizes");
    let mut out = wasm.to_vec();
    out.extend([0u8, size as u8, name.len() as u8]);
    out.extend(name);
    out.extend(payload);
    out
}

fn scope(tenant: &str, plugin: &str, kv: &sled::Tree) -> Arc<PluginScope> {
    Arc::new(PluginScope::new(
        Arc::from(tenant),
        Arc::from(plugin),
        Default::default(),
        kv.clone(),
    ))
}

struct Row {
    what: String,
    rss: f64,
    pss: f64,
    seconds: f64,
}

/// Loads `TENANTS` tenants' copies of one guardrail (distinct bytes or the
/// same), then calls each once; returns the rows.
async fn scenario(label: &str, wasm: &[u8], distinct_bytes: bool) -> Vec<Row> {
    let runtime = PluginRuntime::new(&RuntimeConfig::default()).unwrap();
    let kv = warden::runtime::scratch_kv_tree().unwrap();
    let mut rows = vec![Row {
        what: format!("{label}: runtime only"),
        rss: rss_mib(),
        pss: pss_mib(),
        seconds: 0.0,
    }];
    let started = Instant::now();
    let plugins: Vec<(String, TenantPlugin)> = (0..TENANTS)
        .map(|n| {
            let tenant = format!("tenant-{n}");
            let bytes = if distinct_bytes {
                distinct(wasm, n)
            } else {
                wasm.to_vec()
            };
            let compiled = Arc::new(runtime.compile("guard", &bytes).unwrap());
            let plugin = runtime.instantiate_for_tenant(
                compiled,
                scope(&tenant, "guard", &kv),
                SandboxLimits::default(),
            );
            (tenant, plugin)
        })
        .collect();
    rows.push(Row {
        what: format!("{label}: {TENANTS} tenants loaded"),
        rss: rss_mib(),
        pss: pss_mib(),
        seconds: started.elapsed().as_secs_f64(),
    });
    let started = Instant::now();
    for (tenant, plugin) in &plugins {
        samples::call(plugin, tenant).await.unwrap();
    }
    let (idle, idle_bytes) = runtime.warm_idle();
    rows.push(Row {
        what: format!(
            "{label}: each called once ({idle} warm instances kept, {:.0} MiB)",
            idle_bytes as f64 / f64::from(1 << 20)
        ),
        rss: rss_mib(),
        pss: pss_mib(),
        seconds: started.elapsed().as_secs_f64(),
    });
    rows
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let read = |path: &str| {
        std::fs::read(root.join(path))
            .unwrap_or_else(|e| panic!("{path}: {e}; run scripts/build-plugins.sh"))
    };
    let rust = read("build/plugins/pii-redactor.wasm");
    let python = read("build/examples/secret-scanner.wasm");
    // The default intent stage carries its 5.4 MB word-vector table in its
    // data segment: one build, shared copy-on-write by every tenant.
    let intent = read("build/plugins/intent.wasm");
    println!("| scenario | RSS (MiB) | PSS (MiB) | time (s) |");
    println!("|---|---:|---:|---:|");
    let mut rows = Vec::new();
    rows.extend(scenario("Rust guardrail, 1,000 distinct builds", &rust, true).await);
    rows.extend(scenario("Rust guardrail, one build shared", &rust, false).await);
    rows.extend(scenario("Python guardrail, one build shared", &python, false).await);
    rows.extend(
        scenario(
            "Intent stage (default model), one build shared",
            &intent,
            false,
        )
        .await,
    );
    for row in rows {
        println!(
            "| {} | {:.0} | {:.0} | {:.1} |",
            row.what, row.rss, row.pss, row.seconds
        );
    }
}
