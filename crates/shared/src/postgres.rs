//! PostgreSQL as the replicas' source of truth for the shared trees.
//!
//! Every write a replica makes is committed here first
//! ([`ChangeLog::commit`]), as the rows' new values and as entries of an
//! ordered change log, announced with `NOTIFY warden_changes`. Each
//! replica tails the log (`LISTEN`, and a poll every second in case a
//! notification was missed) and applies what others committed to its
//! local copy, so the request path reads a snapshot that never waits on
//! the database.
//!
//! The client is async (tokio-postgres) and `Db`'s writes are not: the
//! connections live on one thread of their own, with its own runtime, and
//! a write waits for that thread's answer. Admin writes are rare; the
//! request path commits only audit events and a block or flag.

use std::sync::{mpsc as std_mpsc, Arc, Mutex};
use std::time::Duration;

use anyhow::Context;
use futures_util::StreamExt;
use tokio::sync::mpsc;
use tokio_postgres::{AsyncMessage, Client, NoTls};
use warden_state::shared::{shared_tree, Change, ChangeLog, Expect};

/// Schema versions, applied in order at start (see [`migrate`]).
const MIGRATIONS: &[(&str, &str)] = &[
    ("0001_state", include_str!("migrations/0001_state.sql")),
    (
        "0002_request_log",
        include_str!("migrations/0002_request_log.sql"),
    ),
    (
        "0003_pruned_changes",
        include_str!("migrations/0003_pruned_changes.sql"),
    ),
];

/// Changes older than this are pruned from the log (replicas start from a
/// snapshot, and a running one reads the log every second): the log stays
/// small however long replicas run.
const PRUNE_AFTER_SECS: f64 = 7.0 * 86_400.0;
/// How often a replica prunes (several doing it at once is harmless).
const PRUNE_EVERY: Duration = Duration::from_secs(3600);

/// One advisory lock serializes writers, so change numbers commit in order.
const WRITE_LOCK: i64 = 0x5741_5244_454e; // "WARDEN"
/// Another serializes request-log batches, so their seq commit in order.
const LOG_LOCK: i64 = 0x5741_5244_4c47;
/// Another serializes replicas migrating the schema at the same time.
const MIGRATE_LOCK: i64 = 0x5741_5244_4d47;

/// How long a write waits for the database before it fails.
const WRITE_TIMEOUT: Duration = Duration::from_secs(10);
/// How often a replica looks for changes without a notification.
const POLL_EVERY: Duration = Duration::from_secs(1);
/// Changes fetched per read of the log.
const TAIL_BATCH: i64 = 1000;

/// What a replica receives of the shared store, in commit order.
pub enum Feed {
    /// Changes to the shared trees (every replica's, this one's too).
    Changes(Vec<Change>),
    /// Request records other replicas served (encoded), up to `seq`.
    Records { seq: i64, records: Vec<Vec<u8>> },
}

pub type Subscriber = Box<dyn Fn(Feed) + Send + Sync>;

/// Where a replica starts following.
#[derive(Debug, Clone, Copy)]
pub struct Position {
    /// The last change of the shared trees it has.
    pub change: i64,
    /// The last record of the shared request log it has.
    pub record: i64,
}

/// The shared store as it was when the replica started.
pub struct Snapshot {
    /// The last change the rows include.
    pub seq: i64,
    pub rows: Vec<Change>,
}

enum Command {
    Commit {
        changes: Vec<Change>,
        reply: std_mpsc::SyncSender<anyhow::Result<bool>>,
    },
    Follow {
        from: Position,
        subscriber: Subscriber,
    },
    Ship {
        records: Vec<Vec<u8>>,
        reply: std_mpsc::SyncSender<anyhow::Result<()>>,
    },
}

/// A replica's link to PostgreSQL (a [`ChangeLog`]).
pub struct Postgres {
    commands: mpsc::UnboundedSender<Command>,
    /// Whether the last write succeeded, and whether following the log
    /// does; `/readyz` says why not.
    health: Arc<Mutex<Result<(), String>>>,
    following: Arc<Mutex<Result<(), String>>>,
}

