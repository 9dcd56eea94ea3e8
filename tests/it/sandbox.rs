//! A plugin that traps, loops forever or allocates without bound fails only
//! its own request (503 naming the stage), fast, while other tenants'
//! requests keep succeeding; one that keeps failing is paused for its tenant.

use std::time::{Duration, Instant};

use crate::common::*;

async fn misbehaving_tenant_fails_closed_while_others_succeed(mode: &str, expected: &str) {
    let env = TestEnv::start(vec![
        TenantSpec::new("acme"),
        TenantSpec::new("broken").with_policy(misbehaving_intent_policy(mode)),
    ])
    .await;
    let good = env.token("acme");
    let bad = env.token("broken");

    let started = Instant::now();
    let failed = env.chat(&bad, "invoice api", false).await;
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "the failure took {:?}",
        started.elapsed()
    );
    assert_eq!(failed.status(), 503);
    let (kind, code, message) = error_of(failed).await;
    assert_eq!(
        (kind.as_str(), code.as_str()),
        ("server_error", "policy_plugin_failed")
    );
    assert!(message.contains("intent stage"), "{message}");
    assert!(message.contains(expected), "{message}");

    // Concurrent traffic: the misbehaving tenant keeps failing, the other succeeds.
    let mut tasks = Vec::new();
    for i in 0..24 {
        let (env_base, http) = (env.base.clone(), env.http.clone());
        let token = if i % 3 == 0 {
            bad.clone()
        } else {
            good.clone()
        };
        tasks.push(tokio::spawn(async move {
            let body = r#"{"model":"gpt-4o-mini","messages":[{"role":"user","content":"invoice api endpoint"}]}"#;
            let response = post_chat(&http, &env_base, &token, body).await.unwrap();
            (i % 3 == 0, response.status().as_u16())
        }));
    }
    for task in tasks {
        let (is_bad, status) = task.await.unwrap();
        assert_eq!(
            status,
            if is_bad { 503 } else { 200 },
            "bad tenant: {is_bad}"
        );
    }
    // The proxy is still healthy afterwards, and counted every failure.
    assert_eq!(env.chat(&good, "invoice api", false).await.status(), 200);
    let metrics = env.metrics().await;
    assert!(
        metrics.contains("warden_plugin_failures_total 9\n"),
        "{metrics}"
    );
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trapping_plugin_fails_only_its_request() {
    misbehaving_tenant_fails_closed_while_others_succeed("trap", "trapped").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn looping_plugin_is_interrupted_at_its_deadline() {
    misbehaving_tenant_fails_closed_while_others_succeed("spin", "time limit").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_hungry_plugin_hits_its_cap() {
    misbehaving_tenant_fails_closed_while_others_succeed("hog", "memory limit").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_scoring_stage_may_fail_open_by_policy() {
    let policy = misbehaving_intent_policy("trap").replace(
        "plugin = \"test-misbehave\"",
        "plugin = \"test-misbehave\"\nfail_open = true",
    );
    let policy = policy.replacen("fail_open = false\n", "", 1);
    let env = TestEnv::start(vec![TenantSpec::new("lenient").with_policy(policy)]).await;
    let token = env.token("lenient");
    let response = env.chat(&token, "invoice api", false).await;
    assert_eq!(response.status(), 200);
    assert!(
        response.headers().get("x-warden-intent").is_none(),
        "no intent when the stage failed open"
    );
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plugin_that_keeps_failing_is_paused_for_its_tenant_only() {
    let env = TestEnv::start(vec![
        TenantSpec::new("acme"),
        TenantSpec::new("broken").with_policy(misbehaving_intent_policy("spin")),
    ])
    .await;
    let (good, bad) = (env.token("acme"), env.token("broken"));
    // Three calls run into the deadline...
    for _ in 0..3 {
        let (_, _, message) = error_of(env.chat(&bad, "invoice api", false).await).await;
        assert!(message.contains("time limit"), "{message}");
    }
    // ...then the plugin is paused: refused without being run (the
    // message says so), so it no longer spends its deadline of CPU.
    let refused = env.chat(&bad, "invoice api", false).await;
    assert_eq!(refused.status(), 503);
    let (_, code, message) = error_of(refused).await;
    assert_eq!(code, "policy_plugin_failed");
    assert!(message.contains("paused"), "{message}");
    // Only for that tenant.
    assert_eq!(env.chat(&good, "invoice api", false).await.status(), 200);
    env.stop().await;
}

/// A CPU hog pinned to one core, killed when dropped.
struct Hog(std::process::Child);

impl Hog {
    fn on_cpu(cpu: usize) -> Self {
        let hog = std::process::Command::new("taskset")
            .args(["-c", &cpu.to_string(), "sh", "-c", "while :; do :; done"])
            .spawn()
            .expect("taskset (util-linux)");
        Self(hog)
    }
}

impl Drop for Hog {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Moves every thread of `pid` to `cpu` at the lowest priority.
fn starve(pid: u32, cpu: usize) {
    let pinned = std::process::Command::new("taskset")
        .args(["-a", "-p", "-c", &cpu.to_string(), &pid.to_string()])
        .stdout(std::process::Stdio::null())
        .status()
        .unwrap();
    assert!(pinned.success());
    // Niceness is per thread on Linux; threads started later inherit it.
    for thread in std::fs::read_dir(format!("/proc/{pid}/task")).unwrap() {
        let tid = thread.unwrap().file_name().into_string().unwrap();
        let reniced = std::process::Command::new("renice")
            .args(["-n", "19", "-p", &tid])
            .stdout(std::process::Stdio::null())
            .status()
            .unwrap();
        assert!(reniced.success());
    }
}

/// Plugin budgets count the CPU a call uses, not the clock: with the
/// server squeezed onto one core beside a busy process, at the lowest
/// priority (a few percent of that core), every call takes many times its
/// 10 ms budget on the clock, and honest plugins still answer every
/// request, the first (fresh instances, the intent model's 18 MB memory
/// image) included.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn honest_plugins_keep_their_budget_on_a_starved_machine() {
    let dir = TempDir::new("starved");
    let state = dir.0.join("state");
    let token = seed_acme_with_cli(&state);
    let (config, base) = server_config(&dir.0, &state, mock_upstream().await);
    let http = reqwest::Client::new();
    let server = serve(&config, &http, &base).await;
    let cpu = std::thread::available_parallelism().map_or(1, |n| n.get()) - 1;
    let _hog = Hog::on_cpu(cpu);
    starve(server.id(), cpu);

    let mut statuses = Vec::new();
    let mut slowest = Duration::ZERO;
    for i in 0..12 {
        let body = format!(
            r#"{{"model":"gpt-4o-mini","messages":[{{"role":"user","content":"Add the tax lines to invoice {i}"}}]}}"#
        );
        let started = Instant::now();
        let response = post_chat(&http, &base, &token, body).await.unwrap();
        slowest = slowest.max(started.elapsed());
        let status = response.status().as_u16();
        if status != 200 {
            let text = response.text().await.unwrap();
            statuses.push(format!("{status} {text}"));
        } else {
            statuses.push("200".into());
        }
    }
    drop(_hog);
    kill_9(server);
    assert!(statuses.iter().all(|s| s == "200"), "{statuses:#?}");
    // The squeeze was real: a call took longer on the clock than a
    // plugin's whole budget several times over.
    assert!(slowest > Duration::from_millis(50), "{slowest:?}");
}
