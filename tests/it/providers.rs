//! Providers, routing and the API shapes (issue 16), through the real
//! server: fallback and retries with every attempt logged, a stream never
//! retried once it began, Anthropic Messages native and translated, the
//! OpenAI shapes through the chain, and provider keys that never show.

use serde_json::{json, Value};
use warden::config::Config;
use warden::domain::providers::{ProviderKind, ProviderSpec, RouteSpec};
use warden::mock_llm::{Fault, MockOptions};
use warden::state::model::RequestRecord;

use crate::common::provider::FakeProvider;
use crate::common::*;

fn provider(name: &str, kind: ProviderKind, base: &str, models: &[&str]) -> ProviderSpec {
    ProviderSpec {
        name: name.into(),
        kind: Some(kind),
        base_url: Some(base.into()),
        models: models.iter().map(|m| m.to_string()).collect(),
        ..ProviderSpec::default()
    }
}

fn route(model: &str, targets: &[&str]) -> RouteSpec {
    RouteSpec {
        model: model.into(),
        targets: targets.iter().map(|t| t.to_string()).collect(),
    }
}

/// A mock LLM of this test's own, failing as `fail` says.
async fn mock(fail: Option<Fault>) -> String {
    let options = MockOptions {
        require_key: Some(UPSTREAM_KEY.into()),
        fail,
        ..MockOptions::default()
    };
    let (addr, _task) = warden::mock_llm::spawn("127.0.0.1:0".parse().unwrap(), options)
        .await
        .unwrap();
    format!("http://{addr}/v1")
}

/// The test env's own mock as provider `mock` (OpenAI) and `claude`
/// (Anthropic), plus `extra` providers; every key is the mock's.
fn with_providers(config: &mut Config, extra: Vec<ProviderSpec>, routes: Vec<RouteSpec>) {
    let base = config.upstream.base_url.clone();
    config.providers = extra;
    config.providers.push(provider(
        "claude",
        ProviderKind::Anthropic,
        &base,
        &["claude-3-5-haiku-latest", "claude-*"],
    ));
    config.providers.push(provider(
        "mock",
        ProviderKind::OpenAiCompatible,
        &base,
        &["*"],
    ));
    config.routes = routes;
    config.routing.backoff_ms = 5;
    for p in &config.providers {
        config
            .provider_keys
            .insert(p.name.clone(), UPSTREAM_KEY.into());
    }
}

async fn json_of(response: reqwest::Response) -> Value {
    let text = response.text().await.unwrap();
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text}"))
}

/// A server whose own mock is provider `mock` (OpenAI) and `claude`.
async fn on_two_providers() -> TestEnv {
    TestEnv::start_with(vec![TenantSpec::new("acme")], |c| {
        with_providers(c, vec![], vec![])
    })
    .await
}

/// The `n`th record of the tenant (counting from 1), once written (the
/// state writer is asynchronous).
async fn nth(env: &TestEnv, n: usize) -> RequestRecord {
    let written = || env.app().db.recent_requests("acme", n).unwrap().len() >= n;
    assert!(eventually(written).await, "record {n} was never written");
    env.app().db.recent_requests("acme", n).unwrap().remove(0)
}

async fn post(env: &TestEnv, token: &str, path: &str, body: Value) -> reqwest::Response {
    env.http
        .post(format!("{}{path}", env.base))
        .bearer_auth(token)
        .header("x-task-id", TASK)
        .header("content-type", "application/json")
        .body(body.to_string())
        .send()
        .await
        .unwrap()
}

fn chat_body(model: &str, prompt: &str, stream: bool) -> Value {
    json!({ "model": model, "stream": stream, "messages": [{ "role": "user", "content": prompt }] })
}

