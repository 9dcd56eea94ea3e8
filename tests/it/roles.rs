//! Roles and groups. The role × route matrix of the README, route by route,
//! for the admin API and the console: super_admin, admin, manager (the
//! users of their own groups), viewer (read-only) and user. Refusals are 403
//! (the role lacks the access) or 404 (another tenant, or a user a manager
//! does not reach), never the data. Then groups: limits shared by their
//! members, and a plan's monthly allowance shared by the whole tenant.

use serde_json::{json, Value};
use warden::domain::plans::{default_catalogue, Plan};
use warden::state::model::Role;
use warden::token::TokenRequest;

use crate::common::*;
use crate::console::{field, Browser};

/// The roles, in the order of each matrix row's letters.
const ROLES: [&str; 5] = ["super_admin", "admin", "manager", "viewer", "user"];

/// What a role gets: `y` past the access check (2xx, or 400/409 for the
/// deliberately incomplete body), `4` past it but the thing named does not
/// exist (404), `n` refused (403), `h` hidden (404, as if absent).
fn verdict(status: u16) -> char {
    match status {
        403 => 'n',
        404 => 'h',
        401 => '!',
        _ => 'y',
    }
}

/// acme: maya (admin), mo (manager of group support), vic (viewer), ali and
/// bo (users; ali in support, bo in other); a super_admin in ops. Returns
/// the env and a token per role, in [`ROLES`] order.
async fn organisation() -> (TestEnv, Vec<String>) {
    let env = TestEnv::start(vec![
        TenantSpec::new("ops"),
        TenantSpec::new("acme"),
        TenantSpec::new("globex"),
    ])
    .await;
    let root = env.user_with_role("ops", "root", Role::SuperAdmin);
    let maya = env.user_with_role("acme", "maya", Role::Admin);
    let mo = env.user_with_role("acme", "mo", Role::Manager);
    let vic = env.user_with_role("acme", "vic", Role::Viewer);
    let ali = env.token("acme");
    for group in ["support", "other"] {
        let body = json!({ "id": group, "name": format!("Team {group}") });
        let (status, answer) = env
            .admin(&maya, "POST", "/admin/v1/tenants/acme/groups", Some(body))
            .await;
        assert_eq!(status, 201, "{answer}");
    }
    let body = json!({ "id": "bo", "groups": ["other"] });
    let (status, answer) = env
        .admin(&maya, "POST", "/admin/v1/tenants/acme/users", Some(body))
        .await;
    assert_eq!(status, 201, "{answer}");
    for member in ["mo", "ali"] {
        let path = format!("/admin/v1/tenants/acme/groups/support/members/{member}");
        let (status, answer) = env.admin(&maya, "PUT", &path, None).await;
        assert_eq!(status, 200, "{answer}");
    }
    (env, vec![root, maya, mo, vic, ali])
}

