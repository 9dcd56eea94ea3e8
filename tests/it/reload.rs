//! Plugins and policies reload while the server runs: a policy or a plugin
//! file dropped in place is live without a restart, a broken one is rejected
//! while the running chain keeps serving (and the tenant's events say why),
//! one tenant's plugins never reach another, and reloading in a loop under
//! concurrent load fails no request.

use std::time::{Duration, Instant};

use crate::common::*;
use warden::state::model::Role;

const PII: &str = "invoice api for ali@example.com";

/// The answer's text for a PII prompt (the mock echoes what it received).
async fn echo(env: &TestEnv, token: &str) -> String {
    let response = env.chat(token, PII, false).await;
    assert_eq!(response.status(), 200);
    let body: serde_json::Value = serde_json::from_str(&response.text().await.unwrap()).unwrap();
    body["choices"][0]["message"]["content"]
        .as_str()
        .unwrap()
        .to_string()
}

async fn wait_for(what: &str, mut check: impl AsyncFnMut() -> bool) -> Duration {
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(10) {
        if check().await {
            return started.elapsed();
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("{what}: not within 10 s");
}

async fn events(env: &TestEnv, admin: &str, tenant: &str) -> Vec<(String, String)> {
    let (_, body) = env
        .admin(
            admin,
            "GET",
            &format!("/admin/v1/tenants/{tenant}/events"),
            None,
        )
        .await;
    body["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["action"].as_str().unwrap_or_default().to_string(),
                e["reason"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn policies_and_tenant_plugins_go_live_without_a_restart() {
    let (env, plugins) =
        TestEnv::start_with_own_plugins(vec![TenantSpec::new("acme"), TenantSpec::new("globex")])
            .await;
    let (acme, globex) = (env.token("acme"), env.token("globex"));
    let root = env.user_with_role("acme", "root", Role::SuperAdmin);
    assert!(echo(&env, &acme).await.contains("ali@example.com"));

    // A policy naming a plugin that is not there yet is rejected; acme keeps serving.
    put(
        &env.policies.0.join("acme.toml"),
        policy_with_guardrail("guard").as_bytes(),
    );
    wait_for("the rejection event", async || {
        events(&env, &root, "acme")
            .await
            .iter()
            .any(|(a, r)| a == "chain.rejected" && r.contains("'guard'"))
    })
    .await;
    assert!(echo(&env, &acme).await.contains("ali@example.com"));

    // Dropping acme's own plugin file makes the policy whole: live, no restart.
    let redactor = std::fs::read(plugin_dir().join("pii-redactor.wasm")).unwrap();
    put(&plugins.0.join("tenants/acme/guard.wasm"), &redactor);
    let took = wait_for("the tenant plugin to serve", async || {
        !echo(&env, &acme).await.contains("ali@example.com")
    })
    .await;
    println!("file written → new chain serving: {} ms", took.as_millis());
    assert!(echo(&env, &acme).await.contains("[redacted]"));

    // acme's own plugin is not globex's: a globex policy naming it is rejected.
    put(
        &env.policies.0.join("globex.toml"),
        policy_with_guardrail("guard").as_bytes(),
    );
    wait_for("globex's rejection", async || {
        events(&env, &root, "globex")
            .await
            .iter()
            .any(|(a, _)| a == "chain.rejected")
    })
    .await;
    assert!(echo(&env, &globex).await.contains("ali@example.com"));

    // A broken policy and a corrupt plugin are rejected; the running chain stays.
    put(
        &env.policies.0.join("acme.toml"),
        b"[stages.auth\nplugin = ",
    );
    put(
        &plugins.0.join("tenants/acme/guard.wasm"),
        b"not a component",
    );
    wait_for("both rejections", async || {
        let events = events(&env, &root, "acme").await;
        events.iter().any(|(a, _)| a == "plugin.rejected")
            && events.iter().filter(|(a, _)| a == "chain.rejected").count() >= 2
    })
    .await;
    assert!(echo(&env, &acme).await.contains("[redacted]"));
    let metrics = env.metrics().await;
    assert!(metrics.contains("warden_chain_reloads_total"), "{metrics}");
    assert!(
        !metrics.contains("warden_reload_failures_total 0\n"),
        "{metrics}"
    );
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reloading_in_a_loop_under_load_fails_no_request() {
    let env = TestEnv::start(vec![TenantSpec::new("acme")]).await;
    let token = env.token("acme");
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut clients = Vec::new();
    for _ in 0..4 {
        let (http, base, token, stop) = (
            env.http.clone(),
            env.base.clone(),
            token.clone(),
            stop.clone(),
        );
        clients.push(tokio::spawn(async move {
            let (mut ok, mut failed) = (0u32, 0u32);
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let body = format!(
                    r#"{{"model":"gpt-4o-mini","messages":[{{"role":"user","content":"{PII}"}}]}}"#
                );
                let status = post_chat(&http, &base, &token, body)
                    .await
                    .map(|r| r.status().as_u16());
                match status {
                    Ok(200) => ok += 1,
                    other => {
                        // Say what failed, so a rare failure can be diagnosed.
                        eprintln!("request failed during reloads: {other:?}");
                        failed += 1
                    }
                }
            }
            (ok, failed)
        }));
    }
    let path = env.policies.0.join("acme.toml");
    let with = policy_with_guardrail("pii-redactor");
    let without = std::fs::read_to_string(repo_root().join("policies/default.toml")).unwrap();
    for round in 0..20 {
        put(
            &path,
            if round % 2 == 0 {
                with.as_bytes()
            } else {
                without.as_bytes()
            },
        );
        tokio::time::sleep(Duration::from_millis(150)).await;
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let (mut ok, mut failed) = (0, 0);
    for client in clients {
        let (o, f) = client.await.unwrap();
        ok += o;
        failed += f;
    }
    println!("{ok} requests answered during 20 reloads, {failed} failed");
    assert!(ok > 100, "only {ok} requests ran");
    assert_eq!(failed, 0);
    let reloads = env.metrics().await;
    assert!(
        !reloads.contains("warden_chain_reloads_total 0\n"),
        "{reloads}"
    );
    env.stop().await;
}
