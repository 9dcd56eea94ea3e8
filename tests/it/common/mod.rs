//! Test harness: a real Warden server in-process on a loopback port, a real
//! mock LLM, real sled state in a temporary directory, and real plugins
//! built from this repository (scripts/build-plugins.sh).

#![allow(dead_code)]

mod process;
pub mod provider;
pub mod servers;
#[allow(unused_imports)] // not every test binary starts processes
pub use process::*;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};

use warden::admin::{self, NewUser, TenantOptions};
use warden::config::Config;
use warden::mock_llm::{self, MockOptions};
use warden::server::RunningServer;
use warden::state::model::{KeyAlgorithm, Limits, Role, Task};
use warden::token::{self, TokenRequest};

pub const UPSTREAM_KEY: &str = "test-upstream-key";
pub const TASK: &str = "invoice-backend";

pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

pub fn plugin_dir() -> PathBuf {
    let dir = repo_root().join("build/plugins");
    assert!(
        dir.join("auth.wasm").is_file(),
        "plugins are not built: run scripts/build-plugins.sh (scripts/test.sh does)"
    );
    dir
}

/// A fresh directory under the system temp dir, removed on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> Self {
        static N: AtomicU32 = AtomicU32::new(0);
        let path = std::env::temp_dir().join(format!(
            "warden-test-{tag}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).unwrap();
        Self(path)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// One tenant to seed: its id, an optional policy file, and user limits.
pub struct TenantSpec {
    pub id: &'static str,
    pub policy: Option<String>,
    pub limits: Limits,
    pub options: TenantOptions,
}

impl TenantSpec {
    pub fn new(id: &'static str) -> Self {
        Self {
            id,
            policy: None,
            limits: Limits::default(),
            options: TenantOptions::default(),
        }
    }

    /// The tenant's time zone (quota windows reset at its midnight).
    pub fn in_timezone(mut self, zone: &str) -> Self {
        self.options.timezone = Some(zone.into());
        self
    }

    pub fn signing_with(mut self, algorithm: KeyAlgorithm) -> Self {
        self.options.key_algorithm = algorithm;
        self
    }

    pub fn with_policy(mut self, policy: String) -> Self {
        self.policy = Some(policy);
        self
    }

    pub fn with_limits(mut self, limits: Limits) -> Self {
        self.limits = limits;
        self
    }
}

/// The default policy with the intent stage replaced by the misbehaving
/// fixture in `mode` (trap, spin or hog).
pub fn misbehaving_intent_policy(mode: &str) -> String {
    let default = std::fs::read_to_string(repo_root().join("policies/default.toml")).unwrap();
    default.replace(
        "[stages.intent]\nplugin = \"intent\"",
        &format!("[stages.intent]\nplugin = \"test-misbehave\"\nconfig = {{ mode = \"{mode}\" }}"),
    )
}

pub struct TestEnv {
    pub server: Option<RunningServer>,
    pub base: String,
    pub mock: tokio::task::JoinHandle<()>,
    pub state: TempDir,
    pub policies: TempDir,
    pub config: Config,
    pub http: reqwest::Client,
}

impl TestEnv {
    pub async fn start(tenants: Vec<TenantSpec>) -> Self {
        Self::start_with(tenants, |_| {}).await
    }

    /// Starts a mock LLM and a server; each tenant gets user `ali`, task
    /// `invoice-backend`, and its policy file if it has one.
    pub async fn start_with(tenants: Vec<TenantSpec>, tweak: impl FnOnce(&mut Config)) -> Self {
        Self::start_with_mock_latency(tenants, std::time::Duration::ZERO, tweak).await
    }

    /// As `start_with`, with a mock that waits `latency` before answering
    /// and a tenth of it between streamed chunks.
    pub async fn start_with_mock_latency(
        tenants: Vec<TenantSpec>,
        latency: std::time::Duration,
        tweak: impl FnOnce(&mut Config),
    ) -> Self {
        let (mock_addr, mock) = mock_llm::spawn(
            "127.0.0.1:0".parse().unwrap(),
            MockOptions {
                require_key: Some(UPSTREAM_KEY.into()),
                latency,
                fail: None,
            },
        )
        .await
        .unwrap();
        let state = TempDir::new("state");
        let policies = TempDir::new("policies");
        std::fs::copy(
            repo_root().join("policies/default.toml"),
            policies.0.join("default.toml"),
        )
        .unwrap();
        {
            let db = warden::state::Db::open(&state.0).unwrap();
            for spec in &tenants {
                seed_tenant(&db, spec.id, spec.limits.clone(), spec.options.clone());
                if let Some(policy) = &spec.policy {
                    std::fs::write(policies.0.join(format!("{}.toml", spec.id)), policy).unwrap();
                }
            }
        }
        let mut config = Config {
            listen: "127.0.0.1:0".parse().unwrap(),
            state_dir: state.0.clone(),
            plugin_dir: plugin_dir(),
            policy_dir: policies.0.clone(),
            ..Config::default()
        };
        config.upstream.base_url = format!("http://{mock_addr}/v1");
        config.upstream.api_key_override = Some(UPSTREAM_KEY.into());
        // Tests run many servers at once: a smaller pool reserves less address space.
        config.runtime.max_instances = 128;
        tweak(&mut config);
        let server = warden::server::start(config.clone()).await.unwrap();
        let base = format!("http://{}", server.addr);
        Self {
            server: Some(server),
            base,
            mock,
            state,
            policies,
            config,
            http: reqwest::Client::new(),
        }
    }

    /// As `start`, with a private copy of the built plugins as the plugin
    /// directory, so a test can add and change plugin files.
    pub async fn start_with_own_plugins(tenants: Vec<TenantSpec>) -> (Self, TempDir) {
        let plugins = private_plugins();
        let dir = plugins.0.clone();
        (
            Self::start_with(tenants, |c| c.plugin_dir = dir).await,
            plugins,
        )
    }

    /// A non-streamed chat call: its status and JSON body.
    pub async fn chat_json(&self, token: &str, prompt: &str) -> (u16, serde_json::Value) {
        let response = self.chat(token, prompt, false).await;
        let status = response.status().as_u16();
        let text = response.text().await.unwrap();
        (
            status,
            serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text}")),
        )
    }

    /// The prompt of the tenant's latest logged request.
    pub fn last_logged_prompt(&self, tenant: &str) -> Option<String> {
        let records = self.app().db.recent_requests(tenant, 1).unwrap();
        records.into_iter().next().map(|r| r.prompt)
    }

    /// `PUT /admin/v1/tenants/{tenant}/plugins/{name}` with a component.
    pub async fn upload_plugin(
        &self,
        admin: &str,
        tenant: &str,
        name: &str,
        wasm: Vec<u8>,
    ) -> (u16, serde_json::Value) {
        let response = self
            .http
            .put(format!(
                "{}/admin/v1/tenants/{tenant}/plugins/{name}",
                self.base
            ))
            .bearer_auth(admin)
            .header("content-type", "application/wasm")
            .body(wasm)
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        (
            status,
            serde_json::from_str(&response.text().await.unwrap()).unwrap(),
        )
    }

    /// The `/metrics` text.
    pub async fn metrics(&self) -> String {
        let url = format!("{}/metrics", self.base);
        self.http
            .get(url)
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    }

    pub fn app(&self) -> &warden::app::App {
        &self.server.as_ref().unwrap().app
    }

    pub fn token(&self, tenant: &str) -> String {
        self.token_with(tenant, |_| {})
    }

    pub fn token_with(&self, tenant: &str, tweak: impl FnOnce(&mut TokenRequest)) -> String {
        let mut request = TokenRequest {
            tenant_id: tenant,
            user_id: "ali",
            tasks: vec![TASK.into()],
            endpoints: vec![],
            models: vec!["gpt-4o-mini".into()],
            ttl_secs: 3600,
            issued_at: None,
        };
        tweak(&mut request);
        token::issue(&self.app().db, request).unwrap()
    }

    /// POSTs a chat completion with the given prompt.
    pub async fn chat(&self, token: &str, prompt: &str, stream: bool) -> reqwest::Response {
        let body = serde_json::json!({
            "model": "gpt-4o-mini",
            "stream": stream,
            "messages": [{"role": "user", "content": prompt}],
        });
        self.post_raw(token, Some(TASK), body.to_string()).await
    }

    pub async fn post_raw(
        &self,
        token: &str,
        task: Option<&str>,
        body: String,
    ) -> reqwest::Response {
        let mut request = self
            .http
            .post(format!("{}/v1/chat/completions", self.base))
            .bearer_auth(token)
            .header("content-type", "application/json")
            .body(body);
        if let Some(task) = task {
            request = request.header("x-task-id", task);
        }
        request.send().await.unwrap()
    }

    /// Creates a user with `role` in `tenant` and returns a token for them.
    pub fn user_with_role(&self, tenant: &str, id: &str, role: Role) -> String {
        admin::create_user(
            &self.app().db,
            NewUser {
                tenant_id: tenant,
                id,
                name: id,
                role,
                limits: Limits::default(),
                groups: Vec::new(),
            },
        )
        .unwrap();
        let request = TokenRequest {
            tenant_id: tenant,
            user_id: id,
            tasks: vec![],
            endpoints: vec![],
            models: vec![],
            ttl_secs: 3600,
            issued_at: None,
        };
        token::issue(&self.app().db, request).unwrap()
    }

    /// Stops the server and starts a new one on the same state and config.
    pub async fn restart(&mut self) {
        self.server.take().unwrap().stop().await;
        let server = warden::server::start(self.config.clone()).await.unwrap();
        self.base = format!("http://{}", server.addr);
        self.server = Some(server);
    }

    /// GET or POST/PUT JSON against the admin API; returns (status, body).
    pub async fn admin(
        &self,
        token: &str,
        method: &str,
        path: &str,
        body: Option<serde_json::Value>,
    ) -> (u16, serde_json::Value) {
        let url = format!("{}{path}", self.base);
        let request = match method {
            "GET" => self.http.get(url),
            "POST" => self.http.post(url),
            "PUT" => self.http.put(url),
            "PATCH" => self.http.patch(url),
            "DELETE" => self.http.delete(url),
            other => panic!("method {other}"),
        };
        let request = request.bearer_auth(token);
        let request = match body {
            Some(b) => request
                .header("content-type", "application/json")
                .body(b.to_string()),
            None => request,
        };
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        let text = response.text().await.unwrap();
        (
            status,
            serde_json::from_str(&text).unwrap_or(serde_json::Value::String(text)),
        )
    }

    pub async fn stop(mut self) {
        if let Some(server) = self.server.take() {
            server.stop().await;
        }
        self.mock.abort();
    }
}

pub fn seed_tenant(db: &warden::state::Db, id: &str, limits: Limits, options: TenantOptions) {
    admin::create_tenant(db, id, id, options).unwrap();
    admin::create_user(
        db,
        NewUser {
            tenant_id: id,
            id: "ali",
            name: "Ali",
            role: Role::User,
            limits,
            groups: Vec::new(),
        },
    )
    .unwrap();
    admin::create_task(
        db,
        Task {
            tenant_id: id.into(),
            id: TASK.into(),
            title: "Invoice backend".into(),
            description: "REST API and database layer for invoices".into(),
            keywords: ["invoice", "billing", "api", "rest", "pdf", "tax"]
                .map(String::from)
                .to_vec(),
            endpoints: vec![],
            models: vec![],
            providers: vec![],
            active: true,
            examples: vec![],
        },
    )
    .unwrap();
}

/// Parses an OpenAI-style error body and returns (type, code, message).
pub async fn error_of(response: reqwest::Response) -> (String, String, String) {
    let body: serde_json::Value =
        serde_json::from_str(&response.text().await.unwrap()).expect("JSON error body");
    let e = &body["error"];
    (
        e["type"].as_str().unwrap_or_default().to_string(),
        e["code"].as_str().unwrap_or_default().to_string(),
        e["message"].as_str().unwrap_or_default().to_string(),
    )
}

/// A plain chat call on the task, for tests that need no particular prompt.
pub const INVOICE_CALL: &str =
    r#"{"model":"gpt-4o-mini","messages":[{"role":"user","content":"invoice api"}]}"#;

/// POSTs a chat-completions `body` on the task to the server at `base`
/// (a server this process did not start, or a client of the test's own).
pub async fn post_chat(
    http: &reqwest::Client,
    base: &str,
    token: &str,
    body: impl Into<reqwest::Body>,
) -> reqwest::Result<reqwest::Response> {
    http.post(format!("{base}/v1/chat/completions"))
        .bearer_auth(token)
        .header("x-task-id", TASK)
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
}

/// GETs `url` with a bearer token and parses the JSON answer.
pub async fn get_json(http: &reqwest::Client, url: &str, token: &str) -> serde_json::Value {
    let text = http
        .get(url)
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{url}: {e}: {text}"))
}

/// Waits until `f` holds (the state writer is asynchronous).
pub async fn eventually(mut f: impl FnMut() -> bool) -> bool {
    for _ in 0..100 {
        if f() {
            return true;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    false
}

/// The answer text of an SSE body: every chunk's `delta.content`, joined.
pub fn streamed_content(sse: &str) -> String {
    sse.lines()
        .filter_map(|l| l.strip_prefix("data: "))
        .filter(|d| *d != "[DONE]")
        .map(|d| serde_json::from_str::<serde_json::Value>(d).unwrap())
        .filter_map(|v| {
            v["choices"][0]["delta"]["content"]
                .as_str()
                .map(String::from)
        })
        .collect()
}

/// As `eventually`, for a check that awaits (e.g. an HTTP call); up to 10 s.
pub async fn eventually_async<F, Fut>(mut f: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    for _ in 0..200 {
        if f().await {
            return true;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    false
}

/// A private copy of the built plugins, so tests can add files to it.
pub fn private_plugins() -> TempDir {
    let dir = TempDir::new("plugins");
    for entry in std::fs::read_dir(plugin_dir()).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "wasm") {
            std::fs::copy(&path, dir.0.join(path.file_name().unwrap())).unwrap();
        }
    }
    dir
}

/// Writes a file the way deploy tools should: a temporary name, then a rename.
pub fn put(path: &Path, bytes: &[u8]) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let tmp = path.with_extension("partial");
    std::fs::write(&tmp, bytes).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

/// Points the server at a provider port nothing listens on.
pub fn unreachable_provider(config: &mut Config) {
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    config.upstream.base_url = format!("http://{closed}/v1");
}

/// The default policy with one guardrail after the five stages.
pub fn policy_with_guardrail(plugin: &str) -> String {
    let default = std::fs::read_to_string(repo_root().join("policies/default.toml")).unwrap();
    format!("{default}\n[[guardrails]]\nplugin = \"{plugin}\"\n")
}

/// A self-signed certificate for `localhost`, written to a temporary directory.
pub struct SelfSigned {
    pub dir: TempDir,
    pub cert_pem: String,
}

impl SelfSigned {
    pub fn new() -> Self {
        let dir = TempDir::new("tls");
        let cert = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
        std::fs::write(dir.0.join("cert.pem"), cert.cert.pem()).unwrap();
        std::fs::write(dir.0.join("key.pem"), cert.signing_key.serialize_pem()).unwrap();
        Self {
            dir,
            cert_pem: cert.cert.pem(),
        }
    }

    pub fn config(&self) -> warden::config::TlsConfig {
        warden::config::TlsConfig {
            cert: self.dir.0.join("cert.pem"),
            key: self.dir.0.join("key.pem"),
        }
    }

    /// A client that trusts the certificate and reaches `localhost` at the
    /// server's port; returns it with the `https://localhost:PORT` base.
    pub fn client(&self, base: &str, builder: reqwest::ClientBuilder) -> (reqwest::Client, String) {
        let port = base.rsplit(':').next().unwrap();
        let client = builder
            .add_root_certificate(reqwest::Certificate::from_pem(self.cert_pem.as_bytes()).unwrap())
            .resolve("localhost", format!("127.0.0.1:{port}").parse().unwrap())
            .build()
            .unwrap();
        (client, format!("https://localhost:{port}"))
    }
}
