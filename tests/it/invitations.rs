//! Invitations by e-mail: an admin invites; the e-mail (text and HTML, in
//! the outbox) carries a link that works once, for 7 days; accepting
//! through the public API or the console page makes the account in the
//! inviter's tenant with the invited role and signs the new user in; a
//! reused, expired, cancelled or replaced link is refused with a clear
//! answer; bad addresses are refused.

use serde_json::{json, Value};
use warden::state::model::Role;

use crate::common::*;

const INVITES: &str = "/admin/v1/tenants/acme/invitations";
const DAY_MS: u64 = 24 * 3600 * 1000;

/// The outbox's messages, oldest first.
fn outbox(env: &TestEnv) -> Vec<String> {
    let dir = env.config.state_dir.join("outbox");
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .map(|d| d.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    files.retain(|p| p.extension().is_some_and(|e| e == "eml"));
    files.sort();
    files
        .iter()
        .map(|p| std::fs::read_to_string(p).unwrap())
        .collect()
}

/// The invitation link's token in the newest e-mail to `to`.
fn token_for(env: &TestEnv, to: &str) -> String {
    let mail = outbox(env)
        .into_iter()
        .rev()
        .find(|m| m.contains(&format!("To: {to}\r\n")))
        .unwrap_or_else(|| panic!("no e-mail to {to}"));
    let at = mail.find("/ui/invite/").expect("a link") + "/ui/invite/".len();
    mail[at..]
        .chars()
        .take_while(|c| c.is_ascii_hexdigit())
        .collect()
}

async fn public(env: &TestEnv, method: &str, token: &str, body: Option<Value>) -> (u16, Value) {
    let action = if method == "GET" { "details" } else { "accept" };
    let url = format!("{}/invitations/public/{token}/{action}", env.base);
    let request = match method {
        "GET" => env.http.get(url),
        _ => env
            .http
            .post(url)
            .body(body.unwrap_or(json!({})).to_string()),
    };
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    (
        status,
        serde_json::from_str(&response.text().await.unwrap()).unwrap(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invitation_link_makes_the_account_once_and_is_refused_after() {
    let env = TestEnv::start(vec![TenantSpec::new("acme")]).await;
    let maya = env.user_with_role("acme", "maya", Role::Admin);

    for bad in ["not-an-address", "a b@example.com", "sam@localhost"] {
        let (status, answer) = env
            .admin(&maya, "POST", INVITES, Some(json!({ "email": bad })))
            .await;
        assert_eq!(status, 400, "{bad}: {answer}");
    }
    let body = json!({ "email": "Sam.Lee@Example.com", "name": "Sam <Lee>", "role": "admin" });
    let (status, made) = env.admin(&maya, "POST", INVITES, Some(body)).await;
    assert_eq!(status, 201, "{made}");
    assert_eq!(
        (made["status"].as_str(), made["email"].as_str()),
        (Some("pending"), Some("sam.lee@example.com"))
    );
    assert!(!made.to_string().contains("token"), "{made}");
    let again = json!({ "email": "sam.lee@example.com" });
    let (status, _) = env.admin(&maya, "POST", INVITES, Some(again)).await;
    assert_eq!(status, 400, "a second pending invitation for one address");

    // The e-mail: both parts, the link, the inviter, escaped in HTML.
    let mail = outbox(&env).pop().unwrap();
    assert!(
        mail.contains("Subject: You are invited to acme on Warden"),
        "{mail}"
    );
    assert!(
        mail.contains("text/plain") && mail.contains("text/html"),
        "{mail}"
    );
    assert!(mail.contains("acme/maya invites you"), "{mail}");
    let token = token_for(&env, "sam.lee@example.com");
    assert_eq!(token.len(), 64);

    // Details, then accept: the account is made with the invited role.
    let (status, details) = public(&env, "GET", &token, None).await;
    assert_eq!(status, 200, "{details}");
    assert_eq!(
        (
            details["role"].as_str(),
            details["suggested_user_id"].as_str()
        ),
        (Some("admin"), Some("sam-lee"))
    );
    let (status, accepted) = public(&env, "POST", &token, Some(json!({ "name": "Sam" }))).await;
    assert_eq!(status, 200, "{accepted}");
    assert_eq!(accepted["user_id"], "sam-lee");
    let user = env.app().db.directory().tenant("acme").unwrap().users["sam-lee"].clone();
    assert_eq!((user.role, user.name.as_str()), (Role::Admin, "Sam"));
    assert!(outbox(&env)
        .last()
        .unwrap()
        .contains("Subject: Welcome to acme on Warden"));

    // A user's page lists the team: names and roles, the new admin too.
    let mut browser = crate::console::Browser::new(&env.base);
    browser.sign_in(&env.token("acme")).await;
    let me = browser.get("/ui/me").await.text().await.unwrap();
    let team = &me[me.find("id=\"team\"").expect("a team panel")..];
    assert!(team.contains("<td>Sam</td><td>admin</td>"), "{team}");
    assert!(team.contains("<td>maya</td><td>admin</td>"), "{team}");

    // Used: refused, through the API and the console page.
    let (status, answer) = public(&env, "POST", &token, None).await;
    assert_eq!(
        (status, &answer["error"]["code"]),
        (410, &json!("invitation_gone")),
        "{answer}"
    );
    let page = env
        .http
        .get(format!("{}/ui/invite/{token}", env.base))
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 410);
    assert!(page.text().await.unwrap().contains("already accepted"));

    // A resend replaces the link; cancelling stops it; 8 days expire it.
    let (_, bo) = env
        .admin(
            &maya,
            "POST",
            INVITES,
            Some(json!({ "email": "bo@example.com" })),
        )
        .await;
    let first = token_for(&env, "bo@example.com");
    let resend = format!("{INVITES}/{}/resend", bo["id"].as_str().unwrap());
    let (status, resent) = env.admin(&maya, "POST", &resend, None).await;
    assert_eq!((status, &resent["sent"]), (200, &json!(2)), "{resent}");
    let second = token_for(&env, "bo@example.com");
    assert_ne!(first, second);
    assert_eq!(public(&env, "GET", &first, None).await.0, 404);
    assert_eq!(public(&env, "GET", &second, None).await.0, 200);
    let cancel = format!("{INVITES}/{}", bo["id"].as_str().unwrap());
    let (status, _) = env.admin(&maya, "DELETE", &cancel, None).await;
    assert_eq!(status, 200);
    let (status, answer) = public(&env, "GET", &second, None).await;
    assert_eq!(status, 410);
    assert!(answer["error"]["message"]
        .as_str()
        .unwrap()
        .contains("cancelled"));

    env.admin(
        &maya,
        "POST",
        INVITES,
        Some(json!({ "email": "cy@example.com" })),
    )
    .await;
    let late = token_for(&env, "cy@example.com");
    let now = env.app().clock.now_ms();
    env.app().clock.jump_to(now + 8 * DAY_MS);
    let page = env
        .http
        .get(format!("{}/ui/invite/{late}", env.base))
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 410);
    assert!(page.text().await.unwrap().contains("expired"));
    let (_, listed) = env.admin(&maya, "GET", INVITES, None).await;
    let statuses: Vec<&str> = listed["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["status"].as_str().unwrap())
        .collect();
    assert_eq!(statuses, ["expired", "cancelled", "accepted"]);
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_csv_invites_each_row_on_its_own_and_reports_every_row() {
    let env = TestEnv::start(vec![TenantSpec::new("acme")]).await;
    let maya = env.user_with_role("acme", "maya", Role::Admin);
    let csv = "email,name,role\n\
               ann@example.com,\"Ann, the lead\",admin\n\
               ben@example.com,Ben\n\
               \n\
               not-an-address,Nobody,user\n\
               cat@example.com,Cat,owner\n\
               ann@example.com,Ann again,user\n";
    let body = json!({ "csv": csv });
    let (status, report) = env
        .admin(&maya, "POST", &format!("{INVITES}/bulk"), Some(body))
        .await;
    assert_eq!(status, 200, "{report}");
    assert_eq!(
        (&report["invited"], &report["refused"]),
        (&json!(2), &json!(3)),
        "{report}"
    );
    let rows: Vec<(u64, &str, &str)> = report["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["row"].as_u64().unwrap(),
                r["status"].as_str().unwrap(),
                r["error"].as_str().unwrap_or(""),
            )
        })
        .collect();
    assert_eq!(
        rows.iter().map(|r| (r.0, r.1)).collect::<Vec<_>>(),
        [
            (2, "invited"),
            (3, "invited"),
            (5, "refused"),
            (6, "refused"),
            (7, "refused")
        ]
    );
    assert!(rows[2].2.contains("not an e-mail address"), "{rows:?}");
    assert!(rows[3].2.contains("unknown role 'owner'"), "{rows:?}");
    assert!(rows[4].2.contains("pending invitation already"), "{rows:?}");
    assert_eq!(outbox(&env).len(), 2);
    let (_, details) = public(&env, "GET", &token_for(&env, "ann@example.com"), None).await;
    assert_eq!(
        (details["name"].as_str(), details["role"].as_str()),
        (Some("Ann, the lead"), Some("admin"))
    );

    // The CLI, through the server, prints a line per row.
    let dir = TempDir::new("invite-csv");
    let file = dir.0.join("team.csv");
    std::fs::write(&file, "dan@example.com,Dan\nben@example.com,Ben\n").unwrap();
    let printed = warden(&[
        "--server",
        &env.base,
        "--token",
        &maya,
        "invitation",
        "bulk",
        "--tenant",
        "acme",
        file.to_str().unwrap(),
    ]);
    assert!(
        printed.contains("dan@example.com") && printed.contains("invited"),
        "{printed}"
    );
    assert!(printed.contains("refused"), "{printed}");

    // The console's form shows the same report.
    let mut browser = crate::console::Browser::new(&env.base);
    browser.sign_in(&maya).await;
    let page = browser.get("/ui/t/acme/users").await.text().await.unwrap();
    let csrf = crate::console::field(&page, "csrf");
    let form = [
        ("csrf", csrf.as_str()),
        ("csv", "eve@example.com,Eve\r\nbad"),
    ];
    let answer = browser.post("/ui/t/acme/invitations/bulk", &form).await;
    assert_eq!(answer.status(), 200);
    let report = answer.text().await.unwrap();
    assert!(report.contains("1 invited, 1 refused"), "{report}");

    // Three days on, each pending invitation is reminded once, with a new link.
    let first = token_for(&env, "ann@example.com");
    let now = env.app().clock.now_ms();
    env.app().clock.jump_to(now + 3 * DAY_MS + 60_000);
    let remind = || warden::admin_api::invitations::remind_due(env.app()).unwrap();
    assert_eq!(remind(), 4, "ann, ben, dan and eve");
    assert_eq!(remind(), 0, "once");
    let mail = outbox(&env)
        .into_iter()
        .rev()
        .find(|m| m.contains("To: ann@example.com"))
        .unwrap();
    assert!(
        mail.contains("Subject: Reminder: You are invited to acme"),
        "{mail}"
    );
    let second = token_for(&env, "ann@example.com");
    assert_ne!(first, second);
    assert_eq!(public(&env, "GET", &second, None).await.0, 200);
    env.stop().await;
}

/// What a local SMTP server received: one `(recipient, message)` each.
type Inbox = std::sync::Arc<std::sync::Mutex<Vec<(String, String)>>>;

/// A local SMTP server: it answers the first `RCPT TO` of each recipient
/// with 451 (try later), always refuses `nobody@…` with 550, and keeps
/// what it accepts.
async fn smtp_sink() -> (u16, Inbox, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let inbox: Inbox = Default::default();
    let deferred = std::sync::Arc::new(AtomicUsize::new(0));
    let (kept, refused_once) = (inbox.clone(), deferred.clone());
    tokio::spawn(async move {
        let seen = std::sync::Arc::new(std::sync::Mutex::new(std::collections::HashSet::new()));
        loop {
            let (socket, _) = listener.accept().await.unwrap();
            let (kept, refused_once, seen) = (kept.clone(), refused_once.clone(), seen.clone());
            tokio::spawn(async move {
                let (read, mut write) = socket.into_split();
                let mut lines = BufReader::new(read).lines();
                write.write_all(b"220 sink ESMTP\r\n").await.unwrap();
                let mut rcpt = String::new();
                while let Ok(Some(line)) = lines.next_line().await {
                    let verb = line.get(..4).unwrap_or("").to_ascii_uppercase();
                    let reply: &[u8] = match verb.as_str() {
                        "EHLO" | "HELO" => b"250-sink\r\n250 8BITMIME\r\n",
                        "RCPT" => {
                            rcpt =
                                line[line.find('<').unwrap() + 1..line.find('>').unwrap()].into();
                            if rcpt.starts_with("nobody@") {
                                b"550 5.1.1 no such mailbox\r\n"
                            } else if seen.lock().unwrap().insert(rcpt.clone()) {
                                refused_once.fetch_add(1, Ordering::SeqCst);
                                b"451 4.3.0 try again later\r\n"
                            } else {
                                b"250 OK\r\n"
                            }
                        }
                        "DATA" => {
                            write.write_all(b"354 go ahead\r\n").await.unwrap();
                            let mut message = String::new();
                            while let Ok(Some(line)) = lines.next_line().await {
                                if line == "." {
                                    break;
                                }
                                message.push_str(&line);
                                message.push_str("\r\n");
                            }
                            kept.lock().unwrap().push((rcpt.clone(), message));
                            b"250 2.0.0 queued\r\n"
                        }
                        "QUIT" => {
                            let _ = write.write_all(b"221 bye\r\n").await;
                            return;
                        }
                        _ => b"250 OK\r\n",
                    };
                    write.write_all(reply).await.unwrap();
                }
            });
        }
    });
    (port, inbox, deferred)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_smtp_configured_the_outbox_is_sent_retried_and_refusals_set_aside() {
    let (port, inbox, deferred) = smtp_sink().await;
    let env = TestEnv::start_with(vec![TenantSpec::new("acme")], |c| {
        c.mail.smtp = Some(warden::config::SmtpConfig {
            host: "127.0.0.1".into(),
            port: Some(port),
            security: warden::config::SmtpSecurity::None,
            username: None,
            password_env: None,
            timeout_secs: 5,
        });
    })
    .await;
    let maya = env.user_with_role("acme", "maya", Role::Admin);
    for email in ["sam@example.com", "nobody@example.com"] {
        let (status, answer) = env
            .admin(&maya, "POST", INVITES, Some(json!({ "email": email })))
            .await;
        assert_eq!(status, 201, "{answer}");
    }
    // The first try is deferred (451), the retry a second later delivers.
    assert!(
        eventually_async(|| async { !inbox.lock().unwrap().is_empty() }).await,
        "the invitation reaches the SMTP server"
    );
    let (to, message) = inbox.lock().unwrap()[0].clone();
    assert_eq!(to, "sam@example.com");
    assert!(message.contains("/ui/invite/"), "{message}");
    assert!(message.contains("Subject: You are invited to acme on Warden"));
    assert_eq!(deferred.load(std::sync::atomic::Ordering::SeqCst), 1);
    // Delivered: moved to sent/. Refused for good: moved to failed/, with why.
    let outbox = env.config.state_dir.join("outbox");
    let names = |dir: &str| -> Vec<String> {
        std::fs::read_dir(outbox.join(dir))
            .map(|d| {
                d.flatten()
                    .map(|e| e.file_name().into_string().unwrap())
                    .collect()
            })
            .unwrap_or_default()
    };
    assert!(
        eventually(|| names("failed").len() == 2).await,
        "{:?}",
        names("failed")
    );
    let error = names("failed")
        .into_iter()
        .find(|n| n.ends_with(".error"))
        .unwrap();
    let reason = std::fs::read_to_string(outbox.join("failed").join(error)).unwrap();
    assert!(reason.contains("no such mailbox"), "{reason}");
    assert!(eventually(|| names("sent").len() == 1).await);
    let left: Vec<String> = names("")
        .into_iter()
        .filter(|n| n.ends_with(".eml"))
        .collect();
    assert!(left.is_empty(), "nothing left to send: {left:?}");
    assert_eq!(inbox.lock().unwrap().len(), 1);
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invitation_puts_the_new_account_in_its_groups_with_its_role() {
    let env = TestEnv::start(vec![TenantSpec::new("acme")]).await;
    let maya = env.user_with_role("acme", "maya", Role::Admin);
    let group = json!({ "id": "support" });
    let groups = "/admin/v1/tenants/acme/groups";
    assert_eq!(env.admin(&maya, "POST", groups, Some(group)).await.0, 201);
    let unknown = json!({ "email": "x@example.com", "groups": ["nope"] });
    assert_eq!(
        env.admin(&maya, "POST", INVITES, Some(unknown)).await.0,
        400
    );
    let invite = json!({ "email": "mo@example.com", "role": "manager", "groups": ["support"] });
    let (status, answer) = env.admin(&maya, "POST", INVITES, Some(invite)).await;
    assert_eq!(status, 201, "{answer}");
    let token = token_for(&env, "mo@example.com");
    let (status, accepted) = public(&env, "POST", &token, Some(json!({ "user_id": "mo" }))).await;
    assert_eq!(status, 200, "{accepted}");
    let directory = env.app().db.directory();
    let mo = &directory.tenant("acme").unwrap().users["mo"];
    assert_eq!(
        (mo.role, mo.groups.clone()),
        (Role::Manager, vec!["support".to_string()])
    );
    drop(directory);
    env.stop().await;
}