/// Every admin route (both adapters' tables), with the expected letter per role.
fn admin_matrix() -> Vec<(&'static str, String, Option<Value>, &'static str)> {
    let t = "/admin/v1/tenants/acme";
    let none = None;
    let empty = || Some(json!({}));
    let bad_id = || Some(json!({ "id": "bad id!" }));
    vec![
        ("GET", "/admin/v1/tenants".into(), none.clone(), "yyyyn"),
        ("POST", "/admin/v1/tenants".into(), bad_id(), "ynnnn"),
        ("GET", t.into(), none.clone(), "yynyn"),
        ("POST", format!("{t}/suspend"), empty(), "ynnnn"),
        ("POST", format!("{t}/activate"), empty(), "ynnnn"),
        (
            "GET",
            "/admin/v1/tenants/globex/users".into(),
            none.clone(),
            "yhhhn",
        ),
        ("GET", format!("{t}/users"), none.clone(), "yyyyn"),
        ("POST", format!("{t}/users"), bad_id(), "yynnn"),
        ("GET", format!("{t}/users/ali"), none.clone(), "yyyyn"),
        ("GET", format!("{t}/users/bo"), none.clone(), "yyhyn"),
        ("GET", format!("{t}/review"), none.clone(), "yyyyn"),
        ("POST", format!("{t}/users/ali/block"), empty(), "yyynn"),
        ("POST", format!("{t}/users/bo/block"), empty(), "yyhnn"),
        ("POST", format!("{t}/users/ali/enable"), empty(), "yyynn"),
        (
            "POST",
            format!("{t}/users/ali/login-link"),
            none.clone(),
            "yynnn",
        ),
        (
            "PUT",
            format!("{t}/users/ali/limits"),
            Some(json!({ "limits": {} })),
            "yyynn",
        ),
        (
            "PUT",
            format!("{t}/users/bo/limits"),
            Some(json!({ "limits": {} })),
            "yyhnn",
        ),
        (
            "POST",
            format!("{t}/users/ali/prompts/r1/on-task"),
            empty(),
            "hhhnn",
        ),
        (
            "POST",
            format!("{t}/users/bo/prompts/r1/on-task"),
            empty(),
            "hhhnn",
        ),
        ("GET", format!("{t}/tasks"), none.clone(), "yyyyn"),
        (
            "POST",
            format!("{t}/tasks"),
            Some(json!({ "id": "bad id!", "title": "x" })),
            "yynnn",
        ),
        ("GET", format!("{t}/tasks/{TASK}"), none.clone(), "yyyyn"),
        ("PATCH", format!("{t}/tasks/{TASK}"), empty(), "yynnn"),
        (
            "POST",
            format!("{t}/tasks/{TASK}/archive"),
            empty(),
            "yynnn",
        ),
        ("GET", format!("{t}/misuse"), none.clone(), "yynyn"),
        (
            "PUT",
            format!("{t}/misuse"),
            Some(json!({ "warn_at": -1.0 })),
            "yynnn",
        ),
        ("GET", format!("{t}/tokens"), none.clone(), "yyyyn"),
        (
            "POST",
            format!("{t}/tokens"),
            Some(json!({ "user": "ali", "tasks": [TASK], "ttl_secs": 60 })),
            "yyynn",
        ),
        (
            "POST",
            format!("{t}/tokens"),
            Some(json!({ "user": "bo", "ttl_secs": 60 })),
            "yyhnn",
        ),
        ("POST", format!("{t}/tokens/none/revoke"), empty(), "yyynn"),
        ("GET", format!("{t}/keys"), none.clone(), "yynyn"),
        (
            "POST",
            format!("{t}/keys/rotate"),
            Some(json!({ "algorithm": "HS256" })),
            "yynnn",
        ),
        ("GET", format!("{t}/plugins"), none.clone(), "yynyn"),
        (
            "PUT",
            format!("{t}/plugins/guard"),
            Some(json!("not a component")),
            "yynnn",
        ),
        (
            "POST",
            format!("{t}/plugins/guard/rollback"),
            empty(),
            "yynnn",
        ),
        (
            "POST",
            format!("{t}/plugins/guard/delete"),
            empty(),
            "yynnn",
        ),
        ("GET", format!("{t}/providers"), none.clone(), "yynyn"),
        ("PUT", format!("{t}/providers/p"), empty(), "yynnn"),
        ("DELETE", format!("{t}/providers/p"), none.clone(), "hhnnn"),
        (
            "PUT",
            format!("{t}/routes/m"),
            Some(json!({ "targets": ["nowhere"] })),
            "yynnn",
        ),
        ("DELETE", format!("{t}/routes/m"), none.clone(), "hhnnn"),
        ("GET", format!("{t}/webhooks"), none.clone(), "yynyn"),
        (
            "POST",
            format!("{t}/webhooks"),
            Some(json!({ "url": "not a url" })),
            "yynnn",
        ),
        (
            "GET",
            format!("{t}/webhooks/deliveries"),
            none.clone(),
            "yynyn",
        ),
        (
            "DELETE",
            format!("{t}/webhooks/none"),
            none.clone(),
            "hhnnn",
        ),
        ("GET", format!("{t}/invitations"), none.clone(), "yynyn"),
        (
            "POST",
            format!("{t}/invitations"),
            Some(json!({ "email": "nope" })),
            "yynnn",
        ),
        (
            "POST",
            format!("{t}/invitations/bulk"),
            Some(json!({ "csv": "" })),
            "yynnn",
        ),
        (
            "DELETE",
            format!("{t}/invitations/none"),
            none.clone(),
            "hhnnn",
        ),
        (
            "POST",
            format!("{t}/invitations/none/resend"),
            none.clone(),
            "hhnnn",
        ),
        ("GET", "/admin/v1/plans".into(), none.clone(), "yyyyn"),
        ("GET", format!("{t}/subscription"), none.clone(), "yynyn"),
        ("GET", format!("{t}/branding"), none.clone(), "yynyn"),
        (
            "PUT",
            format!("{t}/branding"),
            Some(json!({ "accent_color": "nope" })),
            "yynnn",
        ),
        (
            "PUT",
            format!("{t}/branding/logo"),
            Some(json!("not an image")),
            "yynnn",
        ),
        (
            "DELETE",
            format!("{t}/branding/logo"),
            none.clone(),
            "yynnn",
        ),
        ("PUT", format!("{t}/subscription"), empty(), "yynnn"),
        ("GET", format!("{t}/policy"), none.clone(), "yynyn"),
        ("PUT", format!("{t}/policy"), empty(), "yynnn"),
        ("GET", format!("{t}/policy/versions"), none.clone(), "yynyn"),
        (
            "POST",
            format!("{t}/policy/rollback"),
            Some(json!({ "version": 99 })),
            "yynnn",
        ),
        (
            "DELETE",
            format!("{t}/policy"),
            Some(json!({ "reason": "matrix" })),
            "yynnn",
        ),
        ("GET", format!("{t}/logs"), none.clone(), "yynyn"),
        ("GET", format!("{t}/logs?user=ali"), none.clone(), "yyyyn"),
        ("GET", format!("{t}/logs?user=bo"), none.clone(), "yynyn"),
        ("GET", format!("{t}/usage"), none.clone(), "yynyn"),
        ("GET", format!("{t}/usage?user=ali"), none.clone(), "yyyyn"),
        ("GET", format!("{t}/events"), none.clone(), "yynyn"),
        ("GET", format!("{t}/events?user=ali"), none.clone(), "yyyyn"),
        ("GET", format!("{t}/groups"), none.clone(), "yyyyn"),
        ("POST", format!("{t}/groups"), bad_id(), "yynnn"),
        ("GET", format!("{t}/groups/support"), none.clone(), "yyyyn"),
        ("GET", format!("{t}/groups/other"), none.clone(), "yyhyn"),
        (
            "PATCH",
            format!("{t}/groups/support"),
            Some(json!({ "name": "Support" })),
            "yynnn",
        ),
        (
            "PUT",
            format!("{t}/groups/other/members/bo"),
            none.clone(),
            "yynnn",
        ),
        (
            "DELETE",
            format!("{t}/groups/none/members/bo"),
            none.clone(),
            "hhnnn",
        ),
        ("DELETE", format!("{t}/groups/none"), none.clone(), "hhnnn"),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_admin_route_answers_each_role_as_the_matrix_says() {
    let (env, tokens) = organisation().await;
    let mut wrong = Vec::new();
    for (method, path, body, expected) in admin_matrix() {
        let mut got = String::new();
        for token in &tokens {
            let (status, answer) = env.admin(token, method, &path, body.clone()).await;
            got.push(verdict(status));
            // A refusal says why and leaks nothing of the tenant.
            if status == 403 {
                let code = answer["error"]["code"].as_str().unwrap_or_default();
                assert!(
                    ["role_forbidden", "admin_required"].contains(&code),
                    "{method} {path}: {answer}"
                );
            }
        }
        if got != expected {
            wrong.push(format!(
                "{method} {path}: expected {expected}, got {got} ({ROLES:?})"
            ));
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));

    // The manager's lists hold the users of their groups only.
    let mo = &tokens[2];
    let (_, users) = env
        .admin(mo, "GET", "/admin/v1/tenants/acme/users", None)
        .await;
    let ids: Vec<&str> = users["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["user"]["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["ali"], "a manager lists the users of their groups");
    let (_, groups) = env
        .admin(mo, "GET", "/admin/v1/tenants/acme/groups", None)
        .await;
    assert_eq!(groups["data"].as_array().unwrap().len(), 1, "{groups}");
    let (_, tokens_seen) = env
        .admin(mo, "GET", "/admin/v1/tenants/acme/tokens", None)
        .await;
    assert!(
        tokens_seen["data"]
            .as_array()
            .unwrap()
            .iter()
            .all(|t| t["user_id"] == "ali"),
        "{tokens_seen}"
    );
    // A manager acts within reach: blocks ali (audited with their name).
    let body = json!({ "reason": "paused by the team lead" });
    let path = "/admin/v1/tenants/acme/users/ali/block";
    let (status, answer) = env.admin(mo, "POST", path, Some(body)).await;
    assert_eq!(
        (status, &answer["user"]["status"]),
        (200, &json!("blocked"))
    );
    let (_, events) = env
        .admin(
            &tokens[1],
            "GET",
            "/admin/v1/tenants/acme/events?action=user.block",
            None,
        )
        .await;
    assert_eq!(events["data"][0]["actor"], "acme/mo", "{events}");
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_console_page_answers_each_role_as_the_matrix_says() {
    let (env, tokens) = organisation().await;
    // One logged request each of ali (mo's group) and bo (not).
    let bo = env.token_with("acme", |r: &mut TokenRequest| r.user_id = "bo");
    let mut requests = Vec::new();
    for (token, user) in [(&tokens[4], "ali"), (&bo, "bo")] {
        assert_eq!(call(&env, token).await.0, 200);
        let path = format!("/admin/v1/tenants/acme/logs?user={user}&limit=1");
        let mut record = Value::Null;
        for _ in 0..100 {
            record = env.admin(&tokens[1], "GET", &path, None).await.1["data"][0].clone();
            if !record.is_null() {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        let id = record["id"].as_str().expect("the request is logged");
        requests.push(format!("/ui/t/acme/logs/{}/{id}", record["at_ms"]));
    }
    let pages: Vec<(String, &str)> = vec![
        (requests[0].clone(), "yyyyh"),
        (requests[1].clone(), "yyhyh"),
        ("/ui/t/acme".into(), "yynyh"),
        ("/ui/t/acme/users".into(), "yyyyh"),
        ("/ui/t/acme/users/ali".into(), "yyyyh"),
        ("/ui/t/acme/users/bo".into(), "yyhyh"),
        ("/ui/t/acme/review".into(), "yyyyh"),
        ("/ui/t/acme/tasks".into(), "yyyyh"),
        (format!("/ui/t/acme/tasks/{TASK}"), "yyyyh"),
        ("/ui/t/acme/groups".into(), "yyyyh"),
        ("/ui/t/acme/tokens".into(), "yyyyh"),
        ("/ui/t/acme/logs".into(), "yynyh"),
        ("/ui/t/acme/logs?user=ali".into(), "yyyyh"),
        ("/ui/t/acme/logs?user=bo".into(), "yynyh"),
        ("/ui/t/acme/logs.csv?user=ali".into(), "yyyyh"),
        ("/ui/t/acme/usage.csv".into(), "yynyh"),
        ("/ui/t/acme/plugins".into(), "yynyh"),
        ("/ui/t/acme/policy".into(), "yynyh"),
        ("/ui/t/acme/providers".into(), "yynyh"),
        ("/ui/t/acme/webhooks".into(), "yynyh"),
        ("/ui/t/globex".into(), "yhhhh"),
        ("/ui/tenants".into(), "yhhhh"),
        ("/ui/me".into(), "yyyyy"),
    ];
    let mut browsers = Vec::new();
    for token in &tokens {
        let mut browser = Browser::new(&env.base);
        assert_eq!(browser.sign_in(token).await.status(), 303);
        browsers.push(browser);
    }
    let mut wrong = Vec::new();
    for (path, expected) in &pages {
        let mut got = String::new();
        for browser in &mut browsers {
            got.push(verdict(browser.get(path).await.status().as_u16()));
        }
        if got != *expected {
            wrong.push(format!(
                "GET {path}: expected {expected}, got {got} ({ROLES:?})"
            ));
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));

    // A manager lands on the users of their groups, and sees no one else.
    let manager = &mut browsers[2];
    let home = manager.get("/ui").await;
    assert_eq!(home.headers()["location"], "/ui/t/acme/users");
    let users = manager.get("/ui/t/acme/users").await.text().await.unwrap();
    assert!(users.contains("/ui/t/acme/users/ali\""), "{users}");
    assert!(!users.contains("/ui/t/acme/users/bo\""), "bo is not theirs");
    assert!(!users.contains("Add a user"), "a manager adds no one");
    assert!(
        !users.contains(">Overview<"),
        "the navigation shows what they may open"
    );
    let csrf = field(&users, "csrf");
    let block = |who: &str| format!("/ui/t/acme/users/{who}/block");
    let form = [("csrf", csrf.as_str()), ("reason", "matrix")];
    assert_eq!(manager.post(&block("bo"), &form).await.status(), 404);
    let group = [("csrf", csrf.as_str()), ("id", "mine")];
    assert_eq!(
        manager.post("/ui/t/acme/groups", &group).await.status(),
        403
    );
    assert_eq!(manager.post(&block("ali"), &form).await.status(), 303);

    // A viewer reads everything of the tenant and changes nothing.
    let viewer = &mut browsers[3];
    let users = viewer.get("/ui/t/acme/users").await.text().await.unwrap();
    assert!(
        users.contains("/ui/t/acme/users/bo\""),
        "a viewer sees every user"
    );
    assert!(!users.contains("Add a user") && !users.contains("Invite by e-mail"));
    let csrf = field(&users, "csrf");
    let form = [("csrf", csrf.as_str()), ("reason", "matrix")];
    let refused = viewer.post(&block("bo"), &form).await;
    assert_eq!(refused.status(), 403);
    assert!(refused
        .text()
        .await
        .unwrap()
        .contains("this needs an admin or a manager"));
    let status = env.app().db.directory().tenant("acme").unwrap().users["bo"].status;
    assert_eq!(status, warden::state::model::UserStatus::Active);
    env.stop().await;
}

async fn call(env: &TestEnv, token: &str) -> (u16, String) {
    let response = env.chat(token, "invoice api endpoint", false).await;
    let status = response.status().as_u16();
    (status, response.text().await.unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_groups_limits_are_shared_by_its_members_and_a_plans_by_the_tenant() {
    let mut env = TestEnv::start_with(vec![TenantSpec::new("ops"), TenantSpec::new("acme")], |c| {
        c.plans.push(Plan {
            id: "tiny".into(),
            name: "Tiny".into(),
            trial_days: 0,
            max_users: None,
            requests_per_month: Some(5),
            ..default_catalogue()[0].clone()
        });
    })
    .await;
    let root = env.user_with_role("ops", "root", Role::SuperAdmin);
    let maya = env.user_with_role("acme", "maya", Role::Admin);
    let t = "/admin/v1/tenants/acme";
    let group = json!({ "id": "support", "name": "Support", "limits": { "requests_per_day": 3 } });
    let (status, _) = env
        .admin(&maya, "POST", &format!("{t}/groups"), Some(group))
        .await;
    assert_eq!(status, 201);
    let bo = json!({ "id": "bo", "groups": ["support"] });
    assert_eq!(
        env.admin(&maya, "POST", &format!("{t}/users"), Some(bo))
            .await
            .0,
        201
    );
    let path = format!("{t}/groups/support/members/ali");
    assert_eq!(env.admin(&maya, "PUT", &path, None).await.0, 200);
    let ali = env.token("acme");
    let bo = env.token_with("acme", |r: &mut TokenRequest| r.user_id = "bo");

    // Three calls between them use the group's day; the fourth, whoever
    // makes it, is refused naming the group, its limit and the wait.
    for token in [&ali, &bo, &ali] {
        assert_eq!(call(&env, token).await.0, 200);
    }
    for token in [&bo, &ali] {
        let response = env.chat(token, "invoice api endpoint", false).await;
        assert_eq!(response.status(), 429);
        assert!(response.headers().contains_key("retry-after"));
        let body = response.text().await.unwrap();
        assert!(
            body.contains("group 'Support' has used its 3 requests a day"),
            "{body}"
        );
    }
    let (_, shown) = env
        .admin(&maya, "GET", &format!("{t}/groups/support"), None)
        .await;
    assert_eq!(
        shown["usage"]["requests_today"], 3,
        "refusals count nothing: {shown}"
    );
    assert_eq!(shown["members"].as_array().unwrap().len(), 2);

    // Raising the limit lets them on at the next call.
    let change = json!({ "limits": { "requests_per_day": 10 }, "reason": "quarter end" });
    let (status, _) = env
        .admin(&maya, "PATCH", &format!("{t}/groups/support"), Some(change))
        .await;
    assert_eq!(status, 200);
    assert_eq!(call(&env, &bo).await.0, 200);

    // The Tiny plan allows the tenant 5 requests a month, all users together.
    let body = json!({ "plan": "tiny", "reason": "downgrade" });
    let (status, answer) = env
        .admin(&root, "PUT", &format!("{t}/subscription"), Some(body))
        .await;
    assert_eq!(status, 200, "{answer}");
    for token in [&ali, &bo, &ali, &bo, &ali] {
        assert_eq!(call(&env, token).await.0, 200);
    }
    let (status, body) = call(&env, &bo).await;
    assert_eq!(status, 429);
    assert!(
        body.contains("organisation's Tiny plan has used its 5 requests a month"),
        "{body}"
    );
    // The shared counts outlive a restart.
    env.restart().await;
    assert_eq!(call(&env, &ali).await.0, 429);
    let (_, shown) = env
        .admin(&maya, "GET", &format!("{t}/groups/support"), None)
        .await;
    assert_eq!(shown["usage"]["requests_today"], 9, "{shown}");

    // Deleting the group takes it off its members in the same write.
    let (status, _) = env
        .admin(&maya, "DELETE", &format!("{t}/groups/support"), None)
        .await;
    assert_eq!(status, 200);
    let directory = env.app().db.directory();
    let users = &directory.tenant("acme").unwrap().users;
    assert!(users["ali"].groups.is_empty() && users["bo"].groups.is_empty());
    drop(directory);
    env.stop().await;
}