impl Postgres {
    /// Connects, applies the migrations, and reads the shared store's
    /// snapshot. `replica` names this process in the change log.
    pub fn connect(url: &str, replica: &str) -> anyhow::Result<(Arc<Self>, Snapshot)> {
        let (commands, inbox) = mpsc::unbounded_channel();
        let (ready, started) = std_mpsc::sync_channel(1);
        let health = Arc::new(Mutex::new(Ok(())));
        let following = Arc::new(Mutex::new(Ok(())));
        let link = Link {
            url: url.to_string(),
            replica: replica.to_string(),
            health: health.clone(),
            following: following.clone(),
        };
        std::thread::Builder::new()
            .name("warden-postgres".into())
            .spawn(move || {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build();
                match runtime {
                    Ok(runtime) => runtime.block_on(link.run(inbox, ready)),
                    Err(e) => {
                        let _ = ready.send(Err(e.into()));
                    }
                }
            })?;
        let snapshot = started
            .recv()
            .context("the PostgreSQL thread ended before it started")??;
        let link = Self {
            commands,
            health,
            following,
        };
        Ok((Arc::new(link), snapshot))
    }

    /// Hands every change committed after `from.change` (by any replica,
    /// this one's included) and every request record other replicas
    /// shipped after `from.record` to `subscriber`, from now on.
    pub fn follow(&self, from: Position, subscriber: Subscriber) {
        let _ = self.commands.send(Command::Follow { from, subscriber });
    }

    /// Adds encoded request records to the shared request log, each once
    /// (a record shipped again, after a crash, is skipped by its id).
    pub fn ship(&self, records: Vec<Vec<u8>>) -> anyhow::Result<()> {
        let (reply, answer) = std_mpsc::sync_channel(1);
        self.commands
            .send(Command::Ship { records, reply })
            .map_err(|_| anyhow::anyhow!("the PostgreSQL link has stopped"))?;
        answer
            .recv_timeout(WRITE_TIMEOUT)
            .map_err(|_| anyhow::anyhow!("PostgreSQL did not answer within {WRITE_TIMEOUT:?}"))?
    }

    /// Whether the database took the last write, and this replica follows
    /// its log.
    pub fn health(&self) -> Result<(), String> {
        let read = |h: &Mutex<Result<(), String>>| {
            h.lock()
                .map_or_else(|_| Err("poisoned".into()), |h| h.clone())
        };
        read(&self.health).and(read(&self.following))
    }
}

impl ChangeLog for Postgres {
    fn commit(&self, changes: &[Change]) -> anyhow::Result<bool> {
        let (reply, answer) = std_mpsc::sync_channel(1);
        self.commands
            .send(Command::Commit {
                changes: changes.to_vec(),
                reply,
            })
            .map_err(|_| anyhow::anyhow!("the PostgreSQL link has stopped"))?;
        answer
            .recv_timeout(WRITE_TIMEOUT)
            .map_err(|_| anyhow::anyhow!("PostgreSQL did not answer within {WRITE_TIMEOUT:?}"))?
    }
}

/// The thread's side: connections, migrations, writes and the tail.
struct Link {
    url: String,
    replica: String,
    health: Arc<Mutex<Result<(), String>>>,
    following: Arc<Mutex<Result<(), String>>>,
}

