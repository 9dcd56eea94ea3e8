//! The admin verbs of the command line, each one admin API call: what to
//! send, and how to show the answer (a table, the JSON, or just the token).

use std::time::Duration;

use clap::{Args, Subcommand};
use hyper::Method;
use serde_json::{json, Value};

use super::backend::Call;
use super::table::{self, Column};

#[derive(Subcommand)]
pub enum TenantCommand {
    /// List tenants.
    List,
    /// Show a tenant.
    Show { id: String },
    /// Create a tenant with its first signing key.
    Create {
        id: String,
        #[arg(long)]
        name: Option<String>,
        /// IANA time zone; daily and monthly quotas reset at its midnight.
        #[arg(long, default_value = "UTC")]
        timezone: String,
        /// HS256 or EdDSA.
        #[arg(long, default_value = "HS256")]
        key_algorithm: String,
        /// A plan of the server's catalogue (basic, pro, enterprise by
        /// default): its user limit applies, and a trial starts if it has one.
        #[arg(long)]
        plan: Option<String>,
    },
    /// A tenant's plan and subscription status.
    Subscription { id: String },
    /// Change a tenant's plan (refused below its user count) or, as a
    /// super_admin, its subscription status.
    Subscribe {
        id: String,
        #[arg(long)]
        plan: Option<String>,
        /// trialing, active, past_due, suspended or cancelled (super_admin).
        #[arg(long)]
        status: Option<String>,
        #[arg(long)]
        reason: String,
    },
    /// Suspend a tenant: all its calls are refused, its state is kept (super_admin).
    Suspend {
        id: String,
        #[arg(long)]
        reason: String,
    },
    /// Re-activate a suspended tenant (super_admin).
    Activate {
        id: String,
        #[arg(long)]
        reason: String,
    },
    /// List the tenant's signing keys (public halves only).
    Keys { id: String },
    /// Add a new signing key; tokens signed with older keys stay valid.
    RotateKey {
        id: String,
        #[arg(long)]
        reason: String,
        /// HS256 or EdDSA; default: the current key's.
        #[arg(long)]
        algorithm: Option<String>,
    },
}

/// A tenant, for listings.
#[derive(Args)]
pub struct InTenant {
    #[arg(long)]
    tenant: String,
}

/// One record of a tenant.
#[derive(Args)]
pub struct TenantRecord {
    #[arg(long)]
    tenant: String,
    id: String,
}

/// A user's personal limits; an omitted limit is unlimited.
#[derive(Args)]
pub struct LimitArgs {
    #[arg(long)]
    requests_per_minute: Option<u64>,
    #[arg(long)]
    requests_per_day: Option<u64>,
    #[arg(long)]
    tokens_per_day: Option<u64>,
    #[arg(long)]
    tokens_per_month: Option<u64>,
}

impl LimitArgs {
    fn json(&self) -> Value {
        json!({
            "requests_per_minute": self.requests_per_minute,
            "requests_per_day": self.requests_per_day,
            "tokens_per_day": self.tokens_per_day,
            "tokens_per_month": self.tokens_per_month,
        })
    }
}

/// A user of a tenant, and why they are being changed.
#[derive(Args)]
pub struct UserChange {
    #[arg(long)]
    tenant: String,
    id: String,
    /// Kept in the audit log.
    #[arg(long)]
    reason: String,
}

#[derive(Subcommand)]
pub enum UserCommand {
    /// List a tenant's users with today's usage and score.
    List(InTenant),
    /// Show a user with their usage, score and last warning.
    Show(TenantRecord),
    Create {
        #[arg(long)]
        tenant: String,
        id: String,
        #[arg(long)]
        name: Option<String>,
        #[arg(long, default_value = "user", value_parser = ["user", "viewer", "manager", "admin", "super_admin"])]
        role: String,
        #[command(flatten)]
        limits: LimitArgs,
        /// Groups the user joins (repeat the flag).
        #[arg(long = "group")]
        groups: Vec<String>,
    },
    /// Block a user: their calls are refused until re-enabled.
    Block(UserChange),
    /// Re-enable a blocked or flagged user (their deviation score is reset).
    Enable(UserChange),
    /// Replace a user's limits (omitted ones become unlimited).
    Limits {
        #[command(flatten)]
        user: UserChange,
        #[command(flatten)]
        limits: LimitArgs,
    },
}

