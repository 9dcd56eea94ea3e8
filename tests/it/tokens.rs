//! Forged, tampered and expired tokens are refused with 401 before any
//! plugin runs.

use crate::common::*;
use base64::Engine as _;
use warden::state::model::{KeyAlgorithm, Role};

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

/// Claims of `token`, re-signed by `encode` under `header`: a forgery that
/// keeps everything but the signature honest.
fn resign(token: &str, header: jsonwebtoken::Header, key: &jsonwebtoken::EncodingKey) -> String {
    let (_, payload, _) = parts(token);
    jsonwebtoken::encode(&header, &payload, key).unwrap()
}

fn header(alg: jsonwebtoken::Algorithm, kid: &str) -> jsonwebtoken::Header {
    let mut header = jsonwebtoken::Header::new(alg);
    header.kid = Some(kid.into());
    header
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn eddsa_tokens_work_and_algorithm_confusion_gets_401() {
    let env = TestEnv::start(vec![
        TenantSpec::new("acme"),
        TenantSpec::new("globex").signing_with(KeyAlgorithm::EdDSA),
    ])
    .await;
    let hs_token = env.token("acme");
    let ed_token = env.token("globex");
    let (hs_header, _, _) = parts(&hs_token);
    let (ed_header, _, _) = parts(&ed_token);
    assert_eq!(hs_header["alg"], "HS256");
    assert_eq!(ed_header["alg"], "EdDSA");
    assert_eq!(
        env.chat(&hs_token, "invoice api", false).await.status(),
        200
    );
    assert_eq!(
        env.chat(&ed_token, "invoice api", false).await.status(),
        200
    );
    let ed_kid = ed_header["kid"].as_str().unwrap();

    // The EdDSA public key is published (the admin API lists it); the classic
    // confusion attack signs HS256 with it as the HMAC secret.
    let admin = env.user_with_role("globex", "boss", Role::Admin);
    let (status, keys) = env
        .admin(&admin, "GET", "/admin/v1/tenants/globex/keys", None)
        .await;
    assert_eq!(status, 200, "{keys}");
    let public_key = keys["data"][0]["public_key"].as_str().unwrap();
    assert!(keys["data"][0].get("secret").is_none(), "{keys}");
    let public_bytes = base64::engine::general_purpose::STANDARD
        .decode(public_key)
        .unwrap();
    for secret in [public_bytes.clone(), public_key.as_bytes().to_vec()] {
        let forged = resign(
            &ed_token,
            header(jsonwebtoken::Algorithm::HS256, ed_kid),
            &jsonwebtoken::EncodingKey::from_secret(&secret),
        );
        assert_unauthorized(&env, &forged, "HS256 signed with the EdDSA public key").await;
    }

    // RS256 (the classic HS/RS confusion), EdDSA, ES256 or HS512 named on an
    // HS256 key: whatever the signature, the key pins HS256.
    let (_, payload, signature) = parts(&hs_token);
    for alg in ["RS256", "EdDSA", "ES256", "HS512"] {
        let mut forged_header = hs_header.clone();
        forged_header["alg"] = alg.into();
        assert_unauthorized(
            &env,
            &assemble(&forged_header, &payload, &signature),
            &format!("{alg} header on an HS256 key"),
        )
        .await;
    }

    // An EdDSA token signed by another Ed25519 key, and one relabelled as HS256.
    let stranger = ed25519_dalek_pkcs8();
    let forged = resign(
        &ed_token,
        header(jsonwebtoken::Algorithm::EdDSA, ed_kid),
        &jsonwebtoken::EncodingKey::from_ed_der(&stranger),
    );
    assert_unauthorized(&env, &forged, "EdDSA signed by a stranger's key").await;
    let (_, payload, signature) = parts(&ed_token);
    let mut relabelled = ed_header.clone();
    relabelled["alg"] = "HS256".into();
    assert_unauthorized(
        &env,
        &assemble(&relabelled, &payload, &signature),
        "EdDSA signature under an HS256 header",
    )
    .await;

    // Rotating globex to HS256 keeps its EdDSA tokens valid until they expire.
    let (status, rotated) = env
        .admin(
            &admin,
            "POST",
            "/admin/v1/tenants/globex/keys/rotate",
            Some(serde_json::json!({ "reason": "policy", "algorithm": "HS256" })),
        )
        .await;
    assert_eq!(status, 201, "{rotated}");
    assert_eq!(rotated["algorithm"], "HS256");
    assert!(rotated["public_key"].is_null());
    assert_eq!(
        env.chat(&ed_token, "invoice api", false).await.status(),
        200
    );
    let new_token = env.token("globex");
    assert_eq!(parts(&new_token).0["alg"], "HS256");
    assert_eq!(
        env.chat(&new_token, "invoice api", false).await.status(),
        200
    );
    env.stop().await;
}

/// A fresh Ed25519 private key as PKCS#8 DER, unrelated to any tenant's.
fn ed25519_dalek_pkcs8() -> Vec<u8> {
    let key = warden::token::new_signing_key("stranger", 1, KeyAlgorithm::EdDSA);
    base64::engine::general_purpose::STANDARD
        .decode(key.secret)
        .unwrap()
}
