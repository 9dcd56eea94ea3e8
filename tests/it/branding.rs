//! Branding: a tenant on a plan with it sets its display name, accent
//! colour and logo (checked by its bytes and size); its console pages, its
//! invitation page and its e-mails show them; anything but a colour or an image is refused, and
//! a plan without branding refuses it all.

use serde_json::json;
use warden::state::model::Role;

use crate::common::*;
use crate::console::Browser;

const BRANDING: &str = "/admin/v1/tenants/acme/branding";

/// A tiny PNG (the signature is what is checked; the rest is opaque here).
fn png() -> Vec<u8> {
    let mut bytes = b"\x89PNG\r\n\x1a\n".to_vec();
    bytes.extend_from_slice(b"\0\0\0\rIHDR\0\0\0\x01\0\0\0\x01\x08\x06\0\0\0\x1f\x15\xc4\x89");
    bytes
}

async fn put_logo(env: &TestEnv, token: &str, bytes: Vec<u8>) -> (u16, serde_json::Value) {
    let response = env
        .http
        .put(format!("{}{BRANDING}/logo", env.base))
        .bearer_auth(token)
        .body(bytes)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    let text = response.text().await.unwrap();
    (status, serde_json::from_str(&text).unwrap_or(json!(text)))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tenants_brand_is_in_its_console_and_its_emails_and_nothing_else_gets_in() {
    let env = TestEnv::start(vec![TenantSpec::new("ops"), TenantSpec::new("acme")]).await;
    let root = env.user_with_role("ops", "root", Role::SuperAdmin);
    let maya = env.user_with_role("acme", "maya", Role::Admin);
    let vic = env.user_with_role("acme", "vic", Role::Viewer);
    let subscription = "/admin/v1/tenants/acme/subscription";

    // Basic has no branding: refused, naming the plans that have it.
    let plan = json!({ "plan": "basic", "reason": "signed up" });
    assert_eq!(
        env.admin(&root, "PUT", subscription, Some(plan)).await.0,
        200
    );
    let change = json!({ "display_name": "Acme Corp", "accent_color": "#C0392B" });
    let (status, answer) = env
        .admin(&maya, "PUT", BRANDING, Some(change.clone()))
        .await;
    assert_eq!(
        (status, &answer["error"]["code"]),
        (403, &json!("plan_limit"))
    );
    assert!(answer["error"]["message"]
        .as_str()
        .unwrap()
        .contains("Enterprise"));

    let plan = json!({ "plan": "enterprise", "reason": "upgrade" });
    assert_eq!(
        env.admin(&root, "PUT", subscription, Some(plan)).await.0,
        200
    );
    let (status, answer) = env.admin(&maya, "PUT", BRANDING, Some(change)).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["accent_color"], "#c0392b", "normalised");
    for bad in [
        json!({ "accent_color": "red;} body{display:none" }),
        json!({ "display_name": "x\ny" }),
    ] {
        let (status, answer) = env.admin(&maya, "PUT", BRANDING, Some(bad)).await;
        assert_eq!(status, 400, "{answer}");
    }
    let (status, _) = env.admin(&vic, "PUT", BRANDING, Some(json!({}))).await;
    assert_eq!(status, 403, "a viewer reads, never changes");

    // The logo: an image by its bytes, at most 256 KiB; never SVG.
    let svg = b"<svg xmlns='http://www.w3.org/2000/svg' onload='alert(1)'/>".to_vec();
    assert_eq!(put_logo(&env, &maya, svg).await.0, 400);
    let mut huge = png();
    huge.resize(300 << 10, 0);
    // 413 as soon as the limit is passed; the server then closes the
    // connection, so a client still sending may see the reset instead.
    let oversized = env
        .http
        .put(format!("{}{BRANDING}/logo", env.base))
        .bearer_auth(&maya)
        .body(huge)
        .send()
        .await;
    if let Ok(response) = oversized {
        assert_eq!(response.status(), 413);
    }
    let (_, unchanged) = env.admin(&maya, "GET", BRANDING, None).await;
    assert!(unchanged["logo"].is_null(), "nothing stored: {unchanged}");
    let (status, answer) = put_logo(&env, &maya, png()).await;
    assert_eq!(status, 200, "{answer}");
    let logo_url = answer["logo_url"].as_str().unwrap().to_string();
    let logo = env
        .http
        .get(format!("{}{logo_url}", env.base))
        .send()
        .await
        .unwrap();
    assert_eq!(logo.status(), 200, "served without a session, by its hash");
    assert_eq!(logo.headers()["content-type"], "image/png");
    assert_eq!(logo.bytes().await.unwrap().to_vec(), png());
    let (_, shown) = env.admin(&vic, "GET", BRANDING, None).await;
    assert_eq!(shown["display_name"], "Acme Corp");

    // The console: the tenant's name, logo and colour, for its admins and users.
    for token in [&maya, &env.token("acme")] {
        let mut browser = Browser::new(&env.base);
        let home = browser.sign_in(token).await;
        let to = home.headers()["location"].to_str().unwrap().to_string();
        let html = browser.get(&to).await.text().await.unwrap();
        assert!(html.contains("href=\"/ui/brand.css?c=c0392b\""), "{html}");
        assert!(html.contains(&format!("src=\"{logo_url}\"")));
        assert!(html.contains("Acme Corp"));
    }
    let css = env
        .http
        .get(format!("{}/ui/brand.css?c=c0392b", env.base))
        .send()
        .await
        .unwrap();
    assert_eq!(css.headers()["content-type"], "text/css; charset=utf-8");
    assert!(css.text().await.unwrap().contains("--accent: #c0392b"));
    let refused = env
        .http
        .get(format!("{}/ui/brand.css?c=red%3B%7D", env.base))
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 404, "only a colour reaches a stylesheet");

    // E-mails carry the brand too.
    let invite = json!({ "email": "sam@example.com" });
    let path = "/admin/v1/tenants/acme/invitations";
    assert_eq!(env.admin(&maya, "POST", path, Some(invite)).await.0, 201);
    let outbox = env.config.state_dir.join("outbox");
    let mail = std::fs::read_dir(outbox)
        .unwrap()
        .flatten()
        .map(|e| std::fs::read_to_string(e.path()).unwrap())
        .find(|m| m.contains("To: sam@example.com"))
        .unwrap();
    assert!(mail.contains("Subject: You are invited to Acme Corp on Warden"));
    assert!(mail.contains("color:#c0392b"), "{mail}");
    assert!(mail.contains(&logo_url));
    // And so does the invitation's page, before any session.
    let at = mail.find("/ui/invite/").unwrap();
    let link: String = mail[at..]
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '/')
        .collect();
    let page = env
        .http
        .get(format!("{}{link}", env.base))
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 200);
    let html = page.text().await.unwrap();
    assert!(html.contains("href=\"/ui/brand.css?c=c0392b\""), "{html}");
    assert!(html.contains(&format!("src=\"{logo_url}\"")));
    env.stop().await;
}
