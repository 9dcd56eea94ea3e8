//! Process counters, exposed as Prometheus text on `GET /metrics`.

use std::sync::atomic::{AtomicU64, Ordering};

/// Accept errors since start, counted by the listener (server.rs), which
/// has no `App` at hand when accepting fails.
pub static ACCEPT_ERRORS: AtomicU64 = AtomicU64::new(0);

#[derive(Default)]
pub struct Metrics {
    requests: AtomicU64,
    chain_runs: AtomicU64,
    chain_micros: AtomicU64,
    plugin_failures: AtomicU64,
    reloads: AtomicU64,
    reload_failures: AtomicU64,
    shed: AtomicU64,
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

    /// A request refused with 503 because too many were in flight.
    pub fn shed(&self) {
        self.shed.fetch_add(1, Ordering::Relaxed);
    }

    /// The Prometheus text; `warm` is (idle instances, their bytes) when
    /// the chain runs.
    pub fn render(&self, warm: Option<(usize, usize)>) -> String {
        use crate::runtime::tenant::{INSTANCES_REFUSED, KV_WRITES_REFUSED, LOG_LINES_DROPPED};
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        let (warm_instances, warm_bytes) = warm.unwrap_or_default();
        let counters = [
            ("warden_requests_total", get(&self.requests)),
            ("warden_requests_shed_total", get(&self.shed)),
            ("warden_chain_runs_total", get(&self.chain_runs)),
            ("warden_plugin_failures_total", get(&self.plugin_failures)),
            (
                "warden_plugin_instances_created_total",
                get(&crate::runtime::INSTANCES_CREATED),
            ),
            (
                "warden_plugin_instances_refused_total",
                get(&INSTANCES_REFUSED),
            ),
            (
                "warden_plugin_log_lines_dropped_total",
                get(&LOG_LINES_DROPPED),
            ),
            (
                "warden_plugin_kv_writes_refused_total",
                get(&KV_WRITES_REFUSED),
            ),
            (
                "warden_sentence_texts_embedded_total",
                get(&crate::runtime::embeddings::TEXTS_EMBEDDED),
            ),
            (
                "warden_sentence_calls_without_vectors_total",
                get(&crate::runtime::embeddings::CALLS_WITHOUT_VECTORS),
            ),
            ("warden_chain_reloads_total", get(&self.reloads)),
            ("warden_reload_failures_total", get(&self.reload_failures)),
            ("warden_accept_errors_total", get(&ACCEPT_ERRORS)),
        ];
        let mut text = String::with_capacity(1024);
        for (name, value) in counters {
            text += &format!("# TYPE {name} counter\n{name} {value}\n");
        }
        text += &format!(
            "# TYPE warden_chain_seconds_total counter\nwarden_chain_seconds_total {:.6}\n",
            get(&self.chain_micros) as f64 / 1e6
        );
        let gauges = [
            ("warden_plugin_warm_instances", warm_instances),
            ("warden_plugin_warm_memory_bytes", warm_bytes),
            (
                "warden_requests_in_flight",
                crate::admission::IN_FLIGHT.load(Ordering::Relaxed),
            ),
        ];
        for (name, value) in gauges {
            text += &format!("# TYPE {name} gauge\n{name} {value}\n");
        }
        text
    }
}
