//! Tenant guardrails that attack the host's time and resources (issue 15,
//! bugs 12 to 16), each openly and in a stealth form that passes the upload
//! self-test and attacks real traffic only (fixture: tests/fixtures/hostile).
//! The attacker's calls fail fast, other tenants get no errors, and their
//! p99 stays within 2x of what a legal plugin that uses its whole deadline
//! costs them.

use std::time::{Duration, Instant};

use crate::common::*;
use warden::state::model::Role;

/// The word that wakes a stealthy plugin; the self-test never sends it.
const TRIGGER: &str = "attack-now";

fn hostile_policy(mode: &str, extra: &str) -> String {
    let default = std::fs::read_to_string(repo_root().join("policies/default.toml")).unwrap();
    format!(
        "{default}\n[[guardrails]]\nplugin = \"test-hostile\"\n\
         config = {{ mode = \"{mode}\", trigger = \"{TRIGGER}\" }}\n{extra}"
    )
}

/// Tenants `victim` (default policy), `legal` (a guardrail computing 8 ms
/// of its 10 ms deadline) and `attacker` (`mode`, stealthy).
async fn arena(mode: &str, tweak: impl FnOnce(&mut warden::config::Config)) -> TestEnv {
    let legal = hostile_policy("busy", "").replace(
        &format!("mode = \"busy\", trigger = \"{TRIGGER}\""),
        "mode = \"busy\", busy_ms = \"8\"",
    );
    TestEnv::start_with(
        vec![
            TenantSpec::new("victim"),
            TenantSpec::new("legal").with_policy(legal),
            TenantSpec::new("attacker").with_policy(hostile_policy(mode, "")),
        ],
        tweak,
    )
    .await
}

/// Victim calls beside as many calls of `other`, in two waves: the
/// victim's statuses and p99, and the other tenant's statuses.
async fn victim_beside(env: &TestEnv, other: &str, prompt: &str) -> (Vec<u16>, Duration, Vec<u16>) {
    let (victim, other) = (env.token("victim"), env.token(other));
    let (mut victim_statuses, mut latencies, mut other_statuses) = (vec![], vec![], vec![]);
    for _ in 0..2 {
        let victims = (0..24).map(|_| async {
            let started = Instant::now();
            let status = env
                .chat(&victim, "invoice api endpoint", false)
                .await
                .status();
            (status.as_u16(), started.elapsed())
        });
        let others = (0..24).map(|_| async {
            env.chat(&other, &format!("invoice api {prompt}"), false)
                .await
                .status()
                .as_u16()
        });
        let (v, o) = futures_util::future::join(
            futures_util::future::join_all(victims),
            futures_util::future::join_all(others),
        )
        .await;
        for (status, latency) in v {
            victim_statuses.push(status);
            latencies.push(latency);
        }
        other_statuses.extend(o);
    }
    latencies.sort();
    let p99 = latencies[(latencies.len() * 99 / 100).min(latencies.len() - 1)];
    (victim_statuses, p99, other_statuses)
}

/// The attack's effect on the victim against the legal plugin's: no
/// errors, p99 within 2x (plus 15 ms of scheduling noise on a 2-core box).
async fn assert_contained(env: &TestEnv) -> Vec<u16> {
    let (statuses, baseline, _) = victim_beside(env, "legal", "").await;
    assert!(statuses.iter().all(|s| *s == 200), "{statuses:?}");
    let (statuses, attacked, attacker) = victim_beside(env, "attacker", TRIGGER).await;
    assert!(statuses.iter().all(|s| *s == 200), "{statuses:?}");
    eprintln!("victim p99: {baseline:?} beside a legal plugin, {attacked:?} under attack");
    let bound = baseline * 2 + Duration::from_millis(15);
    assert!(
        attacked <= bound,
        "victim p99 {attacked:?} under attack, {baseline:?} beside a legal plugin"
    );
    attacker
}

