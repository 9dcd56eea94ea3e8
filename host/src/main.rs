//! The `warden` command line.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use warden::admin::{self, NewUser};
use warden::config::Config;
use warden::state::model::{Limits, Role, Task};
use warden::state::Db;

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "warden",
    version,
    about = "LLM access gateway with sandboxed wasm policy plugins"
)]
struct Cli {
    /// Log as JSON lines instead of human-readable text.
    #[arg(long, global = true)]
    log_json: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the proxy.
    Serve {
        /// TOML configuration file (every field has a default).
        #[arg(long, short)]
        config: Option<PathBuf>,
        /// Override the listen address.
        #[arg(long)]
        listen: Option<SocketAddr>,
    },
    /// Run the mock LLM and the proxy with a seeded tenant, user, task and token.
    Demo {
        #[arg(long, default_value = "127.0.0.1:8080")]
        listen: SocketAddr,
        #[arg(long, default_value = "build/plugins")]
        plugin_dir: PathBuf,
        #[arg(long, default_value = ".warden/demo")]
        state_dir: PathBuf,
        /// Send one request through the proxy, print the answer and exit.
        #[arg(long)]
        once: bool,
    },
    /// Run the deterministic OpenAI-compatible mock LLM.
    MockLlm {
        #[arg(long, default_value = "127.0.0.1:8081")]
        listen: SocketAddr,
        /// Require `Authorization: Bearer KEY`.
        #[arg(long)]
        require_key: Option<String>,
        /// Delay before each answer, in milliseconds.
        #[arg(long, default_value_t = 0)]
        latency_ms: u64,
    },
    /// Manage tenants (with the server stopped).
    Tenant {
        #[command(subcommand)]
        command: TenantCommand,
    },
    /// Manage users (with the server stopped).
    User {
        #[command(subcommand)]
        command: UserCommand,
    },
    /// Manage tasks (with the server stopped).
    Task {
        #[command(subcommand)]
        command: TaskCommand,
    },
    /// Manage access tokens (with the server stopped).
    Token {
        #[command(subcommand)]
        command: TokenCommand,
    },
    /// Print today's usage per user of a tenant (with the server stopped).
    Usage(TenantView),
}

/// What a listing command reads: one tenant, as a table or as JSON.
#[derive(Args)]
struct TenantView {
    #[arg(long)]
    tenant: String,
    /// Print JSON instead of a table.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    state: StateArg,
}

#[derive(Args)]
struct StateArg {
    /// The sled state directory.
    #[arg(long, default_value = ".warden/state", global = true)]
    state_dir: PathBuf,
}

#[derive(Subcommand)]
enum TenantCommand {
    Create {
        id: String,
        #[arg(long)]
        name: Option<String>,
        #[command(flatten)]
        state: StateArg,
    },
}

#[derive(Subcommand)]
enum UserCommand {
    /// List a tenant's users.
    List(TenantView),
    Create {
        #[arg(long)]
        tenant: String,
        id: String,
        #[arg(long)]
        name: Option<String>,
        #[arg(long, default_value = "user", value_parser = ["user", "admin", "super_admin"])]
        role: String,
        #[arg(long)]
        requests_per_minute: Option<u64>,
        #[arg(long)]
        requests_per_day: Option<u64>,
        #[arg(long)]
        tokens_per_day: Option<u64>,
        #[arg(long)]
        tokens_per_month: Option<u64>,
        #[command(flatten)]
        state: StateArg,
    },
}

#[derive(Subcommand)]
enum TaskCommand {
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
        #[command(flatten)]
        state: StateArg,
    },
}

#[derive(Subcommand)]
enum TokenCommand {
    /// List a tenant's token records (never the tokens).
    List(TenantView),
    /// Revoke a token by its id (jti); recorded in the audit log.
    Revoke {
        #[arg(long)]
        tenant: String,
        jti: String,
        #[arg(long)]
        reason: String,
        #[command(flatten)]
        state: StateArg,
    },
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
        #[command(flatten)]
        state: StateArg,
    },
}

