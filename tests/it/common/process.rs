//! The real `warden` binary as a separate process: CLI calls, and a server
//! that can be killed with SIGKILL.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

use super::{plugin_dir, repo_root, TASK, UPSTREAM_KEY};

/// The binary's output, whether it succeeded or not.
pub fn warden_output(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_warden"))
        .args(args)
        .env_remove("WARDEN_SERVER")
        .env_remove("WARDEN_ADMIN_TOKEN")
        .output()
        .unwrap()
}

/// Runs the CLI, asserts success, returns stdout trimmed.
pub fn warden(args: &[&str]) -> String {
    let output = warden_output(args);
    assert!(
        output.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap().trim().to_string()
}

/// Runs the CLI on a state directory (the server stopped).
pub fn warden_in(state: &Path, args: &[&str]) -> String {
    let mut all = args.to_vec();
    all.extend(["--state-dir", state.to_str().unwrap()]);
    warden(&all)
}

/// As `warden_in`, with `--json`, parsed.
pub fn warden_json_in(state: &Path, args: &[&str]) -> serde_json::Value {
    let mut all = args.to_vec();
    all.push("--json");
    let text = warden_in(state, &all);
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{args:?}: {e}: {text}"))
}

pub fn warden_json(args: &[&str]) -> serde_json::Value {
    let text = warden(args);
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{args:?}: {e}: {text}"))
}

/// SIGKILL: no shutdown code runs.
pub fn kill_9(mut server: Child) {
    server.kill().unwrap();
    server.wait().unwrap();
}

/// Tenant `acme`, user `ali` and the task, made with the CLI on a stopped
/// server's state; returns ali's token.
pub fn seed_acme_with_cli(state: &Path) -> String {
    let local = |args: &[&str]| warden_in(state, args);
    local(&["tenant", "create", "acme"]);
    local(&["user", "create", "--tenant", "acme", "ali"]);
    let task = ["--title", "Invoices", "--keyword", "invoice"];
    local(&[&["task", "create", "--tenant", "acme", TASK][..], &task[..]].concat());
    local(&[
        "token", "issue", "--tenant", "acme", "--user", "ali", "--task", TASK,
    ])
}

/// A config file for `warden serve` on a free port, state in `state`, the
/// mock LLM at `mock_addr`; returns the file and the server's base URL.
pub fn server_config(
    dir: &Path,
    state: &Path,
    mock_addr: std::net::SocketAddr,
) -> (PathBuf, String) {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let config = dir.join("warden.toml");
    std::fs::write(
        &config,
        format!(
            "listen = \"127.0.0.1:{port}\"\nstate_dir = \"{}\"\nplugin_dir = \"{}\"\npolicy_dir = \"{}\"\n\
             [upstream]\nbase_url = \"http://{mock_addr}/v1\"\napi_key_env = \"WARDEN_TEST_UPSTREAM_KEY\"\n",
            state.display(),
            plugin_dir().display(),
            repo_root().join("policies").display()
        ),
    )
    .unwrap();
    (config, format!("http://127.0.0.1:{port}"))
}

/// Starts `warden serve` and waits until it answers `/healthz`.
pub async fn serve(config: &Path, http: &reqwest::Client, base: &str) -> Child {
    serve_with(config, http, base, &[], None).await
}

/// As `serve`, with more environment (a master key, `RUST_LOG`) and its
/// stderr (the log) written to `log`.
pub async fn serve_with(
    config: &Path,
    http: &reqwest::Client,
    base: &str,
    env: &[(&str, &str)],
    log: Option<&Path>,
) -> Child {
    let stderr = match log {
        Some(log) => Stdio::from(std::fs::File::create(log).unwrap()),
        None => Stdio::null(),
    };
    let child = Command::new(env!("CARGO_BIN_EXE_warden"))
        .args(["serve", "--config"])
        .arg(config)
        .env("WARDEN_TEST_UPSTREAM_KEY", UPSTREAM_KEY)
        .envs(env.iter().copied())
        .stdout(Stdio::null())
        .stderr(stderr)
        .spawn()
        .unwrap();
    for _ in 0..200 {
        if http
            .get(format!("{base}/healthz"))
            .send()
            .await
            .is_ok_and(|r| r.status() == 200)
        {
            return child;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    kill_9(child);
    let logged = log.map(|l| std::fs::read_to_string(l).unwrap_or_default());
    panic!("warden did not start: {}", logged.unwrap_or_default());
}

/// Starts the mock LLM in this process.
pub async fn mock_upstream() -> std::net::SocketAddr {
    let (addr, _task) = warden::mock_llm::spawn(
        "127.0.0.1:0".parse().unwrap(),
        warden::mock_llm::MockOptions {
            require_key: Some(UPSTREAM_KEY.into()),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    addr
}

/// Sends SIGTERM (what an orchestrator sends) and waits for the exit.
pub async fn sigterm(mut server: std::process::Child) -> std::process::ExitStatus {
    let kill = format!("kill -TERM {}", server.id());
    let sent = std::process::Command::new("sh")
        .args(["-c", &kill])
        .status();
    assert!(sent.unwrap().success());
    tokio::task::spawn_blocking(move || server.wait().unwrap())
        .await
        .unwrap()
}
