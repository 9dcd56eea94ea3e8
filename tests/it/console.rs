//! The web console over real HTTP, as a browser without JavaScript sees it
//! (tests/e2e drives it in Chromium): hardened cookies and headers, a
//! session that survives a restart and ends with its token, one-time
//! sign-in links, CSRF, and user-supplied text escaped.

use std::collections::HashMap;

use crate::common::*;
use warden::state::model::Role;

/// A cookie jar and a client that does not follow redirects.
pub(crate) struct Browser {
    http: reqwest::Client,
    base: String,
    cookies: HashMap<String, String>,
}

impl Browser {
    pub(crate) fn new(base: &str) -> Self {
        Self::with_client(
            base,
            reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap(),
        )
    }

    fn with_client(base: &str, http: reqwest::Client) -> Self {
        Self {
            http,
            base: base.to_string(),
            cookies: HashMap::new(),
        }
    }

    fn keep_cookies(&mut self, response: &reqwest::Response) {
        for header in response.headers().get_all("set-cookie") {
            let text = header.to_str().unwrap();
            let (pair, _) = text.split_once(';').unwrap_or((text, ""));
            let (name, value) = pair.split_once('=').unwrap();
            if value.is_empty() {
                self.cookies.remove(name);
            } else {
                self.cookies.insert(name.into(), value.into());
            }
        }
    }

    fn cookie_header(&self) -> String {
        self.cookies
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("; ")
    }

    pub(crate) async fn get(&mut self, path: &str) -> reqwest::Response {
        let response = self
            .http
            .get(format!("{}{path}", self.base))
            .header("cookie", self.cookie_header())
            .send()
            .await
            .unwrap();
        self.keep_cookies(&response);
        response
    }

    pub(crate) async fn post(&mut self, path: &str, form: &[(&str, &str)]) -> reqwest::Response {
        let body = form_urlencoded::Serializer::new(String::new())
            .extend_pairs(form)
            .finish();
        let response = self
            .http
            .post(format!("{}{path}", self.base))
            .header("cookie", self.cookie_header())
            .header("content-type", "application/x-www-form-urlencoded")
            .header("sec-fetch-site", "same-origin")
            .body(body)
            .send()
            .await
            .unwrap();
        self.keep_cookies(&response);
        response
    }

    /// Opens the sign-in page and signs in with `token`.
    pub(crate) async fn sign_in(&mut self, token: &str) -> reqwest::Response {
        let page = self.get("/ui/login").await.text().await.unwrap();
        let nonce = field(&page, "nonce");
        self.post("/ui/login", &[("nonce", &nonce), ("token", token)])
            .await
    }
}

/// The value of the first `<input name=NAME>` of a page.
pub(crate) fn field(html: &str, name: &str) -> String {
    let at = html
        .find(&format!("name=\"{name}\" value=\""))
        .unwrap_or_else(|| panic!("no field {name} in {html}"));
    let rest = &html[at + name.len() + 15..];
    rest[..rest.find('"').unwrap()].to_string()
}

fn location(response: &reqwest::Response) -> &str {
    response.headers()["location"].to_str().unwrap()
}

