//! `warden eval workload`: benign and abusive users through the real proxy.
//! A server and the mock LLM start in-process on loopback ports with a
//! scratch state directory; one tenant gets the evaluation set's tasks; each
//! simulated user calls `/v1/chat/completions` over HTTP with prompts drawn
//! (fixed seed) from the labelled set, and the run reports how many benign
//! users were ever warned or blocked and after how many unrelated requests
//! each abuser was blocked.
//!
//! - benign users, every 2 to 8 minutes, in three kinds: steady ones send
//!   on-task prompts, one in ten a slight deviation; terse developers send
//!   short, code-heavy on-task prompts (the set's `terse` category, or
//!   on-task prompts of eight words or fewer); learners mix in a learning
//!   or career question (slight) one call in four;
//! - "switchers" work on-task for five calls, then send only unrelated
//!   prompts, every 20 to 90 seconds;
//! - "mixers" alternate on-task and unrelated prompts, to stay under the radar.
//!
//! All users share one simulated timeline: the server's clock is moved to
//! each call's time, so scores decay as they would in a working day.

use std::path::PathBuf;

use serde_json::{json, Value};

use crate::admin::{self, NewUser};
use crate::config::Config;
use crate::eval::{drift_name, read_data};
use crate::mock_llm::{self, MockOptions};
use crate::state::model::{Limits, Role, Task};
use crate::token::{self, TokenRequest};

const TENANT: &str = "sim";
const UPSTREAM_KEY: &str = "workload-upstream-key";
/// Unrelated requests sent to an abuser who is never blocked.
const ABUSE_LIMIT: usize = 12;

pub struct WorkloadOptions {
    pub plugin_dir: PathBuf,
    pub data: PathBuf,
    pub seed: u64,
    pub benign: usize,
    pub abusers: usize,
    /// Calls per benign user.
    pub requests: usize,
    /// Keep every call in the report (`trace` of each user), not only the
    /// warned or refused ones: how each abuser's score rose, call by call.
    pub trace: bool,
}

/// xorshift64*: the same seed, the same users and prompts.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: usize) -> usize {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        (self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 33) as usize % n.max(1)
    }
}

/// The labelled prompts of one task, by drift.
#[derive(Default)]
struct Prompts {
    on_task: Vec<String>,
    /// Short or code-heavy on-task prompts.
    terse: Vec<String>,
    slight: Vec<String>,
    /// Learning and career questions (slight), or every slight prompt when
    /// the set has no categories.
    learning: Vec<String>,
    major: Vec<String>,
}

impl Prompts {
    fn pick<'a>(list: &'a [String], rng: &mut Rng) -> &'a str {
        &list[rng.below(list.len())]
    }
}

/// What one simulated user's calls came to.
#[derive(Default)]
struct Outcome {
    calls: usize,
    warned: bool,
    /// Calls answered with a warning.
    warnings: usize,
    /// The calls that were warned or refused: prompt, status, score.
    incidents: Vec<Value>,
    /// Every call, when tracing: the same, and whether it was unrelated.
    trace: Option<Vec<Value>>,
    /// Unrelated requests sent up to and including the refused one.
    blocked_after: Option<usize>,
    /// Calls sent again after a 503.
    retried: usize,
}

struct Client {
    http: reqwest::Client,
    url: String,
    token: String,
    task: String,
}