#[derive(Subcommand)]
pub enum TaskCommand {
    List(InTenant),
    Show(TenantRecord),
    Create {
        #[arg(long)]
        tenant: String,
        id: String,
        #[arg(long)]
        title: String,
        #[arg(long, default_value = "")]
        description: String,
        /// Repeat for each keyword.
        #[arg(long = "keyword")]
        keywords: Vec<String>,
        /// Allowed models (repeat); none = all.
        #[arg(long = "model")]
        models: Vec<String>,
        /// Allowed endpoints (repeat), e.g. chat.completions; none = all.
        #[arg(long = "endpoint")]
        endpoints: Vec<String>,
    },
    /// Archive a task: calls naming it are refused.
    Archive {
        #[arg(long)]
        tenant: String,
        id: String,
        #[arg(long)]
        reason: String,
    },
    /// Change a task: only the fields given change. Example prompts teach
    /// misuse detection what the task's work looks like (for this tenant).
    Update {
        #[arg(long)]
        tenant: String,
        id: String,
        #[arg(long)]
        title: Option<String>,
        #[arg(long)]
        description: Option<String>,
        /// Replaces the keywords (repeat for each).
        #[arg(long = "keyword")]
        keywords: Vec<String>,
        /// Replaces the example prompts (repeat for each).
        #[arg(long = "example")]
        examples: Vec<String>,
        #[arg(long)]
        reason: Option<String>,
    },
}

#[derive(Subcommand)]
pub enum TokenCommand {
    /// List a tenant's token records (never the tokens).
    List(InTenant),
    /// Issue a token and print it (it is shown only once).
    Issue {
        #[arg(long)]
        tenant: String,
        #[arg(long)]
        user: String,
        /// Task ids the token may name (repeat); an admin token needs none.
        #[arg(long = "task")]
        tasks: Vec<String>,
        /// Models the token may use (repeat); none = all offered models.
        #[arg(long = "model")]
        models: Vec<String>,
        /// Endpoints (repeat), e.g. chat.completions; none = all.
        #[arg(long = "endpoint")]
        endpoints: Vec<String>,
        /// Lifetime, e.g. 3600s, 90m, 12h, 30d.
        #[arg(long, default_value = "30d", value_parser = parse_duration)]
        ttl: Duration,
    },
    /// Revoke a token by its id (jti); refused at once.
    Revoke {
        #[arg(long)]
        tenant: String,
        jti: String,
        #[arg(long)]
        reason: String,
    },
}

#[derive(Subcommand)]
pub enum PluginCommand {
    /// List a tenant's own plugins and their versions.
    List(InTenant),
    /// Upload a component: checked, compiled, self-tested, then live.
    Upload {
        #[arg(long)]
        tenant: String,
        /// The name policies use for it.
        name: String,
        /// The `.wasm` component.
        file: std::path::PathBuf,
    },
    /// Make the version before the live one live again.
    Rollback {
        #[arg(long)]
        tenant: String,
        name: String,
        #[arg(long)]
        reason: String,
    },
    /// Run a component locally against a sample request, without a server.
    Test {
        /// The `.wasm` component.
        file: std::path::PathBuf,
        /// A chat completion body (JSON file) to screen.
        #[arg(long)]
        request: std::path::PathBuf,
        /// An answer text to screen with `on-response`.
        #[arg(long)]
        response: Option<String>,
        /// Config values the plugin reads, `key=value` (repeat).
        #[arg(long = "config")]
        config: Vec<String>,
    },
    /// Scaffold a working guardrail project to start from.
    New {
        /// The language it is written in.
        #[arg(long, value_enum)]
        lang: warden::scaffold::Lang,
        /// The plugin's name (also its directory).
        name: String,
        /// Where to create the project directory.
        #[arg(long, default_value = ".")]
        dir: std::path::PathBuf,
    },
    /// Delete a plugin and its versions (refused while the policy names it).
    Delete {
        #[arg(long)]
        tenant: String,
        name: String,
        #[arg(long)]
        reason: String,
    },
}