fn set_cookie(response: &reqwest::Response, name: &str) -> String {
    response
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|h| h.to_str().unwrap().to_string())
        .find(|c| c.starts_with(&format!("{name}=")))
        .unwrap_or_else(|| panic!("no cookie {name}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_are_hardened_survive_restarts_and_end_with_their_token() {
    let mut env = TestEnv::start(vec![TenantSpec::new("acme")]).await;
    let token = env.token("acme");
    let admin = env.user_with_role("acme", "maya", Role::Admin);
    let mut browser = Browser::new(&env.base);

    let root = browser.get("/ui").await;
    assert_eq!(root.status(), 303);
    assert_eq!(location(&root), "/ui/login");
    let login = browser.get("/ui/login").await;
    let csp = login.headers()["content-security-policy"].to_str().unwrap();
    assert!(csp.contains("default-src 'none'") && csp.contains("script-src 'self'"));
    assert!(!csp.contains("unsafe"), "{csp}");
    assert_eq!(login.headers()["x-frame-options"], "DENY");
    assert_eq!(login.headers()["x-content-type-options"], "nosniff");
    let nonce_cookie = set_cookie(&login, "warden_login");
    assert!(nonce_cookie.contains("HttpOnly") && nonce_cookie.contains("SameSite=Strict"));
    assert!(
        !nonce_cookie.contains("Secure"),
        "plain HTTP: {nonce_cookie}"
    );

    // Without the form's nonce (a forged sign-in), nothing happens.
    let forged = browser.post("/ui/login", &[("token", &token)]).await;
    assert_eq!(forged.status(), 403);
    assert!(!browser.cookies.contains_key("warden_session"));
    // A wrong token is refused with the reason.
    let page = browser.get("/ui/login").await.text().await.unwrap();
    let wrong = browser
        .post(
            "/ui/login",
            &[
                ("nonce", &field(&page, "nonce")),
                ("token", "eyJhbGciOi.x.y"),
            ],
        )
        .await;
    assert_eq!(wrong.status(), 401);
    assert!(wrong.text().await.unwrap().contains("cannot sign in"));

    let signed_in = browser.sign_in(&token).await;
    assert_eq!(signed_in.status(), 303);
    assert_eq!(location(&signed_in), "/ui/me");
    let session = set_cookie(&signed_in, "warden_session");
    for flag in ["HttpOnly", "SameSite=Strict", "Path=/ui"] {
        assert!(session.contains(flag), "{session}");
    }
    let me = browser.get("/ui/me").await;
    assert_eq!(me.status(), 200);
    assert!(me.text().await.unwrap().contains("Requests left today"));
    // A user has no admin pages, in their tenant or another.
    assert_eq!(browser.get("/ui/t/acme").await.status(), 404);

    // Sessions live in sled: a restart signs nobody out.
    env.restart().await;
    browser.base = env.base.clone();
    assert_eq!(browser.get("/ui/me").await.status(), 200);

    // Revoking the token ends the session it opened.
    let jti = env.app().db.tokens_of("acme").unwrap();
    let jti = &jti.iter().find(|t| t.user_id == "ali").unwrap().jti;
    let (status, _) = env
        .admin(
            &admin,
            "POST",
            &format!("/admin/v1/tenants/acme/tokens/{jti}/revoke"),
            Some(serde_json::json!({ "reason": "left the project" })),
        )
        .await;
    assert_eq!(status, 200);
    let after = browser.get("/ui/me").await;
    assert_eq!(after.status(), 303);
    assert_eq!(location(&after), "/ui/login");
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_login_link_signs_in_once_and_changes_need_the_csrf_token() {
    let env = TestEnv::start(vec![TenantSpec::new("acme"), TenantSpec::new("globex")]).await;
    let admin = env.user_with_role("acme", "maya", Role::Admin);
    let other_admin = env.user_with_role("globex", "gina", Role::Admin);

    // A tenant admin cannot mint links into another tenant.
    let (status, _) = env
        .admin(
            &other_admin,
            "POST",
            "/admin/v1/tenants/acme/users/maya/login-link",
            Some(serde_json::json!({})),
        )
        .await;
    assert_eq!(status, 404);
    let (status, link) = env
        .admin(
            &admin,
            "POST",
            "/admin/v1/tenants/acme/users/maya/login-link",
            Some(serde_json::json!({})),
        )
        .await;
    assert_eq!(status, 201, "{link}");
    let path = link["path"].as_str().unwrap();

    let mut browser = Browser::new(&env.base);
    // Opening the link shows a button; only the button's post uses it up.
    let page = browser.get(path).await;
    assert_eq!(page.status(), 200);
    let page = page.text().await.unwrap();
    assert_eq!(
        browser.get(path).await.status(),
        200,
        "a preview does not use the link"
    );
    let code = field(&page, "code");
    let page = browser.get(path).await.text().await.unwrap();
    let used = browser
        .post(
            "/ui/link",
            &[("nonce", &field(&page, "nonce")), ("code", &code)],
        )
        .await;
    assert_eq!(used.status(), 303);
    assert_eq!(location(&used), "/ui/t/acme");
    let mut second = Browser::new(&env.base);
    assert_eq!(second.get(path).await.status(), 410, "used once");

    // The audit log has the link.
    let (_, events) = env
        .admin(
            &admin,
            "GET",
            "/admin/v1/tenants/acme/events?action=user.login_link",
            None,
        )
        .await;
    assert_eq!(events["data"][0]["target"], "maya");

    // A change without the session's CSRF token changes nothing.
    let blocked = browser
        .post("/ui/t/acme/users/ali/block", &[("reason", "no token")])
        .await;
    assert_eq!(blocked.status(), 403);
    let users = browser.get("/ui/t/acme/users").await.text().await.unwrap();
    let csrf = field(&users, "csrf");
    let wrong_site = browser
        .http
        .post(format!("{}/ui/t/acme/users/ali/block", env.base))
        .header("cookie", browser.cookie_header())
        .header("content-type", "application/x-www-form-urlencoded")
        .header("sec-fetch-site", "cross-site")
        .body(format!("csrf={csrf}&reason=cross-site"))
        .send()
        .await
        .unwrap();
    assert_eq!(wrong_site.status(), 403);
    assert_eq!(
        env.chat(&env.token("acme"), "invoice api", false)
            .await
            .status(),
        200
    );

    // With it, the change lands, with the reason, as the admin.
    let done = browser
        .post(
            "/ui/t/acme/users/ali/block",
            &[("csrf", &csrf), ("reason", "<b>too many</b> recipes")],
        )
        .await;
    assert_eq!(done.status(), 303);
    assert_eq!(location(&done), "/ui/t/acme/users/ali?ok=blocked");
    assert_eq!(
        env.chat(&env.token("acme"), "invoice api", false)
            .await
            .status(),
        403
    );
    let (_, events) = env
        .admin(
            &admin,
            "GET",
            "/admin/v1/tenants/acme/events?user=ali&action=user.block",
            None,
        )
        .await;
    assert_eq!(events["data"][0]["actor"], "acme/maya");
    // The reason is shown as text on the user's page.
    let detail = browser
        .get("/ui/t/acme/users/ali")
        .await
        .text()
        .await
        .unwrap();
    assert!(
        detail.contains("&lt;b&gt;too many&lt;/b&gt; recipes"),
        "{detail}"
    );
    assert!(!detail.contains("<b>too many"));

    // The usage export for invoices: a line per day, user and task, and totals.
    // (The state writer counts requests into the rollups within ~20 ms.)
    let mut usage = String::new();
    for _ in 0..100 {
        let response = browser.get("/ui/t/acme/usage.csv").await;
        assert_eq!(
            response.headers()["content-type"],
            "text/csv; charset=utf-8"
        );
        usage = response.text().await.unwrap();
        if usage.contains("total,,,2,") {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let lines: Vec<&str> = usage.lines().collect();
    assert_eq!(
        lines[0],
        "day,user,task,requests,succeeded,failed,tokens_in,tokens_out,cost_usd"
    );
    assert!(lines[1].contains(",ali,invoice-backend,2,1,1,"), "{usage}");
    assert!(
        lines.last().unwrap().starts_with("total,,,2,1,1,"),
        "{usage}"
    );
    let bad = browser.get("/ui/t/acme/usage.csv?from=yesterday").await;
    assert_eq!(bad.status(), 400);

    // Only the plugin upload takes a file: a multipart post elsewhere is
    // refused before its body is read.
    let multipart = browser
        .http
        .post(format!("{}/ui/t/acme/users/ali/enable", env.base))
        .header("cookie", browser.cookie_header())
        .header("content-type", "multipart/form-data; boundary=XX")
        .body(format!(
            "--XX\r\nContent-Disposition: form-data; name=\"csrf\"\r\n\r\n{csrf}\r\n--XX--\r\n"
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(multipart.status(), 400);
    assert!(multipart
        .text()
        .await
        .unwrap()
        .contains("does not take files"));
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_tls_the_session_cookie_is_secure() {
    let tls = SelfSigned::new();
    let env = TestEnv::start_with(vec![TenantSpec::new("acme")], |c| {
        c.tls = Some(tls.config())
    })
    .await;
    let (client, base) = tls.client(
        &env.base,
        reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()),
    );
    let mut browser = Browser::with_client(&base, client);
    let signed_in = browser.sign_in(&env.token("acme")).await;
    assert_eq!(signed_in.status(), 303);
    assert!(set_cookie(&signed_in, "warden_session").contains("; Secure"));
    assert_eq!(browser.get("/ui/me").await.status(), 200);
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_super_admin_switches_between_tenants() {
    let env = TestEnv::start(vec![TenantSpec::new("acme"), TenantSpec::new("globex")]).await;
    let root = env.user_with_role("acme", "root", Role::SuperAdmin);
    let mut browser = Browser::new(&env.base);
    assert_eq!(location(&browser.sign_in(&root).await), "/ui/t/acme");
    // Signed in, the sign-in page sends them home.
    assert_eq!(location(&browser.get("/ui/login").await), "/ui/t/acme");
    let tenants = browser.get("/ui/tenants").await.text().await.unwrap();
    assert!(tenants.contains("href=\"/ui/t/globex\""), "{tenants}");
    let globex = browser.get("/ui/t/globex/users").await;
    assert_eq!(globex.status(), 200);
    assert!(globex
        .text()
        .await
        .unwrap()
        .contains("/ui/t/globex/users/ali"));
    assert_eq!(browser.get("/ui/t/nowhere").await.status(), 404);
    // A tenant admin has no tenant list.
    let admin = env.user_with_role("globex", "gina", Role::Admin);
    let mut other = Browser::new(&env.base);
    other.sign_in(&admin).await;
    assert_eq!(other.get("/ui/tenants").await.status(), 404);
    env.stop().await;
}
