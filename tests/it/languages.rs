//! Guardrails written in three languages, built from source in this repo
//! (scripts/build-plugins.sh), uploaded by a tenant admin and run through the
//! real proxy in one chain: a secret scanner in Python (componentize-py), a
//! blocked-words rule in JavaScript (componentize-js) and the PII redactor
//! in Rust (wit-bindgen). `warden plugin test` runs each the same way.

use crate::common::*;
use warden::state::model::Role;

const KEY: &str = "sk-proj-abcdefghijklmnopqrstuvwx1234";

fn example(name: &str) -> Vec<u8> {
    let path = repo_root()
        .join("build/examples")
        .join(format!("{name}.wasm"));
    std::fs::read(&path).unwrap_or_else(|e| {
        panic!(
            "{}: {e}; build the examples with scripts/build-plugins.sh",
            path.display()
        )
    })
}

/// The default stages, then the three guardrails in order. The Python and
/// JavaScript ones get a 50 ms deadline, as the README advises: a warm call
/// takes ~60 µs, but a fresh instance on a busy machine needs headroom.
fn three_language_policy() -> String {
    let default = std::fs::read_to_string(repo_root().join("policies/default.toml")).unwrap();
    format!(
        "{default}
[[guardrails]]
plugin = \"secret-scanner\"
sandbox = {{ deadline_ms = 50 }}

[[guardrails]]
plugin = \"blocked-words\"
config = {{ words = \"project falcon, mock LLM\" }}
sandbox = {{ deadline_ms = 50 }}

[[guardrails]]
plugin = \"pii-redactor\"
"
    )
}

fn content(body: &serde_json::Value) -> &str {
    body["choices"][0]["message"]["content"].as_str().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_javascript_and_rust_guardrails_run_in_one_tenant_chain() {
    // Python and JavaScript components take seconds to compile: every run
    // of this test shares one artifact cache.
    let artifacts = std::env::temp_dir().join("warden-test-artifacts");
    let plugins = private_plugins();
    let plugin_dir = plugins.0.clone();
    let env = TestEnv::start_with(
        vec![TenantSpec::new("acme"), TenantSpec::new("globex")],
        |c| {
            c.plugin_dir = plugin_dir;
            c.runtime.artifact_dir = Some(artifacts);
        },
    )
    .await;
    let (acme, globex) = (env.token("acme"), env.token("globex"));
    let (acme_admin, globex_admin) = (
        env.user_with_role("acme", "maya", Role::Admin),
        env.user_with_role("globex", "gina", Role::Admin),
    );

    // acme's policy names two guardrails it has not uploaded yet: the
    // running chain keeps serving until the uploads make it whole.
    put(
        &env.policies.0.join("acme.toml"),
        three_language_policy().as_bytes(),
    );
    let (status, body) = env
        .upload_plugin(
            &acme_admin,
            "acme",
            "secret-scanner",
            example("secret-scanner"),
        )
        .await;
    assert_eq!(
        (status, body["stage"].as_str()),
        (201, Some("guardrail")),
        "{body}"
    );
    assert_eq!(body["live"], false, "{body}");
    assert_eq!(
        body["waiting_for"],
        serde_json::json!(["blocked-words"]),
        "{body}"
    );
    let (status, body) = env
        .upload_plugin(
            &acme_admin,
            "acme",
            "blocked-words",
            example("blocked-words"),
        )
        .await;
    assert_eq!(
        (status, body["live"].as_bool()),
        (201, Some(true)),
        "{body}"
    );
    // globex uploads the same Python component with its own config: refuse
    // prompts holding a secret instead of rewriting them.
    let mut globex_policy = policy_with_guardrail("secret-scanner");
    globex_policy.push_str("config = { mode = \"deny\" }\nsandbox = { deadline_ms = 50 }\n");
    put(
        &env.policies.0.join("globex.toml"),
        globex_policy.as_bytes(),
    );
    let (status, body) = env
        .upload_plugin(
            &globex_admin,
            "globex",
            "secret-scanner",
            example("secret-scanner"),
        )
        .await;
    assert_eq!(
        (status, body["live"].as_bool()),
        (201, Some(true)),
        "{body}"
    );

    // JavaScript: a blocked phrase is refused with the guardrail's reason.
    assert!(
        eventually_async(|| async {
            env.chat(&acme, "invoice api: status of Project Falcon?", false)
                .await
                .status()
                == 403
        })
        .await,
        "acme's chain never picked up its guardrails"
    );
    let refused = env
        .chat(&acme, "invoice api: status of Project Falcon?", false)
        .await;
    let (_, code, message) = error_of(refused).await;
    assert_eq!(code, "guardrail_denied");
    assert!(
        message.contains("blocked-words") && message.contains("Project Falcon"),
        "{message}"
    );

    // Python rewrites the prompt before it leaves (the mock echoes what it
    // received), Rust redacts the e-mail address, and JavaScript masks the
    // mock's "mock LLM" in the answer.
    let prompt = format!("invoice api fails with api_key={KEY}, mail ali@example.com");
    let (status, body) = env.chat_json(&acme, &prompt).await;
    assert_eq!(status, 200, "{body}");
    let text = content(&body);
    assert!(text.contains("[secret removed]"), "{text}");
    assert!(text.contains("[redacted]"), "{text}");
    assert!(
        !text.contains(KEY) && !text.contains("ali@example.com"),
        "{text}"
    );
    assert!(
        text.contains("Warden ********") && !text.contains("mock LLM"),
        "{text}"
    );
    assert!(
        eventually(|| env
            .last_logged_prompt("acme")
            .is_some_and(|p| p.contains("[secret removed]") && !p.contains(KEY)))
        .await,
        "the request log keeps the rewritten prompt"
    );

    // Streamed calls are rewritten, and their answers screened: the stream
    // is held until JavaScript has masked it, and arrives as SSE events
    // holding exactly the screened text of the plain answer.
    let streamed = env.chat(&acme, &prompt, true).await;
    assert_eq!(streamed.status(), 200);
    let sse = streamed.text().await.unwrap();
    assert!(sse.trim_end().ends_with("data: [DONE]"), "{sse}");
    assert_eq!(streamed_content(&sse), text, "{sse}");

    // A tenant that prefers the first token fast turns stream screening
    // off: requests are still screened, answers stream as they come.
    put(
        &env.policies.0.join("acme.toml"),
        format!(
            "screen_streamed_answers = false\n{}",
            three_language_policy()
        )
        .as_bytes(),
    );
    assert!(
        eventually_async(|| async {
            let sse = env.chat(&acme, &prompt, true).await.text().await.unwrap();
            streamed_content(&sse).contains("mock LLM")
        })
        .await,
        "the policy change never took effect"
    );
    let sse = env.chat(&acme, &prompt, true).await.text().await.unwrap();
    let stream = streamed_content(&sse);
    assert!(
        stream.contains("[secret removed]") && !stream.contains(KEY),
        "{stream}"
    );

    // globex: its own copy of the Python plugin, in deny mode; acme's
    // JavaScript rule never runs for it.
    assert!(
        eventually_async(|| async { env.chat(&globex, &prompt, false).await.status() == 403 })
            .await,
        "globex's policy was never picked up"
    );
    let (status, body) = env.chat_json(&globex, &prompt).await;
    assert_eq!(status, 403, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("contains a credential"),
        "{body}"
    );
    let (status, body) = env
        .chat_json(&globex, "invoice api: status of Project Falcon?")
        .await;
    assert_eq!(status, 200, "{body}");
    assert!(content(&body).contains("mock LLM"), "{body}");

    let (_, listed) = env
        .admin(&acme_admin, "GET", "/admin/v1/tenants/acme/plugins", None)
        .await;
    let names: Vec<&str> = listed["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["blocked-words", "secret-scanner"], "{listed}");
    env.stop().await;
}

#[test]
fn plugin_test_runs_the_python_and_javascript_examples() {
    let sample = repo_root().join("examples/guardrails/sample-request.json");
    let sample = sample.to_str().unwrap();
    let python = repo_root().join("build/examples/secret-scanner.wasm");
    let report = warden_json(&[
        "plugin",
        "test",
        python.to_str().unwrap(),
        "--request",
        sample,
        "--response",
        "use AKIAABCDEFGHIJKLMNOP as the access key",
    ]);
    assert_eq!(report["on_request"], "allow", "{report}");
    assert_eq!(
        report["on_response"]["redact"], "use [secret removed] as the access key",
        "{report}"
    );

    let javascript = repo_root().join("build/examples/blocked-words.wasm");
    let report = warden_json(&[
        "plugin",
        "test",
        javascript.to_str().unwrap(),
        "--request",
        sample,
        "--config",
        "words=invoice",
        "--response",
        "the Invoice is sent",
    ]);
    assert!(
        report["on_request"]["deny"]
            .as_str()
            .unwrap()
            .contains("'invoice'"),
        "{report}"
    );
    assert_eq!(report["on_response"]["redact"], "the ******* is sent");
}

/// Builds a scaffolded project with its own build.sh, offline: the
/// toolchains come from the caches build-plugins.sh filled.
fn build_scaffold(project: &std::path::Path) {
    let output = std::process::Command::new("bash")
        .arg(project.join("build.sh"))
        .env(
            "CARGO_TARGET_DIR",
            std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("scaffold-target"),
        )
        .env("CARGO_NET_OFFLINE", "true")
        .env("npm_config_offline", "true")
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}: {}",
        project.display(),
        String::from_utf8_lossy(&output.stderr)
    );
}

#[test]
fn plugin_new_scaffolds_a_plugin_that_builds_and_runs_in_each_language() {
    let dir = TempDir::new("scaffold");
    let builds: Vec<_> = ["rust", "python", "js"]
        .into_iter()
        .map(|lang| {
            let parent = dir.0.join(lang);
            let printed = warden(&[
                "plugin",
                "new",
                "--lang",
                lang,
                "my-guard",
                "--dir",
                parent.to_str().unwrap(),
            ]);
            assert!(printed.contains("bash build.sh"), "{printed}");
            let project = parent.join("my-guard");
            std::thread::spawn(move || {
                build_scaffold(&project);
                project
            })
        })
        .collect();
    for build in builds {
        let project = build.join().unwrap();
        let wasm = project.join("my-guard.wasm");
        let sample = project.join("sample-request.json");
        let (wasm, sample) = (wasm.to_str().unwrap(), sample.to_str().unwrap());
        let denied = warden_json(&[
            "plugin",
            "test",
            wasm,
            "--request",
            sample,
            "--config",
            "deny_word=invoice",
        ]);
        assert_eq!(
            denied["on_request"]["deny"],
            "prompts may not mention 'invoice'",
            "{}: {denied}",
            project.display()
        );
        let allowed = warden_json(&["plugin", "test", wasm, "--request", sample]);
        assert_eq!(allowed["on_request"], "allow", "{}", project.display());
    }
    let again = warden_output(&[
        "plugin",
        "new",
        "--lang",
        "rust",
        "my-guard",
        "--dir",
        dir.0.join("rust").to_str().unwrap(),
    ]);
    assert!(
        !again.status.success(),
        "an existing project is never overwritten"
    );
}