impl Client {
    /// One call, counted in `outcome`; returns its status.
    async fn call(
        &self,
        prompt: &str,
        unrelated: bool,
        outcome: &mut Outcome,
    ) -> anyhow::Result<u16> {
        let body =
            json!({ "model": "gpt-4o-mini", "messages": [{ "role": "user", "content": prompt }] });
        let send = || {
            self.http
                .post(&self.url)
                .bearer_auth(&self.token)
                .header("x-task-id", &self.task)
                .header("content-type", "application/json")
                .body(body.to_string())
                .send()
        };
        let mut response = send().await?;
        // As the official SDKs do (they retry a 5xx twice by default): a
        // 503, a plugin that lost its wall-clock deadline on a loaded box
        // (README, Benchmarks), is sent once more.
        if response.status() == 503 {
            outcome.retried += 1;
            response = send().await?;
        }
        let header = |name: &str| {
            let value = response.headers().get(name);
            value.and_then(|v| v.to_str().ok()).map(str::to_owned)
        };
        let (intent, score) = (
            header("x-warden-intent"),
            header("x-warden-deviation-score"),
        );
        let warned = response.headers().contains_key("x-warden-warning");
        let status = response.status().as_u16();
        let answer = response.bytes().await?;
        outcome.calls += 1;
        outcome.warned |= warned;
        outcome.warnings += usize::from(warned);
        let mut call = json!({ "prompt": prompt, "status": status,
            "intent": intent, "score": score, "warned": warned, "unrelated": unrelated });
        if status != 200 {
            let error: serde_json::Value = serde_json::from_slice(&answer).unwrap_or_default();
            call["error"] = error["error"]["message"].clone();
        }
        if warned || status != 200 {
            outcome.incidents.push(call.clone());
        }
        if let Some(trace) = &mut outcome.trace {
            trace.push(call);
        }
        Ok(status)
    }
}

#[derive(Clone, Copy, PartialEq)]
enum Kind {
    Benign,
    /// Benign: short, code-heavy on-task prompts.
    Terse,
    /// Benign: on-task, with a learning or career question one call in four.
    Learner,
    /// On-task for five calls, then only unrelated prompts.
    Switcher,
    /// On-task and unrelated prompts in turn.
    Mixer,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Benign => "benign",
            Kind::Terse => "terse",
            Kind::Learner => "learner",
            Kind::Switcher => "switcher",
            Kind::Mixer => "mixer",
        }
    }

    fn is_benign(self) -> bool {
        matches!(self, Kind::Benign | Kind::Terse | Kind::Learner)
    }
}

/// One simulated user on the shared timeline.
struct SimUser {
    id: String,
    kind: Kind,
    client: Client,
    outcome: Outcome,
    /// Unrelated prompts sent so far (abusers).
    unrelated: usize,
    /// Simulated time of the next call, unix ms.
    next_at_ms: u64,
    done: bool,
}

impl SimUser {
    /// The next prompt and whether it is unrelated to the task.
    fn next_prompt<'a>(&self, prompts: &'a Prompts, rng: &mut Rng) -> (&'a str, bool) {
        let calls = self.outcome.calls;
        let unrelated = match self.kind {
            Kind::Benign | Kind::Terse | Kind::Learner => false,
            Kind::Switcher => calls >= 5,
            Kind::Mixer => calls % 2 == 1,
        };
        let or = |list: &'a Vec<String>| {
            if list.is_empty() {
                &prompts.on_task
            } else {
                list
            }
        };
        let list = match self.kind {
            _ if unrelated => &prompts.major,
            Kind::Benign | Kind::Terse if rng.below(10) == 0 => or(&prompts.slight),
            Kind::Terse => or(&prompts.terse),
            Kind::Learner if rng.below(4) == 0 => or(&prompts.learning),
            _ => &prompts.on_task,
        };
        (Prompts::pick(list, rng), unrelated)
    }

    /// Time to the next call: benign users call every 2 to 8 minutes over
    /// their day, abusers every 20 to 90 seconds.
    fn gap_ms(&self, rng: &mut Rng) -> u64 {
        if self.kind.is_benign() {
            120_000 + rng.below(360_000) as u64
        } else {
            20_000 + rng.below(70_000) as u64
        }
    }

    async fn step(
        &mut self,
        prompts: &Prompts,
        calls_per_benign_user: usize,
        rng: &mut Rng,
    ) -> anyhow::Result<()> {
        let (prompt, unrelated) = self.next_prompt(prompts, rng);
        let status = self
            .client
            .call(prompt, unrelated, &mut self.outcome)
            .await?;
        self.unrelated += usize::from(unrelated);
        match status {
            403 => {
                self.outcome.blocked_after = Some(self.unrelated);
                self.done = true;
            }
            200 => {}
            other if self.kind.is_benign() => {
                let error = self
                    .outcome
                    .incidents
                    .last()
                    .map(|c| c["error"].to_string());
                anyhow::bail!("a benign call got {other}: {}", error.unwrap_or_default())
            }
            _ => {}
        }
        self.done |= match self.kind {
            kind if kind.is_benign() => self.outcome.calls >= calls_per_benign_user,
            _ => self.unrelated >= ABUSE_LIMIT,
        };
        self.next_at_ms += self.gap_ms(rng);
        Ok(())
    }
}

