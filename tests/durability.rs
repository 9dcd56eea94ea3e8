//! Once a response has been sent, its record and the user's counters survive
//! `kill -9` of the real binary (the request journal, state/journal.rs); the
//! CLI reads and changes the same state with the server stopped.

mod common;

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::*;

fn warden(args: &[&str]) -> String {
    let output = Command::new(env!("CARGO_BIN_EXE_warden"))
        .args(args)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap().trim().to_string()
}

fn warden_json(args: &[&str]) -> serde_json::Value {
    serde_json::from_str(&warden(args)).unwrap()
}

/// SIGKILL: no shutdown code runs.
fn kill_9(mut server: Child) {
    server.kill().unwrap();
    server.wait().unwrap();
}

fn serve(config: &std::path::Path) -> Child {
    Command::new(env!("CARGO_BIN_EXE_warden"))
        .args(["serve", "--config"])
        .arg(config)
        .env("DURABILITY_UPSTREAM_KEY", UPSTREAM_KEY)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

async fn wait_healthy(http: &reqwest::Client, base: &str) {
    for _ in 0..200 {
        if http
            .get(format!("{base}/healthz"))
            .send()
            .await
            .is_ok_and(|r| r.status() == 200)
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("warden did not start");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn answered_requests_survive_kill_9() {
    let dir = TempDir::new("durability");
    let state = dir.0.join("state");
    let state_arg = state.to_str().unwrap();
    warden(&["tenant", "create", "acme", "--state-dir", state_arg]);
    warden(&[
        "user",
        "create",
        "--tenant",
        "acme",
        "ali",
        "--state-dir",
        state_arg,
    ]);
    warden(&[
        "task",
        "create",
        "--tenant",
        "acme",
        TASK,
        "--title",
        "Invoices",
        "--keyword",
        "invoice",
        "--state-dir",
        state_arg,
    ]);
    let token = warden(&[
        "token",
        "issue",
        "--tenant",
        "acme",
        "--user",
        "ali",
        "--task",
        TASK,
        "--state-dir",
        state_arg,
    ]);

    let (mock_addr, _mock) = warden::mock_llm::spawn(
        "127.0.0.1:0".parse().unwrap(),
        warden::mock_llm::MockOptions {
            require_key: Some(UPSTREAM_KEY.into()),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let config = dir.0.join("warden.toml");
    std::fs::write(
        &config,
        format!(
            "listen = \"127.0.0.1:{port}\"\nstate_dir = \"{state_arg}\"\nplugin_dir = \"{}\"\npolicy_dir = \"{}\"\n\
             [upstream]\nbase_url = \"http://{mock_addr}/v1\"\napi_key_env = \"DURABILITY_UPSTREAM_KEY\"\n",
            plugin_dir().display(),
            repo_root().join("policies").display()
        ),
    )
    .unwrap();
    let base = format!("http://127.0.0.1:{port}");
    let http = reqwest::Client::new();

    let server = serve(&config);
    wait_healthy(&http, &base).await;
    const CALLS: usize = 30;
    let mut tokens_used = 0;
    for i in 0..CALLS {
        let response = http
            .post(format!("{base}/v1/chat/completions"))
            .bearer_auth(&token)
            .header("x-task-id", TASK)
            .header("content-type", "application/json")
            .body(format!(r#"{{"model":"gpt-4o-mini","messages":[{{"role":"user","content":"invoice api {i}"}}]}}"#))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        let body: serde_json::Value =
            serde_json::from_str(&response.text().await.unwrap()).unwrap();
        tokens_used += body["usage"]["total_tokens"].as_u64().unwrap();
    }
    kill_9(server);

    // Restart: the journal is replayed, the counters and the log are whole.
    let server = serve(&config);
    wait_healthy(&http, &base).await;
    let me: serde_json::Value = get_json(&http, &format!("{base}/v1/me"), &token).await;
    kill_9(server);
    assert_eq!(me["usage"]["requests_today"], CALLS as u64, "{me}");
    assert_eq!(me["usage"]["tokens_today"], tokens_used, "{me}");

    // The CLI reports the same usage, lists the token and revokes it.
    let usage: serde_json::Value = warden_json(&[
        "usage",
        "--tenant",
        "acme",
        "--json",
        "--state-dir",
        state_arg,
    ]);
    assert_eq!(usage[0]["user"], "ali");
    assert_eq!(usage[0]["requests_today"], CALLS as u64);
    let tokens: serde_json::Value = warden_json(&[
        "token",
        "list",
        "--tenant",
        "acme",
        "--json",
        "--state-dir",
        state_arg,
    ]);
    let jti = tokens[0]["jti"].as_str().unwrap().to_string();
    assert!(
        !tokens.to_string().contains(&token),
        "token records never hold the token"
    );
    warden(&[
        "token",
        "revoke",
        "--tenant",
        "acme",
        &jti,
        "--reason",
        "contract ended",
        "--state-dir",
        state_arg,
    ]);
    let server = serve(&config);
    wait_healthy(&http, &base).await;
    let refused = http
        .get(format!("{base}/v1/me"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .status();
    kill_9(server);
    assert_eq!(refused, 401, "a token revoked with the CLI is refused");

    let db = warden::state::Db::open(&state).unwrap();
    let records = db.recent_requests("acme", 1000).unwrap();
    assert_eq!(records.len(), CALLS);
    assert!(records.iter().all(|r| r.status == 200 && r.tokens_out > 0));
    // The daily rollup counted each request once, replay included.
    let today = warden::calendar::Calendar::utc().date_of(warden::clock::now_ms());
    let (_, totals) = warden::state::usage_report(
        &db,
        &warden::state::UsageQuery {
            tenant: "acme",
            from: &today,
            to: &today,
            user: None,
            task: None,
            group: Default::default(),
        },
    )
    .unwrap();
    assert_eq!(totals.requests, CALLS as u64);
    assert_eq!(totals.tokens_in + totals.tokens_out, tokens_used);
}