impl Link {
    async fn run(
        self,
        mut inbox: mpsc::UnboundedReceiver<Command>,
        ready: std_mpsc::SyncSender<anyhow::Result<Snapshot>>,
    ) {
        let started = async {
            let mut writer = connect(&self.url).await?;
            migrate(&mut writer).await?;
            let snapshot = snapshot(&mut writer).await?;
            anyhow::Ok((writer, snapshot))
        };
        let mut writer = match started.await {
            Ok((writer, snapshot)) => {
                let _ = ready.send(Ok(snapshot));
                Some(writer)
            }
            Err(e) => {
                let _ = ready.send(Err(e));
                return;
            }
        };
        let mut prune = tokio::time::interval(PRUNE_EVERY);
        loop {
            let command = tokio::select! {
                command = inbox.recv() => match command {
                    Some(command) => command,
                    None => return,
                },
                _ = prune.tick() => {
                    if let Err(e) = self.prune(&mut writer).await {
                        tracing::warn!(error = %format!("{e:#}"), "pruning the change log");
                    }
                    continue;
                }
            };
            match command {
                Command::Commit { changes, reply } => {
                    let result = self.commit(&mut writer, &changes).await;
                    self.note(result.as_ref().map(|_| ()).map_err(|e| format!("{e:#}")));
                    let _ = reply.send(result);
                }
                Command::Follow { from, subscriber } => {
                    let tail = Tail {
                        url: self.url.clone(),
                        replica: self.replica.clone(),
                        health: self.following.clone(),
                        at: from,
                        subscriber,
                    };
                    tokio::spawn(tail.run());
                }
                Command::Ship { records, reply } => {
                    let result = self.ship(&mut writer, &records).await;
                    self.note(result.as_ref().map(|_| ()).map_err(|e| format!("{e:#}")));
                    let _ = reply.send(result);
                }
            }
        }
    }

    /// Drops changes older than `PRUNE_AFTER_SECS`, always keeping the
    /// latest, and records how far.
    async fn prune(&self, writer: &mut Option<Client>) -> anyhow::Result<()> {
        if writer.as_ref().is_none_or(Client::is_closed) {
            *writer = Some(connect(&self.url).await?);
        }
        let client = writer.as_mut().expect("connected");
        let tx = client.transaction().await?;
        tx.execute("SELECT pg_advisory_xact_lock($1)", &[&WRITE_LOCK])
            .await?;
        let pruned: Option<i64> = tx
            .query_one(
                "WITH gone AS (
                     DELETE FROM state_changes
                     WHERE at < now() - make_interval(secs => $1)
                       AND seq < (SELECT max(seq) FROM state_changes)
                     RETURNING seq)
                 SELECT max(seq) FROM gone",
                &[&PRUNE_AFTER_SECS],
            )
            .await?
            .get(0);
        if let Some(upto) = pruned {
            tx.execute(
                "UPDATE state_changes_pruned SET upto = greatest(upto, $1)",
                &[&upto],
            )
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    fn note(&self, result: Result<(), String>) {
        if let Ok(mut health) = self.health.lock() {
            *health = result;
        }
    }

    /// Commits on the writer connection, connecting again first when it
    /// was lost (a failed commit is not retried: it may have committed).
    async fn commit(
        &self,
        writer: &mut Option<Client>,
        changes: &[Change],
    ) -> anyhow::Result<bool> {
        if writer.as_ref().is_none_or(Client::is_closed) {
            *writer = Some(connect(&self.url).await?);
        }
        let client = writer.as_mut().expect("connected");
        let result = commit(client, &self.replica, changes).await;
        if result.is_err() && client.is_closed() {
            *writer = None;
        }
        result
    }
}

impl Link {
    async fn ship(&self, writer: &mut Option<Client>, records: &[Vec<u8>]) -> anyhow::Result<()> {
        if writer.as_ref().is_none_or(Client::is_closed) {
            *writer = Some(connect(&self.url).await?);
        }
        let client = writer.as_mut().expect("connected");
        let result = ship(client, &self.replica, records).await;
        if result.is_err() && client.is_closed() {
            *writer = None;
        }
        result
    }
}

/// The columns of the request log a record fills (the rest stays in its
/// JSON).
#[derive(serde::Deserialize)]
struct Columns {
    id: String,
    at_ms: i64,
    tenant_id: String,
    user_id: String,
    task_id: String,
    status: i32,
    tokens_in: i64,
    tokens_out: i64,
}

/// Inserts records in one statement (arrays unnested in order), after
/// their months' partitions exist, under the log lock so that `seq`
/// commits in order.
async fn ship(client: &mut Client, replica: &str, records: &[Vec<u8>]) -> anyhow::Result<()> {
    let mut columns = Vec::with_capacity(records.len());
    let mut texts = Vec::with_capacity(records.len());
    for record in records {
        columns.push(serde_json::from_slice::<Columns>(record)?);
        texts.push(String::from_utf8(record.clone())?);
    }
    let mut days: Vec<i64> = columns.iter().map(|c| c.at_ms / 86_400_000).collect();
    days.sort_unstable();
    days.dedup();
    let tx = client.transaction().await?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&LOG_LOCK])
        .await?;
    for day in days {
        let at_ms = day * 86_400_000;
        tx.execute(
            "SELECT warden_log_partition(to_timestamp($1::bigint / 1000.0))",
            &[&at_ms],
        )
        .await?;
    }
    let ids: Vec<&str> = columns.iter().map(|c| c.id.as_str()).collect();
    let ats: Vec<i64> = columns.iter().map(|c| c.at_ms).collect();
    let tenants: Vec<&str> = columns.iter().map(|c| c.tenant_id.as_str()).collect();
    let users: Vec<&str> = columns.iter().map(|c| c.user_id.as_str()).collect();
    let tasks: Vec<&str> = columns.iter().map(|c| c.task_id.as_str()).collect();
    let statuses: Vec<i32> = columns.iter().map(|c| c.status).collect();
    let tokens_in: Vec<i64> = columns.iter().map(|c| c.tokens_in).collect();
    let tokens_out: Vec<i64> = columns.iter().map(|c| c.tokens_out).collect();
    tx.execute(
        "INSERT INTO request_log
             (seq, id, at, tenant_id, user_id, task_id, status, tokens_in, tokens_out, replica, record)
         SELECT nextval('request_log_seq'), id, to_timestamp(at_ms / 1000.0), tenant, usr, task,
                status, tin, tout, $10, record::jsonb
         FROM unnest($1::text[], $2::bigint[], $3::text[], $4::text[], $5::text[], $6::int[],
                     $7::bigint[], $8::bigint[], $9::text[])
              WITH ORDINALITY AS r(id, at_ms, tenant, usr, task, status, tin, tout, record, n)
         ORDER BY n
         ON CONFLICT (id, at) DO NOTHING",
        &[
            &ids, &ats, &tenants, &users, &tasks, &statuses, &tokens_in, &tokens_out, &texts,
            &replica,
        ],
    )
    .await?;
    tx.commit().await?;
    Ok(())
}

