//! A tenant admin uploads guardrail components through the admin API and the
//! CLI: checked, compiled off the request path, self-tested, then live for
//! the next request; a broken upload is refused while the running version
//! keeps serving; rollback and delete work; another tenant's admin cannot
//! touch them.

use crate::common::*;
use warden::state::model::Role;

const PII: &str = "invoice api for ali@example.com";

async fn answer(env: &TestEnv, token: &str, prompt: &str) -> (u16, String) {
    let response = env.chat(token, prompt, false).await;
    let status = response.status().as_u16();
    (status, response.text().await.unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uploads_go_live_on_the_next_request_and_roll_back() {
    let (env, _plugins) =
        TestEnv::start_with_own_plugins(vec![TenantSpec::new("acme"), TenantSpec::new("globex")])
            .await;
    let admin = env.user_with_role("acme", "maya", Role::Admin);
    let other_admin = env.user_with_role("globex", "gina", Role::Admin);
    let user = env.token("acme");
    // The policy names acme's own guardrail "guard", which does not exist
    // yet: the running chain stays until an upload makes it whole.
    put(
        &env.policies.0.join("acme.toml"),
        policy_with_guardrail("guard").as_bytes(),
    );
    let redactor = std::fs::read(plugin_dir().join("pii-redactor.wasm")).unwrap();
    let limiter = std::fs::read(plugin_dir().join("max-prompt-length.wasm")).unwrap();

    // Garbage and a component of the wrong kind for the policy are refused.
    let (status, body) = env
        .upload_plugin(&admin, "acme", "guard", b"\0asm not really".to_vec())
        .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (400, Some("plugin_rejected")),
        "{body}"
    );
    let intent = std::fs::read(plugin_dir().join("intent.wasm")).unwrap();
    let (status, body) = env.upload_plugin(&admin, "acme", "guard", intent).await;
    assert_eq!(status, 400, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("guardrail"),
        "{body}"
    );

    // v1: the redactor, live for the very next request.
    let (status, body) = env
        .upload_plugin(&admin, "acme", "guard", redactor.clone())
        .await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(
        (body["version"].as_u64(), body["stage"].as_str()),
        (Some(1), Some("guardrail"))
    );
    assert!(body["self_test"].as_str().unwrap().contains("on-request"));
    let (status, text) = answer(&env, &user, PII).await;
    assert_eq!(status, 200);
    assert!(
        text.contains("[redacted]") && !text.contains("ali@example.com"),
        "{text}"
    );

    // v2: the length limiter replaces it (no redaction, long prompts refused).
    let (status, body) = env.upload_plugin(&admin, "acme", "guard", limiter).await;
    assert_eq!((status, body["version"].as_u64()), (201, Some(2)), "{body}");
    assert!(answer(&env, &user, PII).await.1.contains("ali@example.com"));
    let long = format!("invoice api {}", "x".repeat(3_000));
    let (status, text) = answer(&env, &user, &long).await;
    assert_eq!(status, 403, "{text}");
    assert!(
        text.contains("guardrail_denied") && text.contains("3012 characters"),
        "{text}"
    );

    // A broken v3 is refused; v2 keeps serving.
    let (status, _) = env
        .upload_plugin(&admin, "acme", "guard", b"broken".to_vec())
        .await;
    assert_eq!(status, 400);
    assert_eq!(answer(&env, &user, &long).await.0, 403);

    // Rollback to v1.
    let (status, body) = env
        .admin(
            &admin,
            "POST",
            "/admin/v1/tenants/acme/plugins/guard/rollback",
            Some(serde_json::json!({"reason": "v2 too strict"})),
        )
        .await;
    assert_eq!((status, body["version"].as_u64()), (200, Some(1)), "{body}");
    assert!(answer(&env, &user, PII).await.1.contains("[redacted]"));
    let (_, listed) = env
        .admin(&admin, "GET", "/admin/v1/tenants/acme/plugins", None)
        .await;
    assert_eq!(listed["data"][0]["name"], "guard");
    assert_eq!(listed["data"][0]["live"], 1);
    assert_eq!(listed["data"][0]["versions"].as_array().unwrap().len(), 2);

    // Another tenant's admin sees and changes none of it.
    let (status, _) = env
        .upload_plugin(&other_admin, "acme", "guard", redactor.clone())
        .await;
    assert_eq!(status, 404);
    let (status, _) = env
        .admin(&other_admin, "GET", "/admin/v1/tenants/acme/plugins", None)
        .await;
    assert_eq!(status, 404);

    // Delete is refused while the policy names the plugin.
    let reason = Some(serde_json::json!({"reason": "cleanup"}));
    let (status, body) = env
        .admin(
            &admin,
            "POST",
            "/admin/v1/tenants/acme/plugins/guard/delete",
            reason.clone(),
        )
        .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (409, Some("plugin_in_use")),
        "{body}"
    );
    let (_, events) = env
        .admin(&admin, "GET", "/admin/v1/tenants/acme/events", None)
        .await;
    let actions: Vec<_> = events["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap().to_string())
        .collect();
    assert!(
        actions.contains(&"plugin.rollback".to_string())
            && actions.iter().filter(|a| *a == "plugin.upload").count() == 2,
        "{actions:?}"
    );
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_uploads_through_the_running_server() {
    let (env, plugins) = TestEnv::start_with_own_plugins(vec![TenantSpec::new("acme")]).await;
    let admin = env.user_with_role("acme", "maya", Role::Admin);
    let file = plugin_dir().join("pii-redactor.wasm");
    let base = env.base.clone();
    let output = tokio::task::spawn_blocking(move || {
        warden_output(&[
            "plugin",
            "upload",
            "--tenant",
            "acme",
            "redactor",
            file.to_str().unwrap(),
            "--server",
            &base,
            "--token",
            &admin,
            "--json",
        ])
    })
    .await
    .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let body: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(body["version"], 1);
    assert!(plugins.0.join("tenants/acme/redactor.wasm").is_file());
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compiled_plugins_are_cached_across_restarts() {
    let cold = std::time::Instant::now();
    let mut env = TestEnv::start(vec![TenantSpec::new("acme")]).await;
    println!(
        "start, compiling every plugin: {} ms",
        cold.elapsed().as_millis()
    );
    let cache = env.state.0.join("compiled");
    let artifacts = || {
        let mut names: Vec<_> = std::fs::read_dir(&cache)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        names.sort();
        names
    };
    let plugins = std::fs::read_dir(plugin_dir())
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .path()
                .extension()
                .is_some_and(|x| x == "wasm")
        })
        .count();
    let first = artifacts();
    assert_eq!(first.len(), plugins, "one artifact per plugin: {first:?}");

    let started = std::time::Instant::now();
    env.restart().await;
    println!(
        "restart with cached artifacts: {} ms",
        started.elapsed().as_millis()
    );
    assert_eq!(artifacts(), first, "the restart compiled nothing new");
    let token = env.token("acme");
    assert_eq!(env.chat(&token, "invoice api", false).await.status(), 200);
    env.stop().await;
}

#[test]
fn plugin_test_runs_a_component_locally_against_a_sample() {
    let plugin = plugin_dir().join("pii-redactor.wasm");
    let sample = repo_root().join("examples/guardrails/sample-request.json");
    let (plugin, sample) = (plugin.to_str().unwrap(), sample.to_str().unwrap());
    let report = warden_json(&[
        "plugin",
        "test",
        plugin,
        "--request",
        sample,
        "--response",
        "sent to bo@example.org",
    ]);
    assert_eq!(report["stage"], "guardrail");
    let rewritten = report["on_request"]["rewrite"][1]["content"]
        .as_str()
        .unwrap();
    assert_eq!(rewritten, "mail [redacted] the invoice [redacted]");
    assert_eq!(report["on_response"]["redact"], "sent to [redacted]");
    let denied = warden_json(&[
        "plugin",
        "test",
        plugin,
        "--request",
        sample,
        "--config",
        "blocked_topics=invoice",
    ]);
    assert!(denied["on_request"]["deny"]
        .as_str()
        .unwrap()
        .contains("'invoice'"));
    let broken = warden_output(&["plugin", "test", sample, "--request", sample]);
    assert!(!broken.status.success());
    assert!(String::from_utf8_lossy(&broken.stderr).contains("not a valid wasm component"));
}

/// The redactor as if built against `warden:policy@2.0.0`: every
/// `warden:policy/<interface>@0.1.0` name in the binary rewritten in place
/// (same length, so the component stays well-formed).
fn built_for_wit_2() -> Vec<u8> {
    let mut wasm = std::fs::read(plugin_dir().join("pii-redactor.wasm")).unwrap();
    let (package, old) = (b"warden:policy/", b"@0.1.0");
    let mut at = 0;
    let mut patched = 0;
    while let Some(start) = wasm[at..]
        .windows(package.len())
        .position(|w| w == package)
        .map(|p| p + at)
    {
        let end = (start + 64).min(wasm.len());
        if let Some(v) = wasm[start..end].windows(old.len()).position(|w| w == old) {
            wasm[start + v..start + v + old.len()].copy_from_slice(b"@2.0.0");
            patched += 1;
        }
        at = start + package.len();
    }
    assert!(patched > 0);
    wasm
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plugin_built_for_another_wit_major_version_is_refused_and_says_why() {
    let wasm = built_for_wit_2();
    let (env, _plugins) = TestEnv::start_with_own_plugins(vec![TenantSpec::new("acme")]).await;
    let admin = env.user_with_role("acme", "maya", Role::Admin);
    let (status, body) = env
        .upload_plugin(&admin, "acme", "guard", wasm.clone())
        .await;
    assert_eq!(status, 400, "{body}");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("built against warden:policy@2.0.0")
            && message.contains("serves warden:policy@0.1.0"),
        "{message}"
    );
    env.stop().await;

    let dir = TempDir::new("wit2");
    let file = dir.0.join("guard.wasm");
    std::fs::write(&file, &wasm).unwrap();
    let sample = repo_root().join("examples/guardrails/sample-request.json");
    let output = warden_output(&[
        "plugin",
        "test",
        file.to_str().unwrap(),
        "--request",
        sample.to_str().unwrap(),
    ]);
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("warden:policy@2.0.0"), "{stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tenants_own_stage_plugin_is_self_tested_with_a_call_of_its_stage() {
    let (env, _plugins) = TestEnv::start_with_own_plugins(vec![TenantSpec::new("acme")]).await;
    let admin = env.user_with_role("acme", "maya", Role::Admin);
    // acme's intent stage is its own plugin "my-intent", configured to spin.
    let policy = misbehaving_intent_policy("spin").replace("\"test-misbehave\"", "\"my-intent\"");
    put(&env.policies.0.join("acme.toml"), policy.as_bytes());

    // The looping fixture does not pass: its sample call hits the deadline.
    let looping = std::fs::read(plugin_dir().join("test-misbehave.wasm")).unwrap();
    let (status, body) = env
        .upload_plugin(&admin, "acme", "my-intent", looping)
        .await;
    assert_eq!(status, 400, "{body}");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("self-test") && message.contains("time limit"),
        "{message}"
    );

    // The real intent plugin answers its sample call and goes live.
    let intent = std::fs::read(plugin_dir().join("intent.wasm")).unwrap();
    let (status, body) = env.upload_plugin(&admin, "acme", "my-intent", intent).await;
    assert_eq!(
        (status, body["stage"].as_str()),
        (201, Some("intent")),
        "{body}"
    );
    assert!(
        body["self_test"]
            .as_str()
            .unwrap()
            .contains("answered a sample call of its stage"),
        "{body}"
    );
    let token = env.token("acme");
    assert_eq!(env.chat(&token, "invoice api", false).await.status(), 200);
    env.stop().await;
}
