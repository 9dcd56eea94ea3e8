//! Once a response has been sent, its record, the user's counters and the
//! daily usage rollup survive `kill -9` of the real binary (the request
//! journal, state/journal.rs), and nothing is counted twice on replay.

use crate::common::*;

/// A streamed call whose answer takes a while from a slow mock.
const LONG_STREAM: &str = r#"{"model":"gpt-4o-mini","stream":true,"messages":[{"role":"user","content":"Write the REST endpoint that creates an invoice with its tax lines and a PDF"}]}"#;

/// A mock LLM that waits `latency` before answering, a tenth of it between
/// streamed chunks.
async fn slow_mock(latency: std::time::Duration) -> std::net::SocketAddr {
    let options = warden::mock_llm::MockOptions {
        require_key: Some(UPSTREAM_KEY.into()),
        latency,
        fail: None,
    };
    let (addr, _task) = warden::mock_llm::spawn("127.0.0.1:0".parse().unwrap(), options)
        .await
        .unwrap();
    addr
}

/// After a restart: the user's `/v1/me` and acme's logged records.
async fn me_and_log(
    config: &std::path::Path,
    state: &std::path::Path,
    base: &str,
    token: &str,
) -> (serde_json::Value, Vec<warden::state::model::RequestRecord>) {
    let http = reqwest::Client::new();
    let server = serve(config, &http, base).await;
    let me: serde_json::Value = get_json(&http, &format!("{base}/v1/me"), token).await;
    kill_9(server);
    let db = warden::state::Db::open(state).unwrap();
    (me, db.recent_requests("acme", 10).unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn answered_requests_survive_kill_9() {
    let dir = TempDir::new("durability");
    let state = dir.0.join("state");
    let token = seed_acme_with_cli(&state);

    let mock_addr = mock_upstream().await;
    let (config, base) = server_config(&dir.0, &state, mock_addr);
    let http = reqwest::Client::new();

    let server = serve(&config, &http, &base).await;
    const CALLS: usize = 30;
    let mut tokens_used = 0;
    for i in 0..CALLS {
        let response = post_chat(&http, &base, &token, format!(r#"{{"model":"gpt-4o-mini","messages":[{{"role":"user","content":"Write the REST endpoint that creates invoice number {i}"}}]}}"#))
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        let body: serde_json::Value =
            serde_json::from_str(&response.text().await.unwrap()).unwrap();
        tokens_used += body["usage"]["total_tokens"].as_u64().unwrap();
    }
    kill_9(server);

    // Restart: the journal is replayed, the counters and the log are whole.
    let server = serve(&config, &http, &base).await;
    let me: serde_json::Value = get_json(&http, &format!("{base}/v1/me"), &token).await;
    kill_9(server);
    assert_eq!(me["usage"]["requests_today"], CALLS as u64, "{me}");
    assert_eq!(me["usage"]["tokens_today"], tokens_used, "{me}");

    // The usage report (replayed once more by this CLI call) counts each request once.
    let usage = warden_json_in(&state, &["usage", "--tenant", "acme"]);
    assert_eq!(usage["data"][0]["user"], "ali", "{usage}");
    assert_eq!(usage["totals"]["requests"], CALLS as u64, "{usage}");
    assert_eq!(
        usage["totals"]["tokens_in"].as_u64().unwrap()
            + usage["totals"]["tokens_out"].as_u64().unwrap(),
        tokens_used
    );
    let db = warden::state::Db::open(&state).unwrap();
    let records = db.recent_requests("acme", 1000).unwrap();
    assert_eq!(records.len(), CALLS);
    assert!(records.iter().all(|r| r.status == 200 && r.tokens_out > 0));
}

/// SIGTERM (what an orchestrator sends) with a stream in flight: the
/// listener closes, the stream finishes, the process exits 0, and the
/// counters equal the log after a restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_lets_a_stream_in_flight_finish_and_exits_0() {
    let dir = TempDir::new("sigterm");
    let state = dir.0.join("state");
    let token = seed_acme_with_cli(&state);
    // A slow provider: the answer's chunks come 60 ms apart.
    let mock_addr = slow_mock(std::time::Duration::from_millis(600)).await;
    let (config, base) = server_config(&dir.0, &state, mock_addr);
    let http = reqwest::Client::new();
    let server = serve(&config, &http, &base).await;
    let response = post_chat(&http, &base, &token, LONG_STREAM).await.unwrap();
    assert_eq!(response.status(), 200);
    let streaming = tokio::spawn(async move { response.text().await.unwrap() });
    let exited = sigterm(server).await;
    let text = streaming.await.unwrap();
    assert!(text.trim_end().ends_with("data: [DONE]"), "{text}");
    assert!(exited.success(), "{exited:?}");

    let (me, records) = me_and_log(&config, &state, &base, &token).await;
    assert_eq!(records.len(), 1);
    assert_eq!(records[0].status, 200);
    assert_eq!(me["usage"]["requests_today"], 1, "{me}");
    assert_eq!(
        me["usage"]["tokens_today"],
        records[0].tokens_in + records[0].tokens_out,
        "{me}"
    );
}

/// What the load's clients saw answered in full: request ids.
pub(crate) async fn load_until(
    http: &reqwest::Client,
    base: &str,
    token: &str,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    next: std::sync::Arc<std::sync::atomic::AtomicU64>,
) -> Vec<String> {
    use std::sync::atomic::Ordering;
    let mut acknowledged = Vec::new();
    while !stop.load(Ordering::Relaxed) {
        let i = next.fetch_add(1, Ordering::Relaxed);
        let stream = i.is_multiple_of(5); // ~20 % streamed
        let body = serde_json::json!({ "model": "gpt-4o-mini", "stream": stream,
            "messages": [{ "role": "user",
                "content": format!("Write the REST endpoint that creates invoice number {i}") }] });
        let sent = post_chat(http, base, token, body.to_string()).await;
        let Ok(response) = sent else {
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
            continue; // the server is down
        };
        let id = response.headers().get("x-warden-request-id").cloned();
        let (status, text) = (response.status(), response.text().await);
        let complete = match &text {
            Ok(text) if stream => text.trim_end().ends_with("data: [DONE]"),
            Ok(text) => serde_json::from_str::<serde_json::Value>(text).is_ok(),
            Err(_) => false,
        };
        if status == 200 && complete {
            acknowledged.push(id.unwrap().to_str().unwrap().to_string());
        }
    }
    acknowledged
}

/// Three rounds of load (~20 % streamed, ≥ 200 calls/s) each ended by
/// `kill -9` at an arbitrary moment: every answered call is in the log
/// exactly once, and `/v1/me`, the usage API and the log agree on requests
/// and tokens (the reservations of calls cut in flight are not kept).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_under_load_keeps_every_answered_call_once_and_the_counters_equal_the_log() {
    use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
    use std::sync::Arc;
    let dir = TempDir::new("kill-load");
    let state = dir.0.join("state");
    let token = seed_acme_with_cli(&state);
    let mock_addr = mock_upstream().await;
    let (config, base) = server_config(&dir.0, &state, mock_addr);
    let http = reqwest::Client::new();
    let next = Arc::new(AtomicU64::new(0));
    let mut acknowledged = Vec::new();
    // Kill moments that fall anywhere in a call: derived from the clock.
    let jitter = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_micros() as u64;
    for round in 0..3u64 {
        let server = serve(&config, &http, &base).await;
        let stop = Arc::new(AtomicBool::new(false));
        let workers: Vec<_> = (0..24)
            .map(|_| {
                let (http, base, token) = (http.clone(), base.clone(), token.clone());
                let (stop, next) = (stop.clone(), next.clone());
                tokio::spawn(async move { load_until(&http, &base, &token, stop, next).await })
            })
            .collect();
        let started = std::time::Instant::now();
        let run = 1_000 + (jitter * (round + 1)) % 700;
        tokio::time::sleep(std::time::Duration::from_millis(run)).await;
        kill_9(server);
        let elapsed = started.elapsed().as_secs_f64();
        stop.store(true, Ordering::Relaxed);
        let before = acknowledged.len();
        for worker in workers {
            acknowledged.extend(worker.await.unwrap());
        }
        let rate = (acknowledged.len() - before) as f64 / elapsed;
        eprintln!(
            "round {round}: {} answered, {rate:.0}/s",
            acknowledged.len() - before
        );
        assert!(rate >= 200.0, "round {round}: {rate:.0} calls/s");
    }

    let server = serve(&config, &http, &base).await;
    let me: serde_json::Value = get_json(&http, &format!("{base}/v1/me"), &token).await;
    kill_9(server);
    let usage = warden_json_in(&state, &["usage", "--tenant", "acme"]);
    let db = warden::state::Db::open(&state).unwrap();
    let records = db.recent_requests("acme", 1_000_000).unwrap();

    let mut logged = std::collections::HashMap::new();
    for record in &records {
        *logged.entry(record.id.as_str()).or_insert(0u32) += 1;
    }
    assert!(logged.values().all(|n| *n == 1), "a record logged twice");
    let lost: Vec<_> = acknowledged
        .iter()
        .filter(|id| !logged.contains_key(id.as_str()))
        .collect();
    assert!(
        lost.is_empty(),
        "{} answered calls not in the log: {lost:?}",
        lost.len()
    );
    let tokens: u64 = records.iter().map(|r| r.tokens_in + r.tokens_out).sum();
    let requests = records.len() as u64;
    assert_eq!(me["usage"]["requests_today"], requests, "{me}");
    assert_eq!(me["usage"]["tokens_today"], tokens, "{me}");
    assert_eq!(usage["totals"]["requests"], requests, "{usage}");
    let usage_tokens = usage["totals"]["tokens_in"].as_u64().unwrap()
        + usage["totals"]["tokens_out"].as_u64().unwrap();
    assert_eq!(usage_tokens, tokens, "{usage}");
}

/// SIGTERM with a stream that outlasts the grace: the process still exits 0
/// once the grace ends, the stream is logged as cut at shutdown (503) and
/// charged what was delivered, and the counters equal the log.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn past_the_grace_a_stream_is_cut_logged_and_the_counters_match() {
    let dir = TempDir::new("grace");
    let state = dir.0.join("state");
    let token = seed_acme_with_cli(&state);
    // Chunks 400 ms apart: the answer takes seconds.
    let mock_addr = slow_mock(std::time::Duration::from_millis(4_000)).await;
    let (config, base) = server_config(&dir.0, &state, mock_addr);
    let text = std::fs::read_to_string(&config).unwrap();
    std::fs::write(&config, format!("shutdown_grace_secs = 1\n{text}")).unwrap();
    let http = reqwest::Client::new();
    let server = serve(&config, &http, &base).await;
    let response = post_chat(&http, &base, &token, LONG_STREAM).await.unwrap();
    assert_eq!(response.status(), 200);
    let streaming = tokio::spawn(async move { response.text().await });
    let started = std::time::Instant::now();
    let exited = sigterm(server).await;
    assert!(exited.success(), "{exited:?}");
    let took = started.elapsed();
    assert!(took < std::time::Duration::from_secs(4), "{took:?}");
    let cut = streaming.await.unwrap();
    assert!(
        cut.is_err() || !cut.unwrap().contains("[DONE]"),
        "the stream was cut"
    );

    let (me, records) = me_and_log(&config, &state, &base, &token).await;
    assert_eq!(records.len(), 1);
    assert_eq!(records[0].status, 503, "{:?}", records[0]);
    let error = records[0].error.as_deref().unwrap_or("");
    assert!(error.contains("cut at shutdown"), "{error}");
    assert_eq!(me["usage"]["requests_today"], 1, "{me}");
    assert_eq!(
        me["usage"]["tokens_today"],
        records[0].tokens_in + records[0].tokens_out,
        "{me}"
    );
}
