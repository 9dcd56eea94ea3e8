//! Forged, tampered and expired tokens are refused with 401 before any
//! plugin runs.

mod common;

use base64::Engine as _;
use common::*;

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::URL_SAFE_NO_PAD;

fn parts(token: &str) -> (serde_json::Value, serde_json::Value, String) {
    let mut it = token.split('.');
    let header = serde_json::from_slice(&B64.decode(it.next().unwrap()).unwrap()).unwrap();
    let payload = serde_json::from_slice(&B64.decode(it.next().unwrap()).unwrap()).unwrap();
    (header, payload, it.next().unwrap().to_string())
}

fn assemble(header: &serde_json::Value, payload: &serde_json::Value, signature: &str) -> String {
    format!(
        "{}.{}.{signature}",
        B64.encode(serde_json::to_vec(header).unwrap()),
        B64.encode(serde_json::to_vec(payload).unwrap())
    )
}

async fn assert_unauthorized(env: &TestEnv, token: &str, why: &str) {
    let response = env.chat(token, "invoice api", false).await;
    assert_eq!(response.status(), 401, "{why}");
    let (kind, code, _) = error_of(response).await;
    assert_eq!(
        (kind.as_str(), code.as_str()),
        ("authentication_error", "invalid_api_key"),
        "{why}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_tampered_forged_and_expired_tokens_get_401() {
    let env = TestEnv::start(vec![TenantSpec::new("acme"), TenantSpec::new("globex")]).await;
    let good = env.token("acme");
    assert_eq!(env.chat(&good, "invoice api", false).await.status(), 200);

    assert_unauthorized(&env, "not-a-token", "garbage").await;

    // Tampered payload: more tasks, same signature.
    let (header, mut payload, signature) = parts(&good);
    payload["tasks"] = serde_json::json!(["invoice-backend", "everything"]);
    assert_unauthorized(
        &env,
        &assemble(&header, &payload, &signature),
        "tampered payload",
    )
    .await;

    // alg "none" with no signature.
    let (mut header, payload, _) = parts(&good);
    header["alg"] = "none".into();
    assert_unauthorized(&env, &assemble(&header, &payload, ""), "alg none").await;

    // Unknown kid.
    let (mut header, payload, signature) = parts(&good);
    header["kid"] = "nobody-00000000".into();
    assert_unauthorized(
        &env,
        &assemble(&header, &payload, &signature),
        "unknown kid",
    )
    .await;

    // A token of tenant globex re-labelled as acme: globex's key does not sign for acme.
    let other = env.token("globex");
    let (header, mut payload, signature) = parts(&other);
    payload["tid"] = "acme".into();
    assert_unauthorized(
        &env,
        &assemble(&header, &payload, &signature),
        "cross-tenant",
    )
    .await;

    // Expired an hour ago.
    let expired = env.token_with("acme", |r| {
        r.issued_at = Some(warden::clock::now_secs() - 7200);
        r.ttl_secs = 3600;
    });
    let response = env.chat(&expired, "invoice api", false).await;
    assert_eq!(response.status(), 401);
    assert!(error_of(response).await.2.contains("expired"));

    // Not valid for another hour.
    let early = env.token_with("acme", |r| {
        r.issued_at = Some(warden::clock::now_secs() + 3600)
    });
    let response = env.chat(&early, "invoice api", false).await;
    assert_eq!(response.status(), 401);
    assert!(error_of(response).await.2.contains("not valid yet"));

    // Missing header.
    let response = env
        .http
        .post(format!("{}/v1/chat/completions", env.base))
        .header("x-task-id", TASK)
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
    env.stop().await;
}
