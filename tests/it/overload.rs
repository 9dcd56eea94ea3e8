//! Hostile clients and overload (issue 15, bugs 10 and 11, bounded work):
//! slowloris and idle connections are timed out without slowing anyone,
//! a drain refuses new connections at once and is not held up by half-sent
//! requests, running out of file descriptors neither spins nor floods the
//! log, and 1,024 concurrent calls of one tenant are shed with 503 +
//! `Retry-After` while another tenant is served and memory stays bounded.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::common::provider::{Answer, FakeProvider};
use crate::common::*;

/// Connections that send nothing, half a request head, half of HTTP/2's
/// preface, or a head and then half its body.
async fn stalled_connections(addr: &str, n: usize) -> Vec<TcpStream> {
    let mut all = Vec::with_capacity(n);
    for i in 0..n {
        let mut stream = TcpStream::connect(addr).await.unwrap();
        let sent: &[u8] = match i % 4 {
            0 => b"",
            1 => b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Le",
            2 => b"PRI * HTTP/2.0\r\n",
            _ => b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n",
        };
        stream.write_all(sent).await.unwrap();
        all.push(stream);
    }
    all
}

/// Whether the server closed `stream` (reading to its end finishes).
async fn closed_by_server(stream: &mut TcpStream, within: Duration) -> bool {
    let mut rest = Vec::new();
    tokio::time::timeout(within, stream.read_to_end(&mut rest))
        .await
        .is_ok()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_and_idle_clients_are_timed_out_and_do_not_slow_others() {
    let env = TestEnv::start_with(vec![TenantSpec::new("acme")], |c| {
        c.header_read_timeout_secs = 1;
        c.body_read_timeout_secs = 1;
    })
    .await;
    let addr = env.base.trim_start_matches("http://").to_string();
    let mut stalled = stalled_connections(&addr, 300).await;

    // Everyone else is served as usual meanwhile.
    let token = env.token("acme");
    let mut latencies = Vec::new();
    for _ in 0..20 {
        let started = Instant::now();
        assert_eq!(env.chat(&token, "invoice api", false).await.status(), 200);
        latencies.push(started.elapsed());
    }
    latencies.sort();
    eprintln!(
        "beside 300 stalled connections: p50 {:?}, max {:?}",
        latencies[10], latencies[19]
    );
    assert!(latencies[10] < Duration::from_millis(100), "{latencies:?}");

    // A body that trickles in gets 408 once its time is up.
    let mut trickle = TcpStream::connect(&addr).await.unwrap();
    let head = format!(
        "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\n\
         X-Task-Id: {TASK}\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{{\"model\""
    );
    trickle.write_all(head.as_bytes()).await.unwrap();
    let mut answer = vec![0u8; 4096];
    let n = tokio::time::timeout(Duration::from_secs(3), trickle.read(&mut answer))
        .await
        .expect("answered")
        .unwrap();
    let answer = String::from_utf8_lossy(&answer[..n]);
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains("request_timeout"), "{answer}");

    // Every stalled connection (and the idle keep-alive one) is closed
    // by the server once the header timeout passes.
    for (i, stream) in stalled.iter_mut().enumerate() {
        assert!(
            closed_by_server(stream, Duration::from_secs(3)).await,
            "connection {i} (kind {}) is still open",
            i % 4
        );
    }

    // `/readyz` reports each dependency; with `/healthz` it tells load
    // balancers when a drain began.
    let ready = reqwest::get(format!("{}/readyz", env.base)).await.unwrap();
    assert_eq!(ready.status(), 200);
    let ready: serde_json::Value = serde_json::from_str(&ready.text().await.unwrap()).unwrap();
    assert_eq!(ready["status"], "ready", "{ready}");
    assert_eq!(ready["checks"]["state"]["ok"], true, "{ready}");
    assert_eq!(ready["checks"]["plugins"]["chain"], "loaded", "{ready}");
    env.app()
        .draining
        .store(true, std::sync::atomic::Ordering::Relaxed);
    // A fresh client: the test's pooled connections have idled past the
    // 1 s header timeout and are being closed by the server.
    let url = format!("{}/healthz", env.base);
    let health = reqwest::get(url).await.unwrap();
    assert_eq!(health.status(), 503);
    assert_eq!(health.text().await.unwrap(), r#"{"status":"draining"}"#);
    let ready = reqwest::get(format!("{}/readyz", env.base)).await.unwrap();
    assert_eq!(ready.status(), 503);
    let ready: serde_json::Value = serde_json::from_str(&ready.text().await.unwrap()).unwrap();
    assert_eq!(ready["checks"]["draining"]["ok"], false, "{ready}");
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_drain_refuses_new_connections_at_once_and_is_not_held_up_by_half_requests() {
    let env = TestEnv::start_with_mock_latency(
        vec![TenantSpec::new("acme")],
        Duration::from_millis(3_000),
        |c| c.header_read_timeout_secs = 60, // longer than the test
    )
    .await;
    let addr = env.base.trim_start_matches("http://").to_string();
    let _stalled = stalled_connections(&addr, 8).await;
    let token = env.token("acme");
    let (http, base) = (env.http.clone(), env.base.clone());
    let in_flight = tokio::spawn(async move {
        let response = post_chat(&http, &base, &token, INVOICE_CALL).await.unwrap();
        (response.status().as_u16(), response.text().await.unwrap())
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    let started = Instant::now();
    let stopping = tokio::spawn(env.stop());
    // New connections are refused while the call in flight holds the drain.
    let mut refused = false;
    while !refused && started.elapsed() < Duration::from_secs(2) {
        tokio::time::sleep(Duration::from_millis(20)).await;
        refused = TcpStream::connect(&addr).await.is_err();
    }
    assert!(refused, "new connections are refused during the drain");
    assert!(
        !in_flight.is_finished(),
        "refused before the call in flight ended"
    );
    let (status, body) = in_flight.await.unwrap();
    assert_eq!(status, 200, "{body}");
    stopping.await.unwrap();
    assert!(
        started.elapsed() < Duration::from_secs(6),
        "the drain took {:?} (grace 30 s)",
        started.elapsed()
    );
}

// --- The real binary -------------------------------------------------------

/// Tenant `tenant`, user `ali` and the task, made with the CLI; ali's token.
fn seed(state: &Path, tenant: &str) -> String {
    let local = |args: &[&str]| warden_in(state, args);
    local(&["tenant", "create", tenant]);
    local(&["user", "create", "--tenant", tenant, "ali"]);
    let task = ["--title", "Invoices", "--keyword", "invoice"];
    local(&[&["task", "create", "--tenant", tenant, TASK][..], &task[..]].concat());
    local(&[
        "token", "issue", "--tenant", tenant, "--user", "ali", "--task", TASK,
    ])
}

/// `warden serve` under `sh -c "<limits>; exec warden ..."`, its log in
/// `log`; waits for `/healthz`.
async fn serve_limited(config: &Path, limits: &str, log: &Path, base: &str) -> Child {
    let command = format!(
        "{limits}; exec '{}' serve --config '{}'",
        env!("CARGO_BIN_EXE_warden"),
        config.display()
    );
    let child = Command::new("sh")
        .args(["-c", &command])
        .env("WARDEN_TEST_UPSTREAM_KEY", UPSTREAM_KEY)
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(log).unwrap())
        .spawn()
        .unwrap();
    let http = reqwest::Client::new();
    for _ in 0..400 {
        let up = http.get(format!("{base}/healthz")).send().await;
        if up.is_ok_and(|r| r.status() == 200) {
            return child;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    kill_9(child);
    panic!("warden did not start");
}

/// (CPU seconds used so far, peak resident MiB) of a process.
fn cpu_and_peak_rss(pid: u32) -> (f64, u64) {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let fields: Vec<&str> = stat
        .rsplit(')')
        .next()
        .unwrap()
        .split_whitespace()
        .collect();
    let ticks: u64 = fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap();
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let peak_kib: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap();
    (ticks as f64 / 100.0, peak_kib / 1024)
}

fn append(config: &Path, lines: &str) {
    let mut text = std::fs::read_to_string(config).unwrap();
    // Top-level keys go before the first table.
    let at = text.find("\n[").map_or(text.len(), |i| i + 1);
    text.insert_str(at, lines);
    std::fs::write(config, text).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn out_of_file_descriptors_the_server_backs_off_logs_little_and_recovers() {
    let dir = TempDir::new("fds");
    let state = dir.0.join("state");
    let token = seed(&state, "acme");
    let mock = mock_upstream().await;
    let (config, base) = server_config(&dir.0, &state, mock);
    append(&config, "header_read_timeout_secs = 2\nworkers = 1\n");
    let log = dir.0.join("server.log");
    let server = serve_limited(&config, "ulimit -n 128", &log, &base).await;
    let pid = server.id();

    // More connections than the server has descriptors.
    let addr = base.trim_start_matches("http://").to_string();
    let mut held = Vec::new();
    for _ in 0..200 {
        if let Ok(stream) = TcpStream::connect(&addr).await {
            held.push(stream);
        }
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (cpu_before, _) = cpu_and_peak_rss(pid);
    let log_before = std::fs::metadata(&log).unwrap().len();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let (cpu_after, _) = cpu_and_peak_rss(pid);
    let log_growth = std::fs::metadata(&log).unwrap().len() - log_before;
    eprintln!(
        "out of descriptors: {:.2} CPU s and {log_growth} log bytes in 2 s",
        cpu_after - cpu_before
    );
    // Spinning on accept took 0.7-1.9 cores and wrote 150-550 MiB.
    assert!(
        cpu_after - cpu_before < 0.3,
        "{:.2} CPU seconds in 2 s",
        cpu_after - cpu_before
    );
    assert!(log_growth < 16 << 10, "{log_growth} bytes of log in 2 s");
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(text.contains("accept failed"), "the condition is logged");

    // The idle connections time out and free their descriptors; the
    // server serves again.
    drop(held);
    let http = reqwest::Client::new();
    let served = eventually_async(|| async {
        let call = post_chat(&http, &base, &token, INVOICE_CALL).await;
        call.is_ok_and(|r| r.status() == 200)
    })
    .await;
    kill_9(server);
    assert!(served);
}

/// Peak resident memory allowed for the c=1,024 overload test (README,
/// Reliability): about 2x what was measured.
const OVERLOAD_RSS_CEILING_MIB: u64 = 512;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_1024_calls_is_shed_while_another_tenant_is_served() {
    let dir = TempDir::new("overload");
    let state = dir.0.join("state");
    let (flooder, other) = (seed(&state, "acme"), seed(&state, "globex"));
    let slow = |_: &str| {
        Answer::json(200, "{\"id\":\"c1\",\"object\":\"chat.completion\",").then(
            Duration::from_millis(1_000),
            "\"choices\":[],\"usage\":{\"prompt_tokens\":5,\"completion_tokens\":5}}",
        )
    };
    let provider = FakeProvider::start(slow).await;
    let (config, base) = server_config(&dir.0, &state, provider.addr);
    let log = dir.0.join("server.log");
    let server = serve_limited(&config, "true", &log, &base).await;
    let pid = server.id();

    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .build()
        .unwrap();
    let call = |token: String| {
        let (http, base) = (http.clone(), base.clone());
        async move {
            let started = Instant::now();
            let response = post_chat(&http, &base, &token, INVOICE_CALL).await.unwrap();
            let retry_after = response.headers().contains_key("retry-after");
            (response.status().as_u16(), retry_after, started.elapsed())
        }
    };
    let flood = futures_util::future::join_all((0..1024).map(|_| call(flooder.clone())));
    let served = async {
        tokio::time::sleep(Duration::from_millis(200)).await;
        futures_util::future::join_all((0..16).map(|_| call(other.clone()))).await
    };
    let (flood, served) = futures_util::future::join(flood, served).await;
    let (_, peak_mib) = cpu_and_peak_rss(pid);
    kill_9(server);

    let admitted = flood.iter().filter(|(s, _, _)| *s == 200).count();
    let shed: Vec<_> = flood.iter().filter(|(s, _, _)| *s == 503).collect();
    assert_eq!(admitted + shed.len(), 1024, "only 200 or 503");
    assert!(
        (1..=128).contains(&admitted),
        "{admitted} admitted: the tenant's limit is 128 in flight"
    );
    assert!(shed.iter().all(|(_, retry_after, _)| *retry_after));
    assert!(
        shed.iter().all(|(_, _, t)| *t < Duration::from_secs(1)),
        "shed at once"
    );
    assert!(served.iter().all(|(s, _, _)| *s == 200), "{served:?}");
    assert!(
        provider.received().len() <= 128 + 16,
        "{}",
        provider.received().len()
    );
    assert!(
        peak_mib < OVERLOAD_RSS_CEILING_MIB,
        "peak RSS {peak_mib} MiB (ceiling {OVERLOAD_RSS_CEILING_MIB} MiB)"
    );
    eprintln!(
        "overload: {admitted} admitted, {} shed, peak RSS {peak_mib} MiB",
        shed.len()
    );
}
