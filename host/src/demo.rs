//! `warden demo`: the mock LLM and the proxy on embedded defaults, with a
//! seeded tenant, user, task and token, and ready-to-paste client snippets.

use std::net::SocketAddr;
use std::path::PathBuf;

use crate::admin::{self, NewUser};
use crate::config::Config;
use crate::domain::providers::{ProviderKind, ProviderSpec, RouteSpec};
use crate::mock_llm::{self, MockOptions};
use crate::state::model::{Limits, Role, Task};
use crate::state::Db;
use crate::token::{self, TokenRequest};

pub struct DemoOptions {
    pub listen: SocketAddr,
    pub plugin_dir: PathBuf,
    pub policy_dir: PathBuf,
    pub state_dir: PathBuf,
    /// Send one request through the proxy, print the answer and exit.
    pub once: bool,
}

pub const TENANT: &str = "acme";
pub const USER: &str = "ali";
pub const TASK: &str = "invoice-backend";
/// The tenant's admin, who opens the web console.
pub const ADMIN: &str = "maya";
/// What the demo's task and token allow: a GPT model, a Claude model (the
/// "anthropic" mock, reached by OpenAI clients through translation), an
/// embedding model, and the route `fast` (GPT first, Claude as fallback).
const DEMO_MODELS: [&str; 4] = [
    "gpt-4o-mini",
    "claude-3-5-haiku-latest",
    "text-embedding-3-small",
    "fast",
];
const DEMO_KEY: &str = "demo-upstream-key";

/// Two providers on the one mock: "openai" and "anthropic" (each speaks its
/// own API), and the route `fast`.
fn providers(config: &mut Config, mock: SocketAddr) {
    let spec = |name: &str, kind, models: &[&str]| ProviderSpec {
        name: name.into(),
        kind: Some(kind),
        base_url: Some(format!("http://{mock}/v1")),
        models: models.iter().map(|m| m.to_string()).collect(),
        ..ProviderSpec::default()
    };
    config.providers = vec![
        spec(
            "openai",
            ProviderKind::OpenAi,
            &["gpt-4o-mini", "gpt-4o", "text-embedding-3-small", "gpt-*"],
        ),
        spec(
            "anthropic",
            ProviderKind::Anthropic,
            &["claude-3-5-haiku-latest", "claude-*"],
        ),
    ];
    config.routes = vec![RouteSpec {
        model: "fast".into(),
        targets: vec![
            "openai/gpt-4o-mini".into(),
            "anthropic/claude-3-5-haiku-latest".into(),
        ],
    }];
    for name in ["openai", "anthropic"] {
        config.provider_keys.insert(name.into(), DEMO_KEY.into());
    }
}

fn seed(db: &Db) -> anyhow::Result<String> {
    admin::create_tenant(db, TENANT, "Acme Corp", Default::default())?;
    admin::create_user(
        db,
        NewUser {
            tenant_id: TENANT,
            id: USER,
            name: "Ali (freelancer)",
            role: Role::User,
            limits: Limits {
                requests_per_minute: Some(60),
                requests_per_day: Some(200),
                tokens_per_day: Some(300_000),
                tokens_per_month: Some(5_000_000),
            },
            groups: Vec::new(),
        },
    )?;
    admin::create_user(
        db,
        NewUser {
            tenant_id: TENANT,
            id: ADMIN,
            name: "Maya (owner)",
            role: Role::Admin,
            limits: Limits::default(),
            groups: Vec::new(),
        },
    )?;
    admin::create_task(
        db,
        Task {
            tenant_id: TENANT.into(),
            id: TASK.into(),
            title: "Invoice backend".into(),
            description:
                "Build the REST API and database layer that creates, stores and sends invoices."
                    .into(),
            keywords: [
                "invoice", "invoices", "billing", "api", "rest", "postgres", "pdf", "tax",
                "customer",
            ]
            .map(String::from)
            .to_vec(),
            endpoints: vec![],
            models: DEMO_MODELS.map(String::from).to_vec(),
            providers: vec![],
            active: true,
            examples: Vec::new(),
        },
    )?;
    token::issue(
        db,
        TokenRequest {
            tenant_id: TENANT,
            user_id: USER,
            tasks: vec![TASK.into()],
            endpoints: ["chat.completions", "messages", "responses", "embeddings"]
                .map(String::from)
                .to_vec(),
            models: DEMO_MODELS.map(String::from).to_vec(),
            ttl_secs: 30 * 86_400,
            issued_at: None,
        },
    )
}