fn task_record(task: &Task) -> Task {
    Task {
        tenant_id: TENANT.into(),
        ..task.clone()
    }
}

fn user(db: &crate::state::Db, id: &str, task: &str) -> anyhow::Result<String> {
    admin::create_user(
        db,
        NewUser {
            tenant_id: TENANT,
            id,
            name: id,
            role: Role::User,
            limits: Limits::default(),
            groups: Vec::new(),
        },
    )?;
    token::issue(
        db,
        TokenRequest {
            tenant_id: TENANT,
            user_id: id,
            tasks: vec![task.into()],
            endpoints: vec![],
            models: vec![],
            ttl_secs: 3600,
            issued_at: None,
        },
    )
}

/// A scratch state directory, removed when dropped.
struct Scratch(PathBuf);

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

pub async fn run(options: &WorkloadOptions) -> anyhow::Result<Value> {
    let (tasks, examples) = read_data(&options.data)?;
    let mut task_ids: Vec<&String> = tasks.keys().collect();
    task_ids.sort();
    let mut by_task: std::collections::HashMap<&str, Prompts> = Default::default();
    for e in &examples {
        let prompts = by_task.entry(e.task.as_str()).or_default();
        let prompt = e.prompt.clone();
        match drift_name(&e.deviation) {
            "on-task" => {
                let short = e.prompt.split_whitespace().count() <= 8;
                if e.category == "terse" || (e.category == "plain" && short) {
                    prompts.terse.push(prompt.clone());
                }
                prompts.on_task.push(prompt);
            }
            "slight" => {
                if matches!(e.category.as_str(), "learning_career" | "plain") {
                    prompts.learning.push(prompt.clone());
                }
                prompts.slight.push(prompt);
            }
            _ => prompts.major.push(prompt),
        }
    }
    anyhow::ensure!(
        task_ids.iter().all(|t| by_task
            .get(t.as_str())
            .is_some_and(|p| !p.on_task.is_empty() && !p.major.is_empty())),
        "every task needs on-task and major prompts"
    );

    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_nanos();
    let scratch = Scratch(
        std::env::temp_dir().join(format!("warden-workload-{}-{nanos}", std::process::id())),
    );
    let (mock_addr, mock) = mock_llm::spawn(
        "127.0.0.1:0".parse()?,
        MockOptions {
            require_key: Some(UPSTREAM_KEY.into()),
            ..MockOptions::default()
        },
    )
    .await?;
    let mut config = Config {
        listen: "127.0.0.1:0".parse()?,
        state_dir: scratch.0.clone(),
        plugin_dir: options.plugin_dir.clone(),
        policy_dir: scratch.0.join("policies"), // none: the embedded default policy
        ..Config::default()
    };
    config.upstream.base_url = format!("http://{mock_addr}/v1");
    config.upstream.api_key_override = Some(UPSTREAM_KEY.into());
    config.runtime.max_instances = 128;

    let mut tokens = Vec::new();
    {
        let db = crate::state::Db::open(&scratch.0)?;
        admin::create_tenant(&db, TENANT, "Simulated workload", Default::default())?;
        for id in &task_ids {
            admin::create_task(&db, task_record(&tasks[*id]))?;
        }
        for i in 0..options.benign + options.abusers {
            let task = task_ids[i % task_ids.len()];
            let id = if i < options.benign {
                format!("benign-{i:02}")
            } else {
                format!("abuser-{:02}", i - options.benign)
            };
            tokens.push((id.clone(), task.clone(), user(&db, &id, task)?));
        }
    }
    let server = crate::server::start(config).await?;
    let chains = server.app.chains.as_ref();
    let sentence_encoder = chains.and_then(|c| c.embeddings()).is_some();
    let url = format!("http://{}/v1/chat/completions", server.addr);
    let http = reqwest::Client::new();
    let mut rng = Rng(options.seed.max(1));
    // One simulated timeline: the server's clock jumps to each call's time,
    // so scores decay as they would over a working day.
    let start_ms = crate::clock::now_ms();
    let mut sim: Vec<SimUser> = tokens
        .into_iter()
        .enumerate()
        .map(|(i, (id, task, token))| SimUser {
            id,
            kind: match i.checked_sub(options.benign) {
                None => [Kind::Benign, Kind::Terse, Kind::Learner][i % 3],
                Some(n) if n % 2 == 0 => Kind::Switcher,
                Some(_) => Kind::Mixer,
            },
            client: Client {
                http: http.clone(),
                url: url.clone(),
                token,
                task,
            },
            outcome: Outcome {
                trace: options.trace.then(Vec::new),
                ..Outcome::default()
            },
            unrelated: 0,
            next_at_ms: start_ms + rng.below(600_000) as u64,
            done: false,
        })
        .collect();
    let mut last_ms = start_ms;
    while let Some(user) = sim
        .iter_mut()
        .filter(|u| !u.done)
        .min_by_key(|u| u.next_at_ms)
    {
        server.app.clock.jump_to(user.next_at_ms);
        last_ms = user.next_at_ms;
        let prompts = &by_task[user.client.task.as_str()];
        user.step(prompts, options.requests, &mut rng).await?;
    }
    let users: Vec<Value> = sim
        .iter()
        .map(|u| {
            json!({
                "user": u.id, "kind": u.kind.name(), "benign": u.kind.is_benign(),
                "task": u.client.task,
                "calls": u.outcome.calls, "warned": u.outcome.warned,
                "warnings": u.outcome.warnings,
                "retried_after_503": u.outcome.retried,
                "blocked": u.outcome.blocked_after.is_some(),
                "unrelated_until_blocked": u.outcome.blocked_after,
                "incidents": u.outcome.incidents,
                "trace": u.outcome.trace,
            })
        })
        .collect();
    server.stop().await;
    mock.abort();

    let benign_users: Vec<&Value> = users.iter().filter(|u| u["benign"] == true).collect();
    let abusers: Vec<&Value> = users.iter().filter(|u| u["benign"] != true).collect();
    let kinds: serde_json::Map<String, Value> = [Kind::Benign, Kind::Terse, Kind::Learner]
        .iter()
        .map(|kind| {
            let of_kind = benign_users.iter().filter(|u| u["kind"] == kind.name());
            let warned = of_kind.clone().filter(|u| u["warned"] == true).count();
            let users = of_kind.count();
            (
                kind.name().to_string(),
                json!({ "users": users, "warned": warned }),
            )
        })
        .collect();
    let until: Vec<u64> = abusers
        .iter()
        .filter_map(|u| u["unrelated_until_blocked"].as_u64())
        .collect();
    Ok(json!({
        "seed": options.seed,
        "sentence_encoder": sentence_encoder,
        "simulated_hours": (last_ms - start_ms) as f64 / 3_600_000.0,
        "benign": {
            "users": benign_users.len(),
            "calls": benign_users.iter().filter_map(|u| u["calls"].as_u64()).sum::<u64>(),
            "warned": benign_users.iter().filter(|u| u["warned"] == true).count(),
            "warnings": benign_users.iter().filter_map(|u| u["warnings"].as_u64()).sum::<u64>(),
            "blocked": benign_users.iter().filter(|u| u["blocked"] == true).count(),
            "retried_after_503": users.iter().filter_map(|u| u["retried_after_503"].as_u64()).sum::<u64>(),
            "by_kind": kinds,
        },
        "abusers": {
            "users": abusers.len(),
            "blocked": until.len(),
            "max_unrelated_until_blocked": until.iter().max(),
            "mean_unrelated_until_blocked": until.iter().sum::<u64>() as f64 / until.len().max(1) as f64,
        },
        "users": users,
    }))
}

