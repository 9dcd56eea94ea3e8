//! Process counters, exposed as Prometheus text on `GET /metrics`.

use std::sync::atomic::{AtomicU64, Ordering};

#[derive(Default)]
pub struct Metrics {
    requests: AtomicU64,
    chain_runs: AtomicU64,
    chain_micros: AtomicU64,
    plugin_failures: AtomicU64,
    reloads: AtomicU64,
    reload_failures: AtomicU64,
}

impl Metrics {
    pub fn request(&self) {
        self.requests.fetch_add(1, Ordering::Relaxed);
    }

    /// Records one run of the five-stage chain.
    pub fn chain_run(&self, elapsed: std::time::Duration) {
        self.chain_runs.fetch_add(1, Ordering::Relaxed);
        self.chain_micros
            .fetch_add(elapsed.as_micros() as u64, Ordering::Relaxed);
    }

    pub fn plugin_failure(&self) {
        self.plugin_failures.fetch_add(1, Ordering::Relaxed);
    }

    /// A tenant chain rebuilt after its plugins or policy changed.
    pub fn reload(&self) {
        self.reloads.fetch_add(1, Ordering::Relaxed);
    }

    /// A changed plugin or policy that was rejected.
    pub fn reload_failure(&self) {
        self.reload_failures.fetch_add(1, Ordering::Relaxed);
    }

    /// The Prometheus text; `warm` is (idle instances, their bytes) when
    /// the chain runs.
    pub fn render(&self, warm: Option<(usize, usize)>) -> String {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        let (warm_instances, warm_bytes) = warm.unwrap_or_default();
        format!(
            "# TYPE warden_requests_total counter\nwarden_requests_total {}\n\
             # TYPE warden_chain_runs_total counter\nwarden_chain_runs_total {}\n\
             # TYPE warden_chain_seconds_total counter\nwarden_chain_seconds_total {:.6}\n\
             # TYPE warden_plugin_failures_total counter\nwarden_plugin_failures_total {}\n\
             # TYPE warden_plugin_instances_created_total counter\nwarden_plugin_instances_created_total {}\n\
             # TYPE warden_chain_reloads_total counter\nwarden_chain_reloads_total {}\n\
             # TYPE warden_reload_failures_total counter\nwarden_reload_failures_total {}\n\
             # TYPE warden_plugin_warm_instances gauge\nwarden_plugin_warm_instances {}\n\
             # TYPE warden_plugin_warm_memory_bytes gauge\nwarden_plugin_warm_memory_bytes {}\n",
            get(&self.requests),
            get(&self.chain_runs),
            get(&self.chain_micros) as f64 / 1e6,
            get(&self.plugin_failures),
            crate::runtime::INSTANCES_CREATED.load(Ordering::Relaxed),
            get(&self.reloads),
            get(&self.reload_failures),
            warm_instances,
            warm_bytes,
        )
    }
}