/// `warden usage`: sums per local day, user and task, with totals.
#[derive(Args)]
pub struct UsageArgs {
    #[arg(long)]
    tenant: String,
    /// First local date (YYYY-MM-DD); default: the start of this month.
    #[arg(long)]
    from: Option<String>,
    /// Last local date, inclusive; default: today.
    #[arg(long)]
    to: Option<String>,
    #[arg(long)]
    user: Option<String>,
    #[arg(long)]
    task: Option<String>,
    /// Columns to group by: any of day, user, task.
    #[arg(long, default_value = "user")]
    by: String,
}

/// `warden logs`: the request log, newest first.
#[derive(Args)]
pub struct LogArgs {
    #[arg(long)]
    tenant: String,
    #[arg(long)]
    user: Option<String>,
    #[arg(long)]
    task: Option<String>,
    #[arg(long)]
    intent: Option<String>,
    #[arg(long)]
    status: Option<u16>,
    #[arg(long, default_value_t = 50)]
    limit: usize,
    /// `next_cursor` of a previous page.
    #[arg(long)]
    cursor: Option<String>,
}

/// `warden events`: the audit log, newest first.
#[derive(Args)]
pub struct EventArgs {
    #[arg(long)]
    tenant: String,
    /// Only events applied to this user (or token or task id).
    #[arg(long)]
    user: Option<String>,
    /// Only this action (`user.block`), or a family (`user.`).
    #[arg(long)]
    action: Option<String>,
    #[arg(long, default_value_t = 50)]
    limit: usize,
    #[arg(long)]
    cursor: Option<String>,
}

pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let (number, unit) = text.split_at(
        text.find(|c: char| !c.is_ascii_digit())
            .unwrap_or(text.len()),
    );
    let n: u64 = number
        .parse()
        .map_err(|_| format!("invalid duration '{text}'"))?;
    let secs = match unit {
        "" | "s" => n,
        "m" => n * 60,
        "h" => n * 3600,
        "d" => n * 86_400,
        _ => {
            return Err(format!(
                "invalid duration unit in '{text}' (use s, m, h or d)"
            ))
        }
    };
    Ok(Duration::from_secs(secs))
}