async fn connect(url: &str) -> anyhow::Result<Client> {
    let (client, connection) = tokio_postgres::connect(url, NoTls)
        .await
        .with_context(|| format!("connecting to PostgreSQL at {}", redacted(url)))?;
    tokio::spawn(async move {
        if let Err(e) = connection.await {
            tracing::warn!(error = %e, "PostgreSQL connection closed");
        }
    });
    Ok(client)
}

/// The URL without its password, for messages.
fn redacted(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let userinfo = &url[scheme + 3..at];
            let user = userinfo.split(':').next().unwrap_or("");
            format!("{}{user}:***{}", &url[..scheme + 3], &url[at..])
        }
        _ => url.to_string(),
    }
}

/// Applies the migrations not applied yet, in one transaction under an
/// advisory lock: replicas starting together apply each once.
pub async fn migrate(client: &mut Client) -> anyhow::Result<Vec<&'static str>> {
    let tx = client.transaction().await?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATE_LOCK])
        .await?;
    tx.batch_execute(
        "CREATE TABLE IF NOT EXISTS schema_migrations (
             version text PRIMARY KEY,
             applied_at timestamptz NOT NULL DEFAULT now())",
    )
    .await?;
    let mut applied = Vec::new();
    for (version, sql) in MIGRATIONS {
        let done = tx
            .query_opt(
                "SELECT 1 FROM schema_migrations WHERE version = $1",
                &[version],
            )
            .await?
            .is_some();
        if done {
            continue;
        }
        tx.batch_execute(sql)
            .await
            .with_context(|| format!("migration {version}"))?;
        tx.execute(
            "INSERT INTO schema_migrations (version) VALUES ($1)",
            &[version],
        )
        .await?;
        applied.push(*version);
    }
    tx.commit().await?;
    for version in &applied {
        tracing::info!(version, "PostgreSQL migration applied");
    }
    Ok(applied)
}

