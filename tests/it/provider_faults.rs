//! A provider that misbehaves (issue 15, bugs 2 to 6), through the real
//! server: each test fails on `96611ef`.

use std::time::Duration;

use crate::common::provider::{Answer, FakeProvider};
use crate::common::*;

const USAGE_SPACED: &str = "data: {\"id\": \"c1\", \"object\": \"chat.completion.chunk\", \
     \"choices\": [], \"usage\": {\"prompt_tokens\": 11, \"completion_tokens\": 7}}\n\n";

fn stream_with_usage() -> Answer {
    let delta = "data: {\"id\":\"c1\",\"object\":\"chat.completion.chunk\",\"choices\":\
                 [{\"index\":0,\"delta\":{\"content\":\"hi\"},\"finish_reason\":null}]}\n\n";
    Answer::new(200, "text/event-stream", delta)
        .then(Duration::ZERO, USAGE_SPACED)
        .then(Duration::ZERO, "data: [DONE]\n\n")
}

async fn env_on(provider: &FakeProvider) -> TestEnv {
    let base = provider.base_url();
    TestEnv::start_with(vec![TenantSpec::new("acme")], move |c| {
        c.upstream.base_url = base;
        c.upstream.idle_timeout_secs = 1;
    })
    .await
}

fn last_record(env: &TestEnv) -> warden::state::model::RequestRecord {
    env.app().db.recent_requests("acme", 1).unwrap().remove(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_null_stream_options_still_counts_the_streams_tokens_and_hides_the_usage_chunk() {
    let provider = FakeProvider::start(|_| stream_with_usage()).await;
    let env = env_on(&provider).await;
    let token = env.token("acme");
    let body = serde_json::json!({ "model": "gpt-4o-mini", "stream": true, "stream_options": null,
        "messages": [{ "role": "user", "content": "invoice api" }] });
    let response = env.post_raw(&token, Some(TASK), body.to_string()).await;
    assert_eq!(response.status(), 200);
    let text = response.text().await.unwrap();
    // The usage chunk Warden asked for (spaced JSON) is not the client's.
    assert!(!text.contains("usage"), "{text}");
    assert!(text.contains("\"hi\"") && text.contains("[DONE]"), "{text}");
    let forwarded: serde_json::Value = serde_json::from_str(&provider.received()[0]).unwrap();
    assert_eq!(forwarded["stream_options"]["include_usage"], true);
    assert!(eventually(|| env.app().db.recent_requests("acme", 1).unwrap().len() == 1).await);
    let record = last_record(&env);
    assert_eq!((record.tokens_in, record.tokens_out), (11, 7));
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_providers_429_keeps_its_retry_after() {
    let limited = r#"{"error":{"message":"Rate limit reached","type":"requests","code":"rate_limit_exceeded"}}"#;
    let provider =
        FakeProvider::start(move |_| Answer::json(429, limited).with_header("retry-after", "7"))
            .await;
    let env = env_on(&provider).await;
    let response = env.chat(&env.token("acme"), "invoice api", false).await;
    assert_eq!(response.status(), 429);
    assert_eq!(response.headers()["retry-after"], "7");
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_providers_5xx_is_wardens_error_with_the_message_summarised() {
    let provider = FakeProvider::start(|body| {
        if body.contains("html") {
            let page = "<html><body>Bad gateway at http://10.0.0.7:8080/internal</body></html>";
            Answer::new(503, "text/html", page)
        } else {
            let json = r#"{"error":{"message":"The model is overloaded, see https://status.example.com/x","type":"server_error"}}"#;
            Answer::json(500, json)
        }
    })
    .await;
    let env = env_on(&provider).await;
    let token = env.token("acme");
    for (prompt, want) in [
        (
            "invoice api html",
            "(503 Service Unavailable) without an error",
        ),
        ("invoice api json", "The model is overloaded, see [address]"),
    ] {
        let response = env.chat(&token, prompt, false).await;
        assert_eq!(response.status(), 502, "{prompt}");
        assert_eq!(
            response.headers()["content-type"],
            "application/json",
            "{prompt}"
        );
        let (kind, code, message) = error_of(response).await;
        assert_eq!(
            (kind.as_str(), code.as_str()),
            ("upstream_error", "upstream_unavailable")
        );
        assert!(message.contains(want), "{message}");
        assert!(
            !message.contains("://") && !message.contains("<html"),
            "{message}"
        );
    }
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plain_answer_that_stalls_past_the_idle_timeout_is_a_504() {
    let provider = FakeProvider::start(|_| {
        Answer::json(200, "{\"id\":\"c1\",").then(Duration::from_secs(3), "\"choices\":[]}")
    })
    .await;
    let env = env_on(&provider).await;
    let started = std::time::Instant::now();
    let response = env.chat(&env.token("acme"), "invoice api", false).await;
    assert_eq!(response.status(), 504);
    assert!(started.elapsed() < Duration::from_millis(2_800));
    assert_eq!(error_of(response).await.1, "upstream_timeout");
    env.stop().await;
}

/// An answer as long as the provider likes, unless the call caps it: the
/// usage it reports (10 prompt tokens, 3,000 completion tokens or the cap).
fn long_answer(body: &str) -> Answer {
    let request: serde_json::Value = serde_json::from_str(body).unwrap();
    let cap = request["max_tokens"]
        .as_u64()
        .or(request["max_completion_tokens"].as_u64());
    let completion = cap.unwrap_or(3_000).min(3_000);
    Answer::json(
        200,
        &format!(
            "{{\"id\":\"c1\",\"object\":\"chat.completion\",\"choices\":[{{\"index\":0,\
             \"message\":{{\"role\":\"assistant\",\"content\":\"...\"}},\"finish_reason\":\"length\"}}],\
             \"usage\":{{\"prompt_tokens\":10,\"completion_tokens\":{completion}}}}}"
        ),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_quota_caps_what_the_provider_may_produce() {
    let provider = FakeProvider::start(long_answer).await;
    let base = provider.base_url();
    let limits = warden::state::model::Limits {
        tokens_per_day: Some(2_000),
        ..Default::default()
    };
    let env = TestEnv::start_with(
        vec![
            TenantSpec::new("acme").with_limits(limits),
            TenantSpec::new("globex"),
        ],
        move |c| c.upstream.base_url = base,
    )
    .await;
    let token = env.token("acme");
    // 64 calls at once, half without max_tokens and half asking for 1,500
    // each; every answer would be longer than the whole quota.
    let calls = (0..64).map(|i| {
        let mut body = serde_json::json!({ "model": "gpt-4o-mini",
            "messages": [{ "role": "user", "content": "invoice api" }] });
        if i % 2 == 1 {
            body["max_tokens"] = 1_500.into();
        }
        env.post_raw(&token, Some(TASK), body.to_string())
    });
    let statuses: Vec<u16> = futures_util::future::join_all(calls)
        .await
        .iter()
        .map(|r| r.status().as_u16())
        .collect();
    assert!(
        statuses.contains(&200) && statuses.contains(&429),
        "{statuses:?}"
    );
    let logged = || env.app().db.recent_requests("acme", 100).unwrap();
    assert!(eventually(|| logged().len() == 64).await);
    let used: u64 = logged().iter().map(|r| r.tokens_in + r.tokens_out).sum();
    // Within the limit, give or take the prompt estimate's error (the
    // issue's bound is the limit plus one call's cap: 3,500).
    assert!(used <= 2_000 + 20, "{used} tokens against a limit of 2,000");
    for body in provider.received() {
        let cap = serde_json::from_str::<serde_json::Value>(&body).unwrap()["max_tokens"].as_u64();
        assert!(cap.is_some_and(|c| c <= 2_000), "{body}");
    }
    // A user without a token quota gets the provider's answer uncapped.
    let before = provider.received().len();
    assert_eq!(
        env.chat(&env.token("globex"), "invoice api", false)
            .await
            .status(),
        200
    );
    let body: serde_json::Value = serde_json::from_str(&provider.received()[before]).unwrap();
    assert!(body.get("max_tokens").is_none(), "{body}");
    env.stop().await;
}

fn delta(content: &str) -> String {
    format!(
        "data: {{\"id\":\"c1\",\"object\":\"chat.completion.chunk\",\"choices\":\
         [{{\"index\":0,\"delta\":{{\"content\":\"{content}\"}},\"finish_reason\":null}}]}}\n\n"
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_that_breaks_is_logged_as_failed_and_billed_for_what_was_delivered() {
    let provider = FakeProvider::start(|_| {
        Answer::new(200, "text/event-stream", &delta("one"))
            .then(Duration::from_millis(50), &delta("two"))
            .then(Duration::from_millis(50), &delta("three"))
            .then_reset()
    })
    .await;
    let env = env_on(&provider).await;
    let response = env.chat(&env.token("acme"), "invoice api", true).await;
    assert_eq!(response.status(), 200, "the head was sent before it broke");
    assert!(
        response.text().await.is_err(),
        "the client sees the stream cut"
    );
    assert!(eventually(|| env.app().db.recent_requests("acme", 1).unwrap().len() == 1).await);
    let record = last_record(&env);
    assert_eq!(record.status, 502, "{record:?}");
    let error = record.error.clone().unwrap_or_default();
    assert!(error.contains("upstream_error after"), "{error}");
    // No usage from the provider: one token per event delivered.
    assert_eq!(record.tokens_out, 3, "{record:?}");
    assert!(record.tokens_in > 0, "{record:?}");
    // Counted as failed in the usage API.
    let admin = env.user_with_role("acme", "maya", warden::state::model::Role::Admin);
    let usage = || async {
        let path = "/admin/v1/tenants/acme/usage";
        env.admin(&admin, "GET", path, None).await.1["totals"].clone()
    };
    assert!(eventually_async(|| async { usage().await["failed"] == 1 }).await);
    assert_eq!(usage().await["tokens_out"], 3);
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_200_that_is_not_json_is_a_502() {
    let provider =
        FakeProvider::start(|_| Answer::json(200, "{\"id\":\"c1\",\"choices\":[{\"ind")).await;
    let env = env_on(&provider).await;
    let response = env.chat(&env.token("acme"), "invoice api", false).await;
    assert_eq!(response.status(), 502);
    let (_, code, message) = error_of(response).await;
    assert_eq!(code, "upstream_unavailable");
    assert!(message.contains("not valid JSON"), "{message}");
    assert!(eventually(|| env.app().db.recent_requests("acme", 1).unwrap().len() == 1).await);
    assert_eq!(last_record(&env).status, 502);
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_provider_body_over_the_cap_is_a_502_and_is_not_buffered_whole() {
    // 3 MiB without a content-length, against a 1 MiB cap.
    let provider = FakeProvider::start(|_| {
        let mut answer = Answer::json(200, "{\"id\":\"c1\",\"pad\":\"");
        for _ in 0..48 {
            answer = answer.then(Duration::ZERO, &"x".repeat(64 << 10));
        }
        answer.then(Duration::ZERO, "\"}")
    })
    .await;
    let base = provider.base_url();
    let env = TestEnv::start_with(vec![TenantSpec::new("acme")], move |c| {
        c.upstream.base_url = base;
        c.upstream.max_response_mib = 1;
    })
    .await;
    let response = env.chat(&env.token("acme"), "invoice api", false).await;
    assert_eq!(response.status(), 502);
    let (_, _, message) = error_of(response).await;
    assert!(
        message.contains("larger than the gateway's limit"),
        "{message}"
    );
    // Held (screened) streams are capped the same way; live ones pass.
    env.stop().await;
}