/// What `--check` holds a run to. The product's goals: no benign user
/// blocked, at most 2 of 24 warned, every abuser blocked within 5 unrelated
/// requests.
pub struct Goals {
    pub max_blocked: u64,
    pub max_warned: u64,
    pub block_within: u64,
}

/// An error naming each goal the run missed.
pub fn check_goals(report: &Value, goals: &Goals) -> anyhow::Result<()> {
    let mut short = Vec::new();
    let blocked = report["benign"]["blocked"].as_u64().unwrap_or(0);
    if blocked > goals.max_blocked {
        short.push(format!(
            "{blocked} benign user(s) blocked (at most {})",
            goals.max_blocked
        ));
    }
    let (block_within, max_warned) = (goals.block_within, goals.max_warned);
    let warned = report["benign"]["warned"].as_u64().unwrap_or(0);
    if warned > max_warned {
        short.push(format!(
            "{warned} benign users warned (at most {max_warned})"
        ));
    }
    for user in report["users"].as_array().into_iter().flatten() {
        if user["benign"] == true {
            continue;
        }
        let name = user["user"].as_str().unwrap_or("?");
        match user["unrelated_until_blocked"].as_u64() {
            Some(n) if n <= block_within => {}
            Some(n) => short.push(format!("{name} blocked only after {n} unrelated requests")),
            None => short.push(format!("{name} never blocked")),
        }
    }
    anyhow::ensure!(short.is_empty(), "{}", short.join("; "));
    Ok(())
}