fn any_model(r: &mut warden::token::TokenRequest) {
    r.models = vec![];
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_provider_falls_back_to_the_next_and_one_record_lists_every_attempt() {
    let down = mock(Some(Fault::Status(503))).await;
    let resetting = mock(Some(Fault::Reset)).await;
    let env = TestEnv::start_with(vec![TenantSpec::new("acme")], move |c| {
        let extra = vec![
            provider("down", ProviderKind::OpenAiCompatible, &down, &["none"]),
            provider("resetting", ProviderKind::OpenAi, &resetting, &["none"]),
        ];
        let fast = route("fast", &["down/gpt-4o", "resetting", "mock/gpt-4o-mini"]);
        with_providers(c, extra, vec![fast]);
    })
    .await;
    let token = env.token_with("acme", any_model);
    let response = post(
        &env,
        &token,
        "/v1/chat/completions",
        chat_body("fast", "invoice api", false),
    )
    .await;
    assert_eq!(response.status(), 200);
    let body: Value = json_of(response).await;
    let content = body["choices"][0]["message"]["content"].as_str().unwrap();
    assert!(
        content.starts_with("Mock answer about: invoice api"),
        "{body}"
    );
    assert_eq!(body["model"], "gpt-4o-mini", "the answering model's name");

    let record = nth(&env, 1).await;
    assert_eq!(record.status, 200);
    assert_eq!(
        (record.provider.as_str(), record.upstream_model.as_str()),
        ("mock", "gpt-4o-mini")
    );
    let tried: Vec<(&str, &str, u16)> = record
        .attempts
        .iter()
        .map(|a| (a.provider.as_str(), a.model.as_str(), a.status))
        .collect();
    // One retry per target (routing.retries = 1), then the next target.
    assert_eq!(
        tried,
        [
            ("down", "gpt-4o", 503),
            ("down", "gpt-4o", 503),
            ("resetting", "fast", 0),
            ("resetting", "fast", 0),
            ("mock", "gpt-4o-mini", 200),
        ],
        "{:?}",
        record.attempts
    );
    assert!(record.attempts[2]
        .error
        .as_deref()
        .unwrap()
        .contains("could not be reached"));
    assert!(
        record.tokens_out > 0,
        "charged what the answering provider reported"
    );
    assert_eq!(
        env.app().db.recent_requests("acme", 10).unwrap().len(),
        1,
        "one record"
    );

    // Every target down: the client gets the last failure, still one record.
    let response = post(
        &env,
        &token,
        "/v1/chat/completions",
        chat_body("fast", "invoice [mock:503]", false),
    )
    .await;
    assert_eq!(response.status(), 502);
    let record = nth(&env, 2).await;
    assert_eq!(record.attempts.len(), 6, "{:?}", record.attempts);
    assert_eq!(record.status, 502);
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_broken_after_its_first_byte_is_not_retried_and_is_still_charged() {
    let breaking = mock(Some(Fault::ResetAfter(4))).await;
    let spare = FakeProvider::start(|_| provider_answer()).await;
    let spare_base = spare.base_url();
    let env = TestEnv::start_with(vec![TenantSpec::new("acme")], move |c| {
        let extra = vec![
            provider("breaking", ProviderKind::OpenAi, &breaking, &["none"]),
            provider(
                "spare",
                ProviderKind::OpenAiCompatible,
                &spare_base,
                &["none"],
            ),
        ];
        with_providers(c, extra, vec![route("gpt-4o-mini", &["breaking", "spare"])]);
    })
    .await;
    let token = env.token("acme");
    let response = post(
        &env,
        &token,
        "/v1/chat/completions",
        chat_body("gpt-4o-mini", "invoice api", true),
    )
    .await;
    assert_eq!(response.status(), 200, "the stream began");
    let broken = response.text().await;
    assert!(broken.is_err() || !broken.unwrap().contains("[DONE]"));
    let record = nth(&env, 1).await;
    assert_eq!(record.status, 502, "{record:?}");
    assert_eq!(record.provider, "breaking");
    assert!(
        record.attempts.is_empty(),
        "one try only: {:?}",
        record.attempts
    );
    assert!(
        record.error.as_deref().unwrap().contains("stream broke"),
        "{:?}",
        record.error
    );
    assert!(record.tokens_out >= 1, "the delivered events are charged");
    assert!(spare.received().is_empty(), "never retried elsewhere");
    env.stop().await;
}

fn provider_answer() -> crate::common::provider::Answer {
    crate::common::provider::Answer::json(
        200,
        r#"{"choices":[],"usage":{"prompt_tokens":1,"completion_tokens":1}}"#,
    )
}

async fn messages_call(env: &TestEnv, token: &str, body: Value) -> reqwest::Response {
    env.http
        .post(format!("{}/v1/messages", env.base))
        .header("x-api-key", token)
        .header("anthropic-version", "2023-06-01")
        .header("x-task-id", TASK)
        .header("content-type", "application/json")
        .body(body.to_string())
        .send()
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn anthropic_messages_go_through_the_chain_native_or_translated_with_their_usage() {
    let env = on_two_providers().await;
    let token = env.token_with("acme", any_model);
    let ask = |model: &str, stream: bool| {
        json!({ "model": model, "max_tokens": 200, "stream": stream,
                "system": "You write Rust.",
                "messages": [{ "role": "user", "content": [{ "type": "text", "text": "invoice api" }] }] })
    };

    // Native: an Anthropic provider gets the body as sent.
    let response = messages_call(&env, &token, ask("claude-3-5-haiku-latest", false)).await;
    assert_eq!(response.status(), 200);
    assert!(
        response.headers().contains_key("x-warden-intent"),
        "the chain ran"
    );
    let message: Value = json_of(response).await;
    assert_eq!(message["type"], "message");
    assert!(message["content"][0]["text"]
        .as_str()
        .unwrap()
        .starts_with("Mock answer about: invoice api"));
    let record = nth(&env, 1).await;
    assert_eq!(
        (record.endpoint.as_str(), record.provider.as_str()),
        ("messages", "claude")
    );
    assert_eq!(
        record.tokens_in,
        message["usage"]["input_tokens"].as_u64().unwrap()
    );
    assert_eq!(
        record.tokens_out,
        message["usage"]["output_tokens"].as_u64().unwrap()
    );

    // Native stream: Anthropic's events pass as they are; usage from
    // message_start and message_delta.
    let response = messages_call(&env, &token, ask("claude-3-5-haiku-latest", true)).await;
    let sse = response.text().await.unwrap();
    for kind in [
        "message_start",
        "content_block_delta",
        "message_delta",
        "message_stop",
        "ping",
    ] {
        assert!(sse.contains(&format!("event: {kind}\n")), "{kind} in {sse}");
    }
    assert!(nth(&env, 2).await.stream);
    let record = nth(&env, 2).await;
    assert_eq!(
        record.tokens_out,
        message["usage"]["output_tokens"].as_u64().unwrap()
    );

    // Translated: a Messages client on an OpenAI-dialect model.
    let response = messages_call(&env, &token, ask("gpt-4o-mini", false)).await;
    assert_eq!(response.status(), 200);
    let message: Value = json_of(response).await;
    assert_eq!(
        (message["type"].as_str(), message["stop_reason"].as_str()),
        (Some("message"), Some("end_turn"))
    );
    assert!(
        message["usage"]["output_tokens"].as_u64().unwrap() > 0,
        "{message}"
    );
    assert_eq!(nth(&env, 3).await.provider, "mock");
    let response = messages_call(&env, &token, ask("gpt-4o-mini", true)).await;
    let sse = response.text().await.unwrap();
    assert!(sse.starts_with("event: message_start\n"), "{sse}");
    assert!(
        sse.trim_end()
            .ends_with("data: {\"type\":\"message_stop\"}"),
        "{sse}"
    );

    // Errors in Anthropic's shape, with the right status.
    let response = messages_call(
        &env,
        &token,
        json!({ "model": "claude-3-5-haiku-latest", "messages": [] }),
    )
    .await;
    assert_eq!(response.status(), 400);
    let error: Value = json_of(response).await;
    assert_eq!(
        (error["type"].as_str(), error["error"]["type"].as_str()),
        (Some("error"), Some("invalid_request_error"))
    );
    let response = messages_call(&env, "not-a-token", ask("claude-3-5-haiku-latest", false)).await;
    assert_eq!(response.status(), 401);
    let error: Value = json_of(response).await;
    assert_eq!(error["error"]["type"], "authentication_error");
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_openai_client_reaches_a_claude_model_through_translation() {
    let env = on_two_providers().await;
    let token = env.token_with("acme", any_model);
    let response = post(
        &env,
        &token,
        "/v1/chat/completions",
        chat_body("claude-3-5-haiku-latest", "invoice api", false),
    )
    .await;
    assert_eq!(response.status(), 200);
    let body: Value = json_of(response).await;
    assert_eq!(body["object"], "chat.completion");
    assert_eq!(body["choices"][0]["finish_reason"], "stop");
    assert!(body["choices"][0]["message"]["content"]
        .as_str()
        .unwrap()
        .starts_with("Mock answer about: invoice api"));
    let record = nth(&env, 1).await;
    assert_eq!(record.provider, "claude");
    assert_eq!(
        record.tokens_out,
        body["usage"]["completion_tokens"].as_u64().unwrap()
    );

    // Streamed: chat chunks; the usage chunk only when asked for.
    let response = post(
        &env,
        &token,
        "/v1/chat/completions",
        chat_body("claude-3-5-haiku-latest", "invoice api", true),
    )
    .await;
    let sse = response.text().await.unwrap();
    assert!(
        streamed_content(&sse).starts_with("Mock answer about: invoice api"),
        "{sse}"
    );
    assert!(!sse.contains("\"usage\""), "hidden when not asked: {sse}");
    assert!(sse.ends_with("data: [DONE]\n\n"), "{sse}");
    assert!(nth(&env, 2).await.stream);
    assert!(
        nth(&env, 2).await.tokens_out > 0,
        "counted from Anthropic's events"
    );
    let mut asked = chat_body("claude-3-5-haiku-latest", "invoice api", true);
    asked["stream_options"] = json!({ "include_usage": true });
    let sse = post(&env, &token, "/v1/chat/completions", asked)
        .await
        .text()
        .await
        .unwrap();
    assert!(sse.contains("\"usage\":{\"completion_tokens\""), "{sse}");
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn responses_embeddings_and_completions_run_the_chain_and_count_their_usage() {
    let env = on_two_providers().await;
    let token = env.token_with("acme", any_model);

    let response = post(
        &env,
        &token,
        "/v1/responses",
        json!({ "model": "gpt-4o-mini", "input": "invoice api" }),
    )
    .await;
    assert_eq!(response.status(), 200);
    assert!(response.headers().contains_key("x-warden-intent"));
    let body: Value = json_of(response).await;
    let record = nth(&env, 1).await;
    assert_eq!(record.endpoint, "responses");
    assert_eq!(
        record.tokens_out,
        body["usage"]["output_tokens"].as_u64().unwrap()
    );
    let streamed = json!({ "model": "gpt-4o-mini", "stream": true,
        "input": [{ "role": "user", "content": [{ "type": "input_text", "text": "invoice api" }] }] });
    let sse = post(&env, &token, "/v1/responses", streamed)
        .await
        .text()
        .await
        .unwrap();
    assert!(sse.contains("event: response.completed"), "{sse}");
    assert!(nth(&env, 2).await.stream);
    assert_eq!(
        nth(&env, 2).await.tokens_out,
        record.tokens_out,
        "usage from response.completed"
    );

    let response = post(
        &env,
        &token,
        "/v1/embeddings",
        json!({ "model": "text-embedding-3-small", "input": ["invoice tax lines", "pdf export"] }),
    )
    .await;
    assert_eq!(response.status(), 200);
    let body: Value = json_of(response).await;
    assert_eq!(body["data"].as_array().unwrap().len(), 2);
    let record = nth(&env, 3).await;
    assert_eq!(
        (
            record.endpoint.as_str(),
            record.tokens_in,
            record.tokens_out
        ),
        ("embeddings", 5, 0)
    );

    let response = post(
        &env,
        &token,
        "/v1/completions",
        json!({ "model": "gpt-4o-mini", "prompt": "invoice api", "max_tokens": 5 }),
    )
    .await;
    assert_eq!(response.status(), 200);
    let body: Value = json_of(response).await;
    assert_eq!(
        nth(&env, 4).await.tokens_out,
        body["usage"]["completion_tokens"].as_u64().unwrap()
    );

    // Anthropic's provider gets no translation of the Responses shape.
    let response = post(
        &env,
        &token,
        "/v1/responses",
        json!({ "model": "claude-3-5-haiku-latest", "input": "invoice api" }),
    )
    .await;
    assert_eq!(response.status(), 400);
    let (_, code, message) = error_of(response).await;
    assert_eq!(code, "invalid_parameter");
    assert!(message.contains("not translated"), "{message}");

    // Endpoint bindings hold for the new shapes.
    let chat_only = env.token_with("acme", |r| {
        r.models = vec![];
        r.endpoints = vec!["chat.completions".into()];
    });
    let response = post(
        &env,
        &chat_only,
        "/v1/embeddings",
        json!({ "model": "text-embedding-3-small", "input": "x" }),
    )
    .await;
    assert_eq!(response.status(), 403);

    // Models: across providers, one by id, 404 in OpenAI's words.
    let listed = get_json(&env.http, &format!("{}/v1/models", env.base), &token).await;
    let models = listed["data"].as_array().unwrap();
    assert!(
        models
            .iter()
            .any(|m| m["id"] == "claude-3-5-haiku-latest" && m["owned_by"] == "claude"),
        "{listed}"
    );
    assert!(
        !models.iter().any(|m| m["id"] == "claude-*"),
        "patterns are not models: {listed}"
    );
    let one = get_json(
        &env.http,
        &format!("{}/v1/models/claude-3-5-haiku-latest", env.base),
        &token,
    )
    .await;
    assert_eq!(one["object"], "model");
    let response = env
        .http
        .get(format!("{}/v1/models/nope", env.base))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 404);
    assert_eq!(error_of(response).await.1, "model_not_found");
    let response = post(
        &env,
        &token,
        "/v1/chat/completions",
        chat_body("gpt-4o-mini", "invoice", false),
    )
    .await;
    assert_eq!(response.status(), 200);
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_task_may_restrict_the_providers_its_calls_go_to() {
    let env = on_two_providers().await;
    let admin = env.user_with_role("acme", "maya", warden::state::model::Role::Admin);
    let path = format!("/admin/v1/tenants/acme/tasks/{TASK}");
    let (status, _) = env
        .admin(
            &admin,
            "PATCH",
            &path,
            Some(json!({ "providers": ["mock"] })),
        )
        .await;
    assert_eq!(status, 200);
    let token = env.token_with("acme", any_model);
    let response = post(
        &env,
        &token,
        "/v1/chat/completions",
        chat_body("claude-3-5-haiku-latest", "invoice api", false),
    )
    .await;
    assert_eq!(response.status(), 403);
    let (_, code, message) = error_of(response).await;
    assert_eq!(code, "task_not_allowed");
    assert!(message.contains("allowed: mock"), "{message}");
    let response = post(
        &env,
        &token,
        "/v1/chat/completions",
        chat_body("gpt-4o-mini", "invoice api", false),
    )
    .await;
    assert_eq!(response.status(), 200);
    env.stop().await;
}

/// `warden` with the master key in the environment.
fn warden_with_key(key: &str, args: &[&str]) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_warden"))
        .args(args)
        .env("WARDEN_MASTER_KEY", key)
        .env("WARDEN_TEST_UPSTREAM_KEY", UPSTREAM_KEY)
        .env_remove("WARDEN_SERVER")
        .output()
        .unwrap()
}

/// Starts `warden serve` with a master key, its log (debug level)
/// written to `log`.
async fn serve_with_key(
    config: &std::path::Path,
    key: &str,
    log: &std::path::Path,
    http: &reqwest::Client,
    base: &str,
) -> std::process::Child {
    let env = [("WARDEN_MASTER_KEY", key), ("RUST_LOG", "debug")];
    serve_with(config, http, base, &env, Some(log)).await
}

/// Every byte under `dir`, file by file.
fn files_under(dir: &std::path::Path) -> Vec<(std::path::PathBuf, Vec<u8>)> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            out.extend(files_under(&path));
        } else if let Ok(bytes) = std::fs::read(&path) {
            out.push((path, bytes));
        }
    }
    out
}

const PLANTED: &str = "sk-ant-PLANTED-7Qx9wL2pZr-4242";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_planted_provider_key_is_sealed_never_shown_and_needs_its_master_key() {
    let (claude, _task) = warden::mock_llm::spawn(
        "127.0.0.1:0".parse().unwrap(),
        MockOptions {
            require_key: Some(PLANTED.into()),
            ..MockOptions::default()
        },
    )
    .await
    .unwrap();
    let dir = TempDir::new("keys");
    let state = dir.0.join("state");
    let admin_token;
    let user_token;
    {
        let db = warden::state::Db::open(&state).unwrap();
        seed_tenant(&db, "acme", Default::default(), Default::default());
        warden::admin::create_user(
            &db,
            warden::admin::NewUser {
                tenant_id: "acme",
                id: "maya",
                name: "Maya",
                role: warden::state::model::Role::Admin,
                limits: Default::default(),
                groups: Vec::new(),
            },
        )
        .unwrap();
        let issue = |user: &'static str, tasks: Vec<String>| {
            warden::token::issue(
                &db,
                warden::token::TokenRequest {
                    tenant_id: "acme",
                    user_id: user,
                    tasks,
                    endpoints: vec![],
                    models: vec![],
                    ttl_secs: 3600,
                    issued_at: None,
                },
            )
            .unwrap()
        };
        admin_token = issue("maya", vec![]);
        user_token = issue("ali", vec![TASK.into()]);
    }
    let (config, base) = server_config(&dir.0, &state, mock_upstream().await);
    // The tenant's provider is a mock on loopback.
    let mut text = std::fs::read_to_string(&config).unwrap();
    text.push_str("[routing]\ntenant_private_addresses = true\n");
    std::fs::write(&config, text).unwrap();
    let key_one = "11".repeat(32);
    let key_two = "22".repeat(32);
    let log = dir.0.join("server.log");
    let http = reqwest::Client::new();
    let server = serve_with_key(&config, &key_one, &log, &http, &base).await;
    let mut answers = String::new();

    // The tenant's admin adds its provider with the key.
    let provider_url = format!("{base}/admin/v1/tenants/acme/providers/own-claude");
    let spec = json!({ "kind": "anthropic", "base_url": format!("http://{claude}/v1"),
                       "models": ["claude-*"], "api_key": PLANTED });
    let response = http
        .put(&provider_url)
        .bearer_auth(&admin_token)
        .header("content-type", "application/json")
        .body(spec.to_string())
        .send()
        .await
        .unwrap();
    let status = response.status();
    let text = response.text().await.unwrap();
    assert_eq!(status, 200, "{text}");
    assert!(text.contains("\"key\":\"…4242\""), "{text}");
    answers.push_str(&text);

    // Calls use it (the provider refuses any other key).
    let call = |prompt: &str| json!({ "model": "claude-3-5-haiku-latest", "messages": [{ "role": "user", "content": prompt }] });
    let response = post_chat(&http, &base, &user_token, call("invoice api").to_string())
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    answers.push_str(&response.text().await.unwrap());
    let response = post_chat(
        &http,
        &base,
        &user_token,
        call("invoice [mock:500]").to_string(),
    )
    .await
    .unwrap();
    assert_eq!(response.status(), 502);
    answers.push_str(&response.text().await.unwrap());
    for path in ["providers", "events", "logs"] {
        let url = format!("{base}/admin/v1/tenants/acme/{path}");
        answers.push_str(&get_json(&http, &url, &admin_token).await.to_string());
    }
    // The console: the form (kind from a dropdown) adds another provider
    // with the same key; the page shows both, keys by their last four.
    let mut browser = crate::console::Browser::new(&base);
    browser.sign_in(&admin_token).await;
    let page = browser
        .get("/ui/t/acme/providers")
        .await
        .text()
        .await
        .unwrap();
    assert!(page.contains("<option value=\"azure_openai\">"), "{page}");
    let csrf = crate::console::field(&page, "csrf");
    let claude_base = format!("http://{claude}/v1");
    let form = [
        ("csrf", csrf.as_str()),
        ("name", "console-claude"),
        ("kind", "anthropic"),
        ("base_url", claude_base.as_str()),
        ("models", "claude-opus-*"),
        ("api_key", PLANTED),
    ];
    let saved = browser.post("/ui/t/acme/providers", &form).await;
    assert_eq!(saved.status(), 303, "{}", saved.text().await.unwrap());
    let page = browser
        .get("/ui/t/acme/providers")
        .await
        .text()
        .await
        .unwrap();
    assert!(page.contains("console-claude"), "{page}");
    assert_eq!(page.matches("…4242").count(), 2, "{page}");
    answers.push_str(&page);
    assert!(
        answers.contains("own-claude"),
        "the answers talk about the provider: {answers}"
    );
    assert!(!answers.contains(PLANTED), "a key in an answer: {answers}");
    assert!(sigterm(server).await.success());

    let leaks: Vec<_> = files_under(&dir.0)
        .into_iter()
        .filter(|(_, bytes)| {
            bytes
                .windows(PLANTED.len())
                .any(|w| w == PLANTED.as_bytes())
        })
        .map(|(path, _)| path)
        .collect();
    assert!(leaks.is_empty(), "the key in plain text in {leaks:?}");
    assert!(
        std::fs::read_to_string(&log).unwrap().contains("request"),
        "the log was written"
    );

    // Another master key: start-up fails and says why.
    let started = warden_with_key(&key_two, &["serve", "--config", config.to_str().unwrap()]);
    assert!(!started.status.success());
    let why = String::from_utf8_lossy(&started.stderr);
    assert!(why.contains("master key"), "{why}");

    // Rotated to the second key, the server starts with it and calls work.
    let new_key_file = dir.0.join("new.key");
    std::fs::write(&new_key_file, &key_two).unwrap();
    let rotated = warden_with_key(
        &key_one,
        &[
            "rotate-master-key",
            "--state-dir",
            state.to_str().unwrap(),
            "--new-key-file",
            new_key_file.to_str().unwrap(),
        ],
    );
    assert!(
        rotated.status.success(),
        "{}",
        String::from_utf8_lossy(&rotated.stderr)
    );
    assert!(String::from_utf8_lossy(&rotated.stdout).contains("re-sealed 2 provider keys"));
    let server = serve_with_key(&config, &key_two, &log, &http, &base).await;
    let response = post_chat(&http, &base, &user_token, call("invoice api").to_string())
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    kill_9(server);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_are_priced_as_the_provider_and_model_that_answered() {
    let keys = TempDir::new("master");
    let key_file = keys.0.join("master.key");
    std::fs::write(&key_file, warden::providers::MasterKey::generate()).unwrap();
    let env = TestEnv::start_with(vec![TenantSpec::new("acme")], |c| {
        c.master_key_file = Some(key_file);
        // The tenant's provider below is the mock, on loopback.
        c.routing.tenant_private_addresses = true;
        with_providers(c, vec![], vec![route("fast", &["mock/gpt-4o-mini"])]);
        let mock = c.providers.iter_mut().find(|p| p.name == "mock").unwrap();
        let price = warden::pricing::Price {
            input: 1000.0,
            output: 2000.0,
            cached_input: None,
        };
        mock.prices.insert("gpt-4o-mini".into(), price);
    })
    .await;
    let admin = env.user_with_role("acme", "maya", warden::state::model::Role::Admin);
    let token = env.token_with("acme", any_model);
    // `fast` is priced as what answered it: gpt-4o-mini at the mock's price.
    let response = post(
        &env,
        &token,
        "/v1/chat/completions",
        chat_body("fast", "invoice api", false),
    )
    .await;
    assert_eq!(response.status(), 200);
    let usage = &json_of(response).await["usage"];
    let (tokens_in, tokens_out) = (
        usage["prompt_tokens"].as_u64().unwrap(),
        usage["completion_tokens"].as_u64().unwrap(),
    );
    nth(&env, 1).await;
    let report = |env: &TestEnv| {
        let admin = admin.clone();
        let url = format!("{}/admin/v1/tenants/acme/usage", env.base);
        let http = env.http.clone();
        async move { get_json(&http, &url, &admin).await }
    };
    let cost = report(&env).await["totals"]["cost_micro_usd"]
        .as_u64()
        .unwrap();
    assert_eq!(cost, tokens_in * 1000 + tokens_out * 2000);

    // A tenant's own provider with its own (contract) prices comes first.
    let spec = json!({ "kind": "openai_compatible", "base_url": env.config.upstream.base_url,
                       "models": ["none"], "api_key": UPSTREAM_KEY,
                       "prices": { "gpt-4o": { "input": 10.0, "output": 10.0, "cached_input": 1.0 } } });
    let (status, body) = env
        .admin(
            &admin,
            "PUT",
            "/admin/v1/tenants/acme/providers/contract",
            Some(spec),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["prices"]["gpt-4o"]["input"], 10.0);
    let targets = json!({ "targets": ["contract/gpt-4o-mini"] });
    let (status, body) = env
        .admin(
            &admin,
            "PUT",
            "/admin/v1/tenants/acme/routes/fast",
            Some(targets),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let response = post(
        &env,
        &token,
        "/v1/chat/completions",
        chat_body("fast", "invoice api", false),
    )
    .await;
    assert_eq!(response.status(), 200);
    let usage = &json_of(response).await["usage"];
    let second = 10
        * (usage["prompt_tokens"].as_u64().unwrap() + usage["completion_tokens"].as_u64().unwrap());
    assert_eq!(nth(&env, 2).await.provider, "contract");
    let total = report(&env).await["totals"]["cost_micro_usd"]
        .as_u64()
        .unwrap();
    assert_eq!(total, cost + second);
    env.stop().await;
}

/// The CLI with the master key and a provider key in its environment.
fn cli_with_keys(state: &std::path::Path, args: &[&str]) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_warden"))
        .args(args)
        .args(["--state-dir", state.to_str().unwrap()])
        .env("WARDEN_MASTER_KEY", "33".repeat(32))
        .env("OUR_OPENAI_KEY", PLANTED)
        .env_remove("WARDEN_SERVER")
        .output()
        .unwrap()
}

#[test]
fn the_cli_adds_routes_and_removes_a_tenants_providers_and_never_prints_a_key() {
    let dir = TempDir::new("cli-providers");
    let state = dir.0.join("state");
    {
        let db = warden::state::Db::open(&state).unwrap();
        seed_tenant(&db, "acme", Default::default(), Default::default());
    }
    let run = |args: &[&str]| {
        let output = cli_with_keys(&state, args);
        let (stdout, stderr) = (
            String::from_utf8_lossy(&output.stdout).to_string(),
            String::from_utf8_lossy(&output.stderr).to_string(),
        );
        assert!(
            !stdout.contains(PLANTED) && !stderr.contains(PLANTED),
            "{stdout}{stderr}"
        );
        (output.status.success(), stdout, stderr)
    };
    let (ok, added, err) = run(&[
        "provider",
        "add",
        "--tenant",
        "acme",
        "ours",
        "--kind",
        "azure_openai",
        "--base-url",
        "https://ours.openai.azure.com",
        "--api-version",
        "2024-10-21",
        "--model",
        "gpt-4o*",
        "--header",
        "x-team=billing",
        "--api-key-env",
        "OUR_OPENAI_KEY",
    ]);
    assert!(ok, "{err}");
    assert!(
        added.contains("…4242") && added.contains("x-team"),
        "{added}"
    );
    let (ok, _, err) = run(&[
        "provider",
        "add",
        "--tenant",
        "acme",
        "bad",
        "--kind",
        "azure_openai",
        "--model",
        "x",
    ]);
    assert!(!ok && err.contains("base_url"), "{err}");
    let (ok, _, err) = run(&[
        "provider",
        "route",
        "--tenant",
        "acme",
        "fast",
        "--target",
        "ours/gpt4o-prod",
        "--target",
        "nowhere",
    ]);
    assert!(!ok && err.contains("'nowhere' names no provider"), "{err}");
    let (ok, _, err) = run(&[
        "provider",
        "route",
        "--tenant",
        "acme",
        "fast",
        "--target",
        "ours/gpt4o-prod",
    ]);
    assert!(ok, "{err}");
    let (_, listed, _) = run(&["provider", "list", "--tenant", "acme", "--json"]);
    let listed: Value = serde_json::from_str(&listed).unwrap();
    assert_eq!(listed["providers"][0]["key"], "…4242");
    assert_eq!(listed["routes"][0]["targets"][0], "ours/gpt4o-prod");
    let (ok, _, err) = run(&["provider", "remove", "--tenant", "acme", "ours"]);
    assert!(
        !ok && err.contains("route 'fast'"),
        "refused while routed: {err}"
    );
    assert!(run(&["provider", "unroute", "--tenant", "acme", "fast"]).0);
    assert!(run(&["provider", "remove", "--tenant", "acme", "ours", "--reason", "done"]).0);
    let (_, listed, _) = run(&["provider", "list", "--tenant", "acme", "--json"]);
    assert_eq!(
        serde_json::from_str::<Value>(&listed).unwrap()["providers"],
        json!([])
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_shape_passes_the_tenants_guardrails() {
    const PII: &str = "invoice api for ali@example.com card 4111-1111-1111-1111";
    let policy = policy_with_guardrail("pii-redactor");
    let env = TestEnv::start_with(vec![TenantSpec::new("acme").with_policy(policy)], |c| {
        with_providers(c, vec![], vec![])
    })
    .await;
    let token = env.token_with("acme", any_model);
    let clean = |text: &str| text.contains("[redacted]") && !text.contains("ali@example.com");

    let ask = |stream: bool| {
        json!({ "model": "claude-3-5-haiku-latest", "max_tokens": 100, "stream": stream,
                "messages": [{ "role": "user", "content": [{ "type": "text", "text": PII }] }] })
    };
    let message = json_of(messages_call(&env, &token, ask(false)).await).await;
    assert!(
        clean(message["content"][0]["text"].as_str().unwrap()),
        "{message}"
    );
    let sse = messages_call(&env, &token, ask(true))
        .await
        .text()
        .await
        .unwrap();
    assert!(clean(&sse) && sse.contains("event: message_stop"), "{sse}");

    let calls = [
        (
            "/v1/responses",
            json!({ "model": "gpt-4o-mini", "input": PII }),
        ),
        (
            "/v1/completions",
            json!({ "model": "gpt-4o-mini", "prompt": PII }),
        ),
        (
            "/v1/chat/completions",
            chat_body("claude-3-5-haiku-latest", PII, false),
        ),
    ];
    for (path, body) in calls {
        let answer = post(&env, &token, path, body).await.text().await.unwrap();
        assert!(clean(&answer), "{path}: {answer}");
    }
    let response = post(
        &env,
        &token,
        "/v1/embeddings",
        json!({ "model": "text-embedding-3-small", "input": PII }),
    )
    .await;
    assert_eq!(response.status(), 200);
    let logged = nth(&env, 6).await;
    assert_eq!(logged.endpoint, "embeddings");
    assert!(
        clean(&logged.prompt),
        "the forwarded input is redacted: {}",
        logged.prompt
    );
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tenants_provider_may_not_reach_local_or_private_addresses() {
    let keys = TempDir::new("master-ssrf");
    let key_file = keys.0.join("master.key");
    std::fs::write(&key_file, warden::providers::MasterKey::generate()).unwrap();
    let env = TestEnv::start_with(vec![TenantSpec::new("acme")], |c| {
        c.master_key_file = Some(key_file);
        with_providers(c, vec![], vec![]);
    })
    .await;
    let admin = env.user_with_role("acme", "maya", warden::state::model::Role::Admin);
    let mock = env.config.upstream.base_url.clone();
    let path = "/admin/v1/tenants/acme/providers/inner";
    let put = |base: &str| {
        let spec = json!({ "kind": "openai_compatible", "base_url": base, "models": ["inner-*"], "api_key": "x" });
        env.admin(&admin, "PUT", path, Some(spec))
    };
    for base in [
        mock.as_str(),
        "http://localhost:9/v1",
        "http://169.254.169.254/latest",
        "http://[::1]:9/v1",
    ] {
        let (status, body) = put(base).await;
        assert_eq!(status, 400, "{base}: {body}");
        assert!(
            body["error"]["message"]
                .as_str()
                .unwrap()
                .contains("private or local address"),
            "{body}"
        );
    }
    // A name that resolves to a local address passes the URL check and
    // fails when the call connects: DNS cannot go around the first check.
    let host = String::from_utf8(
        std::process::Command::new("hostname")
            .output()
            .unwrap()
            .stdout,
    )
    .unwrap();
    let host = host.trim();
    let local = tokio::net::lookup_host((host, 0))
        .await
        .is_ok_and(|mut a| a.all(|a| !warden::providers::reach::is_public(a.ip())));
    assert!(
        local,
        "this machine's name '{host}' should resolve to a local address"
    );
    let port = mock
        .trim_start_matches("http://")
        .split([':', '/'])
        .nth(1)
        .unwrap();
    let (status, body) = put(&format!("http://{host}:{port}/v1")).await;
    assert_eq!(status, 200, "{body}");
    let token = env.token_with("acme", any_model);
    let response = post(
        &env,
        &token,
        "/v1/chat/completions",
        chat_body("inner-model", "invoice api", false),
    )
    .await;
    assert_eq!(response.status(), 502);
    let (_, _, message) = error_of(response).await;
    assert!(
        message.contains("resolves to no public address"),
        "{message}"
    );
    env.stop().await;
}