/// A tenant's users, sorted by id.
fn users_of<'a>(
    directory: &'a warden::state::Directory,
    tenant: &str,
) -> Vec<&'a warden::state::model::User> {
    let mut users: Vec<_> = directory
        .tenant(tenant)
        .map(|t| t.users.values().collect())
        .unwrap_or_default();
    users.sort_by(|a, b| a.id.cmp(&b.id));
    users
}

fn parse_duration(text: &str) -> Result<Duration, String> {
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

fn init_logging(json: bool) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if json {
        builder.json().init();
    } else {
        builder.init();
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    init_logging(cli.log_json);
    match cli.command {
        Command::Serve { config, listen } => {
            let mut config = match config {
                Some(path) => Config::load(&path)?,
                None => Config::default(),
            };
            if let Some(listen) = listen {
                config.listen = listen;
            }
            let server = warden::server::start(config).await?;
            tokio::signal::ctrl_c().await?;
            tracing::info!("shutting down");
            server.stop().await;
        }
        Command::Demo {
            listen,
            plugin_dir,
            state_dir,
            once,
        } => {
            warden::demo::run(warden::demo::DemoOptions {
                listen,
                plugin_dir,
                state_dir,
                once,
            })
            .await?;
        }
        Command::MockLlm {
            listen,
            require_key,
            latency_ms,
        } => {
            let options = warden::mock_llm::MockOptions {
                require_key,
                latency: Duration::from_millis(latency_ms),
            };
            let listener = tokio::net::TcpListener::bind(listen).await?;
            eprintln!("mock LLM listening on http://{}/v1", listener.local_addr()?);
            tokio::select! {
                _ = warden::mock_llm::serve(listener, options) => {}
                _ = tokio::signal::ctrl_c() => {}
            }
        }
        Command::Tenant {
            command: TenantCommand::Create { id, name, state },
        } => {
            let db = Db::open(&state.state_dir)?;
            let tenant =
                admin::create_tenant(&db, &id, name.as_deref().unwrap_or(&id), Default::default())?;
            println!("{}", serde_json::to_string_pretty(&tenant)?);
        }
        Command::User {
            command:
                UserCommand::Create {
                    tenant,
                    id,
                    name,
                    role,
                    requests_per_minute,
                    requests_per_day,
                    tokens_per_day,
                    tokens_per_month,
                    state,
                },
        } => {
            let db = Db::open(&state.state_dir)?;
            let role = match role.as_str() {
                "admin" => Role::Admin,
                "super_admin" => Role::SuperAdmin,
                _ => Role::User,
            };
            let user = admin::create_user(
                &db,
                NewUser {
                    tenant_id: &tenant,
                    id: &id,
                    name: name.as_deref().unwrap_or(&id),
                    role,
                    limits: Limits {
                        requests_per_minute,
                        requests_per_day,
                        tokens_per_day,
                        tokens_per_month,
                    },
                },
            )?;
            println!("{}", serde_json::to_string_pretty(&user)?);
        }
        Command::Task {
            command:
                TaskCommand::Create {
                    tenant,
                    id,
                    title,
                    description,
                    keywords,
                    models,
                    state,
                },
        } => {
            let db = Db::open(&state.state_dir)?;
            let task = admin::create_task(
                &db,
                Task {
                    tenant_id: tenant,
                    id,
                    title,
                    description,
                    keywords,
                    endpoints: vec![],
                    models,
                    active: true,
                },
            )?;
            println!("{}", serde_json::to_string_pretty(&task)?);
        }
        Command::User {
            command:
                UserCommand::List(TenantView {
                    tenant,
                    json,
                    state,
                }),
        } => {
            let db = Db::open(&state.state_dir)?;
            let directory = db.directory();
            let users = users_of(&directory, &tenant);
            if json {
                println!("{}", serde_json::to_string_pretty(&users)?);
            } else {
                println!("{:<20} {:<12} {:<8}", "user", "role", "status");
                for u in users {
                    println!(
                        "{:<20} {:<12} {:<8}",
                        u.id,
                        format!("{:?}", u.role),
                        format!("{:?}", u.status)
                    );
                }
            }
        }
        Command::Token {
            command:
                TokenCommand::List(TenantView {
                    tenant,
                    json,
                    state,
                }),
        } => {
            let db = Db::open(&state.state_dir)?;
            let tokens = db.tokens_of(&tenant)?;
            if json {
                println!("{}", serde_json::to_string_pretty(&tokens)?);
            } else {
                println!(
                    "{:<34} {:<16} {:<12} {:<8}",
                    "jti", "user", "expires_at", "revoked"
                );
                for t in tokens {
                    println!(
                        "{:<34} {:<16} {:<12} {:<8}",
                        t.jti, t.user_id, t.expires_at, t.revoked
                    );
                }
            }
        }
        Command::Token {
            command:
                TokenCommand::Revoke {
                    tenant,
                    jti,
                    reason,
                    state,
                },
        } => {
            let db = Db::open(&state.state_dir)?;
            anyhow::ensure!(
                db.revoke_token(&tenant, &jti)?,
                "no token '{jti}' in tenant '{tenant}'"
            );
            db.append_event(&warden::state::model::Event {
                id: format!("evt_cli_{}", warden::clock::now_ms()),
                at_ms: warden::clock::now_ms(),
                tenant_id: tenant.clone(),
                actor: "cli".into(),
                action: "token.revoke".into(),
                target: jti.clone(),
                reason: Some(reason),
                details: serde_json::json!({}),
            })?;
            println!("revoked {jti}");
        }
        Command::Usage(TenantView {
            tenant,
            json,
            state,
        }) => {
            let db = Db::open(&state.state_dir)?;
            let activity = db.load_activity()?;
            let directory = db.directory();
            let at = directory
                .tenant(&tenant)
                .map(|e| e.calendar.at(warden::clock::now_ms()))
                .ok_or_else(|| anyhow::anyhow!("no tenant '{tenant}'"))?;
            let mut rows: Vec<serde_json::Value> = Vec::new();
            let users = users_of(&directory, &tenant);
            for user in users {
                let (usage, score, _) = activity.peek(&tenant, &user.id, &at);
                rows.push(serde_json::json!({
                    "user": user.id, "status": user.status,
                    "requests_today": usage.requests_today, "tokens_today": usage.tokens_today,
                    "tokens_this_month": usage.tokens_this_month, "deviation_score": score,
                }));
            }
            if json {
                println!("{}", serde_json::to_string_pretty(&rows)?);
            } else {
                println!(
                    "{:<20} {:>10} {:>12} {:>12} {:>7}",
                    "user", "requests", "tokens", "tokens/mo", "score"
                );
                for r in &rows {
                    println!(
                        "{:<20} {:>10} {:>12} {:>12} {:>7.2}",
                        r["user"].as_str().unwrap_or_default(),
                        r["requests_today"],
                        r["tokens_today"],
                        r["tokens_this_month"],
                        r["deviation_score"].as_f64().unwrap_or_default()
                    );
                }
            }
        }
        Command::Token {
            command:
                TokenCommand::Issue {
                    tenant,
                    user,
                    tasks,
                    models,
                    endpoints,
                    ttl,
                    state,
                },
        } => {
            let db = Db::open(&state.state_dir)?;
            let token = warden::token::issue(
                &db,
                warden::token::TokenRequest {
                    tenant_id: &tenant,
                    user_id: &user,
                    tasks,
                    endpoints,
                    models,
                    ttl_secs: ttl.as_secs(),
                    issued_at: None,
                },
            )?;
            println!("{token}");
        }
    }
    Ok(())
}
