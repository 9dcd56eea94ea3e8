//! The proxy over real HTTP: completions (plain and streamed), errors,
//! models, quota, deviation, TLS.

use crate::common::*;
use warden::state::model::Limits;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chat_completion_passes_all_five_stages_and_is_logged() {
    let env = TestEnv::start(vec![TenantSpec::new("acme")]).await;
    let token = env.token("acme");
    let response = env
        .chat(
            &token,
            "Write the REST endpoint that creates an invoice",
            false,
        )
        .await;
    assert_eq!(response.status(), 200);
    let headers = response.headers().clone();
    assert!(headers["x-warden-request-id"]
        .to_str()
        .unwrap()
        .starts_with("req_"));
    // The label's quality is `warden eval intent`'s business; here it must
    // be a kind of work, and the same in the header and the log.
    let label = headers["x-warden-intent"].to_str().unwrap().to_string();
    assert!(
        ["code", "test", "doc", "analysis"].contains(&label.as_str()),
        "{label}"
    );
    assert_eq!(headers["x-warden-deviation-score"], "0.00");
    assert!(headers.get("x-warden-warning").is_none());
    let body: serde_json::Value = response.json_value().await;
    let content = body["choices"][0]["message"]["content"].as_str().unwrap();
    assert!(
        content.starts_with("Mock answer about: Write the REST endpoint"),
        "{content}"
    );
    let usage = &body["usage"];
    assert_eq!(usage["prompt_tokens"], 11);

    // The request log records who, what, which intent and the provider's usage.
    let db = env.app().db.clone();
    assert!(eventually(|| db.recent_requests("acme", 10).unwrap().len() == 1).await);
    let record = &db.recent_requests("acme", 10).unwrap()[0];
    assert_eq!(record.user_id, "ali");
    assert_eq!(record.task_id, TASK);
    assert_eq!(record.status, 200);
    assert_eq!(record.intent.map(|i| i.as_str()), Some(label.as_str()));
    assert_eq!(record.tokens_in, 11);
    assert_eq!(
        record.tokens_out,
        usage["completion_tokens"].as_u64().unwrap()
    );
    assert_eq!(
        record.prompt,
        "Write the REST endpoint that creates an invoice"
    );
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streamed_completion_arrives_as_sse_chunks_identical_to_the_plain_answer() {
    // 20 ms between the mock's chunks: a buffering proxy would deliver them at once.
    let latency = std::time::Duration::from_millis(200);
    let env =
        TestEnv::start_with_mock_latency(vec![TenantSpec::new("acme")], latency, |_| {}).await;
    let token = env.token("acme");
    let prompt = "Generate the invoice PDF with tax lines";
    let plain: serde_json::Value = env.chat(&token, prompt, false).await.json_value().await;
    let response = env.chat(&token, prompt, true).await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "text/event-stream");
    assert_eq!(response.headers()["x-warden-intent"], "code");

    let mut chunks = 0;
    let mut body = Vec::new();
    let mut response = response;
    let mut first_chunk_at = None;
    while let Some(chunk) = response.chunk().await.unwrap() {
        first_chunk_at.get_or_insert_with(std::time::Instant::now);
        chunks += 1;
        body.extend_from_slice(&chunk);
    }
    let spread = first_chunk_at.unwrap().elapsed();
    assert!(chunks > 10, "the stream arrived in only {chunks} chunk(s)");
    assert!(
        spread >= std::time::Duration::from_millis(200),
        "chunks arrived together ({spread:?}): buffered"
    );
    let text = String::from_utf8(body).unwrap();
    assert!(text.trim_end().ends_with("data: [DONE]"));
    assert_eq!(
        streamed_content(&text),
        plain["choices"][0]["message"]["content"].as_str().unwrap()
    );

    let db = env.app().db.clone();
    assert!(
        eventually(|| db
            .recent_requests("acme", 10)
            .unwrap()
            .iter()
            .any(|r| r.stream && r.response_bytes > 0))
        .await
    );
    env.stop().await;
}