/// Every shared row and the last change they include, read in one
/// consistent snapshot of the database.
async fn snapshot(client: &mut Client) -> anyhow::Result<Snapshot> {
    let tx = client
        .build_transaction()
        .isolation_level(tokio_postgres::IsolationLevel::RepeatableRead)
        .read_only(true)
        .start()
        .await?;
    let seq: i64 = tx
        .query_one("SELECT coalesce(max(seq), 0) FROM state_changes", &[])
        .await?
        .get(0);
    let mut rows = Vec::new();
    for row in tx
        .query("SELECT tree, key, value FROM state_rows", &[])
        .await?
    {
        let tree: String = row.get(0);
        let Some(tree) = shared_tree(&tree) else {
            continue;
        };
        rows.push(Change::put(tree, row.get::<_, Vec<u8>>(1), row.get(2)));
    }
    tx.commit().await?;
    Ok(Snapshot { seq, rows })
}

/// Commits changes in one transaction, after every earlier one (the
/// advisory lock), checking their expectations against the rows locked.
async fn commit(client: &mut Client, replica: &str, changes: &[Change]) -> anyhow::Result<bool> {
    let tx = client.transaction().await?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&WRITE_LOCK])
        .await?;
    for change in changes {
        let key = change.key.as_slice();
        if change.expect != Expect::Anything {
            let current = tx
                .query_opt(
                    "SELECT value FROM state_rows WHERE tree = $1 AND key = $2 FOR UPDATE",
                    &[&change.tree, &key],
                )
                .await?
                .map(|row| row.get::<_, Vec<u8>>(0));
            if !change.expects(current.as_deref()) {
                tx.rollback().await?;
                return Ok(false);
            }
        }
        let tenant = change.tenant();
        match &change.value {
            Some(value) => {
                tx.execute(
                    "INSERT INTO state_rows (tree, key, tenant_id, value) VALUES ($1, $2, $3, $4)
                     ON CONFLICT (tree, key) DO UPDATE SET value = excluded.value",
                    &[&change.tree, &key, &tenant, value],
                )
                .await?
            }
            None => {
                tx.execute(
                    "DELETE FROM state_rows WHERE tree = $1 AND key = $2",
                    &[&change.tree, &key],
                )
                .await?
            }
        };
        tx.execute(
            "INSERT INTO state_changes (tree, key, tenant_id, value, replica)
             VALUES ($1, $2, $3, $4, $5)",
            &[&change.tree, &key, &tenant, &change.value, &replica],
        )
        .await?;
    }
    tx.execute("SELECT pg_notify('warden_changes', '')", &[])
        .await?;
    tx.commit().await?;
    Ok(true)
}

/// Follows the change log on a connection of its own.
struct Tail {
    url: String,
    replica: String,
    health: Arc<Mutex<Result<(), String>>>,
    at: Position,
    subscriber: Subscriber,
}

