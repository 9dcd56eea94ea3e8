//! A tenant's admins set its policy through the admin API and the CLI: an
//! uploaded guardrail is in force on the next request with no file written
//! on the server; a broken policy, or one over the operator's ceilings, is
//! refused and the running one stays; every change is a version that can
//! be rolled back, and is audited with a diff.

use serde_json::{json, Value};
use warden::state::model::Role;

use crate::common::*;

const POLICY: &str = "/admin/v1/tenants/acme/policy";

/// A prompt longer than the guardrail's 100 characters.
fn long_prompt() -> String {
    format!("invoice api {}", "x".repeat(200))
}

async fn error_code(env: &TestEnv, admin: &str, body: Value) -> (u16, String, String) {
    let (status, answer) = env.admin(admin, "PUT", POLICY, Some(body)).await;
    let code = answer["error"]["code"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let message = answer["error"]["message"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    (status, code, message)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tenant_admin_enables_an_uploaded_guardrail_without_touching_the_servers_disk() {
    let (mut env, _plugins) =
        TestEnv::start_with_own_plugins(vec![TenantSpec::new("acme"), TenantSpec::new("globex")])
            .await;
    let admin = env.user_with_role("acme", "maya", Role::Admin);
    let (acme, globex) = (env.token("acme"), env.token("globex"));

    // The upload says it is loaded but not in use, and how to use it.
    let wasm = std::fs::read(plugin_dir().join("max-prompt-length.wasm")).unwrap();
    let (status, uploaded) = env
        .upload_plugin(&admin, "acme", "short-prompts", wasm)
        .await;
    assert_eq!(status, 201, "{uploaded}");
    assert_eq!(
        (&uploaded["live"], &uploaded["in_use"]),
        (&json!(true), &json!(false))
    );
    assert!(
        uploaded["note"].as_str().unwrap().contains("/policy"),
        "{uploaded}"
    );
    assert_eq!(env.chat(&acme, &long_prompt(), false).await.status(), 200);

    // The server's policy, as TOML and as JSON.
    let (status, shown) = env.admin(&admin, "GET", POLICY, None).await;
    assert_eq!(status, 200, "{shown}");
    assert_eq!(shown["source"], "default");
    assert_eq!(shown["policy"]["stages"]["intent"]["plugin"], "intent");
    assert!(shown["toml"].as_str().unwrap().contains("[stages.auth]"));

    // Add the guardrail to the JSON structure and send it back.
    let mut policy = shown["policy"].clone();
    policy["guardrails"] = json!([{ "plugin": "short-prompts", "config": { "max_chars": 100 } }]);
    let body = json!({ "policy": policy, "reason": "keep pasted dumps out" });
    let (status, set) = env.admin(&admin, "PUT", POLICY, Some(body)).await;
    assert_eq!(status, 200, "{set}");
    assert_eq!(
        (&set["source"], &set["version"]),
        (&json!("api"), &json!(1))
    );
    let refused = env.chat(&acme, &long_prompt(), false).await;
    assert_eq!(refused.status(), 403);
    let (_, code, message) = error_of(refused).await;
    assert_eq!(code, "guardrail_denied");
    assert!(message.contains("allows 100"), "{message}");
    assert_eq!(env.chat(&globex, &long_prompt(), false).await.status(), 200);
    assert_eq!(env.chat(&acme, "invoice api", false).await.status(), 200);
    assert!(!env.policies.0.join("acme.toml").exists());

    // Broken policies and policies over the ceilings are refused, each
    // saying why; the running policy stays.
    let text = set["toml"].as_str().unwrap().to_string();
    let broken = [
        (
            json!({ "toml": text.replace("short-prompts", "no-such-plugin") }),
            "not loaded",
        ),
        (
            json!({ "toml": text.replace("plugin = \"auth\"", "plugin = \"short-prompts\"") }),
            "runs the server's plugin 'auth'",
        ),
        (
            json!({ "toml": text.replace("deadline_ms = 10", "deadline_ms = 60000") }),
            "over this server's ceiling of 1000",
        ),
        (json!({ "toml": "[stages.auth" }), "policy"),
        (
            json!({ "toml": text.replace("[stages.intent]\n", "[stages.intent]\nfail_opn = true\n") }),
            "unknown field",
        ),
        (json!({ "reason": "nothing sent" }), "one of the two"),
    ];
    for (body, expected) in broken {
        let (status, code, message) = error_code(&env, &admin, body.clone()).await;
        assert_eq!(
            (status, code.as_str()),
            (400, "invalid_policy"),
            "{body}: {message}"
        );
        assert!(message.contains(expected), "{body}: {message}");
    }
    assert_eq!(env.chat(&acme, &long_prompt(), false).await.status(), 403);

    // Versions, reset to the server's policy, and rollback.
    let body = json!({ "reason": "trial over" });
    let (status, reset) = env.admin(&admin, "DELETE", POLICY, Some(body)).await;
    assert_eq!(
        (status, reset["source"].as_str()),
        (200, Some("default")),
        "{reset}"
    );
    assert_eq!(env.chat(&acme, &long_prompt(), false).await.status(), 200);
    let body = json!({ "version": 1, "reason": "back on" });
    let rollback = format!("{POLICY}/rollback");
    let (status, rolled) = env.admin(&admin, "POST", &rollback, Some(body)).await;
    assert_eq!((status, &rolled["version"]), (200, &json!(3)), "{rolled}");
    assert_eq!(env.chat(&acme, &long_prompt(), false).await.status(), 403);
    let (_, versions) = env
        .admin(&admin, "GET", &format!("{POLICY}/versions"), None)
        .await;
    let listed: Vec<(u64, bool, bool)> = versions["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| {
            let own = v["toml"].is_string();
            (v["version"].as_u64().unwrap(), v["current"] == true, own)
        })
        .collect();
    assert_eq!(
        listed,
        [(3, true, true), (2, false, false), (1, false, true)]
    );
    assert_eq!(versions["data"][0]["actor"], "acme/maya", "{versions}");

    // The audit log has each change with its diff.
    let (_, events) = env
        .admin(&admin, "GET", "/admin/v1/tenants/acme/events", None)
        .await;
    let put = events["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["action"] == "policy.put")
        .unwrap_or_else(|| panic!("{events}"));
    let diff = put["details"]["diff"].as_str().unwrap();
    assert!(diff.contains("+plugin = \"short-prompts\""), "{diff}");
    assert_eq!(put["reason"], "keep pasted dumps out");

    // Only the tenant's admins: another tenant's admin sees nothing, a user is refused.
    let other = env.user_with_role("globex", "gil", Role::Admin);
    let (status, _) = env.admin(&other, "GET", POLICY, None).await;
    assert_eq!(status, 404);
    let (status, _) = env.admin(&acme, "GET", POLICY, None).await;
    assert_eq!(status, 403);

    // Kept across a restart.
    env.restart().await;
    assert_eq!(env.chat(&acme, &long_prompt(), false).await.status(), 403);
    let (_, shown) = env.admin(&admin, "GET", POLICY, None).await;
    assert_eq!(shown["version"], 3, "{shown}");
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_sets_shows_and_rolls_back_a_tenants_policy_through_the_server() {
    let env = TestEnv::start(vec![TenantSpec::new("acme")]).await;
    let admin = env.user_with_role("acme", "maya", Role::Admin);
    let acme = env.token("acme");
    let dir = TempDir::new("policy-cli");
    let file = dir.0.join("acme.toml");
    let default = std::fs::read_to_string(repo_root().join("policies/default.toml")).unwrap();
    let strict = format!(
        "{default}\n[[guardrails]]\nplugin = \"max-prompt-length\"\nconfig = {{ max_chars = 50 }}\n"
    );
    std::fs::write(&file, &strict).unwrap();
    let cli = |args: &[&str]| {
        let base = ["--server", &env.base, "--token", &admin];
        warden(&[&base[..], args].concat())
    };
    let set = cli(&["policy", "set", "--tenant", "acme", file.to_str().unwrap()]);
    assert!(set.contains("\"version\": 1"), "{set}");
    assert_eq!(env.chat(&acme, &long_prompt(), false).await.status(), 403);
    let shown = cli(&["policy", "show", "--tenant", "acme"]);
    assert!(shown.contains("max-prompt-length"), "{shown}");

    // A file that does not build is refused with the reason; nothing changes.
    std::fs::write(&file, strict.replace("max-prompt-length", "missing")).unwrap();
    let refused = warden_output(&[
        "--server",
        &env.base,
        "--token",
        &admin,
        "policy",
        "set",
        "--tenant",
        "acme",
        file.to_str().unwrap(),
    ]);
    assert!(!refused.status.success());
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(
        stderr.contains("invalid_policy") || stderr.contains("not loaded"),
        "{stderr}"
    );

    let reset = cli(&[
        "policy",
        "reset",
        "--tenant",
        "acme",
        "--reason",
        "too strict",
    ]);
    assert!(reset.contains("\"source\": \"default\""), "{reset}");
    assert_eq!(env.chat(&acme, &long_prompt(), false).await.status(), 200);
    let versions = cli(&["policy", "versions", "--tenant", "acme"]);
    assert!(versions.contains("acme/maya"), "{versions}");
    cli(&[
        "policy", "rollback", "--tenant", "acme", "1", "--reason", "again",
    ]);
    assert_eq!(env.chat(&acme, &long_prompt(), false).await.status(), 403);
    env.stop().await;
}
