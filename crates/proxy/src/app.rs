//! Everything a request handler needs, built once at start-up.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use anyhow::Context;

use crate::calendar::{Calendar, Moment};
use crate::chain::Chains;
use crate::config::Config;
use crate::policy::PolicySource;
use crate::providers::Providers;
use crate::runtime::{PluginRuntime, RuntimeConfig};
use crate::state::{Activity, Db, StateWriter, Stores};

pub struct App {
    pub config: Config,
    pub db: Arc<Db>,
    pub activity: Arc<Activity>,
    pub writer: StateWriter,
    /// What the request path reads and writes of the state, behind traits
    /// (sled and memory here; see `warden_state::Stores`).
    pub stores: Stores,
    /// `None` when the chain is disabled (benchmark reference only).
    pub chains: Option<Chains>,
    /// Where calls go: the server's and tenants' providers and routes.
    pub providers: Providers,
    pub metrics: crate::metrics::Metrics,
    /// Bounds on model calls in flight (global and per tenant).
    pub admission: crate::admission::Admission,
    /// Set when a drain began: `/healthz` says so to load balancers.
    pub draining: std::sync::atomic::AtomicBool,
    /// Set when the drain's grace ran out: calls still in flight are cut
    /// (their ledgers log them as such).
    pub grace_expired: std::sync::atomic::AtomicBool,
    /// Time for quota windows; tests move it to a window's boundary.
    pub clock: Arc<crate::clock::Clock>,
    /// This process's place among replicas sharing a PostgreSQL state.
    pub replica: Option<crate::replication::Replica>,
    /// The quota counters in Redis, when replicas share them.
    pub shared_counters: Option<Arc<warden_shared::RedisCounters>>,
    /// The state writer; it ends (after a last write) once the app is dropped.
    writer_task: std::sync::Mutex<Option<tokio::task::JoinHandle<()>>>,
    request_seq: AtomicU64,
    request_prefix: String,
}

