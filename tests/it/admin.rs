//! The admin API and `/v1/me` over real HTTP: the review loop (block,
//! re-enable, limits) with its audit trail, tokens issued and revoked through
//! the API, log pagination, tenant isolation on every route, and state that
//! survives a restart.

use crate::common::*;
use serde_json::json;
use warden::state::model::Role;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_admin_blocks_re_enables_and_limits_a_user_with_an_audit_trail() {
    let env = TestEnv::start(vec![TenantSpec::new("acme")]).await;
    let admin = env.user_with_role("acme", "maya", Role::Admin);
    let ali = env.token("acme");
    assert_eq!(env.chat(&ali, "invoice api", false).await.status(), 200);

    let (status, users) = env
        .admin(&admin, "GET", "/admin/v1/tenants/acme/users", None)
        .await;
    assert_eq!(status, 200);
    let ali_view = users["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|u| u["user"]["id"] == "ali")
        .unwrap();
    assert_eq!(ali_view["usage"]["requests_today"], 1);

    // A change of access needs a reason.
    let (status, body) = env
        .admin(
            &admin,
            "POST",
            "/admin/v1/tenants/acme/users/ali/block",
            Some(json!({})),
        )
        .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (400, Some("missing_reason"))
    );

    let (status, _) = env
        .admin(
            &admin,
            "POST",
            "/admin/v1/tenants/acme/users/ali/block",
            Some(json!({"reason": "recipes on the clock"})),
        )
        .await;
    assert_eq!(status, 200);
    let blocked = env.chat(&ali, "invoice api", false).await;
    assert_eq!(blocked.status(), 403);
    assert!(error_of(blocked).await.2.contains("admin must re-enable"));

    let (status, body) = env
        .admin(
            &admin,
            "POST",
            "/admin/v1/tenants/acme/users/ali/enable",
            Some(json!({"reason": "talked it through"})),
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(body["user"]["status"], "active");
    assert_eq!(body["deviation_score"], 0.0);
    assert_eq!(env.chat(&ali, "invoice api", false).await.status(), 200);

    let (status, _) = env
        .admin(
            &admin,
            "PUT",
            "/admin/v1/tenants/acme/users/ali/limits",
            Some(json!({"limits": {"requests_per_day": 2}, "reason": "lower daily cap"})),
        )
        .await;
    assert_eq!(status, 200);
    let limited = env.chat(&ali, "invoice api", false).await;
    assert_eq!(limited.status(), 429, "two requests already made today");

    let (_, events) = env
        .admin(&admin, "GET", "/admin/v1/tenants/acme/events", None)
        .await;
    let actions: Vec<(&str, &str, &str)> = events["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["action"].as_str().unwrap(),
                e["actor"].as_str().unwrap(),
                e["reason"].as_str().unwrap_or(""),
            )
        })
        .collect();
    assert_eq!(
        actions,
        [
            ("user.limits", "acme/maya", "lower daily cap"),
            ("user.enable", "acme/maya", "talked it through"),
            ("user.block", "acme/maya", "recipes on the clock"),
        ]
    );

    // A plain user cannot use the admin API.
    let (status, _) = env
        .admin(&ali, "GET", "/admin/v1/tenants/acme/users", None)
        .await;
    assert_eq!(status, 403);
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_issued_through_the_api_work_and_revocation_is_immediate() {
    let env = TestEnv::start(vec![TenantSpec::new("acme")]).await;
    let admin = env.user_with_role("acme", "maya", Role::Admin);
    let (status, issued) = env
        .admin(
            &admin,
            "POST",
            "/admin/v1/tenants/acme/tokens",
            Some(
                json!({"user": "ali", "tasks": [TASK], "models": ["gpt-4o-mini"], "ttl_secs": 600}),
            ),
        )
        .await;
    assert_eq!(status, 201);
    let token = issued["token"].as_str().unwrap();
    let jti = issued["jti"].as_str().unwrap();
    assert_eq!(env.chat(token, "invoice api", false).await.status(), 200);

    let (_, listed) = env
        .admin(&admin, "GET", "/admin/v1/tenants/acme/tokens", None)
        .await;
    let text = listed.to_string();
    assert!(text.contains(jti));
    assert!(!text.contains(token), "a token is shown only when issued");

    let path = format!("/admin/v1/tenants/acme/tokens/{jti}/revoke");
    let (status, _) = env
        .admin(
            &admin,
            "POST",
            &path,
            Some(json!({"reason": "laptop stolen"})),
        )
        .await;
    assert_eq!(status, 200);
    let refused = env.chat(token, "invoice api", false).await;
    assert_eq!(refused.status(), 401);
    assert!(error_of(refused).await.2.contains("revoked"));
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tenant_admin_cannot_reach_another_tenant_on_any_route() {
    let env = TestEnv::start(vec![TenantSpec::new("acme"), TenantSpec::new("globex")]).await;
    let acme_admin = env.user_with_role("acme", "maya", Role::Admin);
    let globex_admin = env.user_with_role("globex", "gina", Role::Admin);
    let globex_user = env.token("globex");
    assert_eq!(
        env.chat(&globex_user, "invoice api", false).await.status(),
        200
    );
    let (_, issued) = env
        .admin(
            &globex_admin,
            "POST",
            "/admin/v1/tenants/globex/tokens",
            Some(json!({"user": "ali", "tasks": [TASK]})),
        )
        .await;
    let globex_jti = issued["jti"].as_str().unwrap().to_string();

    let reason = json!({"reason": "trying"});
    let routes: Vec<(&str, String, Option<serde_json::Value>)> = vec![
        ("GET", "/admin/v1/tenants/globex".into(), None),
        ("GET", "/admin/v1/tenants/globex/users".into(), None),
        (
            "POST",
            "/admin/v1/tenants/globex/users".into(),
            Some(json!({"id": "mole"})),
        ),
        ("GET", "/admin/v1/tenants/globex/users/ali".into(), None),
        (
            "POST",
            "/admin/v1/tenants/globex/users/ali/block".into(),
            Some(reason.clone()),
        ),
        (
            "POST",
            "/admin/v1/tenants/globex/users/ali/enable".into(),
            Some(reason.clone()),
        ),
        (
            "PUT",
            "/admin/v1/tenants/globex/users/ali/limits".into(),
            Some(json!({"limits": {}, "reason": "x"})),
        ),
        ("GET", "/admin/v1/tenants/globex/tasks".into(), None),
        (
            "POST",
            "/admin/v1/tenants/globex/tasks".into(),
            Some(json!({"id": "t2", "title": "x"})),
        ),
        (
            "POST",
            format!("/admin/v1/tenants/globex/tasks/{TASK}/archive"),
            Some(reason.clone()),
        ),
        ("GET", "/admin/v1/tenants/globex/tokens".into(), None),
        (
            "POST",
            "/admin/v1/tenants/globex/tokens".into(),
            Some(json!({"user": "ali", "tasks": [TASK]})),
        ),
        (
            "POST",
            format!("/admin/v1/tenants/globex/tokens/{globex_jti}/revoke"),
            Some(reason.clone()),
        ),
        ("GET", "/admin/v1/tenants/globex/logs".into(), None),
        ("GET", "/admin/v1/tenants/globex/events".into(), None),
        ("GET", "/admin/v1/tenants/globex/usage".into(), None),
        (
            "POST",
            "/admin/v1/tenants/globex/suspend".into(),
            Some(reason.clone()),
        ),
        ("GET", "/admin/v1/tenants/globex/keys".into(), None),
        (
            "POST",
            "/admin/v1/tenants/globex/keys/rotate".into(),
            Some(reason.clone()),
        ),
    ];
    for (method, path, body) in &routes {
        let (status, response) = env.admin(&acme_admin, method, path, body.clone()).await;
        assert_eq!(status, 404, "{method} {path}: {response}");
    }
    // Nothing changed on globex's side, and it is not even listed.
    assert_eq!(
        env.chat(&globex_user, "invoice api", false).await.status(),
        200
    );
    let (_, tenants) = env
        .admin(&acme_admin, "GET", "/admin/v1/tenants", None)
        .await;
    assert_eq!(tenants["data"].as_array().unwrap().len(), 1);
    // A super_admin sees both.
    let root = env.user_with_role("acme", "root", Role::SuperAdmin);
    let (status, _) = env
        .admin(&root, "GET", "/admin/v1/tenants/globex/users", None)
        .await;
    assert_eq!(status, 200);
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logs_page_newest_first_with_filters_and_survive_a_restart() {
    let mut env = TestEnv::start(vec![TenantSpec::new("acme")]).await;
    let admin = env.user_with_role("acme", "maya", Role::Admin);
    let ali = env.token("acme");
    for i in 0..5 {
        let prompt = format!("invoice api change number {i}");
        assert_eq!(env.chat(&ali, &prompt, false).await.status(), 200);
        tokio::time::sleep(std::time::Duration::from_millis(3)).await;
    }
    assert_eq!(
        env.post_raw(
            &ali,
            Some("not-mine"),
            r#"{"model":"gpt-4o-mini","messages":[{"role":"user","content":"x"}]}"#.into()
        )
        .await
        .status(),
        403
    );
    let db = env.app().db.clone();
    assert!(eventually(|| db.recent_requests("acme", 10).unwrap().len() == 6).await);
    drop(db); // the restart below needs the database closed

    let mut prompts = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let path = match &cursor {
            Some(c) => format!("/admin/v1/tenants/acme/logs?status=200&limit=2&cursor={c}"),
            None => "/admin/v1/tenants/acme/logs?status=200&limit=2".into(),
        };
        let (status, page) = env.admin(&admin, "GET", &path, None).await;
        assert_eq!(status, 200);
        for record in page["data"].as_array().unwrap() {
            prompts.push(record["prompt"].as_str().unwrap().to_string());
        }
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_string()),
            None => break,
        }
    }
    let expected: Vec<String> = (0..5)
        .rev()
        .map(|i| format!("invoice api change number {i}"))
        .collect();
    assert_eq!(prompts, expected);
    let (_, denied) = env
        .admin(
            &admin,
            "GET",
            "/admin/v1/tenants/acme/logs?status=403",
            None,
        )
        .await;
    assert_eq!(denied["data"].as_array().unwrap().len(), 1);
    let (status, _) = env
        .admin(&admin, "GET", "/admin/v1/tenants/acme/logs?cursor=zz", None)
        .await;
    assert_eq!(status, 400);

    // /v1/me reflects usage; a restart keeps tokens, usage and logs.
    let me: serde_json::Value = get_json(&env.http, &format!("{}/v1/me", env.base), &ali).await;
    assert_eq!(
        me["usage"]["requests_today"], 5,
        "the refused call did not count"
    );
    assert_eq!(me["usage"]["requests_this_week"], 5);
    assert_eq!(me["usage"]["tokens_this_week"], me["usage"]["tokens_today"]);
    assert_eq!(me["status"], "active");
    assert_eq!(me["tasks"][0]["id"], TASK);
    env.restart().await;
    let me: serde_json::Value = get_json(&env.http, &format!("{}/v1/me", env.base), &ali).await;
    assert_eq!(me["usage"]["requests_today"], 5, "usage survives a restart");
    let (_, logs) = env
        .admin(&admin, "GET", "/admin/v1/tenants/acme/logs", None)
        .await;
    assert_eq!(logs["data"].as_array().unwrap().len(), 6);
    assert_eq!(env.chat(&ali, "invoice api", false).await.status(), 200);
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rotated_key_signs_new_tokens_and_old_tokens_stay_valid() {
    let env = TestEnv::start(vec![TenantSpec::new("acme")]).await;
    let admin = env.user_with_role("acme", "maya", Role::Admin);
    let old = env.token("acme");
    let (status, rotated) = env
        .admin(
            &admin,
            "POST",
            "/admin/v1/tenants/acme/keys/rotate",
            Some(json!({"reason": "quarterly"})),
        )
        .await;
    assert_eq!(status, 201);
    assert_eq!(rotated["generation"], 2);
    let new = env.token("acme");
    let kid = |token: &str| -> String {
        use base64::Engine as _;
        let header = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(token.split('.').next().unwrap())
            .unwrap();
        serde_json::from_slice::<serde_json::Value>(&header).unwrap()["kid"]
            .as_str()
            .unwrap()
            .to_string()
    };
    assert_eq!(kid(&new), rotated["kid"].as_str().unwrap());
    assert_ne!(kid(&old), kid(&new));
    assert_eq!(
        env.chat(&old, "invoice api", false).await.status(),
        200,
        "old tokens stay valid"
    );
    assert_eq!(env.chat(&new, "invoice api", false).await.status(), 200);
    // The rotation is in the audit log.
    let (_, events) = env
        .admin(&admin, "GET", "/admin/v1/tenants/acme/events", None)
        .await;
    assert_eq!(events["data"][0]["action"], "key.rotate");
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn usage_reports_sum_per_day_user_and_task_with_totals() {
    // The server's own price for the model (per million tokens) makes the
    // estimated cost exact: 1,000 µ$ per token in, 2,000 per token out.
    let env = TestEnv::start_with(
        vec![TenantSpec::new("acme"), TenantSpec::new("globex")],
        |c| {
            c.pricing = std::collections::HashMap::from([(
                "gpt-4o-mini".to_string(),
                warden::pricing::Price {
                    input: 1000.0,
                    output: 2000.0,
                    cached_input: None,
                },
            )])
        },
    )
    .await;
    let admin = env.user_with_role("acme", "maya", Role::Admin);
    let (status, _) = env
        .admin(
            &admin,
            "POST",
            "/admin/v1/tenants/acme/users",
            Some(json!({"id": "bo"})),
        )
        .await;
    assert_eq!(status, 201);
    let (_, issued) = env
        .admin(
            &admin,
            "POST",
            "/admin/v1/tenants/acme/tokens",
            Some(json!({"user": "bo", "tasks": [TASK]})),
        )
        .await;
    let (ali, bo) = (
        env.token("acme"),
        issued["token"].as_str().unwrap().to_string(),
    );

    let mut tokens = std::collections::HashMap::<&str, u64>::new();
    for (who, token, calls) in [("ali", &ali, 3), ("bo", &bo, 2)] {
        for _ in 0..calls {
            let response = env.chat(token, "invoice api endpoint", false).await;
            assert_eq!(response.status(), 200);
            let body: serde_json::Value =
                serde_json::from_str(&response.text().await.unwrap()).unwrap();
            *tokens.entry(who).or_default() += body["usage"]["total_tokens"].as_u64().unwrap();
        }
    }
    // A refused call (a task outside ali's token) counts as a failed request.
    let refused = env
        .post_raw(
            &ali,
            Some("payroll"),
            json!({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]})
                .to_string(),
        )
        .await;
    assert_eq!(refused.status(), 403);

    let report = |query: &'static str| {
        let env = &env;
        let admin = admin.clone();
        async move {
            let path = format!("/admin/v1/tenants/acme/usage{query}");
            let mut last = serde_json::Value::Null;
            // The state writer rolls usage up within a few ticks.
            for _ in 0..100 {
                let (status, body) = env.admin(&admin, "GET", &path, None).await;
                assert_eq!(status, 200, "{body}");
                if body["totals"]["requests"] == 6 {
                    return body;
                }
                last = body;
                tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            }
            panic!("usage never reached 6 requests: {last}");
        }
    };
    let by_user = report("?group_by=user").await;
    assert_eq!(by_user["timezone"], "UTC");
    let rows = by_user["data"].as_array().unwrap();
    assert_eq!(rows.len(), 2, "{by_user}");
    assert_eq!(rows[0]["user"], "ali");
    assert_eq!(rows[0]["requests"], 4);
    assert_eq!(rows[0]["succeeded"], 3);
    assert_eq!(rows[0]["failed"], 1);
    assert_eq!(
        rows[0]["tokens_in"].as_u64().unwrap() + rows[0]["tokens_out"].as_u64().unwrap(),
        tokens["ali"]
    );
    assert!(rows[0].get("day").is_none() && rows[0].get("task").is_none());
    assert_eq!(rows[1]["user"], "bo");
    assert_eq!(rows[1]["requests"], 2);
    assert_eq!(
        by_user["totals"]["tokens_in"].as_u64().unwrap()
            + by_user["totals"]["tokens_out"].as_u64().unwrap(),
        tokens["ali"] + tokens["bo"]
    );
    let totals = &by_user["totals"];
    assert_eq!(
        totals["cost_micro_usd"].as_u64().unwrap(),
        totals["tokens_in"].as_u64().unwrap() * 1000
            + totals["tokens_out"].as_u64().unwrap() * 2000
    );

    // Default grouping: day × user × task; filters narrow the rows and totals.
    let full = report("").await;
    let today = &full["to"];
    assert!(full["data"]
        .as_array()
        .unwrap()
        .iter()
        .all(|r| r["day"] == *today));
    let tasks: Vec<_> = full["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| (r["user"].as_str().unwrap(), r["task"].as_str().unwrap()))
        .collect();
    assert_eq!(tasks, [("ali", TASK), ("ali", "payroll"), ("bo", TASK)]);
    let (_, only_bo) = env
        .admin(
            &admin,
            "GET",
            "/admin/v1/tenants/acme/usage?user=bo&group_by=task",
            None,
        )
        .await;
    assert_eq!(only_bo["totals"]["requests"], 2, "{only_bo}");
    assert_eq!(only_bo["data"][0]["task"], TASK);

    // A range before any traffic is empty; bad parameters are 400.
    let (_, empty) = env
        .admin(
            &admin,
            "GET",
            "/admin/v1/tenants/acme/usage?from=2020-01-01&to=2020-01-31",
            None,
        )
        .await;
    assert_eq!(empty["totals"]["requests"], 0, "{empty}");
    assert_eq!(empty["data"], json!([]));
    for bad in ["?from=yesterday", "?group_by=model"] {
        let (status, body) = env
            .admin(
                &admin,
                "GET",
                &format!("/admin/v1/tenants/acme/usage{bad}"),
                None,
            )
            .await;
        assert_eq!(status, 400, "{bad}: {body}");
        assert_eq!(body["error"]["code"], "invalid_parameter");
    }
    // Another tenant's admin does not see acme's usage.
    let globex_admin = env.user_with_role("globex", "gina", Role::Admin);
    let (status, _) = env
        .admin(&globex_admin, "GET", "/admin/v1/tenants/acme/usage", None)
        .await;
    assert_eq!(status, 404);
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_suspended_tenant_is_refused_until_re_activated() {
    let env = TestEnv::start(vec![TenantSpec::new("acme"), TenantSpec::new("globex")]).await;
    let (acme, globex) = (env.token("acme"), env.token("globex"));
    let tenant_admin = env.user_with_role("acme", "maya", Role::Admin);
    let root = env.user_with_role("globex", "root", Role::SuperAdmin);
    let reason = Some(json!({"reason": "unpaid invoice"}));

    // A tenant admin cannot suspend (even their own tenant).
    let (status, _) = env
        .admin(
            &tenant_admin,
            "POST",
            "/admin/v1/tenants/acme/suspend",
            reason.clone(),
        )
        .await;
    assert_eq!(status, 403);
    let (status, body) = env
        .admin(
            &root,
            "POST",
            "/admin/v1/tenants/acme/suspend",
            reason.clone(),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["status"], "suspended");
    let refused = env.chat(&acme, "invoice api", false).await;
    assert_eq!(refused.status(), 403);
    assert!(error_of(refused).await.2.contains("suspended"));
    assert_eq!(env.chat(&globex, "invoice api", false).await.status(), 200);

    let (status, _) = env
        .admin(&root, "POST", "/admin/v1/tenants/acme/activate", reason)
        .await;
    assert_eq!(status, 200);
    assert_eq!(env.chat(&acme, "invoice api", false).await.status(), 200);
    let (_, events) = env
        .admin(&tenant_admin, "GET", "/admin/v1/tenants/acme/events", None)
        .await;
    let actions: Vec<_> = events["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert_eq!(actions[..2], ["tenant.activate", "tenant.suspend"]);
    env.stop().await;
}

/// The console and the local CLI call the admin operations as typed
/// functions; the JSON API is an adapter over the same ones. A token issued
/// and revoked through them works, then fails, like one issued over HTTP,
/// and the caller's scope holds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_typed_admin_operations_are_the_ones_the_api_serves() {
    use warden::admin_api::tenants::Reason;
    use warden::admin_api::tokens::{self, IssueToken};
    use warden::admin_api::Caller;

    let env = TestEnv::start(vec![TenantSpec::new("acme"), TenantSpec::new("globex")]).await;
    let maya = Caller {
        tenant_id: "acme".into(),
        user_id: "maya".into(),
        role: Role::Admin,
    };
    let request = || IssueToken {
        user: "ali".into(),
        tasks: vec![TASK.into()],
        ..IssueToken::default()
    };
    let issued = tokens::issue(env.app(), &maya, "acme", request()).unwrap();
    assert_eq!(issued.user, "ali");
    assert_eq!(
        env.chat(&issued.token, "invoice api", false).await.status(),
        200
    );
    // Another tenant is out of an admin's scope, typed or not.
    let other = tokens::issue(env.app(), &maya, "globex", request()).unwrap_err();
    assert_eq!(other.status(), 404);
    let reason = Reason {
        reason: Some("laptop lost".into()),
    };
    let revoked = tokens::revoke(env.app(), &maya, "acme", &issued.jti, reason).unwrap();
    assert!(revoked.revoked);
    assert_eq!(
        env.chat(&issued.token, "invoice api", false).await.status(),
        401
    );
    // The JSON API lists the same token, revoked.
    let admin = env.user_with_role("acme", "root", Role::Admin);
    let (status, listed) = env
        .admin(&admin, "GET", "/admin/v1/tenants/acme/tokens", None)
        .await;
    assert_eq!(status, 200);
    let found = listed["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["jti"] == issued.jti.as_str());
    assert_eq!(found.unwrap()["revoked"], true, "{listed}");
    env.stop().await;
}
