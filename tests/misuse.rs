//! Misuse detection end to end, over real HTTP with the real intent and
//! deviation plugins: on-task work is never warned; a user who drifts is
//! warned, then blocked (403), with the evidence in the audit log and the
//! review queue; an admin re-enables them with a reason and they work again.

mod common;

use common::*;
use warden::admin::{self, NewUser};
use warden::state::model::{Limits, Role};

const ON_TASK: &[&str] = &[
    "Add a tax field to the invoice REST api",
    "Write a unit test for the invoice total with two tax rates",
    "Document the billing endpoints of the invoice api",
    "Why does the PDF export of an invoice fail when the customer name has an accent?",
    "Review this SQL migration that adds a due_date column to the invoices table",
    "Refactor the invoice handler so the tax calculation lives in its own module",
];

const OFF_TASK: &[&str] = &[
    "Give me a recipe for dinner tonight with pasta",
    "Write a poem for my girlfriend's birthday",
];

/// A second user of `tenant` who may work on the test task.
fn worker(env: &TestEnv, tenant: &str, id: &'static str) -> String {
    admin::create_user(
        &env.app().db,
        NewUser {
            tenant_id: tenant,
            id,
            name: id,
            role: Role::User,
            limits: Limits::default(),
        },
    )
    .unwrap();
    env.token_with(tenant, |r| r.user_id = id)
}