impl App {
    /// Opens the state, compiles the plugins and checks every policy. Must run
    /// inside a tokio runtime (it starts the state writer).
    pub fn build(config: Config) -> anyhow::Result<Arc<Self>> {
        let db = Arc::new(Db::open(&config.state_dir)?);
        // A stable name (`[shared] replica`) lets a restarted replica find
        // what it left in flight.
        let replica_name = config.shared.replica_name();
        let replica = crate::replication::join(&config.shared, &db, &replica_name)?;
        if replica.is_some() {
            crate::replication::materialize_plugins(&db, &config.plugin_dir)?;
        }
        db.set_pricing(crate::pricing::Pricing::new(
            &config.pricing,
            config.providers.iter().flat_map(|p| p.qualified_prices()),
        ));
        // First: a wrong master key stops the server before anything starts.
        let providers = Providers::new(&config, &db)?;
        let activity = Arc::new(db.load_activity()?);
        let (writer, writer_task) = StateWriter::spawn(
            db.clone(),
            activity.clone(),
            &config.state_dir,
            config.log_retention(),
        )?;
        let clock = Arc::new(crate::clock::Clock::default());
        let chains = if config.chain_enabled {
            let runtime = PluginRuntime::new(&RuntimeConfig {
                max_instances: config.runtime.max_instances,
                max_memory_bytes: config.runtime.max_memory_mib << 20,
                artifact_dir: Some(
                    config
                        .runtime
                        .artifact_dir
                        .clone()
                        .unwrap_or_else(|| config.state_dir.join("compiled")),
                ),
                warm: crate::runtime::WarmLimits {
                    max_instances: config.runtime.max_idle_instances,
                    max_bytes: config.runtime.max_idle_memory_mib << 20,
                    idle_ttl: std::time::Duration::from_secs(config.runtime.idle_ttl_secs),
                },
                tenant: crate::runtime::TenantLimits {
                    max_instances: config.runtime.tenant_max_instances,
                    log_lines_per_sec: config.runtime.tenant_log_lines_per_sec,
                    log_line_bytes: config.runtime.tenant_log_line_bytes,
                    kv_max_keys: config.runtime.tenant_kv_max_keys,
                    kv_max_bytes: config.runtime.tenant_kv_max_mib << 20,
                },
                embeddings: crate::runtime::Embeddings::from_setting(
                    &config.runtime.sentence_model,
                    config.runtime.sentence_workers,
                )?,
            })?;
            let chains = Chains::load(
                runtime,
                &config.plugin_dir,
                PolicySource::new(&config.policy_dir),
                db.plugin_kv.clone(),
                clock.clone(),
            )
            .with_context(|| {
                format!(
                    "loading plugins from {} (build them with scripts/build-plugins.sh)",
                    config.plugin_dir.display()
                )
            })?;
            // Tenants' own settings and task examples, before their chains
            // are built: both live in the state, not in files.
            let directory = db.directory();
            for (id, entry) in &directory.tenants {
                if let Some(tenant) = &entry.tenant {
                    chains.set_misuse_quietly(id, &tenant.misuse);
                }
                for task in entry.tasks.values() {
                    chains.publish_examples(id, &task.id, &task.examples)?;
                }
            }
            // Policies tenants' admins set through the API. One that no
            // longer parses (an older format) must not stop the server:
            // that tenant runs the server's policy, and says so in the log.
            for stored in db.current_policies()? {
                let Some(text) = &stored.text else { continue };
                if let Err(e) =
                    chains.set_stored_policy_quietly(&stored.tenant_id, stored.version, text)
                {
                    tracing::error!(tenant = %stored.tenant_id, "{e:#}; the server's policy applies");
                }
            }
            chains.build_all(directory.tenants.keys())?;
            Some(chains)
        } else {
            None
        };
        let started = crate::clock::now_ms();
        let mut stores = Stores::embedded(db.clone(), activity.clone(), writer.clone());
        let shared_counters = match &config.shared.counters {
            Some(url) => {
                let counters = warden_shared::RedisCounters::connect(
                    url,
                    &replica_name,
                    activity.clone(),
                    &db,
                )
                .context("connecting to Redis for the quota counters")?;
                stores.counters = counters.clone();
                if config.shared.deviation_in_redis {
                    stores.deviation = counters.clone();
                }
                Some(counters)
            }
            None => None,
        };
        let admission =
            crate::admission::Admission::new(config.max_in_flight, config.max_in_flight_per_tenant);
        // Ids unique across replicas too (two may start in one millisecond).
        let request_prefix = match &replica {
            Some(_) => format!("req_{started:x}{:04x}", rand::random::<u16>()),
            None => format!("req_{started:x}"),
        };
        let app = Arc::new(Self {
            config,
            db,
            activity,
            writer,
            stores,
            chains,
            providers,
            metrics: crate::metrics::Metrics::default(),
            admission,
            draining: std::sync::atomic::AtomicBool::new(false),
            grace_expired: std::sync::atomic::AtomicBool::new(false),
            clock,
            writer_task: std::sync::Mutex::new(Some(writer_task)),
            request_seq: AtomicU64::new(0),
            request_prefix,
            replica,
            shared_counters,
        });
        if let Some(replica) = &app.replica {
            crate::replication::follow(&app, replica)?;
        }
        Ok(app)
    }

    /// Whether this process made `event` (not another replica): only the
    /// replica that made an event sends its webhooks.
    pub fn made_here(&self, event: &crate::state::model::Event) -> bool {
        event
            .id
            .strip_prefix("evt_")
            .is_some_and(|rest| rest.starts_with(&self.request_prefix["req_".len()..]))
    }

    /// Largest whole answer (or guardrail-held stream) read from a provider.
    pub fn max_response_bytes(&self) -> usize {
        self.config.upstream.max_response_mib << 20
    }

    /// Takes the state writer's task, to await its last write after the app
    /// is dropped.
    pub fn take_writer_task(&self) -> Option<tokio::task::JoinHandle<()>> {
        self.writer_task.lock().ok()?.take()
    }

    /// Now, with the quota windows of the tenant's time zone.
    pub fn moment(&self, tenant_id: &str) -> Moment {
        let now_ms = self.clock.now_ms();
        match self.stores.identity.snapshot().tenant(tenant_id) {
            Some(entry) => entry.calendar.at(now_ms),
            None => Calendar::utc_shared().at(now_ms),
        }
    }

    /// A unique, sortable request id.
    pub fn next_request_id(&self) -> String {
        let n = self.request_seq.fetch_add(1, Ordering::Relaxed);
        format!("{}{n:08x}", self.request_prefix)
    }

    /// An audit-log entry stamped now, with a fresh id.
    pub fn event(
        &self,
        tenant: &str,
        actor: String,
        action: &str,
        target: &str,
        reason: Option<String>,
        details: serde_json::Value,
    ) -> crate::state::model::Event {
        crate::state::model::Event {
            id: self.next_request_id().replacen("req_", "evt_", 1),
            at_ms: crate::clock::now_ms(),
            tenant_id: tenant.to_string(),
            actor,
            action: action.to_string(),
            target: target.to_string(),
            reason,
            details,
        }
    }
}