/// How to show an answer without `--json`.
pub enum View {
    /// Pretty JSON (single records).
    Record,
    /// A table of `data`, with a totals line when the answer has one.
    Table(&'static [Column]),
    /// Only the issued token, so scripts can capture it.
    Token,
    /// The review queue: each user with the prompts that put them there.
    Review,
    /// A sign-in link: the server's base URL and the answer's path.
    Link(String),
}

const USERS: &[Column] = &[
    ("user", "/user/id"),
    ("role", "/user/role"),
    ("status", "/user/status"),
    ("requests today", "/usage/requests_today"),
    ("tokens today", "/usage/tokens_today"),
    ("tokens month", "/usage/tokens_this_month"),
    ("score", "/deviation_score"),
];
const PLUGINS: &[Column] = &[("plugin", "/name"), ("live version", "/live")];
const TENANTS: &[Column] = &[
    ("tenant", "/id"),
    ("name", "/name"),
    ("status", "/status"),
    ("timezone", "/timezone"),
];
const KEYS: &[Column] = &[
    ("kid", "/kid"),
    ("algorithm", "/algorithm"),
    ("generation", "/generation"),
    ("created_at", "/created_at"),
];
const TASKS: &[Column] = &[("task", "/id"), ("title", "/title"), ("active", "/active")];
const TOKENS: &[Column] = &[
    ("jti", "/jti"),
    ("user", "/user_id"),
    ("issued_at", "/issued_at"),
    ("expires_at", "/expires_at"),
    ("revoked", "/revoked"),
];
const USAGE: &[Column] = &[
    ("day", "/day"),
    ("user", "/user"),
    ("task", "/task"),
    ("requests", "/requests"),
    ("ok", "/succeeded"),
    ("failed", "/failed"),
    ("tokens in", "/tokens_in"),
    ("tokens out", "/tokens_out"),
];
const LOGS: &[Column] = &[
    ("id", "/id"),
    ("at_ms", "/at_ms"),
    ("user", "/user_id"),
    ("task", "/task_id"),
    ("status", "/status"),
    ("intent", "/intent"),
    ("score", "/deviation_score"),
    ("tokens in", "/tokens_in"),
    ("tokens out", "/tokens_out"),
    ("ms", "/latency_ms"),
];
const EVENTS: &[Column] = &[
    ("at_ms", "/at_ms"),
    ("actor", "/actor"),
    ("action", "/action"),
    ("target", "/target"),
    ("reason", "/reason"),
];

fn tenant_path(tenant: &str, rest: &str) -> String {
    if rest.is_empty() {
        format!("tenants/{tenant}")
    } else {
        format!("tenants/{tenant}/{rest}")
    }
}

/// A change whose only argument is its reason (kept in the audit log).
fn post_with_reason(path: String, reason: &str) -> (Call, View) {
    (
        Call::send(Method::POST, path, json!({ "reason": reason })),
        View::Record,
    )
}

impl TenantRecord {
    /// `tenants/{tenant}/{collection}/{id}`.
    fn path(&self, collection: &str) -> String {
        tenant_path(&self.tenant, &format!("{collection}/{}", self.id))
    }
}

impl TenantCommand {
    pub fn call(&self) -> (Call, View) {
        match self {
            Self::List => (Call::get("tenants"), View::Table(TENANTS)),
            Self::Show { id } => (Call::get(tenant_path(id, "")), View::Record),
            Self::Create {
                id,
                name,
                timezone,
                key_algorithm,
                plan,
            } => (
                Call::send(
                    Method::POST,
                    "tenants",
                    json!({ "id": id, "name": name, "timezone": timezone, "key_algorithm": key_algorithm, "plan": plan }),
                ),
                View::Record,
            ),
            Self::Subscription { id } => (Call::get(tenant_path(id, "subscription")), View::Record),
            Self::Subscribe {
                id,
                plan,
                status,
                reason,
            } => (
                Call::send(
                    Method::PUT,
                    tenant_path(id, "subscription"),
                    json!({ "plan": plan, "status": status, "reason": reason }),
                ),
                View::Record,
            ),
            Self::Suspend { id, reason } => post_with_reason(tenant_path(id, "suspend"), reason),
            Self::Activate { id, reason } => post_with_reason(tenant_path(id, "activate"), reason),
            Self::Keys { id } => (Call::get(tenant_path(id, "keys")), View::Table(KEYS)),
            Self::RotateKey {
                id,
                reason,
                algorithm,
            } => (
                Call::send(
                    Method::POST,
                    tenant_path(id, "keys/rotate"),
                    json!({ "reason": reason, "algorithm": algorithm }),
                ),
                View::Record,
            ),
        }
    }
}

impl UserCommand {
    pub fn call(&self) -> (Call, View) {
        match self {
            Self::List(t) => (
                Call::get(tenant_path(&t.tenant, "users")),
                View::Table(USERS),
            ),
            Self::Show(r) => (Call::get(r.path("users")), View::Record),
            Self::Create {
                tenant,
                id,
                name,
                role,
                limits,
                groups,
            } => (
                Call::send(
                    Method::POST,
                    tenant_path(tenant, "users"),
                    json!({ "id": id, "name": name, "role": role, "limits": limits.json(), "groups": groups }),
                ),
                View::Record,
            ),
            Self::Block(change) => post_with_reason(
                tenant_path(&change.tenant, &format!("users/{}/block", change.id)),
                &change.reason,
            ),
            Self::Enable(change) => post_with_reason(
                tenant_path(&change.tenant, &format!("users/{}/enable", change.id)),
                &change.reason,
            ),
            Self::Limits { user, limits } => (
                Call::send(
                    Method::PUT,
                    tenant_path(&user.tenant, &format!("users/{}/limits", user.id)),
                    json!({ "limits": limits.json(), "reason": user.reason }),
                ),
                View::Record,
            ),
        }
    }
}

impl TaskCommand {
    pub fn call(&self) -> (Call, View) {
        match self {
            Self::List(t) => (
                Call::get(tenant_path(&t.tenant, "tasks")),
                View::Table(TASKS),
            ),
            Self::Show(r) => (Call::get(r.path("tasks")), View::Record),
            Self::Create {
                tenant,
                id,
                title,
                description,
                keywords,
                models,
                endpoints,
            } => (
                Call::send(
                    Method::POST,
                    tenant_path(tenant, "tasks"),
                    json!({
                        "id": id, "title": title, "description": description,
                        "keywords": keywords, "models": models, "endpoints": endpoints,
                    }),
                ),
                View::Record,
            ),
            Self::Archive { tenant, id, reason } => {
                post_with_reason(tenant_path(tenant, &format!("tasks/{id}/archive")), reason)
            }
            Self::Update {
                tenant,
                id,
                title,
                description,
                keywords,
                examples,
                reason,
            } => {
                let mut changes = serde_json::Map::new();
                let mut set = |key: &str, value: Value| {
                    changes.insert(key.to_string(), value);
                };
                if let Some(title) = title {
                    set("title", json!(title));
                }
                if let Some(description) = description {
                    set("description", json!(description));
                }
                if !keywords.is_empty() {
                    set("keywords", json!(keywords));
                }
                if !examples.is_empty() {
                    set("examples", json!(examples));
                }
                if let Some(reason) = reason {
                    set("reason", json!(reason));
                }
                (
                    Call::send(
                        Method::PATCH,
                        tenant_path(tenant, &format!("tasks/{id}")),
                        Value::Object(changes),
                    ),
                    View::Record,
                )
            }
        }
    }
}

/// `warden on-task USER REQUEST_ID`: the admin says a prompt held against a
/// user was part of their task (its request id is in `warden review`).
#[derive(Args)]
pub struct OnTaskArgs {
    user: String,
    request_id: String,
    #[arg(long)]
    tenant: String,
    /// Shown to the user on their page.
    #[arg(long)]
    note: Option<String>,
}

impl OnTaskArgs {
    pub fn call(&self) -> (Call, View) {
        let path = format!("users/{}/prompts/{}/on-task", self.user, self.request_id);
        (
            Call::send(
                Method::POST,
                tenant_path(&self.tenant, &path),
                json!({ "note": self.note }),
            ),
            View::Record,
        )
    }
}

/// `warden misuse show|set`: a tenant's deviation thresholds and shadow mode.
#[derive(Subcommand)]
pub enum MisuseCommand {
    /// The settings in force and the tenant's own.
    Show(InTenant),
    /// Replace the tenant's own settings (left out: the policy's value).
    Set {
        #[arg(long)]
        tenant: String,
        #[arg(long)]
        warn_at: Option<f32>,
        #[arg(long)]
        flag_at: Option<f32>,
        #[arg(long)]
        block_at: Option<f32>,
        #[arg(long)]
        half_life_minutes: Option<f32>,
        /// Score and flag, never block.
        #[arg(long)]
        shadow: Option<bool>,
        #[arg(long)]
        reason: Option<String>,
    },
}

impl MisuseCommand {
    pub fn call(&self) -> (Call, View) {
        match self {
            Self::Show(t) => (Call::get(tenant_path(&t.tenant, "misuse")), View::Record),
            Self::Set {
                tenant,
                warn_at,
                flag_at,
                block_at,
                half_life_minutes,
                shadow,
                reason,
            } => (
                Call::send(
                    Method::PUT,
                    tenant_path(tenant, "misuse"),
                    json!({ "warn_at": warn_at, "flag_at": flag_at, "block_at": block_at,
                            "half_life_minutes": half_life_minutes, "shadow": shadow,
                            "reason": reason }),
                ),
                View::Record,
            ),
        }
    }
}

impl TokenCommand {
    pub fn call(&self) -> (Call, View) {
        match self {
            Self::List(t) => (
                Call::get(tenant_path(&t.tenant, "tokens")),
                View::Table(TOKENS),
            ),
            Self::Issue {
                tenant,
                user,
                tasks,
                models,
                endpoints,
                ttl,
            } => (
                Call::send(
                    Method::POST,
                    tenant_path(tenant, "tokens"),
                    json!({
                        "user": user, "tasks": tasks, "models": models,
                        "endpoints": endpoints, "ttl_secs": ttl.as_secs(),
                    }),
                ),
                View::Token,
            ),
            Self::Revoke {
                tenant,
                jti,
                reason,
            } => post_with_reason(tenant_path(tenant, &format!("tokens/{jti}/revoke")), reason),
        }
    }
}

impl PluginCommand {
    pub fn call(&self) -> anyhow::Result<(Call, View)> {
        Ok(match self {
            Self::List(t) => (
                Call::get(tenant_path(&t.tenant, "plugins")),
                View::Table(PLUGINS),
            ),
            Self::Upload { tenant, name, file } => {
                let bytes = std::fs::read(file)
                    .map_err(|e| anyhow::anyhow!("reading {}: {e}", file.display()))?;
                (
                    Call::put_bytes(tenant_path(tenant, &format!("plugins/{name}")), bytes),
                    View::Record,
                )
            }
            Self::Rollback {
                tenant,
                name,
                reason,
            } => post_with_reason(
                tenant_path(tenant, &format!("plugins/{name}/rollback")),
                reason,
            ),
            Self::Delete {
                tenant,
                name,
                reason,
            } => post_with_reason(
                tenant_path(tenant, &format!("plugins/{name}/delete")),
                reason,
            ),
            Self::Test { .. } | Self::New { .. } => {
                anyhow::bail!(
                    "`plugin test` and `plugin new` run locally, not through the admin API"
                )
            }
        })
    }