async fn me(env: &TestEnv, token: &str) -> serde_json::Value {
    get_json(&env.http, &format!("{}/v1/me", env.base), token).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drifting_user_is_warned_blocked_reviewed_and_re_enabled() {
    let env = TestEnv::start(vec![TenantSpec::new("acme")]).await;
    let admin_token = env.user_with_role("acme", "maya", Role::Admin);
    let steady = worker(&env, "acme", "bo");
    let drifter = env.token("acme");

    // On-task work, however much of it, is never warned.
    for prompt in ON_TASK.iter().cycle().take(12) {
        let response = env.chat(&steady, prompt, false).await;
        assert_eq!(response.status(), 200, "{prompt}");
        assert!(
            response.headers().get("x-warden-warning").is_none(),
            "on-task prompt warned: {prompt}"
        );
    }
    let standing = me(&env, &steady).await;
    assert_eq!(standing["warning"], serde_json::Value::Null);
    assert_eq!(standing["deviation_score"], 0.0);

    // The drifter: on-task first, then unrelated prompts.
    assert_eq!(env.chat(&drifter, ON_TASK[0], false).await.status(), 200);
    let warned = env.chat(&drifter, OFF_TASK[0], false).await;
    assert_eq!(warned.status(), 200, "a warning lets the call through");
    let warning = warned.headers()["x-warden-warning"]
        .to_str()
        .unwrap()
        .to_string();
    assert!(warning.contains("unrelated"), "{warning}");
    let standing = me(&env, &drifter).await;
    assert_eq!(
        standing["warning"],
        warning.as_str(),
        "/me shows the warning"
    );

    let blocked = env.chat(&drifter, OFF_TASK[1], false).await;
    assert_eq!(blocked.status(), 403);
    let (_, code, message) = error_of(blocked).await;
    assert_eq!(code, "user_blocked");
    assert!(message.contains("admin must re-enable"), "{message}");
    let next = env.chat(&drifter, ON_TASK[1], false).await;
    assert_eq!(next.status(), 403, "blocked for on-task work too");
    // The blocking call is logged with its intent and score beside the 403.
    let db = env.app().db.clone();
    let blocking = || {
        db.recent_requests("acme", 100)
            .unwrap()
            .into_iter()
            .find(|r| r.prompt == OFF_TASK[1])
    };
    assert!(eventually(|| blocking().is_some()).await);
    let logged = blocking().unwrap();
    assert_eq!(logged.status, 403);
    assert_eq!(
        (logged.drift.as_deref(), logged.action.as_deref()),
        (Some("major"), Some("block"))
    );
    assert_eq!(logged.deviation_score, Some(2.0));

    // Every automatic action is an event with its evidence.
    let (status, events) = env
        .admin(
            &admin_token,
            "GET",
            "/admin/v1/tenants/acme/events?user=ali&action=user.",
            None,
        )
        .await;
    assert_eq!(status, 200, "{events}");
    let events = events["data"].as_array().unwrap();
    let actions: Vec<&str> = events
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert_eq!(actions, ["user.block", "user.warn"], "newest first");
    let block = &events[0];
    assert_eq!(block["actor"], "warden");
    let details = &block["details"];
    assert_eq!(details["intent"]["drift"], "major");
    assert_eq!(details["score_before"], 1.0);
    assert_eq!(details["score"], 2.0);
    // The signals count the earlier requests of the hour: one on-task, one warned.
    assert_eq!(details["signals"]["requests_last_hour"], 2);
    let prompts: Vec<&str> = details["prompts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["prompt"].as_str().unwrap())
        .collect();
    assert_eq!(prompts, OFF_TASK, "both off-task prompts, oldest first");
    assert!(block["reason"].as_str().unwrap().contains("unrelated"));
    let warn_prompts = events[1]["details"]["prompts"].as_array().unwrap();
    assert_eq!(warn_prompts.len(), 1);
    // The steady user has no events at all.
    let (_, none) = env
        .admin(
            &admin_token,
            "GET",
            "/admin/v1/tenants/acme/events?user=bo",
            None,
        )
        .await;
    assert_eq!(none["data"].as_array().unwrap().len(), 0);

    // The review queue shows the blocked user with that evidence.
    let (status, queue) = env
        .admin(&admin_token, "GET", "/admin/v1/tenants/acme/review", None)
        .await;
    assert_eq!(status, 200);
    let queue = queue["data"].as_array().unwrap();
    assert_eq!(queue.len(), 1, "only the drifter: {queue:?}");
    assert_eq!(queue[0]["user"]["id"], "ali");
    assert_eq!(queue[0]["user"]["status"], "blocked");
    assert_eq!(queue[0]["evidence"]["id"], block["id"]);

    // Re-enabling needs a reason, records who and why, and resets the score.
    let path = "/admin/v1/tenants/acme/users/ali/enable";
    let (status, _) = env
        .admin(&admin_token, "POST", path, Some(serde_json::json!({})))
        .await;
    assert_eq!(status, 400, "no reason, no change");
    let reason = "talked to Ali: personal prompts stop here";
    let (status, _) = env
        .admin(
            &admin_token,
            "POST",
            path,
            Some(serde_json::json!({ "reason": reason })),
        )
        .await;
    assert_eq!(status, 200);
    let again = env.chat(&drifter, ON_TASK[2], false).await;
    assert_eq!(again.status(), 200);
    assert!(again.headers().get("x-warden-warning").is_none());
    let standing = me(&env, &drifter).await;
    assert_eq!(standing["deviation_score"], 0.0);
    assert_eq!(standing["status"], "active");

    let (_, enabled) = env
        .admin(
            &admin_token,
            "GET",
            "/admin/v1/tenants/acme/events?user=ali&action=user.enable",
            None,
        )
        .await;
    let enabled = &enabled["data"][0];
    assert_eq!(enabled["actor"], "acme/maya");
    assert_eq!(enabled["reason"], reason);
    let (_, queue) = env
        .admin(&admin_token, "GET", "/admin/v1/tenants/acme/review", None)
        .await;
    assert_eq!(queue["data"].as_array().unwrap().len(), 0);
    env.stop().await;
}

/// The default policy with embedded classification switched on.
fn embedded_policy() -> String {
    let default = std::fs::read_to_string(repo_root().join("policies/default.toml")).unwrap();
    format!("embedded_intent = true\n{default}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn embedded_classification_is_logged_and_stripped_from_plain_and_streamed_answers() {
    let env = TestEnv::start(vec![
        TenantSpec::new("acme").with_policy(embedded_policy()),
        TenantSpec::new("plain"),
    ])
    .await;
    let (acme, plain) = (env.token("acme"), env.token("plain"));
    let prompt = ON_TASK[1];

    // What the model answers without the instruction is what the client sees with it.
    let (status, reference) = env.chat_json(&plain, prompt).await;
    assert_eq!(status, 200);
    let expected = reference["choices"][0]["message"]["content"]
        .as_str()
        .unwrap()
        .to_string();
    let (status, answer) = env.chat_json(&acme, prompt).await;
    assert_eq!(status, 200);
    assert_eq!(
        answer["choices"][0]["message"]["content"],
        expected.as_str()
    );

    let streamed = env.chat(&acme, prompt, true).await;
    assert_eq!(streamed.status(), 200);
    let sse = streamed.text().await.unwrap();
    assert_eq!(streamed_content(&sse), expected, "{sse}");
    assert!(!sse.contains("warden-intent"), "{sse}");
    assert!(
        sse.ends_with("data: [DONE]\n\n"),
        "the stream stays well formed"
    );

    // An off-task prompt: the model's label is logged beside the local one.
    let (status, _) = env.chat_json(&acme, OFF_TASK[0]).await;
    assert_eq!(status, 200);
    let logged = || env.app().db.recent_requests("acme", 10).unwrap();
    assert!(eventually(|| logged().len() == 3).await);
    let labels: Vec<(Option<String>, Option<String>)> = logged()
        .into_iter()
        .map(|r| (r.intent, r.model_intent))
        .collect();
    assert_eq!(
        labels,
        [
            (Some("off_topic".into()), Some("off_topic".into())),
            (Some("test".into()), Some("test".into())),
            (Some("test".into()), Some("test".into())),
        ],
        "newest first"
    );
    // A tenant without the option forwards no instruction and logs no model label.
    assert_eq!(
        env.app().db.recent_requests("plain", 1).unwrap()[0].model_intent,
        None
    );
    env.stop().await;
}
