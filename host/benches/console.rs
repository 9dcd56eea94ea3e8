//! The web console with a big log: 100,000 request records of 50 users over
//! 30 days, then the time to answer each page over HTTP (p50 and p95 of 30
//! loads after one warm-up load each, signed in as the tenant's admin), and
//! a whole-log CSV export.
//!
//!     cargo bench -p warden --bench console

use std::time::{Duration, Instant};

use warden::admin::{self, NewUser, TenantOptions};
use warden::config::Config;
use warden::domain::{Action, Drift, IntentLabel};
use warden::state::model::{Limits, RequestRecord, Role, Task};
use warden::state::{usage_report, Grouping, UsageQuery};
use warden::token::{self, TokenRequest};

const RECORDS: u64 = 100_000;
const USERS: u64 = 50;
const TASKS: u64 = 6;
/// Records of the one user who rarely calls (their page must not read the others').
const RARE: u64 = 20;
const LOADS: usize = 30;

fn record(n: u64, now_ms: u64, user: String, task: String) -> RequestRecord {
    let off_task = n.is_multiple_of(40);
    RequestRecord {
        id: format!("req_bench{n:08}"),
        at_ms: now_ms - (RECORDS - n) * 25_000,
        tenant_id: "acme".into(),
        user_id: user,
        task_id: task,
        endpoint: "chat.completions".into(),
        model: "gpt-4o-mini".into(),
        prompt: format!(
            "Request {n}: add a tax field to the invoice REST api and write the migration \
             that adds the column, with a test for two tax rates and the PDF export."
        ),
        status: 200,
        stream: n.is_multiple_of(3),
        tokens_in: 180 + n % 50,
        tokens_out: 400 + n % 200,
        response_bytes: 2_000,
        latency_ms: 300,
        intent: Some(if off_task {
            IntentLabel::OffTopic
        } else {
            IntentLabel::Code
        }),
        confidence: Some(0.9),
        drift: Some(if off_task {
            Drift::Major
        } else {
            Drift::OnTask
        }),
        deviation_delta: Some(if off_task { 1.0 } else { 0.0 }),
        deviation_score: Some(if off_task { 1.0 } else { 0.0 }),
        action: Some(if off_task { Action::Warn } else { Action::None }),
        ..RequestRecord::default()
    }
}

fn logged(app: &warden::app::App, today: &str) -> u64 {
    let (_, totals) = usage_report(
        &app.db,
        &UsageQuery {
            tenant: "acme",
            from: "2000-01-01",
            to: today,
            user: None,
            task: None,
            group: Grouping::default(),
        },
    )
    .unwrap();
    totals.requests
}

/// A session cookie, signed in through the form as a browser would.
async fn sign_in(http: &reqwest::Client, base: &str, token: &str) -> String {
    let login = http.get(format!("{base}/ui/login")).send().await.unwrap();
    let nonce_cookie = login.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_string();
    let page = login.text().await.unwrap();
    let at = page.find("name=\"nonce\" value=\"").unwrap() + 20;
    let nonce = &page[at..at + page[at..].find('"').unwrap()];
    let body = form_urlencoded::Serializer::new(String::new())
        .append_pair("nonce", nonce)
        .append_pair("token", token)
        .finish();
    let signed_in = http
        .post(format!("{base}/ui/login"))
        .header("cookie", nonce_cookie)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(signed_in.status(), 303);
    signed_in
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|h| h.to_str().unwrap())
        .find(|c| c.starts_with("warden_session="))
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_string()
}

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize].as_secs_f64() * 1000.0
}

fn new_user(id: &str, role: Role) -> NewUser<'_> {
    NewUser {
        tenant_id: "acme",
        id,
        name: id,
        role,
        limits: Limits {
            requests_per_day: Some(1_000),
            tokens_per_day: Some(1_000_000),
            ..Limits::default()
        },
        groups: Vec::new(),
    }
}

