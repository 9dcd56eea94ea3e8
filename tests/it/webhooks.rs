//! Webhooks: a tenant admin registers a URL for user events; blocking a
//! user sends it a signed delivery, tried again after the receiver's two
//! failures; a receiver that never answers ends `failed` after the last
//! attempt; every attempt is in the delivery log (API and console), and a
//! removed webhook gets nothing more.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use serde_json::{json, Value};
use warden::state::model::Role;

use crate::common::provider::{Answer, FakeProvider};
use crate::common::*;

const HOOKS: &str = "/admin/v1/tenants/acme/webhooks";

/// A header's value in a lowercased request head.
fn header<'a>(head: &'a str, name: &str) -> Option<&'a str> {
    head.lines()
        .find_map(|l| l.strip_prefix(&format!("{name}:")))
        .map(str::trim)
}

async fn deliveries(env: &TestEnv, admin: &str) -> Vec<Value> {
    let (_, answer) = env
        .admin(admin, "GET", &format!("{HOOKS}/deliveries"), None)
        .await;
    answer["data"].as_array().cloned().unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deliveries_are_signed_retried_logged_and_stop_with_the_webhook() {
    let calls = Arc::new(AtomicUsize::new(0));
    let counter = calls.clone();
    let receiver = FakeProvider::start(move |_| {
        if counter.fetch_add(1, Ordering::SeqCst) < 2 {
            Answer::json(500, r#"{"error":"not yet"}"#)
        } else {
            Answer::json(200, "{}")
        }
    })
    .await;
    let dead = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let env = TestEnv::start_with(vec![TenantSpec::new("acme")], |c| {
        c.routing.tenant_private_addresses = true;
        c.webhooks.retry_base_ms = 50;
        c.webhooks.max_attempts = 4;
    })
    .await;
    let maya = env.user_with_role("acme", "maya", Role::Admin);

    // Bad registrations are refused with the reason.
    for (body, expected) in [
        (json!({ "url": "ftp://example.com/x" }), "http or https"),
        (json!({ "url": "not a url" }), "not a URL"),
        (
            json!({ "url": "http://example.com/", "events": ["user.exploded"] }),
            "no event 'user.exploded'",
        ),
    ] {
        let (status, answer) = env.admin(&maya, "POST", HOOKS, Some(body)).await;
        assert_eq!(status, 400, "{answer}");
        let message = answer["error"]["message"].as_str().unwrap();
        assert!(message.contains(expected), "{message}");
    }
    let url = format!("http://{}/hooks", receiver.addr);
    let body = json!({ "url": url, "events": ["user.blocked"], "description": "ops" });
    let (status, made) = env.admin(&maya, "POST", HOOKS, Some(body)).await;
    assert_eq!(status, 201, "{made}");
    let secret = made["secret"].as_str().unwrap().to_string();
    let body = json!({ "url": format!("http://{dead}/gone") });
    let (status, _) = env.admin(&maya, "POST", HOOKS, Some(body)).await;
    assert_eq!(status, 201);
    let (_, listed) = env.admin(&maya, "GET", HOOKS, None).await;
    assert_eq!(listed["data"].as_array().unwrap().len(), 2);
    assert!(
        !listed.to_string().contains(&secret),
        "a secret is shown once"
    );

    // Blocking ali is delivered: two failures, then the third attempt lands.
    let block = json!({ "reason": "shared his token" });
    let (status, _) = env
        .admin(
            &maya,
            "POST",
            "/admin/v1/tenants/acme/users/ali/block",
            Some(block),
        )
        .await;
    assert_eq!(status, 200);
    assert!(eventually_async(|| async { calls.load(Ordering::SeqCst) >= 3 }).await);
    let heads = receiver.heads.lock().unwrap().clone();
    let bodies = receiver.received();
    assert_eq!(heads.len(), 3, "{heads:?}");
    let (head, sent) = (&heads[2], &bodies[2]);
    assert_eq!(header(head, "warden-event"), Some("user.blocked"));
    let signature = header(head, "warden-signature").unwrap();
    let now = warden::clock::now_secs();
    let verified = warden::signature::verify(&secret, Some(signature), sent.as_bytes(), now, 300);
    assert_eq!(verified, Ok(()), "{head}");
    let event: Value = serde_json::from_str(sent).unwrap();
    assert_eq!(
        (event["type"].as_str(), event["tenant"].as_str()),
        (Some("user.blocked"), Some("acme"))
    );
    assert_eq!(event["data"]["target"], "ali");
    assert_eq!(event["data"]["reason"], "shared his token");
    assert_eq!(bodies[0], bodies[2], "each attempt sends the same body");

    // The log: delivered after 3 attempts; the dead receiver failed after 4.
    let settled = || async {
        let all = deliveries(&env, &maya).await;
        all.len() == 2 && all.iter().all(|d| d["status"] != "pending")
    };
    assert!(
        eventually_async(settled).await,
        "{:?}",
        deliveries(&env, &maya).await
    );
    let all = deliveries(&env, &maya).await;
    let find = |status: &str| all.iter().find(|d| d["status"] == status).cloned().unwrap();
    let (delivered, failed) = (find("delivered"), find("failed"));
    assert_eq!(
        (&delivered["attempts"], &delivered["last_status"]),
        (&json!(3), &json!(200))
    );
    assert_eq!(failed["attempts"], 4, "{failed}");
    assert!(failed["last_error"].is_string(), "{failed}");

    // The console shows them.
    let mut browser = crate::console::Browser::new(&env.base);
    browser.sign_in(&maya).await;
    let page = browser
        .get("/ui/t/acme/webhooks")
        .await
        .text()
        .await
        .unwrap();
    assert!(
        page.contains(&url) && page.contains("delivered") && page.contains("failed"),
        "{page}"
    );

    // Removed: re-enabling ali (another event) is sent nowhere.
    for hook in listed["data"].as_array().unwrap() {
        let path = format!("{HOOKS}/{}", hook["id"].as_str().unwrap());
        let (status, _) = env.admin(&maya, "DELETE", &path, None).await;
        assert_eq!(status, 200);
    }
    let enable = json!({ "reason": "talked it through" });
    env.admin(
        &maya,
        "POST",
        "/admin/v1/tenants/acme/users/ali/enable",
        Some(enable),
    )
    .await;
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert_eq!(deliveries(&env, &maya).await.len(), 2);
    assert_eq!(calls.load(Ordering::SeqCst), 3);
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quotas_at_80_and_100_percent_and_a_trial_ending_are_announced_once() {
    let receiver = FakeProvider::start(|_| Answer::json(200, "{}")).await;
    let env = TestEnv::start_with(vec![TenantSpec::new("ops"), TenantSpec::new("acme")], |c| {
        c.routing.tenant_private_addresses = true;
    })
    .await;
    let root = env.user_with_role("ops", "root", Role::SuperAdmin);
    let maya = env.user_with_role("acme", "maya", Role::Admin);
    let events = ["quota.threshold", "subscription.trial_ending"];
    let hook = json!({ "url": format!("http://{}/hook", receiver.addr), "events": events });
    assert_eq!(env.admin(&maya, "POST", HOOKS, Some(hook)).await.0, 201);
    let limits = json!({ "limits": { "requests_per_day": 5 }, "reason": "trial" });
    let path = "/admin/v1/tenants/acme/users/ali/limits";
    assert_eq!(env.admin(&maya, "PUT", path, Some(limits)).await.0, 200);

    // Calls 4 and 5 of 5 cross 80 % and 100 %; the 6th is refused, and
    // announces nothing more.
    let ali = env.token("acme");
    for expected in [200, 200, 200, 200, 200, 429] {
        let response = env.chat(&ali, "invoice api endpoint", false).await;
        assert_eq!(response.status(), expected);
    }
    let (_, logged) = env
        .admin(
            &maya,
            "GET",
            "/admin/v1/tenants/acme/events?action=quota.threshold",
            None,
        )
        .await;
    let percents: Vec<u64> = logged["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["details"]["percent"].as_u64().unwrap())
        .collect();
    assert_eq!(percents, [100, 80], "newest first: {logged}");
    assert_eq!(
        logged["data"][1]["reason"],
        "user 'ali' has used 80% of its 5 requests a day"
    );

    // A trial's last three days are announced once, by the minute sweep.
    let plan = json!({ "plan": "basic", "reason": "signed up" });
    let subscription = "/admin/v1/tenants/acme/subscription";
    assert_eq!(
        env.admin(&root, "PUT", subscription, Some(plan)).await.0,
        200
    );
    let announce = || warden::admin_api::subscription::announce_trials_ending(env.app()).unwrap();
    assert_eq!(announce(), 0, "14 days left");
    env.app()
        .clock
        .jump_to(env.app().clock.now_ms() + 12 * 24 * 3600 * 1000);
    assert_eq!(announce(), 1);
    assert_eq!(announce(), 0, "once");
    env.app().clock.jump_to(warden::clock::now_ms());

    // The receiver heard all three, signed.
    assert!(
        eventually_async(|| async { receiver.received().len() == 3 }).await,
        "{:?}",
        receiver.received()
    );
    let bodies: Vec<Value> = receiver
        .received()
        .iter()
        .map(|b| serde_json::from_str(b).unwrap())
        .collect();
    let kinds: Vec<&str> = bodies.iter().map(|b| b["type"].as_str().unwrap()).collect();
    assert_eq!(
        kinds,
        [
            "quota.threshold",
            "quota.threshold",
            "subscription.trial_ending"
        ]
    );
    let heads = receiver.heads.lock().unwrap().clone();
    assert!(heads
        .iter()
        .all(|h| header(h, "warden-signature").is_some()));
    env.stop().await;
}