fn counter(metrics: &str, name: &str) -> u64 {
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{name} ")))
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("{name} missing from {metrics}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plugin_sleeping_in_wasi_is_cut_at_its_deadline_in_traffic_and_in_the_self_test() {
    let env = arena("sleep", |_| {}).await;
    let started = Instant::now();
    let response = env
        .chat(&env.token("attacker"), &format!("invoice {TRIGGER}"), false)
        .await;
    assert_eq!(response.status(), 503);
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "{:?}",
        started.elapsed()
    );
    let (_, code, message) = error_of(response).await;
    assert_eq!(code, "policy_plugin_failed");
    assert!(message.contains("time limit"), "{message}");
    let attacker = assert_contained(&env).await;
    assert!(attacker.iter().all(|s| *s == 503), "{attacker:?}");
    env.stop().await;

    // Open form: the upload self-test refuses it, in well under its 30 s.
    let (env, _plugins) = TestEnv::start_with_own_plugins(vec![TenantSpec::new("acme")]).await;
    let open = hostile_policy("sleep", "").replace(&format!(", trigger = \"{TRIGGER}\""), "");
    put(
        &env.policies.0.join("acme.toml"),
        open.replace("\"test-hostile\"", "\"sleeper\"").as_bytes(),
    );
    let admin = env.user_with_role("acme", "maya", Role::Admin);
    let wasm = std::fs::read(plugin_dir().join("test-hostile.wasm")).unwrap();
    let started = Instant::now();
    let (status, body) = env.upload_plugin(&admin, "acme", "sleeper", wasm).await;
    assert_eq!(status, 400, "{body}");
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("time limit"),
        "{body}"
    );
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_tenant_cannot_take_every_plugin_instance() {
    // A long (legal) deadline lets the sleeps pile up: the tenant's cap of
    // 4 instances, not the process pool, bounds them.
    let env = TestEnv::start_with(
        vec![
            TenantSpec::new("victim"),
            TenantSpec::new("attacker")
                .with_policy(hostile_policy("sleep", "sandbox = { deadline_ms = 400 }\n")),
        ],
        |c| c.runtime.tenant_max_instances = 4,
    )
    .await;
    let (victim, attacker) = (env.token("victim"), env.token("attacker"));
    let prompt = format!("invoice {TRIGGER}");
    let attacks = (0..32).map(|_| env.chat(&attacker, &prompt, false));
    let victims = (0..16).map(|_| async {
        tokio::time::sleep(Duration::from_millis(50)).await;
        env.chat(&victim, "invoice api", false)
            .await
            .status()
            .as_u16()
    });
    let (attacks, victims) = futures_util::future::join(
        futures_util::future::join_all(attacks),
        futures_util::future::join_all(victims),
    )
    .await;
    assert!(victims.iter().all(|s| *s == 200), "{victims:?}");
    let attacks: Vec<u16> = attacks.iter().map(|r| r.status().as_u16()).collect();
    assert!(attacks.iter().all(|s| *s == 503), "{attacks:?}");
    let metrics = env.metrics().await;
    assert!(
        counter(&metrics, "warden_plugin_instances_refused_total") > 0,
        "{metrics}"
    );
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_log_flood_is_capped_and_counted() {
    let env = arena("log-flood", |c| c.runtime.tenant_log_lines_per_sec = 20).await;
    let attacker = assert_contained(&env).await;
    assert!(attacker.iter().all(|s| *s == 503), "{attacker:?}");
    let metrics = env.metrics().await;
    assert!(
        counter(&metrics, "warden_plugin_log_lines_dropped_total") > 0,
        "{metrics}"
    );
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tenants_key_value_store_has_a_quota() {
    let env = arena("kv-fill", |c| c.runtime.tenant_kv_max_mib = 1).await;
    assert_contained(&env).await;
    let stored: usize = env
        .app()
        .db
        .plugin_kv
        .scan_prefix(b"attacker\0")
        .flatten()
        .map(|(k, v)| k.len() + v.len())
        .sum();
    assert!(stored > 0 && stored <= 1 << 20, "{stored} bytes stored");
    let metrics = env.metrics().await;
    assert!(
        counter(&metrics, "warden_plugin_kv_writes_refused_total") > 0,
        "{metrics}"
    );
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn output_the_host_refuses_counts_as_a_failure_and_pauses_the_plugin() {
    for mode in ["extra-message", "huge"] {
        let env = arena(mode, |_| {}).await;
        let attacker = env.token("attacker");
        for _ in 0..3 {
            let response = env
                .chat(&attacker, &format!("invoice {TRIGGER}"), false)
                .await;
            assert_eq!(response.status(), 503, "{mode}");
        }
        let (_, _, message) = error_of(
            env.chat(&attacker, &format!("invoice {TRIGGER}"), false)
                .await,
        )
        .await;
        assert!(message.contains("paused"), "{mode}: {message}");
        let attacker = assert_contained(&env).await;
        assert!(attacker.iter().all(|s| *s == 503), "{mode}: {attacker:?}");
        env.stop().await;
    }
}
