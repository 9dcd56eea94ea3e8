//! Tenant guardrails run after the five stages, for their tenant only: the
//! example PII redactor (examples/guardrails/pii-redactor, built from source)
//! rewrites prompts before they reach the provider, redacts answers, and
//! refuses blocked topics with the guardrail's reason.

mod common;

use common::*;

fn with_redactor() -> String {
    let default = std::fs::read_to_string(repo_root().join("policies/default.toml")).unwrap();
    format!(
        "{default}\n[[guardrails]]\nplugin = \"pii-redactor\"\nconfig = {{ blocked_topics = \"salary, medical\" }}\n"
    )
}

const PII: &str = "invoice api for ali@example.com card 4111-1111-1111-1111";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tenants_guardrail_rewrites_redacts_and_refuses_for_that_tenant_only() {
    let env = TestEnv::start(vec![
        TenantSpec::new("acme").with_policy(with_redactor()),
        TenantSpec::new("globex"),
    ])
    .await;
    let (acme, globex) = (env.token("acme"), env.token("globex"));

    // Redacted before forwarding (the mock echoes what it received) and in the log.
    let (status, body) = env.chat_json(&acme, PII).await;
    assert_eq!(status, 200, "{body}");
    let content = body["choices"][0]["message"]["content"].as_str().unwrap();
    assert!(content.contains("[redacted]"), "{content}");
    assert!(
        !content.contains("ali@example.com") && !content.contains("4111"),
        "{content}"
    );
    assert!(
        eventually(|| env
            .last_logged_prompt("acme")
            .is_some_and(|p| p.contains("[redacted]") && !p.contains("ali@example.com")))
        .await
    );

    // Streamed calls are rewritten too.
    let streamed = env.chat(&acme, PII, true).await;
    assert_eq!(streamed.status(), 200);
    let text = streamed.text().await.unwrap();
    assert!(
        text.contains("[redacted]") && !text.contains("ali@example.com"),
        "{text}"
    );

    // A blocked topic is refused with the guardrail's reason.
    let refused = env
        .chat(&acme, "invoice api: what is the SALARY of bob", false)
        .await;
    assert_eq!(refused.status(), 403);
    let (kind, code, message) = error_of(refused).await;
    assert_eq!(
        (kind.as_str(), code.as_str()),
        ("permission_error", "guardrail_denied")
    );
    assert!(
        message.contains("salary") && message.contains("pii-redactor"),
        "{message}"
    );

    // Another tenant's calls never meet acme's guardrail.
    let (status, body) = env.chat_json(&globex, PII).await;
    assert_eq!(status, 200);
    assert!(body["choices"][0]["message"]["content"]
        .as_str()
        .unwrap()
        .contains("ali@example.com"));
    let (status, _) = env
        .chat_json(&globex, "invoice api: salary table schema")
        .await;
    assert_eq!(status, 200);
    env.stop().await;
}
