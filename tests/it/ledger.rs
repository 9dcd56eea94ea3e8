//! Every exit of a chat call leaves exactly one record, and the user's quota
//! counters equal the log afterwards: success (plain and streamed), a client
//! that leaves before the answer or mid-stream, a refusal by the chain and
//! by a guardrail, a panic in the handler, and an unreachable provider.

use std::time::Duration;

use crate::common::*;
use warden::state::model::{Limits, RequestRecord};

/// The default policy plus the PII guardrail that refuses salary questions.
fn with_guardrail() -> String {
    let default = std::fs::read_to_string(repo_root().join("policies/default.toml")).unwrap();
    format!(
        "{default}\n[[guardrails]]\nplugin = \"pii-redactor\"\nconfig = {{ blocked_topics = \"salary\" }}\n"
    )
}

const PANIC_PROMPT: &str = "invoice api: a prompt this test makes the handler panic on";

fn records(env: &TestEnv, tenant: &str) -> Vec<RequestRecord> {
    env.app().db.recent_requests(tenant, 100).unwrap()
}

/// The user's counters today against the log: (requests, tokens) of each.
fn counters_and_log(env: &TestEnv, tenant: &str) -> ((u64, u64), (u64, u64)) {
    let at = env.app().moment(tenant);
    let (usage, _, _) = env.app().activity.peek(tenant, "ali", &at);
    let logged = records(env, tenant);
    let tokens = logged.iter().map(|r| r.tokens_in + r.tokens_out).sum();
    (
        (usage.requests_today, usage.tokens_today),
        (logged.len() as u64, tokens),
    )
}

async fn leave_mid_stream(env: &TestEnv, token: &str, prompt: &str) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let body = serde_json::json!({ "model": "gpt-4o-mini", "stream": true,
        "messages": [{ "role": "user", "content": prompt }] })
    .to_string();
    let addr = env.base.trim_start_matches("http://");
    let mut socket = tokio::net::TcpStream::connect(addr).await.unwrap();
    let request = format!(
        "POST /v1/chat/completions HTTP/1.1\r\nhost: {addr}\r\nauthorization: Bearer {token}\r\n\
         x-task-id: {TASK}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    );
    socket.write_all(request.as_bytes()).await.unwrap();
    let mut first = vec![0u8; 4096];
    let n = socket.read(&mut first).await.unwrap();
    let head = String::from_utf8_lossy(&first[..n]);
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    // Closed: the kernel resets the connection at the server's next
    // write, and the write after that fails.
    drop(socket);
}

async fn logged(env: &TestEnv, tenant: &str, n: usize) -> Vec<RequestRecord> {
    assert!(
        eventually(|| records(env, tenant).len() == n).await,
        "{tenant}: {} records, want {n}",
        records(env, tenant).len()
    );
    records(env, tenant)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_exit_logs_once_and_counters_equal_the_log() {
    assert!(warden::failpoints::arm_panic_on_prompt(PANIC_PROMPT));
    let limits = Limits {
        tokens_per_day: Some(1_000_000),
        ..Limits::default()
    };
    let env = TestEnv::start_with_mock_latency(
        vec![
            TenantSpec::new("acme").with_limits(limits.clone()),
            TenantSpec::new("guarded")
                .with_policy(with_guardrail())
                .with_limits(limits.clone()),
            TenantSpec::new("trap")
                .with_policy(misbehaving_intent_policy("trap"))
                .with_limits(limits),
        ],
        Duration::from_millis(600),
        |_| {},
    )
    .await;
    let token = env.token("acme");

    // Answered, plain and streamed: the provider's usage is charged.
    assert_eq!(env.chat(&token, "invoice api", false).await.status(), 200);
    let streamed = env.chat(&token, "invoice api", true).await;
    assert_eq!(streamed.status(), 200);
    streamed.text().await.unwrap();

    // A client that gives up before the provider answers: logged as 499,
    // charged the estimate (the provider did the work).
    let impatient = reqwest::Client::builder()
        .timeout(Duration::from_millis(200))
        .build()
        .unwrap();
    let body = serde_json::json!({ "model": "gpt-4o-mini",
        "messages": [{ "role": "user", "content": "invoice api, an impatient client" }] });
    let gave_up = impatient
        .post(format!("{}/v1/chat/completions", env.base))
        .bearer_auth(&token)
        .header("x-task-id", TASK)
        .header("content-type", "application/json")
        .body(body.to_string())
        .send()
        .await;
    assert!(gave_up.is_err(), "the client timed out");

    // A client that leaves mid-stream, after the first chunk: a raw socket,
    // closed for real (an HTTP client library may drain the rest first).
    leave_mid_stream(&env, &token, "invoice api, streamed and dropped").await;

    // Refused by a tenant's guardrail: nothing charged.
    let guarded = env.token("guarded");
    let refused = env
        .chat(&guarded, "invoice api: the SALARY of bob", false)
        .await;
    assert_eq!(refused.status(), 403);

    // A panic between the chain and the provider: a 500 in the API's shape.
    let panicked = env.chat(&token, PANIC_PROMPT, false).await;
    assert_eq!(panicked.status(), 500);
    assert_eq!(error_of(panicked).await.1, "internal_error");

    // Refused by the chain after the quota stage (a failing intent stage,
    // fail closed), for another tenant.
    let trap = env.token("trap");
    assert_eq!(env.chat(&trap, "invoice api", false).await.status(), 503);

    let acme = logged(&env, "acme", 5).await;
    let status_of = |prompt: &str| {
        let found = acme
            .iter()
            .filter(|r| r.prompt == prompt)
            .collect::<Vec<_>>();
        assert_eq!(found.len(), 1, "one record for {prompt}");
        (found[0].status, found[0].tokens_in + found[0].tokens_out)
    };
    let (status, tokens) = status_of("invoice api, an impatient client");
    assert_eq!(status, 499);
    assert!(tokens > 512, "charged the estimate: {tokens}");
    // Left mid-stream: 499, charged the prompt and what was delivered
    // (one token per event), not the whole answer's estimate.
    let (status, tokens) = status_of("invoice api, streamed and dropped");
    assert_eq!(status, 499);
    assert!(
        tokens > 0 && tokens < 512,
        "charged what was delivered: {tokens}"
    );
    assert_eq!(status_of(PANIC_PROMPT), (500, 0));
    let refused = logged(&env, "guarded", 1).await;
    assert_eq!((refused[0].status, refused[0].tokens_in), (403, 0));
    let trapped = logged(&env, "trap", 1).await;
    assert_eq!((trapped[0].status, trapped[0].tokens_in), (503, 0));

    for tenant in ["acme", "guarded", "trap"] {
        let (counters, log) = counters_and_log(&env, tenant);
        assert_eq!(
            counters, log,
            "{tenant}: counters (requests, tokens) against the log"
        );
    }
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_provider_is_logged_and_charged_nothing() {
    let env = TestEnv::start_with(vec![TenantSpec::new("acme")], unreachable_provider).await;
    let token = env.token("acme");
    assert_eq!(env.chat(&token, "invoice api", false).await.status(), 502);
    assert_eq!(env.chat(&token, "invoice api", true).await.status(), 502);
    let logged = logged(&env, "acme", 2).await;
    assert!(logged
        .iter()
        .all(|r| r.status == 502 && r.tokens_in + r.tokens_out == 0));
    let (counters, log) = counters_and_log(&env, "acme");
    assert_eq!(counters, log);
    env.stop().await;
}
