//! Tenant guardrails run after the five stages, for their tenant only: the
//! example PII redactor (examples/guardrails/pii-redactor, built from source)
//! rewrites prompts before they reach the provider, redacts answers, and
//! refuses blocked topics with the guardrail's reason.

use crate::common::*;

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

fn oversize_policy(mode: &str) -> String {
    let mut policy = policy_with_guardrail("test-oversize");
    policy.push_str(&format!("config = {{ mode = \"{mode}\" }}\n"));
    policy
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_guardrail_returning_too_much_fails_only_its_call_and_long_reasons_are_cut() {
    let env = TestEnv::start(vec![
        TenantSpec::new("acme"),
        TenantSpec::new("rewrites").with_policy(oversize_policy("rewrite")),
        TenantSpec::new("redacts").with_policy(oversize_policy("redact")),
        TenantSpec::new("denies").with_policy(oversize_policy("deny")),
    ])
    .await;
    // A 1 MiB rewrite of a short prompt, or a 1 MiB redaction of a short
    // answer, is over the cap (2 × input + 64 KiB): the call fails closed.
    for tenant in ["rewrites", "redacts"] {
        let response = env.chat(&env.token(tenant), "invoice api", false).await;
        assert_eq!(response.status(), 503, "{tenant}");
        let (_, code, message) = error_of(response).await;
        assert_eq!(code, "policy_plugin_failed", "{tenant}");
        assert!(
            message.contains("test-oversize") && message.contains("more than its cap"),
            "{tenant}: {message}"
        );
    }
    // A 300 KiB refusal reason reaches the caller cut to 1 KiB.
    let response = env.chat(&env.token("denies"), "invoice api", false).await;
    assert_eq!(response.status(), 403);
    let (_, code, message) = error_of(response).await;
    assert_eq!(code, "guardrail_denied");
    assert!(message.len() < 1100, "{} bytes", message.len());
    assert!(
        message.ends_with("(guardrail 'test-oversize')"),
        "{message}"
    );
    // Nobody else is touched.
    assert_eq!(
        env.chat(&env.token("acme"), "invoice api", false)
            .await
            .status(),
        200
    );
    env.stop().await;
}