/// Reads a whole SSE body; returns the parsed `data:` events (without [DONE]).
async fn sse_events(response: reqwest::Response) -> Vec<serde_json::Value> {
    let text = response.text().await.unwrap();
    assert!(text.trim_end().ends_with("data: [DONE]"), "{text}");
    text.lines()
        .filter_map(|l| l.strip_prefix("data: "))
        .filter(|d| *d != "[DONE]")
        .map(|d| serde_json::from_str(d).unwrap())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streamed_usage_is_counted_and_its_extra_chunk_hidden_unless_asked_for() {
    let env = TestEnv::start(vec![TenantSpec::new("acme")]).await;
    let token = env.token("acme");

    // Not asked for: Warden requests usage upstream, counts it, strips the chunk.
    let events = sse_events(env.chat(&token, "Write the invoice api", true).await).await;
    assert!(
        events.iter().all(|e| !e["usage"].is_object()),
        "the usage chunk leaked to the client"
    );
    assert!(events
        .iter()
        .all(|e| !e["choices"].as_array().unwrap().is_empty()));
    let db = env.app().db.clone();
    assert!(eventually(|| db.recent_requests("acme", 10).unwrap().len() == 1).await);
    let record = &db.recent_requests("acme", 10).unwrap()[0];
    assert!(record.tokens_in > 0 && record.tokens_out > 0, "{record:?}");
    let counted = record.tokens_in + record.tokens_out;
    let (usage, _, _) = env
        .app()
        .activity
        .peek("acme", "ali", &env.app().moment("acme"));
    assert_eq!(
        usage.tokens_today, counted,
        "the estimate was replaced by the real usage"
    );

    // Asked for: the client gets the usage chunk, as from the provider.
    let body = serde_json::json!({"model": "gpt-4o-mini", "stream": true, "stream_options": {"include_usage": true},
                                  "messages": [{"role": "user", "content": "Write the invoice api"}]});
    let events = sse_events(env.post_raw(&token, Some(TASK), body.to_string()).await).await;
    let last = events.last().unwrap();
    assert!(last["choices"].as_array().unwrap().is_empty());
    assert_eq!(
        last["usage"]["prompt_tokens"].as_u64().unwrap(),
        record.tokens_in
    );
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_errors_are_openai_shaped_with_the_right_status() {
    let env = TestEnv::start_with(vec![TenantSpec::new("acme")], |c| {
        c.max_body_bytes = 64 << 10
    })
    .await;
    let token = env.token("acme");
    let good = serde_json::json!({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "invoice api"}]});

    let missing_task = env.post_raw(&token, None, good.to_string()).await;
    assert_eq!(missing_task.status(), 400);
    let (kind, code, message) = error_of(missing_task).await;
    assert_eq!(
        (kind.as_str(), code.as_str()),
        ("invalid_request_error", "missing_task_id")
    );
    assert!(message.contains("X-Task-Id"), "{message}");

    // The task may also come in the body's metadata (and is stripped upstream).
    let mut with_metadata = good.clone();
    with_metadata["metadata"] = serde_json::json!({"task_id": TASK});
    assert_eq!(
        env.post_raw(&token, None, with_metadata.to_string())
            .await
            .status(),
        200
    );

    let malformed = env.post_raw(&token, Some(TASK), "{not json".into()).await;
    assert_eq!(malformed.status(), 400);
    assert_eq!(error_of(malformed).await.1, "invalid_json");

    let no_messages = env
        .post_raw(&token, Some(TASK), r#"{"model":"gpt-4o-mini"}"#.into())
        .await;
    assert_eq!(no_messages.status(), 400);

    let huge = format!(
        r#"{{"model":"gpt-4o-mini","messages":[{{"role":"user","content":"{}"}}]}}"#,
        "a".repeat(100 << 10)
    );
    let too_large = env.post_raw(&token, Some(TASK), huge).await;
    assert_eq!(too_large.status(), 413);
    assert_eq!(error_of(too_large).await.1, "request_too_large");

    let other_task = env
        .post_raw(&token, Some("someone-elses-task"), good.to_string())
        .await;
    assert_eq!(other_task.status(), 403);
    let (_, code, message) = error_of(other_task).await;
    assert_eq!(code, "task_not_allowed");
    assert!(
        message.contains("not one of this token's tasks"),
        "{message}"
    );

    let wrong_model = serde_json::json!({"model": "gpt-4o", "messages": [{"role": "user", "content": "invoice api"}]});
    let denied = env
        .post_raw(&token, Some(TASK), wrong_model.to_string())
        .await;
    assert_eq!(denied.status(), 403);
    assert!(error_of(denied)
        .await
        .2
        .contains("may not use model 'gpt-4o'"));

    let unknown = env
        .http
        .get(format!("{}/v1/nothing", env.base))
        .send()
        .await
        .unwrap();
    assert_eq!(unknown.status(), 404);
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn models_lists_only_what_the_token_allows() {
    let env = TestEnv::start(vec![TenantSpec::new("acme")]).await;
    let token = env.token("acme");
    let response = env
        .http
        .get(format!("{}/v1/models", env.base))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let body: serde_json::Value = response.json_value().await;
    let ids: Vec<&str> = body["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["gpt-4o-mini"]);
    let anonymous = env
        .http
        .get(format!("{}/v1/models", env.base))
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous.status(), 401);
    let health = env
        .http
        .get(format!("{}/healthz", env.base))
        .send()
        .await
        .unwrap();
    assert_eq!(health.status(), 200);
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quota_exhaustion_gives_429_with_retry_after() {
    let limits = Limits {
        requests_per_day: Some(2),
        ..Limits::default()
    };
    let env = TestEnv::start(vec![TenantSpec::new("acme").with_limits(limits)]).await;
    let token = env.token("acme");
    for remaining in ["1", "0"] {
        let response = env.chat(&token, "invoice api endpoint", false).await;
        assert_eq!(response.status(), 200);
        assert_eq!(response.headers()["x-ratelimit-limit-requests"], "2");
        assert_eq!(
            response.headers()["x-ratelimit-remaining-requests"],
            remaining
        );
        assert!(response.headers()["x-ratelimit-reset-requests"]
            .to_str()
            .unwrap()
            .ends_with('s'));
    }
    let limited = env.chat(&token, "invoice api endpoint", false).await;
    assert_eq!(limited.status(), 429);
    assert_eq!(limited.headers()["x-ratelimit-remaining-requests"], "0");
    assert!(
        limited.headers().get("x-ratelimit-limit-tokens").is_none(),
        "no token limit was set"
    );
    let retry_after: u64 = limited.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=86_400).contains(&retry_after));
    let (kind, code, _) = error_of(limited).await;
    assert_eq!(
        (kind.as_str(), code.as_str()),
        ("rate_limit_error", "rate_limit_exceeded")
    );
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upstream_failures_map_to_502() {
    let env = TestEnv::start_with(vec![TenantSpec::new("acme")], unreachable_provider).await;
    let token = env.token("acme");
    let response = env.chat(&token, "invoice api", false).await;
    assert_eq!(response.status(), 502);
    assert_eq!(error_of(response).await.1, "upstream_unavailable");
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_provider_gives_504_and_the_reservation_is_released() {
    let limits = Limits {
        tokens_per_day: Some(2_000),
        ..Limits::default()
    };
    let latency = std::time::Duration::from_millis(1_500);
    let env = TestEnv::start_with_mock_latency(
        vec![TenantSpec::new("acme").with_limits(limits)],
        latency,
        |c| {
            c.upstream.response_timeout_secs = 1;
            // A timed-out try is retried once (routing.retries) after a
            // short backoff: two tries of 1 s each.
            c.routing.backoff_ms = 10;
        },
    )
    .await;
    let token = env.token("acme");
    let started = std::time::Instant::now();
    let response = env.chat(&token, "invoice api", false).await;
    assert_eq!(response.status(), 504);
    assert!(started.elapsed() < std::time::Duration::from_millis(2_400));
    assert_eq!(error_of(response).await.1, "upstream_timeout");
    // The ~520-token estimate was released: three more calls still fit in 2,000 tokens.
    for _ in 0..3 {
        assert_eq!(env.chat(&token, "invoice api", false).await.status(), 504);
    }
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serves_tls_with_http2() {
    let tls = SelfSigned::new();
    let env = TestEnv::start_with(vec![TenantSpec::new("acme")], |c| {
        c.tls = Some(tls.config())
    })
    .await;
    let token = env.token("acme");
    let (client, base) = tls.client(&env.base, reqwest::Client::builder());
    let response = post_chat(&client, &base, &token, INVOICE_CALL)
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.version(), reqwest::Version::HTTP_2);
    env.stop().await;
}

/// `json()` needs reqwest's json feature; parse by hand instead.
trait JsonValue {
    async fn json_value(self) -> serde_json::Value;
}

impl JsonValue for reqwest::Response {
    async fn json_value(self) -> serde_json::Value {
        serde_json::from_str(&self.text().await.unwrap()).unwrap()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_calls_cannot_overshoot_a_token_quota() {
    // Each call reserves its prompt estimate plus max_tokens (100) up front.
    let limits = Limits {
        tokens_per_day: Some(1_000),
        ..Limits::default()
    };
    // A slow provider keeps all 64 calls in flight at once: nothing is
    // reconciled before every reservation has been made.
    let latency = std::time::Duration::from_millis(400);
    let env = TestEnv::start_with_mock_latency(
        vec![TenantSpec::new("acme").with_limits(limits)],
        latency,
        |_| {},
    )
    .await;
    let token = env.token("acme");
    let body = r#"{"model":"gpt-4o-mini","max_tokens":100,"messages":[{"role":"user","content":"invoice api endpoint"}]}"#;
    let mut calls = Vec::new();
    for _ in 0..64 {
        let (http, base, token) = (env.http.clone(), env.base.clone(), token.clone());
        calls.push(tokio::spawn(async move {
            post_chat(&http, &base, &token, body)
                .await
                .unwrap()
                .status()
                .as_u16()
        }));
    }
    let mut statuses = Vec::new();
    for call in calls {
        statuses.push(call.await.unwrap());
    }
    let accepted = statuses.iter().filter(|s| **s == 200).count() as u64;
    let limited = statuses.iter().filter(|s| **s == 429).count() as u64;
    assert_eq!(accepted + limited, 64, "{statuses:?}");
    // estimate = 20 bytes / 4 + 4 + 100 = 109 tokens: at most 9 fit in 1,000.
    let estimate = 109;
    assert!(
        accepted >= 1 && accepted * estimate <= 1_000,
        "{accepted} calls accepted"
    );
    let (usage, _, _) = env
        .app()
        .activity
        .peek("acme", "ali", &env.app().moment("acme"));
    assert!(
        usage.tokens_today <= 1_000,
        "real usage {} over the limit",
        usage.tokens_today
    );
    assert_eq!(
        usage.requests_today, accepted,
        "refused calls are not counted"
    );
    env.stop().await;
}