    /// What `plugin test` and `plugin new` print, when this is one of
    /// them; they run locally, never through the admin API.
    pub async fn run_locally(&self) -> Option<anyhow::Result<String>> {
        match self {
            Self::Test {
                file,
                request,
                response,
                config,
            } => Some(
                test_plugin(file, request, response.as_deref(), config)
                    .await
                    .and_then(|report| Ok(serde_json::to_string_pretty(&report)?)),
            ),
            Self::New { lang, name, dir } => Some(new_plugin(*lang, name, dir)),
            _ => None,
        }
    }
}

async fn test_plugin(
    file: &std::path::Path,
    request: &std::path::Path,
    response: Option<&str>,
    config: &[String],
) -> anyhow::Result<Value> {
    let wasm =
        std::fs::read(file).map_err(|e| anyhow::anyhow!("reading {}: {e}", file.display()))?;
    let text = std::fs::read_to_string(request)
        .map_err(|e| anyhow::anyhow!("reading {}: {e}", request.display()))?;
    let request: Value = serde_json::from_str(&text)?;
    let config = config
        .iter()
        .map(|kv| {
            kv.split_once('=')
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .ok_or_else(|| anyhow::anyhow!("--config wants key=value, not '{kv}'"))
        })
        .collect::<anyhow::Result<_>>()?;
    let name = file
        .file_stem()
        .map_or("plugin".into(), |s| s.to_string_lossy().into_owned());
    warden::plugin_test::run(&name, &wasm, &request, response, config).await
}

fn new_plugin(
    lang: warden::scaffold::Lang,
    name: &str,
    parent: &std::path::Path,
) -> anyhow::Result<String> {
    let (dir, files) = warden::scaffold::create(lang, name, parent)?;
    let dir = dir.display();
    Ok(format!(
        "created {dir}/: {}\nnext:\n  cd {dir} && bash build.sh\n  warden plugin test {name}.wasm --request sample-request.json --config deny_word=invoice\n  warden plugin upload --tenant TENANT {name} {name}.wasm",
        files.join(", ")
    ))
}

impl UsageArgs {
    pub fn call(&self) -> (Call, View) {
        let call = Call::get(tenant_path(&self.tenant, "usage"))
            .param("from", self.from.as_ref())
            .param("to", self.to.as_ref())
            .param("user", self.user.as_ref())
            .param("task", self.task.as_ref())
            .param("group_by", Some(&self.by));
        (call, View::Table(USAGE))
    }
}

impl LogArgs {
    pub fn call(&self) -> (Call, View) {
        let call = Call::get(tenant_path(&self.tenant, "logs"))
            .param("user", self.user.as_ref())
            .param("task", self.task.as_ref())
            .param("intent", self.intent.as_ref())
            .param("status", self.status)
            .param("limit", Some(self.limit))
            .param("cursor", self.cursor.as_ref());
        (call, View::Table(LOGS))
    }
}

impl EventArgs {
    pub fn call(&self) -> (Call, View) {
        let call = Call::get(tenant_path(&self.tenant, "events"))
            .param("user", self.user.as_ref())
            .param("action", self.action.as_ref())
            .param("limit", Some(self.limit))
            .param("cursor", self.cursor.as_ref());
        (call, View::Table(EVENTS))
    }
}

/// `warden review`: flagged and blocked users with their evidence.
#[derive(Args)]
pub struct ReviewArgs {
    #[arg(long)]
    tenant: String,
}

impl ReviewArgs {
    pub fn call(&self) -> (Call, View) {
        (Call::get(tenant_path(&self.tenant, "review")), View::Review)
    }
}

/// `warden login-link USER`: a one-time sign-in link to the web console.
#[derive(Args)]
pub struct LoginLinkArgs {
    /// The user who signs in.
    user: String,
    #[arg(long)]
    tenant: String,
    /// The console's address as the user's browser reaches it.
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    base_url: String,
}

impl LoginLinkArgs {
    pub fn call(&self) -> (Call, View) {
        (
            Call::send(
                Method::POST,
                tenant_path(&self.tenant, &format!("users/{}/login-link", self.user)),
                serde_json::json!({}),
            ),
            View::Link(self.base_url.trim_end_matches('/').to_string()),
        )
    }
}

/// One block per user: standing and reason, then each off-task prompt.
fn review_text(answer: &Value) -> String {
    let users = answer["data"].as_array().map(Vec::as_slice).unwrap_or(&[]);
    if users.is_empty() {
        return "no flagged or blocked users".into();
    }
    let text = |v: &Value| v.as_str().unwrap_or("-").to_string();
    let mut out = String::new();
    for item in users {
        let evidence = &item["evidence"];
        out.push_str(&format!(
            "{}  {}  score {:.2}  {}\n",
            text(&item["user"]["id"]),
            text(&item["user"]["status"]),
            item["deviation_score"].as_f64().unwrap_or(0.0),
            evidence["reason"].as_str().unwrap_or("-"),
        ));
        let prompts = evidence["details"]["prompts"].as_array();
        for prompt in prompts.map(Vec::as_slice).unwrap_or(&[]) {
            out.push_str(&format!(
                "    [{} {} {:.2}] {} {}: {}\n",
                text(&prompt["drift"]),
                text(&prompt["label"]),
                prompt["confidence"].as_f64().unwrap_or(0.0),
                text(&prompt["request_id"]),
                text(&prompt["task_id"]),
                text(&prompt["prompt"]).replace('\n', " "),
            ));
        }
    }
    out.push_str("re-enable: warden user enable --tenant T ID --reason '...'\n");
    out.push_str("a prompt was on-task: warden on-task --tenant T USER REQUEST_ID [--note '...']");
    out
}

/// What to print for an answer.
pub fn show(view: &View, answer: &Value, as_json: bool) -> String {
    if as_json {
        return serde_json::to_string_pretty(answer).unwrap_or_default();
    }
    match view {
        View::Record => serde_json::to_string_pretty(answer).unwrap_or_default(),
        View::Review => review_text(answer),
        View::Link(base) => format!(
            "{base}{}\n(signs {} in to the console once, within 15 minutes)",
            answer["path"].as_str().unwrap_or_default(),
            answer["user"].as_str().unwrap_or_default()
        ),
        View::Token => answer["token"].as_str().unwrap_or_default().to_string(),
        View::Table(columns) => {
            let rows = answer["data"].as_array().map(Vec::as_slice).unwrap_or(&[]);
            // Only the columns the answer has (usage shows its grouping).
            let sample: Vec<&Value> = if rows.is_empty() {
                answer.get("totals").into_iter().collect()
            } else {
                rows.iter().collect()
            };
            let present: Vec<Column> = columns
                .iter()
                .copied()
                .filter(|(_, p)| sample.is_empty() || sample.iter().any(|r| r.pointer(p).is_some()))
                .collect();
            let mut all = rows.to_vec();
            if let (Some(totals), Some(first), false) =
                (answer.get("totals"), present.first(), rows.is_empty())
            {
                let mut total_row = totals.clone();
                if let Value::Object(map) = &mut total_row {
                    map.insert(first.1.trim_start_matches('/').into(), "total".into());
                }
                all.push(total_row);
            }
            let mut out = table::render(&all, &present);
            if let Some(cursor) = answer["next_cursor"].as_str() {
                out.push_str(&format!("\n(more: --cursor {cursor})"));
            }
            out
        }
    }
}
