//! Plans and trials: a 5-user Basic trial refuses the 6th user; once the
//! trial has ended calls get 402 saying why; a signed `active` event from
//! the payment provider restores them, while an unsigned, forged or
//! replayed event is refused and a repeated one changes nothing; a
//! downgrade below the tenant's users is refused.

use hmac::{Hmac, Mac};
use serde_json::{json, Value};
use warden::domain::plans::{default_catalogue, Plan};
use warden::state::model::Role;

use crate::common::*;

const SECRET: &str = "whsec_test_only";
const DAY_MS: u64 = 24 * 3600 * 1000;

/// A `Warden-Signature` header for `body` at `t` under `secret`.
fn signature(secret: &str, t: u64, body: &str) -> String {
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(format!("{t}.{body}").as_bytes());
    let hex: String = mac
        .finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    format!("t={t},v1={hex}")
}

async fn post_event(env: &TestEnv, body: &str, signature: Option<String>) -> (u16, Value) {
    let mut request = env
        .http
        .post(format!("{}/billing/v1/events", env.base))
        .header("content-type", "application/json")
        .body(body.to_string());
    if let Some(signature) = signature {
        request = request.header("warden-signature", signature);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    let text = response.text().await.unwrap();
    (status, serde_json::from_str(&text).unwrap())
}

fn event(id: &str, status: &str) -> String {
    json!({ "id": id, "type": "subscription.updated", "tenant": "acme", "status": status })
        .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_basic_trial_limits_users_lapses_to_402_and_a_signed_webhook_restores_it() {
    let env = TestEnv::start_with(vec![TenantSpec::new("ops"), TenantSpec::new("acme")], |c| {
        c.billing.webhook_secret = Some(SECRET.into());
        c.plans.push(Plan {
            id: "solo".into(),
            name: "Solo".into(),
            max_users: Some(1),
            ..default_catalogue()[0].clone()
        });
    })
    .await;
    let root = env.user_with_role("ops", "root", Role::SuperAdmin);
    let maya = env.user_with_role("acme", "maya", Role::Admin);
    let ali = env.token("acme");

    // The operator puts acme on the Basic plan: a 14-day trial.
    let body = json!({ "plan": "basic", "reason": "signed up" });
    let path = "/admin/v1/tenants/acme/subscription";
    let (status, sub) = env.admin(&root, "PUT", path, Some(body)).await;
    assert_eq!(status, 200, "{sub}");
    assert_eq!(sub["subscription"]["status"], "trialing");
    assert_eq!(sub["plan"]["max_users"], 5);
    let (_, plans) = env.admin(&maya, "GET", "/admin/v1/plans", None).await;
    let ids: Vec<&str> = plans["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["basic", "pro", "enterprise", "solo"]);

    // Basic includes own providers, not own plugins.
    let wasm = std::fs::read(plugin_dir().join("max-prompt-length.wasm")).unwrap();
    let (status, answer) = env.upload_plugin(&maya, "acme", "guard", wasm).await;
    assert_eq!(
        (status, &answer["error"]["code"]),
        (403, &json!("plan_limit")),
        "{answer}"
    );
    let message = answer["error"]["message"].as_str().unwrap();
    assert!(
        message.contains(
            "Basic plan does not include uploading its own guardrail plugins; Pro and Enterprise"
        ),
        "{message}"
    );

    // ali and maya are two users; three more fit, the sixth is refused.
    for user in ["u3", "u4", "u5", "u6"] {
        let body = json!({ "id": user, "role": "user" });
        let (status, answer) = env
            .admin(&maya, "POST", "/admin/v1/tenants/acme/users", Some(body))
            .await;
        if user == "u6" {
            assert_eq!(status, 403, "{answer}");
            assert_eq!(answer["error"]["code"], "plan_limit");
            let message = answer["error"]["message"].as_str().unwrap();
            assert!(message.contains("Basic plan allows 5 users"), "{message}");
        } else {
            assert_eq!(status, 201, "{answer}");
        }
    }
    // A downgrade below five users is refused, naming the plan.
    let body = json!({ "plan": "solo", "reason": "cheaper" });
    let (status, answer) = env.admin(&maya, "PUT", path, Some(body)).await;
    assert_eq!(
        (status, &answer["error"]["code"]),
        (403, &json!("plan_limit")),
        "{answer}"
    );
    // A tenant admin may not set the status by hand.
    let body = json!({ "status": "active", "reason": "trust me" });
    let (status, _) = env.admin(&maya, "PUT", path, Some(body)).await;
    assert_eq!(status, 403);

    // During the trial calls work; in its last days they say so; after it
    // they get 402 with the reason.
    let early = env.chat(&ali, "invoice api", false).await;
    assert_eq!(early.status(), 200);
    assert!(!early.headers().contains_key("x-warden-subscription"));
    let now = env.app().clock.now_ms();
    env.app().clock.jump_to(now + 12 * DAY_MS);
    let late = env.chat(&ali, "invoice api", false).await;
    assert_eq!(late.status(), 200);
    let notice = late.headers()["x-warden-subscription"].to_str().unwrap();
    assert!(
        notice.contains("trial of the Basic plan ends in 2 day(s)"),
        "{notice}"
    );
    env.app().clock.jump_to(now + 15 * DAY_MS);
    let lapsed = env.chat(&ali, "invoice api", false).await;
    assert_eq!(lapsed.status(), 402);
    let (_, code, message) = error_of(lapsed).await;
    assert_eq!(code, "trial_ended");
    assert!(
        message.contains("trial of the Basic plan has ended"),
        "{message}"
    );

    // Unsigned, forged and stale events are refused and change nothing.
    let t = env.app().clock.now_ms() / 1000;
    let active = event("evt_1", "active");
    let (status, answer) = post_event(&env, &active, None).await;
    assert_eq!(
        (status, &answer["error"]["code"]),
        (401, &json!("invalid_signature"))
    );
    let (status, _) = post_event(&env, &active, Some(signature("wrong", t, &active))).await;
    assert_eq!(status, 401);
    let stale = Some(signature(SECRET, t - 3600, &active));
    let (status, answer) = post_event(&env, &active, stale).await;
    assert_eq!(status, 401);
    assert!(answer["error"]["message"]
        .as_str()
        .unwrap()
        .contains("replayed"));
    assert_eq!(env.chat(&ali, "invoice api", false).await.status(), 402);

    // A signed `active` event restores calls; the same event again is a no-op.
    let signed = signature(SECRET, t, &active);
    let (status, answer) = post_event(&env, &active, Some(signed.clone())).await;
    assert_eq!(
        (status, &answer["applied"]),
        (200, &json!(true)),
        "{answer}"
    );
    assert_eq!(env.chat(&ali, "invoice api", false).await.status(), 200);
    let (status, answer) = post_event(&env, &active, Some(signed.clone())).await;
    assert_eq!(
        (status, &answer["duplicate"]),
        (200, &json!(true)),
        "{answer}"
    );
    // Replayed ten minutes later (a captured request): refused.
    env.app().clock.jump_to(env.app().clock.now_ms() + 600_000);
    let (status, _) = post_event(&env, &active, Some(signed)).await;
    assert_eq!(status, 401);

    // A failed payment (past_due) lets calls on, with a notice; suspended
    // is 403, cancelled 402, each moved by a signed event.
    let moves = [
        ("evt_4", "past_due", 200),
        ("evt_2", "suspended", 403),
        ("evt_3", "cancelled", 402),
    ];
    for (id, status_name, expected) in moves {
        let t = env.app().clock.now_ms() / 1000;
        let body = event(id, status_name);
        let (status, answer) = post_event(&env, &body, Some(signature(SECRET, t, &body))).await;
        assert_eq!(status, 200, "{answer}");
        let response = env.chat(&ali, "invoice api", false).await;
        assert_eq!(response.status(), expected);
        if expected == 200 {
            let notice = response.headers()["x-warden-subscription"]
                .to_str()
                .unwrap();
            assert!(
                notice.contains("payment for the Basic plan failed"),
                "{notice}"
            );
        }
    }
    let (_, sub) = env.admin(&maya, "GET", path, None).await;
    assert_eq!(sub["subscription"]["status"], "cancelled", "{sub}");
    assert_eq!(sub["users"], 5);
    assert!(
        sub["lapsed"].as_str().unwrap().contains("cancelled"),
        "{sub}"
    );
    // The console's overview says so too (on the real clock again: console
    // sessions expire by it).
    env.app().clock.jump_to(warden::clock::now_ms());
    let mut browser = crate::console::Browser::new(&env.base);
    browser.sign_in(&maya).await;
    let response = browser.get("/ui/t/acme").await;
    assert_eq!(response.status(), 200);
    let overview = response.text().await.unwrap();
    assert!(overview.contains("Basic plan"), "{overview}");
    assert!(overview.contains("5 of 5 users"), "{overview}");
    let refused = "Calls are refused: the Basic subscription is cancelled";
    assert!(overview.contains(refused), "{overview}");
    let (_, events) = env
        .admin(
            &maya,
            "GET",
            "/admin/v1/tenants/acme/events?action=subscription.",
            None,
        )
        .await;
    let actors: Vec<&str> = events["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["actor"].as_str().unwrap())
        .collect();
    assert_eq!(
        actors.iter().filter(|a| **a == "billing").count(),
        4,
        "{events}"
    );
    env.stop().await;
}
