//! Several replicas sharing one PostgreSQL (scale-out): real `warden serve`
//! processes, a real PostgreSQL started for the test, the in-process mock
//! LLM. A state made on one machine is migrated, then every replica reads
//! it, and a change made through one is live on the others within a second.

use std::path::Path;
use std::time::{Duration, Instant};

use crate::common::servers::Postgres;
use crate::common::*;

/// A replica's config file: the shared state and its own local directory.
fn replica_config(
    dir: &Path,
    mock: std::net::SocketAddr,
    name: &str,
    url: &str,
) -> (std::path::PathBuf, String) {
    let state = dir.join(format!("{name}-state"));
    let (config, base) = own_config(dir, name, &state, mock);
    let mut text = std::fs::read_to_string(&config).unwrap();
    text = text.replacen(
        "[upstream]",
        &format!("[shared]\nstate = \"{url}\"\nreplica = \"{name}\"\n[upstream]"),
        1,
    );
    std::fs::write(&config, text).unwrap();
    (config, base)
}

/// A server's config file in `dir/name`, state in `state`, with a plugin
/// directory of its own (a copy of the built plugins), as on a machine of
/// its own.
fn own_config(
    dir: &Path,
    name: &str,
    state: &Path,
    mock: std::net::SocketAddr,
) -> (std::path::PathBuf, String) {
    let own = dir.join(name);
    std::fs::create_dir_all(&own).unwrap();
    let (config, base) = server_config(&own, state, mock);
    let plugins = own.join("plugins");
    std::fs::create_dir_all(&plugins).unwrap();
    for entry in std::fs::read_dir(plugin_dir()).unwrap().flatten() {
        if entry.path().extension().is_some_and(|e| e == "wasm") {
            std::fs::copy(entry.path(), plugins.join(entry.file_name())).unwrap();
        }
    }
    let text = std::fs::read_to_string(&config).unwrap().replace(
        &format!("plugin_dir = \"{}\"", plugin_dir().display()),
        &format!("plugin_dir = \"{}\"", plugins.display()),
    );
    std::fs::write(&config, text).unwrap();
    (config, base)
}

/// A replica process, killed when dropped: a failing test leaves none
/// running.
struct Running(Option<std::process::Child>);

impl Running {
    async fn start(config: &Path, http: &reqwest::Client, base: &str) -> Self {
        Self(Some(serve(config, http, base).await))
    }

