//! The chain's own cost, without HTTP: each default plugin called the way the
//! pipeline calls it, on warm instances (reuse) and on a fresh instance per
//! call (`max_reuse = 1`); then the example guardrails in Rust, Python and
//! JavaScript the same two ways, with their memory. Needs the plugins built
//! (scripts/build-plugins.sh).
//!
//!     cargo bench -p warden --bench chain

use std::sync::Arc;
use std::time::{Duration, Instant};

use warden::runtime::{
    samples, PluginRuntime, PluginScope, RuntimeConfig, SandboxLimits, Stage, TenantPlugin,
};

const CALLS: u32 = 20_000;
const HISTORY: u64 = 50;

/// Median of 5 rounds of `calls / 5` calls each, in µs per call.
async fn time_calls<F, Fut>(calls: u32, mut call: F) -> f64
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let mut rounds = Vec::new();
    for _ in 0..5 {
        let started = Instant::now();
        for _ in 0..calls / 5 {
            call().await;
        }
        rounds.push(started.elapsed().as_secs_f64() * 1e6 / f64::from(calls / 5));
    }
    rounds.sort_by(f64::total_cmp);
    rounds[2]
}

async fn time<F, Fut>(call: F) -> f64
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    time_calls(CALLS, call).await
}

fn limits(max_reuse: u32) -> SandboxLimits {
    SandboxLimits {
        max_reuse,
        deadline: Duration::from_millis(10),
        ..SandboxLimits::default()
    }
}

async fn measure(
    runtime: &PluginRuntime,
    plugins: &std::collections::HashMap<String, Arc<warden::runtime::CompiledPlugin>>,
    max_reuse: u32,
) -> Vec<(Stage, f64)> {
    let kv = warden::runtime::scratch_kv_tree().unwrap();
    let limits = limits(max_reuse);
    let load = |name: &str| -> TenantPlugin {
        let scope = Arc::new(PluginScope::new(
            Arc::from("acme"),
            Arc::from(name),
            Default::default(),
            kv.clone(),
        ));
        runtime.instantiate_for_tenant(plugins[name].clone(), scope, limits.clone())
    };
    let (a, t, q, i, d) = (
        load("auth"),
        load("task-validation"),
        load("quota"),
        load("intent"),
        load("deviation"),
    );
    let auth_req = samples::auth_request("acme");
    let task_req = samples::task_request("acme");
    let quota_req = samples::quota_request("acme");
    let intent_req = samples::intent_request();
    let deviation_req = samples::deviation_request("acme", HISTORY);
    vec![
        (
            Stage::Auth,
            time(|| async {
                a.auth(&auth_req).await.unwrap();
            })
            .await,
        ),
        (
            Stage::TaskValidation,
            time(|| async {
                t.validate_task(&task_req).await.unwrap();
            })
            .await,
        ),
        (
            Stage::Quota,
            time(|| async {
                q.quota(&quota_req).await.unwrap();
            })
            .await,
        ),
        (
            Stage::Intent,
            time(|| async {
                i.intent(&intent_req).await.unwrap();
            })
            .await,
        ),
        (
            Stage::Deviation,
            time(|| async {
                d.deviation(&deviation_req).await.unwrap();
            })
            .await,
        ),
    ]
}

/// Calls of a warm instance are many; a fresh Python or JavaScript instance
/// costs milliseconds, so fewer of those.
const GUARDRAIL_WARM_CALLS: u32 = 20_000;
const GUARDRAIL_FRESH_CALLS: u32 = 500;

struct GuardrailFigures {
    name: &'static str,
    language: &'static str,
    wasm_mib: f64,
    warm_us: f64,
    fresh_us: f64,
    memory_mib: f64,
}

/// One guardrail's `on-request` on a typical prompt, warm and fresh, and the
/// linear memory one live instance of it holds.
async fn measure_guardrail(
    runtime: &PluginRuntime,
    name: &'static str,
    language: &'static str,
    path: &std::path::Path,
) -> GuardrailFigures {
    let wasm = std::fs::read(path).expect("build the examples first: scripts/build-plugins.sh");
    let compiled = Arc::new(runtime.compile(name, &wasm).unwrap());
    let kv = warden::runtime::scratch_kv_tree().unwrap();
    let load = |max_reuse| {
        let scope = Arc::new(PluginScope::new(
            Arc::from("acme"),
            Arc::from(name),
            Default::default(),
            kv.clone(),
        ));
        runtime.instantiate_for_tenant(compiled.clone(), scope, limits(max_reuse))
    };
    let context = samples::guardrail_context("acme");
    let messages = samples::guardrail_messages();
    let (warm, fresh) = (load(u32::MAX), load(1));
    let warm_us = time_calls(GUARDRAIL_WARM_CALLS, || async {
        warm.on_request(&context, &messages).await.unwrap();
    })
    .await;
    let fresh_us = time_calls(GUARDRAIL_FRESH_CALLS, || async {
        fresh.on_request(&context, &messages).await.unwrap();
    })
    .await;
    GuardrailFigures {
        name,
        language,
        wasm_mib: wasm.len() as f64 / f64::from(1 << 20),
        warm_us,
        fresh_us,
        memory_mib: warm.warm_memory_bytes() as f64 / f64::from(1 << 20),
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let dir = root.join("build/plugins");
    let runtime = PluginRuntime::new(&RuntimeConfig::default()).unwrap();
    let plugins = runtime
        .compile_dir(&dir)
        .expect("build the plugins first: scripts/build-plugins.sh");
    let warm = measure(&runtime, &plugins, 1000).await;
    let fresh = measure(&runtime, &plugins, 1).await;
    println!("| stage | warm instance (µs/call) | fresh instance per call (µs/call) |");
    println!("|---|---:|---:|");
    for ((stage, w), (_, f)) in warm.iter().zip(&fresh) {
        println!("| {stage} | {w:.1} | {f:.1} |");
    }
    let (w, f): (f64, f64) = (
        warm.iter().map(|x| x.1).sum(),
        fresh.iter().map(|x| x.1).sum(),
    );
    println!("| **all five** | **{w:.1}** | **{f:.1}** |");

    println!();
    println!("| guardrail | language | component (MiB) | warm instance (µs/call) | fresh instance per call (µs/call) | memory of a live instance (MiB) |");
    println!("|---|---|---:|---:|---:|---:|");
    for (name, language, path) in [
        ("pii-redactor", "Rust", dir.join("pii-redactor.wasm")),
        (
            "secret-scanner",
            "Python",
            root.join("build/examples/secret-scanner.wasm"),
        ),
        (
            "blocked-words",
            "JavaScript",
            root.join("build/examples/blocked-words.wasm"),
        ),
    ] {
        let g = measure_guardrail(&runtime, name, language, &path).await;
        println!(
            "| {} | {} | {:.1} | {:.1} | {:.0} | {:.1} |",
            g.name, g.language, g.wasm_mib, g.warm_us, g.fresh_us, g.memory_mib
        );
    }
}