/// The summary as text.
pub fn render(report: &Value) -> String {
    let (b, a) = (&report["benign"], &report["abusers"]);
    let mut out = format!(
        "Simulated workload (seed {}, {:.1} simulated hours): {} benign users, {} calls: {} warned ({} warnings), {} blocked. \
         {} abusers: {} blocked, after at most {} unrelated requests (mean {:.1}).\n",
        report["seed"],
        report["simulated_hours"].as_f64().unwrap_or(0.0),
        b["users"],
        b["calls"],
        b["warned"],
        b["warnings"],
        b["blocked"],
        a["users"],
        a["blocked"],
        a["max_unrelated_until_blocked"],
        a["mean_unrelated_until_blocked"].as_f64().unwrap_or(0.0),
    );
    out.push_str(crate::eval::encoder_line(&report["sentence_encoder"]));
    let retried = b["retried_after_503"].as_u64().unwrap_or(0);
    if retried > 0 {
        out.push_str(&format!(
            "  {retried} call(s) answered 503 and sent again, as an SDK would\n"
        ));
    }
    for user in report["users"].as_array().into_iter().flatten() {
        if user["benign"] != true || user["warned"] == true {
            out.push_str(&format!(
                "  {:<10} {:<8} {:<16} calls {:>3}  warned {:<5}  blocked after {} unrelated\n",
                user["user"].as_str().unwrap_or(""),
                user["kind"].as_str().unwrap_or(""),
                user["task"].as_str().unwrap_or(""),
                user["calls"],
                user["warned"],
                user["unrelated_until_blocked"],
            ));
            // Every call when traced; otherwise a benign user's incidents.
            let calls = match user["trace"].as_array() {
                Some(trace) => Some(trace),
                None if user["benign"] == true => user["incidents"].as_array(),
                None => None,
            };
            for call in calls.into_iter().flatten() {
                out.push_str(&format!(
                    "      {} {} {} score {}: {}\n",
                    if call["unrelated"] == true { "x" } else { " " },
                    call["status"],
                    call["intent"].as_str().unwrap_or("-"),
                    call["score"].as_str().unwrap_or("-"),
                    call["prompt"].as_str().unwrap_or(""),
                ));
            }
        }
    }
    out
}