#[tokio::main]
async fn main() {
    let state = std::env::temp_dir().join(format!("warden-bench-console-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&state);
    let config = Config {
        listen: "127.0.0.1:0".parse().unwrap(),
        state_dir: state.clone(),
        chain_enabled: false,
        ..Config::default()
    };
    let server = warden::server::start(config).await.unwrap();
    let app = server.app.clone();
    let db = &app.db;
    admin::create_tenant(db, "acme", "Acme", TenantOptions::default()).unwrap();
    admin::create_user(db, new_user("maya", Role::Admin)).unwrap();
    admin::create_user(db, new_user("rare", Role::User)).unwrap();
    for u in 0..USERS {
        admin::create_user(db, new_user(&format!("u{u:02}"), Role::User)).unwrap();
    }
    for t in 0..TASKS {
        admin::create_task(
            db,
            Task {
                tenant_id: "acme".into(),
                id: format!("t{t}"),
                title: format!("Task {t}"),
                description: String::new(),
                keywords: vec![],
                endpoints: vec![],
                models: vec![],
                providers: vec![],
                active: true,
                examples: vec![],
            },
        )
        .unwrap();
    }
    let admin_token = token::issue(
        db,
        TokenRequest {
            tenant_id: "acme",
            user_id: "maya",
            tasks: vec![],
            endpoints: vec![],
            models: vec![],
            ttl_secs: 3600,
            issued_at: None,
        },
    )
    .unwrap();

    let now = app.clock.now_ms();
    let started = Instant::now();
    let rare_every = RECORDS / RARE;
    for n in 0..RECORDS {
        let user = if n % rare_every == 7 {
            "rare".to_string()
        } else {
            format!("u{:02}", n % USERS)
        };
        app.writer
            .record(record(n, now, user, format!("t{}", n % TASKS)), None);
    }
    let today = db.directory().tenant("acme").unwrap().calendar.date_of(now);
    while logged(&app, &today) < RECORDS {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    println!(
        "{RECORDS} records of {USERS} users written through the state writer in {:.1} s",
        started.elapsed().as_secs_f64()
    );

    // Let the writer's journal rotation and sled's flush of the bulk write
    // finish: the pages are measured in steady state, each loaded once first.
    db.flush().unwrap();
    tokio::time::sleep(Duration::from_secs(5)).await;
    let base = format!("http://{}", server.addr);
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let cookie = sign_in(&http, &base, &admin_token).await;
    let page_20 = {
        // The cursor of the 20th page of the unfiltered log.
        let mut cursor = String::new();
        for _ in 0..19 {
            let page = db
                .query_requests(
                    "acme",
                    &Default::default(),
                    (!cursor.is_empty()).then_some(cursor.as_str()),
                    50,
                )
                .unwrap();
            cursor = page.next_cursor.unwrap();
        }
        format!("/ui/t/acme/logs?cursor={cursor}")
    };
    let pages = [
        ("overview (14 days of rollups)", "/ui/t/acme".to_string()),
        ("users (52, with today's usage)", "/ui/t/acme/users".into()),
        (
            "user page, busy user (2,000 requests)",
            "/ui/t/acme/users/u07".into(),
        ),
        (
            "user page, rare user (20 requests)",
            "/ui/t/acme/users/rare".into(),
        ),
        ("review queue", "/ui/t/acme/review".into()),
        ("logs, newest page", "/ui/t/acme/logs".into()),
        ("logs, 20th page (cursor)", page_20),
        (
            "logs, rare user (index)",
            "/ui/t/acme/logs?user=rare".into(),
        ),
        ("logs, one task (index)", "/ui/t/acme/logs?task=t3".into()),
        (
            "logs, intent off_topic (scan)",
            "/ui/t/acme/logs?intent=off_topic".into(),
        ),
        ("tasks (30 days each)", "/ui/t/acme/tasks".into()),
        ("tokens", "/ui/t/acme/tokens".into()),
    ];
    println!("\n| page | p50 ms | p95 ms | KiB |\n|---|---|---|---|");
    for (_, path) in &pages {
        http.get(format!("{base}{path}"))
            .header("cookie", &cookie)
            .send()
            .await
            .unwrap();
    }
    for (name, path) in &pages {
        let mut times = Vec::with_capacity(LOADS);
        let mut size = 0;
        for _ in 0..LOADS {
            let started = Instant::now();
            let response = http
                .get(format!("{base}{path}"))
                .header("cookie", &cookie)
                .send()
                .await
                .unwrap();
            assert_eq!(response.status(), 200, "{path}");
            size = response.bytes().await.unwrap().len();
            times.push(started.elapsed());
        }
        times.sort();
        println!(
            "| {name} | {:.2} | {:.2} | {} |",
            percentile(&times, 0.5),
            percentile(&times, 0.95),
            size / 1024
        );
    }
    let started = Instant::now();
    let csv = http
        .get(format!("{base}/ui/t/acme/logs.csv"))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    let rows = csv.iter().filter(|b| **b == b'\n').count() - 1;
    assert_eq!(rows as u64, RECORDS);
    println!(
        "\nCSV export of the whole log: {rows} rows, {:.1} MiB in {:.2} s",
        csv.len() as f64 / f64::from(1 << 20),
        started.elapsed().as_secs_f64()
    );
    server.stop().await;
    let _ = std::fs::remove_dir_all(&state);
}
