//! Every call names a task; each rule of task validation and of the token's
//! bindings refuses with a status and a message that says which rule failed.

use crate::common::*;
use warden::state::model::Task;

fn task(id: &str, endpoints: &[&str], models: &[&str], active: bool) -> Task {
    Task {
        tenant_id: "acme".into(),
        id: id.into(),
        title: id.into(),
        description: String::new(),
        keywords: vec!["invoice".into()],
        endpoints: endpoints.iter().map(|s| s.to_string()).collect(),
        models: models.iter().map(|s| s.to_string()).collect(),
        providers: vec![],
        active,
        examples: vec![],
    }
}

async fn refusal(
    env: &TestEnv,
    token: &str,
    task: Option<&str>,
    model: &str,
) -> (u16, String, String) {
    let body = serde_json::json!({
        "model": model,
        "messages": [{"role": "user", "content": "invoice api endpoint"}],
    });
    let response = env.post_raw(token, task, body.to_string()).await;
    let status = response.status().as_u16();
    let (_, code, message) = error_of(response).await;
    (status, code, message)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_task_and_token_rule_says_what_failed() {
    let env = TestEnv::start(vec![TenantSpec::new("acme")]).await;
    let db = &env.app().db;
    for t in [
        task("old", &[], &[], false),
        task("embeddings-only", &["embeddings"], &[], true),
        task("gpt-4o-only", &[], &["gpt-4o"], true),
    ] {
        warden::admin::create_task(db, t).unwrap();
    }
    let narrow = env.token("acme"); // task invoice-backend, model gpt-4o-mini
    let broad = env.token_with("acme", |r| {
        r.tasks = [
            "invoice-backend",
            "ghost",
            "old",
            "embeddings-only",
            "gpt-4o-only",
        ]
        .map(String::from)
        .to_vec();
        r.models = vec![];
    });
    let embeddings_token = env.token_with("acme", |r| r.endpoints = vec!["embeddings".into()]);

    // (rule, token, task, model) → (status, code, what the message says)
    let mini = "gpt-4o-mini";
    let cases = [
        (
            "no task",
            &narrow,
            None,
            mini,
            400,
            "missing_task_id",
            "every call must name its task",
        ),
        (
            "not the token's",
            &narrow,
            Some("gpt-4o-only"),
            mini,
            403,
            "task_not_allowed",
            "not one of this token's tasks",
        ),
        (
            "unknown task",
            &broad,
            Some("ghost"),
            mini,
            403,
            "task_not_allowed",
            "does not exist",
        ),
        (
            "archived",
            &broad,
            Some("old"),
            mini,
            403,
            "task_not_allowed",
            "is archived",
        ),
        (
            "task endpoint",
            &broad,
            Some("embeddings-only"),
            mini,
            403,
            "task_not_allowed",
            "does not allow the 'chat.completions' endpoint",
        ),
        (
            "token model",
            &narrow,
            Some(TASK),
            "gpt-4o",
            403,
            "task_not_allowed",
            "this token may not use model 'gpt-4o'",
        ),
        (
            "task model",
            &broad,
            Some("gpt-4o-only"),
            mini,
            403,
            "task_not_allowed",
            "does not allow model 'gpt-4o-mini'",
        ),
        (
            "token endpoint",
            &embeddings_token,
            Some(TASK),
            mini,
            403,
            "access_denied",
            "may not call the 'chat.completions' endpoint",
        ),
    ];
    for (rule, token, task, model, status, code, says) in cases {
        let (got_status, got_code, message) = refusal(&env, token, task, model).await;
        assert_eq!(
            (got_status, got_code.as_str()),
            (status, code),
            "{rule}: {message}"
        );
        assert!(
            message.contains(says),
            "{rule}: '{message}' should say '{says}'"
        );
    }
    // And the allowed combinations pass.
    for (token, task, model) in [
        (&narrow, TASK, "gpt-4o-mini"),
        (&broad, "gpt-4o-only", "gpt-4o"),
    ] {
        let body = serde_json::json!({
            "model": model,
            "messages": [{"role": "user", "content": "invoice api endpoint"}],
        });
        let response = env.post_raw(token, Some(task), body.to_string()).await;
        assert_eq!(response.status(), 200, "{task} with {model}");
    }
    env.stop().await;
}