    fn kill_9(mut self) {
        if let Some(child) = self.0.take() {
            kill_9(child);
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(child) = self.0.take() {
            kill_9(child);
        }
    }
}

/// Waits for `check` to hold (polling): it must within a second; prints
/// how long it took.
async fn within_a_second<F, Fut>(what: &str, check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let took = time_until(Duration::from_secs(3), check).await;
    assert!(
        took.is_some_and(|t| t < Duration::from_secs(1)),
        "{what} after {took:?}"
    );
    eprintln!("{what} after {took:?}");
}

/// How long `check` takes to hold, polling every 20 ms, at most `limit`.
async fn time_until<F, Fut>(limit: Duration, mut check: F) -> Option<Duration>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let started = Instant::now();
    while started.elapsed() < limit {
        if check().await {
            return Some(started.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    None
}

async fn status_of(http: &reqwest::Client, base: &str, token: &str, prompt: &str) -> u16 {
    let body = serde_json::json!({
        "model": "gpt-4o-mini",
        "messages": [{ "role": "user", "content": prompt }],
    });
    post_chat(http, base, token, body.to_string())
        .await
        .map_or(0, |r| r.status().as_u16())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_share_one_state_and_see_each_others_changes_within_a_second() {
    let pg = Postgres::start();
    let dir = TempDir::new("replicas");
    let mock = mock_upstream().await;
    let http = reqwest::Client::new();

    // A state made with the CLI on one machine, then copied into PostgreSQL.
    let seeded = dir.0.join("a-state");
    let ali = seed_acme_with_cli(&seeded);
    let local = |args: &[&str]| warden_in(&seeded, args);
    local(&[
        "user", "create", "--tenant", "acme", "maya", "--role", "admin",
    ]);
    let admin = local(&[
        "token", "issue", "--tenant", "acme", "--user", "maya", "--task", TASK,
    ]);
    // It served a call and took a plugin upload before it was migrated.
    let (embedded, alone) = own_config(&dir.0, "embedded", &seeded, mock);
    let mut server = Running::start(&embedded, &http, &alone).await;
    assert_eq!(
        status_of(&http, &alone, &ali, "write the invoice total").await,
        200
    );
    let limiter = std::fs::read(plugin_dir().join("max-prompt-length.wasm")).unwrap();
    let uploaded = http
        .put(format!(
            "{alone}/admin/v1/tenants/acme/plugins/migrated-limit"
        ))
        .bearer_auth(&admin)
        .header("content-type", "application/wasm")
        .body(limiter)
        .send()
        .await
        .unwrap();
    assert_eq!(uploaded.status(), 201);
    let stopped = sigterm(server.0.take().expect("running")).await;
    assert!(stopped.success());
    let plugins = dir.0.join("embedded/plugins");
    let copied = warden_in(
        &seeded,
        &[
            "migrate",
            "--to",
            &pg.url,
            "--plugin-dir",
            plugins.to_str().unwrap(),
        ],
    );
    assert!(copied.contains("users"), "{copied}");
    assert!(copied.contains("plugin_files"), "{copied}");
    assert_eq!(
        pg.query("SELECT count(*) FROM request_log"),
        "1",
        "{copied}"
    );
    // A second copy would overwrite: refused.
    let again = warden_output(&[
        "migrate",
        "--to",
        &pg.url,
        "--state-dir",
        seeded.to_str().unwrap(),
    ]);
    assert!(!again.status.success());

    // Replica a on the migrated directory, replica b on an empty one.
    let (config_a, a) = replica_config(&dir.0, mock, "a", &pg.url);
    let (config_b, b) = replica_config(&dir.0, mock, "b", &pg.url);
    let replica_a = Running::start(&config_a, &http, &a).await;
    let replica_b = Running::start(&config_b, &http, &b).await;

    // b knows ali's token, her task and her tenant from PostgreSQL alone.
    let prompt = "write the invoice total function";
    assert_eq!(status_of(&http, &b, &ali, prompt).await, 200);
    assert_eq!(status_of(&http, &a, &ali, prompt).await, 200);
    let ready = get_json(&http, &format!("{b}/readyz"), "").await;
    assert_eq!(ready["checks"]["shared_state"]["ok"], true, "{ready}");
    // The migrated upload is in b's own plugin directory, live.
    let listed = get_json(&http, &format!("{b}/admin/v1/tenants/acme/plugins"), &admin).await;
    assert_eq!(listed["data"][0]["name"], "migrated-limit", "{listed}");
    assert_eq!(listed["data"][0]["live"], 1, "{listed}");

    // A policy set through a is enforced by b within a second.
    let default = std::fs::read_to_string(repo_root().join("policies/default.toml")).unwrap();
    let strict = format!(
        "{default}\n[[guardrails]]\nplugin = \"max-prompt-length\"\nconfig = {{ max_chars = 50 }}\n"
    );
    let file = dir.0.join("acme.toml");
    std::fs::write(&file, &strict).unwrap();
    let long = format!("{prompt} {}", "for the invoices ".repeat(10));
    assert_eq!(status_of(&http, &b, &ali, &long).await, 200);
    warden(&[
        "--server",
        &a,
        "--token",
        &admin,
        "policy",
        "set",
        "--tenant",
        "acme",
        file.to_str().unwrap(),
    ]);
    within_a_second("policy on b", || async {
        status_of(&http, &b, &ali, &long).await == 403
    })
    .await;

    // A user created through b can call through a at once.
    let (status, _) = admin_call(
        &http,
        &b,
        &admin,
        "POST",
        "/admin/v1/tenants/acme/users",
        serde_json::json!({"id": "noor"}),
    )
    .await;
    assert_eq!(status, 201);
    let (status, issued) = admin_call(
        &http,
        &b,
        &admin,
        "POST",
        "/admin/v1/tenants/acme/tokens",
        serde_json::json!({"user": "noor", "tasks": [TASK]}),
    )
    .await;
    assert_eq!(status, 201, "{issued}");
    let noor = issued["token"].as_str().unwrap().to_string();
    let jti = issued["jti"].as_str().unwrap().to_string();
    within_a_second("token on a", || async {
        status_of(&http, &a, &noor, prompt).await == 200
    })
    .await;

    // Revoked through a: refused by b within a second. A token is accepted
    // by its signature once its user is known, so its record may reach a
    // a moment after the first call does (a fresh-clone run saw the revoke
    // answer 404 1.9 ms after the issue): a retries until a knows it.
    within_a_second("token record on a, revoked through a", || async {
        let (status, _) = admin_call(
            &http,
            &a,
            &admin,
            "POST",
            &format!("/admin/v1/tenants/acme/tokens/{jti}/revoke"),
            serde_json::json!({"reason": "laptop stolen"}),
        )
        .await;
        status == 200
    })
    .await;
    within_a_second("revocation on b", || async {
        status_of(&http, &b, &noor, prompt).await == 401
    })
    .await;

    // A plugin uploaded through a is live on b within a second: b lists
    // it, and a policy naming it (which refuses plugins not loaded) is
    // accepted through b and enforced by both.
    let wasm = std::fs::read(plugin_dir().join("max-prompt-length.wasm")).unwrap();
    let uploaded = http
        .put(format!("{a}/admin/v1/tenants/acme/plugins/short-prompts"))
        .bearer_auth(&admin)
        .header("content-type", "application/wasm")
        .body(wasm)
        .send()
        .await
        .unwrap();
    assert_eq!(uploaded.status(), 201, "{}", uploaded.text().await.unwrap());
    let own = format!(
        "{default}\n[[guardrails]]\nplugin = \"short-prompts\"\nconfig = {{ max_chars = 40 }}\n"
    );
    let policy = serde_json::json!({ "toml": own, "reason": "short prompts only" });
    within_a_second("plugin loaded on b", || async {
        let path = "/admin/v1/tenants/acme/policy";
        admin_call(&http, &b, &admin, "PUT", path, policy.clone())
            .await
            .0
            == 200
    })
    .await;
    let listed = get_json(&http, &format!("{b}/admin/v1/tenants/acme/plugins"), &admin).await;
    let short = listed["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "short-prompts");
    assert_eq!(
        short.map(|p| &p["live"]),
        Some(&serde_json::json!(1)),
        "{listed}"
    );
    let medium = format!("{prompt} for the invoice team");
    let took = time_until(Duration::from_secs(3), || async {
        status_of(&http, &a, &ali, &medium).await == 403
    })
    .await;
    assert!(
        took.is_some(),
        "the policy set through b runs b's upload on a"
    );
    assert_eq!(status_of(&http, &b, &ali, &medium).await, 403);

    // Everything went through PostgreSQL: the audit log holds both
    // replicas' changes, each once, and every row names its tenant.
    let revokes = pg.query("SELECT count(*) FROM state_rows WHERE tree = 'events' AND convert_from(value, 'UTF8')::json->>'action' = 'token.revoke'");
    assert_eq!(revokes, "1");
    let untagged = pg.query("SELECT count(*) FROM state_rows WHERE tree IN ('users', 'tasks', 'events', 'policies') AND tenant_id IS DISTINCT FROM 'acme'");
    assert_eq!(untagged, "0");
    let replicas =
        pg.query("SELECT string_agg(DISTINCT replica, ',' ORDER BY replica) FROM state_changes");
    assert_eq!(replicas, "a,b,warden-migrate");

    replica_a.kill_9();
    replica_b.kill_9();
}

async fn admin_call(
    http: &reqwest::Client,
    base: &str,
    token: &str,
    method: &str,
    path: &str,
    body: serde_json::Value,
) -> (u16, serde_json::Value) {
    let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
    let response = http
        .request(method, format!("{base}{path}"))
        .bearer_auth(token)
        .header("content-type", "application/json")
        .body(body.to_string())
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    let text = response.text().await.unwrap();
    (
        status,
        serde_json::from_str(&text).unwrap_or(serde_json::Value::String(text)),
    )
}

/// Every logged call of `user` on the replica at `base`: (calls answered
/// 200, their real tokens).
async fn logged(http: &reqwest::Client, base: &str, admin: &str, user: &str) -> (u64, u64) {
    let (mut answered, mut tokens) = (0, 0);
    let mut cursor = String::new();
    loop {
        let url = format!("{base}/admin/v1/tenants/acme/logs?user={user}&limit=500{cursor}");
        let page = get_json(http, &url, admin).await;
        for record in page["data"].as_array().unwrap() {
            if record["status"] == 200 {
                answered += 1;
            }
            tokens +=
                record["tokens_in"].as_u64().unwrap() + record["tokens_out"].as_u64().unwrap();
        }
        match page["next_cursor"].as_str() {
            Some(next) => cursor = format!("&cursor={next}"),
            None => return (answered, tokens),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_with_redis_counters_hold_a_quota_exactly_as_one_does() {
    let pg = Postgres::start();
    let redis = crate::common::servers::Redis::start();
    let dir = TempDir::new("replicas-quota");
    let mock = mock_upstream().await;
    let seeded = dir.0.join("a-state");
    let local = |args: &[&str]| warden_in(&seeded, args);
    local(&["tenant", "create", "acme"]);
    let task = ["--title", "Invoices", "--keyword", "invoice"];
    local(&[&["task", "create", "--tenant", "acme", TASK][..], &task[..]].concat());
    local(&[
        "user", "create", "--tenant", "acme", "maya", "--role", "admin",
    ]);
    // A small request quota and a small token budget.
    local(&[
        "user",
        "create",
        "--tenant",
        "acme",
        "ali",
        "--requests-per-day",
        "100",
    ]);
    local(&[
        "user",
        "create",
        "--tenant",
        "acme",
        "bo",
        "--tokens-per-day",
        "4000",
    ]);
    let issue = |user: &str| {
        local(&[
            "token", "issue", "--tenant", "acme", "--user", user, "--task", TASK,
        ])
    };
    let (admin, ali, bo) = (issue("maya"), issue("ali"), issue("bo"));
    warden_in(&seeded, &["migrate", "--to", &pg.url]);

    let (config_a, a) = counted_replica_config(&dir.0, mock, "a", &pg.url, &redis.url);
    let (config_b, b) = counted_replica_config(&dir.0, mock, "b", &pg.url, &redis.url);
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(64)
        .build()
        .unwrap();
    let replica_a = Running::start(&config_a, &http, &a).await;
    let replica_b = Running::start(&config_b, &http, &b).await;
    let ready = get_json(&http, &format!("{a}/readyz"), "").await;
    assert_eq!(ready["checks"]["counters"]["ok"], true, "{ready}");

    // 64 clients, each alternating between the replicas, 4 calls each for
    // ali (256 calls against a quota of 100) and for bo.
    let mut clients = Vec::new();
    for client in 0..64 {
        let (http, a, b, ali, bo) = (http.clone(), a.clone(), b.clone(), ali.clone(), bo.clone());
        clients.push(tokio::spawn(async move {
            let mut statuses = Vec::new();
            for call in 0..4 {
                let base = if (client + call) % 2 == 0 { &a } else { &b };
                let prompt = "write the invoice total function and its tests";
                statuses.push(("ali", status_of(&http, base, &ali, prompt).await));
                statuses.push(("bo", status_of(&http, base, &bo, prompt).await));
            }
            statuses
        }));
    }
    let mut counts: std::collections::BTreeMap<(&str, u16), u32> = Default::default();
    for client in clients {
        for status in client.await.unwrap() {
            *counts.entry(status).or_default() += 1;
        }
    }
    // Exactly the quota, over both replicas, and every other call refused.
    assert_eq!(counts.get(&("ali", 200)), Some(&100), "{counts:?}");
    assert_eq!(counts.get(&("ali", 429)), Some(&156), "{counts:?}");
    let bo_answered = counts.get(&("bo", 200)).copied().unwrap_or(0);
    assert!(
        bo_answered > 0 && counts.contains_key(&("bo", 429)),
        "{counts:?}"
    );

    // The logs of both replicas agree with the counters, and bo's real
    // tokens stay within his budget: each reservation capped the answer at
    // what was left, atomically across replicas.
    // Each replica logs the calls it served and, from PostgreSQL, the
    // other's: both show all of them.
    let spent = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let all_logged = eventually_async(|| {
        let (http, a, b, admin) = (http.clone(), a.clone(), b.clone(), admin.clone());
        let spent = spent.clone();
        async move {
            let (ali_a, _) = logged(&http, &a, &admin, "ali").await;
            let (ali_b, _) = logged(&http, &b, &admin, "ali").await;
            let (bo_a, tokens_a) = logged(&http, &a, &admin, "bo").await;
            let (bo_b, tokens_b) = logged(&http, &b, &admin, "bo").await;
            spent.store(tokens_a, std::sync::atomic::Ordering::Relaxed);
            (ali_a, ali_b) == (100, 100)
                && (bo_a as u32, bo_b as u32) == (bo_answered, bo_answered)
                && tokens_a == tokens_b
        }
    })
    .await;
    assert!(
        all_logged,
        "both replicas log every answered call, each once"
    );
    let spent = spent.load(std::sync::atomic::Ordering::Relaxed);
    assert!(spent <= 4000, "bo spent {spent} tokens of 4000");
    // Settlements reach Redis (queued at each call's end): its day window
    // equals the logs.
    let day_key = only_key(&redis.url, "q:acme:bo:d*");
    let settled = eventually_async(|| {
        let (url, key) = (redis.url.clone(), day_key.clone());
        async move {
            let mut conn = redis_connection(&url);
            let tokens: u64 = redis::cmd("HGET")
                .arg(&key)
                .arg("t")
                .query(&mut conn)
                .unwrap();
            tokens == spent
        }
    })
    .await;
    assert!(
        settled,
        "Redis's day window for bo equals his {spent} logged tokens"
    );

    replica_a.kill_9();
    replica_b.kill_9();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_are_refused_while_redis_is_down_and_served_again_when_it_returns() {
    let pg = Postgres::start();
    let mut redis = crate::common::servers::Redis::start();
    let dir = TempDir::new("replicas-redis-down");
    let mock = mock_upstream().await;
    let seeded = dir.0.join("a-state");
    let ali = seed_acme_with_cli(&seeded);
    warden_in(&seeded, &["migrate", "--to", &pg.url]);
    let (config, a) = replica_config(&dir.0, mock, "a", &pg.url);
    let text = std::fs::read_to_string(&config).unwrap();
    let counters = format!("[shared]\ncounters = \"{}\"\n", redis.url);
    std::fs::write(&config, text.replacen("[shared]\n", &counters, 1)).unwrap();
    let http = reqwest::Client::new();
    let replica = Running::start(&config, &http, &a).await;
    let prompt = "write the invoice total function";
    assert_eq!(status_of(&http, &a, &ali, prompt).await, 200);

    // Redis away for 10 s under calls: each refused with 503 in the
    // caller's dialect (counted nowhere is never an answer); /readyz says why.
    redis.stop();
    let body = serde_json::json!({
        "model": "gpt-4o-mini",
        "messages": [{ "role": "user", "content": prompt }],
    });
    let down = Instant::now();
    let mut refused_calls = 0;
    while down.elapsed() < Duration::from_secs(10) {
        let refused = post_chat(&http, &a, &ali, body.to_string()).await.unwrap();
        assert_eq!(refused.status(), 503);
        assert!(refused.headers().contains_key("retry-after"));
        let (_, code, message) = error_of(refused).await;
        assert_eq!(code, "counters_unavailable", "{message}");
        refused_calls += 1;
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    assert!(
        refused_calls >= 20,
        "{refused_calls} calls during the outage"
    );
    let ready = get_json(&http, &format!("{a}/readyz"), "").await;
    assert_eq!(ready["checks"]["counters"]["ok"], false, "{ready}");

    // Back: served again without a restart (the connection manager
    // reconnects by itself).
    redis.start_again();
    let back = time_until(Duration::from_secs(10), || async {
        status_of(&http, &a, &ali, prompt).await == 200
    })
    .await;
    assert!(back.is_some(), "calls are served again once Redis is back");
    replica.kill_9();
}

fn redis_connection(url: &str) -> redis::Connection {
    redis::Client::open(url).unwrap().get_connection().unwrap()
}

/// The one key matching `pattern` (a user's day window).
fn only_key(url: &str, pattern: &str) -> String {
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg(pattern)
        .query(&mut redis_connection(url))
        .unwrap();
    assert_eq!(keys.len(), 1, "{keys:?}");
    keys[0].clone()
}

/// A replica's config (see [`replica_config`]) with `[shared] counters`
/// in Redis.
fn counted_replica_config(
    dir: &Path,
    mock: std::net::SocketAddr,
    name: &str,
    state_url: &str,
    redis_url: &str,
) -> (std::path::PathBuf, String) {
    let (config, base) = replica_config(dir, mock, name, state_url);
    let text = std::fs::read_to_string(&config).unwrap();
    let counters = format!("[shared]\ncounters = \"{redis_url}\"\n");
    std::fs::write(&config, text.replacen("[shared]\n", &counters, 1)).unwrap();
    (config, base)
}

/// The first line of psql's output per row.
fn rows(pg: &Postgres, sql: &str) -> Vec<String> {
    pg.query(sql).lines().map(str::to_string).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_killed_under_load_loses_no_answered_call_and_redis_equals_the_log() {
    use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
    use std::sync::Arc;
    let pg = Postgres::start();
    let redis = crate::common::servers::Redis::start();
    let dir = TempDir::new("replicas-kill");
    let mock = mock_upstream().await;
    let seeded = dir.0.join("a-state");
    let ali = seed_acme_with_cli(&seeded);
    warden_in(&seeded, &["migrate", "--to", &pg.url]);
    let (config_a, a) = counted_replica_config(&dir.0, mock, "a", &pg.url, &redis.url);
    let (config_b, b) = counted_replica_config(&dir.0, mock, "b", &pg.url, &redis.url);
    let http = reqwest::Client::new();
    let replica_a = Running::start(&config_a, &http, &a).await;
    let replica_b = Running::start(&config_b, &http, &b).await;

    // 24 clients, half on each replica; a is killed mid-load, b keeps going.
    let (stop, next) = (
        Arc::new(AtomicBool::new(false)),
        Arc::new(AtomicU64::new(0)),
    );
    let workers: Vec<_> = (0..24)
        .map(|n| {
            let base = if n % 2 == 0 { a.clone() } else { b.clone() };
            let (http, token, stop, next) = (http.clone(), ali.clone(), stop.clone(), next.clone());
            tokio::spawn(async move {
                crate::durability::load_until(&http, &base, &token, stop, next).await
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    replica_a.kill_9();
    tokio::time::sleep(Duration::from_millis(300)).await;
    stop.store(true, Ordering::Relaxed);
    let mut acknowledged = Vec::new();
    for worker in workers {
        acknowledged.extend(worker.await.unwrap());
    }
    assert!(acknowledged.len() > 100, "{} answered", acknowledged.len());

    // Restarted under its name: its journal is replayed and shipped, and
    // what it left in flight in Redis is reconciled with its log.
    let replica_a = Running::start(&config_a, &http, &a).await;
    let all_there = eventually_async(|| {
        let logged: std::collections::HashSet<String> = rows(&pg, "SELECT id FROM request_log")
            .into_iter()
            .collect();
        let missing = acknowledged
            .iter()
            .filter(|id| !logged.contains(*id))
            .count();
        async move { missing == 0 }
    })
    .await;
    let logged = rows(&pg, "SELECT id FROM request_log");
    let distinct: std::collections::HashSet<&String> = logged.iter().collect();
    assert!(all_there, "every answered call is in PostgreSQL");
    assert_eq!(logged.len(), distinct.len(), "each once");
    eprintln!(
        "{} answered, {} records in PostgreSQL",
        acknowledged.len(),
        logged.len()
    );

    let counted = "FROM request_log WHERE user_id = 'ali' AND NOT coalesce((record->>'quota_returned')::bool, false)";
    let day_key = only_key(&redis.url, "q:acme:ali:d*");
    let mut last = (String::new(), String::new(), 0u64, 0u64);
    let equal = eventually_async(|| {
        let requests = pg.query(&format!("SELECT count(*) {counted}"));
        let tokens = pg.query(&format!(
            "SELECT coalesce(sum(tokens_in + tokens_out), 0) {counted}"
        ));
        let mut conn = redis_connection(&redis.url);
        let (r, t): (Option<u64>, Option<u64>) = redis::cmd("HMGET")
            .arg(&day_key)
            .arg("r")
            .arg("t")
            .query(&mut conn)
            .unwrap();
        last = (
            requests.clone(),
            tokens.clone(),
            r.unwrap_or(0),
            t.unwrap_or(0),
        );
        let same = requests == last.2.to_string() && tokens == last.3.to_string();
        async move { same }
    })
    .await;
    assert!(equal, "Redis (requests, tokens) equal the log's: {last:?}");
    let inflight: u64 = {
        let mut conn = redis_connection(&redis.url);
        redis::cmd("HLEN")
            .arg("inflight:a")
            .query(&mut conn)
            .unwrap()
    };
    assert_eq!(inflight, 0, "nothing of a's is left in flight");
    replica_a.kill_9();
    replica_b.kill_9();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_are_served_while_postgres_is_down_and_their_records_arrive_when_it_returns() {
    let pg = Postgres::start();
    let dir = TempDir::new("replicas-pg-down");
    let mock = mock_upstream().await;
    let seeded = dir.0.join("a-state");
    let ali = seed_acme_with_cli(&seeded);
    warden_in(&seeded, &["migrate", "--to", &pg.url]);
    let (config, a) = replica_config(&dir.0, mock, "a", &pg.url);
    let http = reqwest::Client::new();
    let replica = Running::start(&config, &http, &a).await;
    let call = |n: u32| {
        let (http, a, ali) = (http.clone(), a.clone(), ali.clone());
        async move {
            let body = serde_json::json!({
                "model": "gpt-4o-mini",
                "messages": [{ "role": "user", "content": format!("write invoice endpoint {n}") }],
            });
            let answer = post_chat(&http, &a, &ali, body.to_string()).await.unwrap();
            assert_eq!(answer.status(), 200, "call {n}");
            answer.headers()["x-warden-request-id"]
                .to_str()
                .unwrap()
                .to_string()
        }
    };
    let mut answered = vec![call(0).await];

    // PostgreSQL away for 10 s: every call is still answered from the
    // snapshot, its record kept in the journal and the local log.
    pg.stop();
    let down = Instant::now();
    let mut n = 1;
    while down.elapsed() < Duration::from_secs(10) {
        answered.push(call(n).await);
        n += 1;
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let ready = get_json(&http, &format!("{a}/readyz"), "").await;
    assert_eq!(ready["status"], "ready", "{ready}");
    assert_eq!(ready["checks"]["shared_state"]["ok"], false, "{ready}");

    // Back: the records arrive by themselves, each once.
    pg.start_again();
    let arrived = eventually_async(|| {
        let logged: std::collections::HashSet<String> = rows(&pg, "SELECT id FROM request_log")
            .into_iter()
            .collect();
        let all = answered.iter().all(|id| logged.contains(id));
        async move { all }
    })
    .await;
    assert!(arrived, "all {} records reach PostgreSQL", answered.len());
    assert_eq!(
        pg.query("SELECT count(*) FROM request_log"),
        answered.len().to_string()
    );
    replica.kill_9();

    // The change log is pruned after a week (a replica prunes when it
    // starts, then hourly), keeping the latest change; the state stays.
    pg.query("UPDATE state_changes SET at = now() - interval '8 days'");
    let replica = Running::start(&config, &http, &a).await;
    let pruned = eventually_async(|| {
        let left = pg.query("SELECT count(*) FROM state_changes");
        async move { left == "1" }
    })
    .await;
    assert!(pruned, "only the latest change is kept");
    let again = "write invoice endpoint again";
    assert_eq!(status_of(&http, &a, &ali, again).await, 200);
    // A replica that missed pruned changes says so until it restarts.
    pg.query("UPDATE state_changes_pruned SET upto = 1000000000");
    let stale = eventually_async(|| {
        let (http, a) = (http.clone(), a.clone());
        async move {
            let ready = get_json(&http, &format!("{a}/readyz"), "").await;
            ready["checks"]["shared_state"]["error"]
                .as_str()
                .is_some_and(|e| e.contains("restart it"))
        }
    })
    .await;
    assert!(stale, "/readyz names a replica that missed pruned changes");
    replica.kill_9();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tenant_with_an_outage_grace_is_served_on_local_counters_for_that_long() {
    let pg = Postgres::start();
    let mut redis = crate::common::servers::Redis::start();
    let dir = TempDir::new("replicas-grace");
    let mock = mock_upstream().await;
    let seeded = dir.0.join("a-state");
    let ali = seed_acme_with_cli(&seeded);
    let local = |args: &[&str]| warden_in(&seeded, args);
    local(&[
        "user", "create", "--tenant", "acme", "maya", "--role", "admin",
    ]);
    let admin = local(&[
        "token", "issue", "--tenant", "acme", "--user", "maya", "--task", TASK,
    ]);
    warden_in(&seeded, &["migrate", "--to", &pg.url]);
    let (config, a) = counted_replica_config(&dir.0, mock, "a", &pg.url, &redis.url);
    let http = reqwest::Client::new();
    let replica = Running::start(&config, &http, &a).await;
    // The tenant's policy: on the replica's own counters for 3 s of outage.
    let default = std::fs::read_to_string(repo_root().join("policies/default.toml")).unwrap();
    let policy = serde_json::json!({
        "toml": format!("counters_outage_grace_secs = 3\n{default}"),
        "reason": "keep working through short Redis outages",
    });
    let (status, set) = admin_call(
        &http,
        &a,
        &admin,
        "PUT",
        "/admin/v1/tenants/acme/policy",
        policy,
    )
    .await;
    assert_eq!(status, 200, "{set}");
    let prompt = "write the invoice total function";
    assert_eq!(status_of(&http, &a, &ali, prompt).await, 200);

    redis.stop();
    let down = Instant::now();
    assert_eq!(
        status_of(&http, &a, &ali, prompt).await,
        200,
        "within the grace"
    );
    tokio::time::sleep(Duration::from_millis(1_000)).await;
    assert_eq!(
        status_of(&http, &a, &ali, prompt).await,
        200,
        "within the grace"
    );
    tokio::time::sleep(
        Duration::from_secs(3).saturating_sub(down.elapsed()) + Duration::from_millis(300),
    )
    .await;
    assert_eq!(
        status_of(&http, &a, &ali, prompt).await,
        503,
        "past the grace"
    );

    redis.start_again();
    let back = time_until(Duration::from_secs(10), || async {
        status_of(&http, &a, &ali, prompt).await == 200
    })
    .await;
    assert!(back.is_some(), "served on the shared counters again");
    replica.kill_9();
}

/// Unrelated prompts for the invoice task, sent in order: the misuse
/// tests' own, then a few more.
const MORE_OFF_TASK: &[&str] = &[
    "Suggest a workout plan to lose weight before summer",
    "Write a funny speech for my brother's wedding",
    "What should I cook for my kids this weekend?",
];

/// How many of the unrelated prompts a user sends, over `bases` in turn,
/// before being refused as blocked.
async fn calls_until_blocked(http: &reqwest::Client, bases: &[&str], token: &str) -> Option<usize> {
    let prompts = crate::misuse::OFF_TASK.iter().chain(MORE_OFF_TASK);
    for (n, prompt) in prompts.enumerate() {
        let base = bases[n % bases.len()];
        let answer = post_chat(http, base, token, chat(prompt)).await.unwrap();
        if answer.status() == 403 {
            let (_, code, _) = error_of(answer).await;
            assert_eq!(code, "user_blocked");
            return Some(n + 1);
        }
    }
    None
}

fn chat(prompt: &str) -> String {
    serde_json::json!({ "model": "gpt-4o-mini", "messages": [{ "role": "user", "content": prompt }] })
        .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_misuser_spread_over_replicas_is_scored_as_on_one() {
    let pg = Postgres::start();
    let redis = crate::common::servers::Redis::start();
    let dir = TempDir::new("replicas-deviation");
    let mock = mock_upstream().await;
    let seeded = dir.0.join("a-state");
    let _ali = seed_acme_with_cli(&seeded);
    let local = |args: &[&str]| warden_in(&seeded, args);
    local(&[
        "user", "create", "--tenant", "acme", "maya", "--role", "admin",
    ]);
    local(&["user", "create", "--tenant", "acme", "one"]);
    local(&["user", "create", "--tenant", "acme", "spread"]);
    let issue = |user: &str| {
        local(&[
            "token", "issue", "--tenant", "acme", "--user", user, "--task", TASK,
        ])
    };
    let (admin, one, spread) = (issue("maya"), issue("one"), issue("spread"));
    warden_in(&seeded, &["migrate", "--to", &pg.url]);
    let (config_a, a) = counted_replica_config(&dir.0, mock, "a", &pg.url, &redis.url);
    let (config_b, b) = counted_replica_config(&dir.0, mock, "b", &pg.url, &redis.url);
    let http = reqwest::Client::new();
    let replica_a = Running::start(&config_a, &http, &a).await;
    let replica_b = Running::start(&config_b, &http, &b).await;

    // The same unrelated prompts: one user on one replica, another over
    // both in turn. The score and evidence are shared; the deviation
    // plugin's own key-value store (where it keeps the last action, to
    // rise one step per call) is each replica's, which may cost one call:
    // 3 on one replica, 4 over two (5 with each replica scoring alone).
    let on_one = calls_until_blocked(&http, &[&a], &one)
        .await
        .expect("blocked on one replica");
    let over_both = calls_until_blocked(&http, &[&a, &b], &spread)
        .await
        .expect("blocked over two");
    eprintln!("blocked after {on_one} unrelated calls on one replica, {over_both} over two");
    assert!(
        over_both <= on_one + 1,
        "{over_both} calls over two replicas, {on_one} on one"
    );

    // Re-enabled through a: the score starts afresh on b too, so one
    // unrelated call there is answered (forgiven), not a block.
    let (status, _) = admin_call(
        &http,
        &a,
        &admin,
        "POST",
        "/admin/v1/tenants/acme/users/spread/enable",
        serde_json::json!({ "reason": "talked it through" }),
    )
    .await;
    assert_eq!(status, 200);
    let back = time_until(Duration::from_secs(3), || async {
        post_chat(&http, &b, &spread, chat(crate::misuse::OFF_TASK[0]))
            .await
            .unwrap()
            .status()
            == 200
    })
    .await;
    assert!(
        back.is_some(),
        "answered on b after the re-enable through a"
    );
    replica_a.kill_9();
    replica_b.kill_9();
}