pub async fn run(options: DemoOptions) -> anyhow::Result<()> {
    if options.state_dir.exists() {
        std::fs::remove_dir_all(&options.state_dir)?;
    }
    let (mock_addr, _mock) = mock_llm::spawn(
        "127.0.0.1:0".parse()?,
        MockOptions {
            require_key: Some(DEMO_KEY.into()),
            ..MockOptions::default()
        },
    )
    .await?;
    let mut config = Config {
        listen: options.listen,
        state_dir: options.state_dir.clone(),
        plugin_dir: options.plugin_dir.clone(),
        policy_dir: options.policy_dir.clone(),
        ..Config::default()
    };
    providers(&mut config, mock_addr);
    let server = crate::server::start(config).await?;
    // Seeded through the server's own database handle (sled allows one).
    let token = seed(&server.app.db)?;
    let base = format!("http://{}", server.addr);

    println!("\nWarden demo is running: proxy {base}, mock LLM http://{mock_addr}");
    println!(
        "Tenant '{TENANT}', user '{USER}', task '{TASK}'. Token (valid 30 days):\n\n  {token}\n"
    );
    println!("Try it with curl:\n");
    println!(
        "curl -sS -i {base}/v1/chat/completions -H 'Authorization: Bearer {token}' -H 'X-Task-Id: {TASK}' \
         -H 'Content-Type: application/json' -d '{{\"model\":\"gpt-4o-mini\",\"messages\":[{{\"role\":\"user\",\"content\":\"Write the REST endpoint that creates an invoice\"}}]}}'\n"
    );
    let (code, _) = server
        .app
        .db
        .issue_login_code(TENANT, ADMIN, server.app.clock.now_ms())?;
    println!(
        "The web console: {base}/ui/link?code={code}\n\
         (signs in admin '{ADMIN}' once, within 15 minutes; Ali signs in at {base}/ui with his token)\n"
    );
    println!("Or with the official openai Python SDK:\n");
    println!(
        "from openai import OpenAI\n\
         client = OpenAI(base_url=\"{base}/v1\", api_key=\"{token}\",\n                \
         default_headers={{\"X-Task-Id\": \"{TASK}\"}})\n\
         reply = client.chat.completions.create(model=\"gpt-4o-mini\",\n    \
         messages=[{{\"role\": \"user\", \"content\": \"Add tax lines to the invoice PDF\"}}])\n\
         print(reply.choices[0].message.content)\n"
    );
    println!("Or with the official anthropic Python SDK (the same token):\n");
    println!(
        "from anthropic import Anthropic\n\
         claude = Anthropic(base_url=\"{base}\", api_key=\"{token}\",\n                   \
         default_headers={{\"X-Task-Id\": \"{TASK}\"}})\n\
         reply = claude.messages.create(model=\"claude-3-5-haiku-latest\", max_tokens=256,\n    \
         messages=[{{\"role\": \"user\", \"content\": \"Add tax lines to the invoice PDF\"}}])\n\
         print(reply.content[0].text)\n"
    );

    if options.once {
        let response = reqwest::Client::new()
            .post(format!("{base}/v1/chat/completions"))
            .bearer_auth(&token)
            .header("X-Task-Id", TASK)
            .header("Content-Type", "application/json")
            .body(
                serde_json::json!({"model": "gpt-4o-mini",
                    "messages": [{"role": "user", "content": "Write the REST endpoint that creates an invoice"}]})
                .to_string(),
            )
            .send()
            .await?;
        let status = response.status();
        let intent = response.headers().get("x-warden-intent").cloned();
        let text = response.text().await?;
        println!("Self-check: HTTP {status}, intent {intent:?}\n{text}");
        server.stop().await;
        anyhow::ensure!(status.is_success(), "the demo request failed");
        return Ok(());
    }
    println!("Press Ctrl-C to stop.");
    tokio::signal::ctrl_c().await?;
    server.stop().await;
    Ok(())
}