impl Tail {
    async fn run(mut self) {
        let mut backoff = Duration::from_millis(100);
        loop {
            if let Err(e) = self.follow().await {
                tracing::warn!(error = %format!("{e:#}"), "following PostgreSQL's changes; retrying");
                if let Ok(mut health) = self.health.lock() {
                    *health = Err(format!("following changes: {e:#}"));
                }
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(5));
            } else {
                return;
            }
        }
    }

    /// Listens and reads until the connection fails.
    async fn follow(&mut self) -> anyhow::Result<()> {
        let (client, mut connection) = tokio_postgres::connect(&self.url, NoTls).await?;
        let (wake, mut woken) = mpsc::unbounded_channel();
        let mut messages = futures_util::stream::poll_fn(move |cx| connection.poll_message(cx));
        tokio::spawn(async move {
            while let Some(message) = messages.next().await {
                match message {
                    Ok(AsyncMessage::Notification(_)) => {
                        let _ = wake.send(());
                    }
                    Ok(_) => {}
                    Err(_) => break,
                }
            }
            // Dropping `wake` ends the loop below: the connection is gone.
        });
        client.batch_execute("LISTEN warden_changes").await?;
        loop {
            self.read(&client).await?;
            if let Ok(mut health) = self.health.lock() {
                *health = Ok(());
            }
            tokio::select! {
                woke = woken.recv() => if woke.is_none() {
                    anyhow::bail!("the connection closed");
                },
                _ = tokio::time::sleep(POLL_EVERY) => {}
            }
        }
    }

    /// Hands everything after the last change and record seen to the
    /// subscriber.
    async fn read(&mut self, client: &Client) -> anyhow::Result<()> {
        self.read_changes(client).await?;
        self.read_records(client).await
    }

    /// Others' records after the last seen; this replica's own are
    /// passed over (read without their payload, so the position moves).
    async fn read_records(&mut self, client: &Client) -> anyhow::Result<()> {
        loop {
            let rows = client
                .query(
                    "SELECT seq, CASE WHEN replica <> $2 THEN record::text END FROM request_log
                     WHERE seq > $1 ORDER BY seq LIMIT $3",
                    &[&self.at.record, &self.replica, &TAIL_BATCH],
                )
                .await?;
            let Some(last) = rows.last() else {
                return Ok(());
            };
            let seq = last.get(0);
            self.at.record = seq;
            let full = rows.len() as i64 == TAIL_BATCH;
            let records = rows
                .iter()
                .filter_map(|row| row.get::<_, Option<String>>(1))
                .map(String::into_bytes)
                .collect();
            (self.subscriber)(Feed::Records { seq, records });
            if !full {
                return Ok(());
            }
        }
    }

    async fn read_changes(&mut self, client: &Client) -> anyhow::Result<()> {
        let pruned: i64 = client
            .query_one("SELECT upto FROM state_changes_pruned", &[])
            .await?
            .get(0);
        if pruned > self.at.change {
            // Cut off for longer than the log keeps: changes are missing
            // here. Said by /readyz until the replica restarts (from a
            // snapshot).
            anyhow::bail!(
                "this replica missed changes pruned from the log (it has up to {}, the log \
                 starts after {pruned}): restart it",
                self.at.change
            );
        }
        loop {
            let rows = client
                .query(
                    "SELECT seq, tree, key, value FROM state_changes
                     WHERE seq > $1 ORDER BY seq LIMIT $2",
                    &[&self.at.change, &TAIL_BATCH],
                )
                .await?;
            let Some(last) = rows.last() else {
                return Ok(());
            };
            self.at.change = last.get(0);
            let full = rows.len() as i64 == TAIL_BATCH;
            let changes: Vec<Change> = rows
                .iter()
                .filter_map(|row| {
                    let tree = shared_tree(row.get::<_, &str>(1))?;
                    let key: Vec<u8> = row.get(2);
                    Some(match row.get::<_, Option<Vec<u8>>>(3) {
                        Some(value) => Change::put(tree, key, value),
                        None => Change::remove(tree, key),
                    })
                })
                .collect();
            (self.subscriber)(Feed::Changes(changes));
            if !full {
                return Ok(());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn messages_never_show_the_password() {
        assert_eq!(
            super::redacted("postgres://warden:s3cret@127.0.0.1:5432/warden"),
            "postgres://warden:***@127.0.0.1:5432/warden"
        );
        assert_eq!(
            super::redacted("host=/tmp dbname=warden"),
            "host=/tmp dbname=warden"
        );
    }
}
