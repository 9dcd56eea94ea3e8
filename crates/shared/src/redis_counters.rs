//! Quota counters shared by replicas, in Redis: a call's reservation is one
//! Lua script that reads the user's windows, computes the answer's budget
//! from them, and counts the call in the user's and every pool's windows,
//! atomically for every replica at once. Giving a reservation back and
//! settling it to the real cost are plain increments, queued and sent by a
//! thread of this replica's own (a call's end cannot wait on a network).
//!
//! Keys: `q:{tenant}:{owner}:{window}` hashes with fields `r` (requests)
//! and `t` (tokens); the owner is the user, `group:<id>` or `plan:`; the
//! window is `m<minute>`, `d<local day>` or `M<month>`. Each key expires
//! a while after its window ends.
//!
//! Every reservation is also an entry of the replica's in-flight hash
//! (`inflight:{replica}`: request id → tokens, tenant, start, keys) until
//! its settlement or give-back reaches Redis, in the same transaction. A
//! replica killed with settlements still queued finds its entries when it
//! starts again (under the same name) and reconciles them with its log:
//! a logged call is settled to its real cost, a call without a record (it
//! was in flight) or one the quota took back is given back; so the
//! counters equal the log after `kill -9`.
//!
//! The replica keeps its in-memory counters too ([`Activity`]): they are
//! what its journal records and its console shows of its own calls, and
//! Redis decides the limits.

use std::sync::{mpsc as std_mpsc, Arc, Mutex};
use std::time::Duration;

use redis::aio::ConnectionManager;
use tokio::sync::mpsc;
use warden_domain::calendar::Moment;
use warden_domain::groups::PoolUsage;
use warden_domain::Usage;
use warden_state::{
    Activity, AnswerBudget, CountersUnavailable, Db, Payer, QuotaCounters, Reserved, Reserving,
    Settled,
};

/// Reads the user's windows, budgets the answer as `AnswerBudget` does,
/// and counts the call in every owner's windows. KEYS: per owner its
/// minute, day and month keys, the user's first, then the replica's
/// in-flight hash. ARGV: prompt tokens, then the budget (fixed, day and
/// month quotas, max output, estimate; -1 for none), then the three
/// windows' expiry (unix seconds), then the request id and what the
/// in-flight entry records besides the tokens. Returns the
/// answer's tokens, the user's usage before (requests this minute and
/// today, tokens today and this month), then each pool's after (requests
/// today and this month, tokens today and this month).
const RESERVE: &str = r"
local prompt = tonumber(ARGV[1])
local function get(key, field) return tonumber(redis.call('HGET', key, field) or '0') end
local rm, rd, td, tm = get(KEYS[1], 'r'), get(KEYS[2], 'r'), get(KEYS[2], 't'), get(KEYS[3], 't')
local answer
local fixed, day_quota, month_quota = tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
if fixed >= 0 then
  answer = fixed
else
  local left = -1
  if day_quota >= 0 then left = math.max(day_quota - td, 0) end
  if month_quota >= 0 then
    local l = math.max(month_quota - tm, 0)
    if left < 0 or l < left then left = l end
  end
  if left < 0 then
    answer = tonumber(ARGV[6])
  else
    answer = math.max(math.min(tonumber(ARGV[5]), math.max(left - prompt, 0)), 1)
  end
end
local tokens = prompt + answer
local out = {answer, rm, rd, td, tm}
redis.call('HSET', KEYS[#KEYS], ARGV[10], tokens .. '|' .. ARGV[11])
for i = 1, #KEYS - 1, 3 do
  redis.call('HINCRBY', KEYS[i], 'r', 1)
  redis.call('EXPIREAT', KEYS[i], ARGV[7])
  local dr = redis.call('HINCRBY', KEYS[i + 1], 'r', 1)
  local dt = redis.call('HINCRBY', KEYS[i + 1], 't', tokens)
  redis.call('EXPIREAT', KEYS[i + 1], ARGV[8])
  local mr = redis.call('HINCRBY', KEYS[i + 2], 'r', 1)
  local mt = redis.call('HINCRBY', KEYS[i + 2], 't', tokens)
  redis.call('EXPIREAT', KEYS[i + 2], ARGV[9])
  if i > 1 then
    table.insert(out, dr); table.insert(out, mr); table.insert(out, dt); table.insert(out, mt)
  end
end
return out
";

/// How long a reservation waits for Redis before the call is refused.
const RESERVE_TIMEOUT: Duration = Duration::from_millis(500);
const MINUTE_MS: u64 = 60_000;
/// Windows' keys outlive their window by this much (late settlements).
const GRACE_SECS: u64 = 2 * 86_400;

/// An increment queued for Redis: a reservation given back or settled.
struct Adjustment {
    /// Per owner: minute, day and month keys.
    keys: Vec<[String; 3]>,
    requests: i64,
    tokens: i64,
    /// The reservation's in-flight entry, removed in the same transaction.
    request: String,
}

pub struct RedisCounters {
    /// Tells this instance's per-thread connections from another's (tests
    /// run several servers in one process).
    pub(crate) id: u64,
    pub(crate) client: redis::Client,
    pub(crate) local: Arc<Activity>,
    /// The deviation memory's script (redis_deviation.rs).
    pub(crate) remember: Arc<redis::Script>,
    /// `inflight:{replica}`.
    inflight: String,
    script: Arc<redis::Script>,
    queue: mpsc::UnboundedSender<Adjustment>,
    health: Arc<Mutex<Result<(), String>>>,
    /// Since when reservations fail (`None`: Redis answers).
    down_since: Arc<Mutex<Option<std::time::Instant>>>,
}

impl RedisCounters {
    /// Runs `f` on a connection of its own, blocking (an admin's rare
    /// correction, off the request path).
    pub(crate) fn blocking<T>(
        &self,
        f: impl FnOnce(&mut redis::Connection) -> redis::RedisResult<T>,
    ) -> redis::RedisResult<T> {
        let mut connection = self
            .client
            .get_connection_with_timeout(Duration::from_secs(1))?;
        f(&mut connection)
    }

    /// How long reservations have been failing; `None` while Redis answers.
    pub fn outage(&self) -> Option<Duration> {
        let down = self.down_since.lock().ok()?;
        down.map(|since| since.elapsed())
    }

    /// Connects (failing when Redis does not answer), reconciles what this
    /// replica left in flight when it last stopped with its log (`db`,
    /// journal replayed), and starts the thread that sends queued
    /// adjustments.
    pub fn connect(
        url: &str,
        replica: &str,
        local: Arc<Activity>,
        db: &Db,
    ) -> anyhow::Result<Arc<Self>> {
        let inflight = format!("inflight:{replica}");
        let client = redis::Client::open(url)?;
        let (ready, started) = std_mpsc::sync_channel(1);
        let (queue, adjustments) = mpsc::unbounded_channel();
        let health = Arc::new(Mutex::new(Ok(())));
        let thread_health = health.clone();
        let inflight_key = inflight.clone();
        std::thread::Builder::new()
            .name("warden-redis".into())
            .spawn(move || {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build();
                let runtime = match runtime {
                    Ok(runtime) => runtime,
                    Err(e) => return drop(ready.send(Err(anyhow::Error::from(e)))),
                };
                runtime.block_on(async move {
                    match client
                        .get_connection_manager_with_config(manager_config())
                        .await
                    {
                        Ok(manager) => {
                            let _ = ready.send(Ok(manager.clone()));
                            send_adjustments(manager, adjustments, thread_health, inflight_key)
                                .await;
                        }
                        Err(e) => drop(ready.send(Err(e.into()))),
                    }
                });
            })?;
        let _settlements: ConnectionManager = started
            .recv()
            .map_err(|_| anyhow::anyhow!("the Redis thread ended before it started"))??;
        let mut connection = redis::Client::open(url)?.get_connection()?;
        let settled = reconcile(&mut connection, &inflight, db)?;
        if settled > 0 {
            tracing::info!(
                calls = settled,
                "reconciled the reservations left in flight"
            );
        }
        static IDS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        Ok(Arc::new(Self {
            id: IDS.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
            client: redis::Client::open(url)?,
            local,
            remember: Arc::new(redis::Script::new(crate::redis_deviation::REMEMBER)),
            inflight,
            script: Arc::new(redis::Script::new(RESERVE)),
            queue,
            health,
            down_since: Arc::new(Mutex::new(None)),
        }))
    }

    /// Whether Redis answered the last reservation and adjustment.
    pub fn health(&self) -> Result<(), String> {
        self.health
            .lock()
            .map_or_else(|_| Err("poisoned".into()), |h| h.clone())
    }

    fn note(health: &Mutex<Result<(), String>>, result: Result<(), String>) {
        if let Ok(mut health) = health.lock() {
            *health = result;
        }
    }

    fn queue(&self, payer: &Payer<'_>, at: &Moment, requests: i64, tokens: i64) {
        let keys = owners(payer)
            .map(|owner| window_keys(payer.tenant, owner, at))
            .collect();
        let _ = self.queue.send(Adjustment {
            keys,
            requests,
            tokens,
            request: payer.request.to_string(),
        });
    }
}

/// Adds `requests` and `tokens` to every owner's windows.
fn adjust(pipe: &mut redis::Pipeline, keys: &[[String; 3]], requests: i64, tokens: i64) {
    for [minute, day, month] in keys {
        if requests != 0 {
            pipe.hincr(minute, "r", requests).ignore();
            // A minute window may have expired meanwhile: keep it short-lived.
            pipe.expire(minute, 120).ignore();
            pipe.hincr(day, "r", requests).ignore();
            pipe.hincr(month, "r", requests).ignore();
        }
        if tokens != 0 {
            pipe.hincr(day, "t", tokens).ignore();
            pipe.hincr(month, "t", tokens).ignore();
        }
    }
}

/// Settles or gives back every reservation left in `inflight` by an
/// earlier run of this replica, by its log: returns how many.
fn reconcile(connection: &mut redis::Connection, inflight: &str, db: &Db) -> anyhow::Result<usize> {
    let entries: Vec<(String, String)> = redis::cmd("HGETALL").arg(inflight).query(connection)?;
    if entries.is_empty() {
        return Ok(0);
    }
    let mut pipe = redis::pipe();
    pipe.atomic();
    for (request, entry) in &entries {
        let mut fields = entry.splitn(4, '|');
        let (Some(tokens), Some(tenant), Some(at_ms), Some(keys)) =
            (fields.next(), fields.next(), fields.next(), fields.next())
        else {
            pipe.hdel(inflight, request).ignore();
            continue;
        };
        let reserved: i64 = tokens.parse().unwrap_or(0);
        let keys: Vec<String> = keys.split(',').map(str::to_string).collect();
        let keys: Vec<[String; 3]> = keys
            .chunks_exact(3)
            .map(|k| [k[0].clone(), k[1].clone(), k[2].clone()])
            .collect();
        let record = db.logged_record(tenant, at_ms.parse().unwrap_or(0), request)?;
        match record {
            Some(record) if !record.quota_returned => {
                let actual = (record.tokens_in + record.tokens_out) as i64;
                adjust(&mut pipe, &keys, 0, actual - reserved);
            }
            // In flight when the replica died (no answer, no record), or
            // refused by the quota: it counts nowhere.
            _ => adjust(&mut pipe, &keys, -1, -reserved),
        }
        pipe.hdel(inflight, request).ignore();
    }
    pipe.query::<()>(connection)?;
    Ok(entries.len())
}

fn manager_config() -> redis::aio::ConnectionManagerConfig {
    redis::aio::ConnectionManagerConfig::new()
        .set_connection_timeout(Some(Duration::from_secs(1)))
        .set_response_timeout(Some(RESERVE_TIMEOUT))
        .set_number_of_retries(1)
        .set_max_delay(Duration::from_millis(500))
}

thread_local! {
    /// Each worker thread's own connection, by `RedisCounters::id`: a
    /// reservation is written, answered and woken on the thread that
    /// awaits it (Warden's workers each run their own runtime), with no
    /// hand-off to another thread each way. About 30 µs of CPU and two
    /// context switches a call on the benchmark's box.
    static CONNECTIONS: std::cell::RefCell<Vec<(u64, ConnectionManager)>> =
        const { std::cell::RefCell::new(Vec::new()) };
}

/// This thread's connection for the counters `id` (made on first use, on
/// this thread's runtime).
pub(crate) async fn connection(
    id: u64,
    client: &redis::Client,
) -> redis::RedisResult<ConnectionManager> {
    let mine = CONNECTIONS.with(|c| {
        c.borrow()
            .iter()
            .find(|(i, _)| *i == id)
            .map(|(_, m)| m.clone())
    });
    if let Some(manager) = mine {
        return Ok(manager);
    }
    let manager = client
        .get_connection_manager_with_config(manager_config())
        .await?;
    CONNECTIONS.with(|c| c.borrow_mut().push((id, manager.clone())));
    Ok(manager)
}

fn owners<'a>(payer: &'a Payer<'a>) -> impl Iterator<Item = &'a str> {
    std::iter::once(payer.user).chain(payer.pools.iter().map(String::as_str))
}

fn window_keys(tenant: &str, owner: &str, at: &Moment) -> [String; 3] {
    let minute = at.now_ms / MINUTE_MS;
    [
        format!("q:{tenant}:{owner}:m{minute}"),
        format!("q:{tenant}:{owner}:d{}", at.windows.day),
        format!("q:{tenant}:{owner}:M{}", at.windows.month),
    ]
}

/// -1 for "none" in the script's arguments.
fn or_none(value: Option<u64>) -> i64 {
    value.map_or(-1, |v| v.min(i64::MAX as u64) as i64)
}

impl QuotaCounters for RedisCounters {
    fn reserve(
        &self,
        payer: Payer<'_>,
        at: &Moment,
        prompt: u64,
        answer: &AnswerBudget,
    ) -> Reserving {
        let mut keys: Vec<String> = owners(&payer)
            .flat_map(|owner| window_keys(payer.tenant, owner, at))
            .collect();
        let entry = format!("{}|{}|{}", payer.tenant, payer.at_ms, keys.join(","));
        keys.push(self.inflight.clone());
        let request = payer.request.to_string();
        let minute_end = (at.now_ms / MINUTE_MS + 2) * MINUTE_MS / 1000;
        let args: [i64; 9] = [
            prompt as i64,
            or_none(answer.fixed),
            or_none(answer.tokens_per_day),
            or_none(answer.tokens_per_month),
            or_none(Some(answer.max_output)),
            answer.estimate as i64,
            minute_end as i64,
            (at.windows.day_end_ms / 1000 + GRACE_SECS) as i64,
            (at.windows.month_end_ms / 1000 + GRACE_SECS) as i64,
        ];
        let script = self.script.clone();
        let (id, client) = (self.id, self.client.clone());
        let local = self.local.clone();
        let health = self.health.clone();
        let down_since = self.down_since.clone();
        let (tenant, user, pools) = (
            payer.tenant.to_string(),
            payer.user.to_string(),
            payer.pools.to_vec(),
        );
        let at = *at;
        Reserving::Waiting(Box::pin(async move {
            let mut invocation = script.prepare_invoke();
            for key in keys {
                invocation.key(key);
            }
            for arg in args {
                invocation.arg(arg);
            }
            invocation.arg(request).arg(entry);
            let call = async {
                let mut manager = connection(id, &client).await?;
                invocation.invoke_async::<Vec<i64>>(&mut manager).await
            };
            let answered = tokio::time::timeout(RESERVE_TIMEOUT, call).await;
            let outage = |reason: String| {
                Self::note(&health, Err(reason.clone()));
                if let Ok(mut down) = down_since.lock() {
                    down.get_or_insert_with(std::time::Instant::now);
                }
                Err(CountersUnavailable(reason))
            };
            let values = match answered {
                Ok(Ok(values)) if values.len() == 5 + 4 * pools.len() => values,
                Ok(Ok(values)) => return outage(format!("Redis answered {} values", values.len())),
                Ok(Err(e)) => return outage(e.to_string()),
                Err(_) => {
                    return outage(format!("Redis did not answer within {RESERVE_TIMEOUT:?}"))
                }
            };
            Self::note(&health, Ok(()));
            if let Ok(mut down) = down_since.lock() {
                *down = None;
            }
            let count = |v: i64| v.max(0) as u64;
            let answer = count(values[0]);
            // This replica's own view, counted the same way.
            let payer = Payer {
                tenant: &tenant,
                user: &user,
                pools: &pools,
                request: "",
                at_ms: at.now_ms,
            };
            local.reserve_now(payer, &at, prompt, &AnswerBudget::fixed(answer));
            let secs_until =
                |boundary_ms: u64| boundary_ms.saturating_sub(at.now_ms).div_ceil(1000);
            let before = Usage {
                requests_this_minute: count(values[1]),
                requests_today: count(values[2]),
                tokens_today: count(values[3]),
                tokens_this_month: count(values[4]),
                minute_resets_in: secs_until((at.now_ms / MINUTE_MS + 1) * MINUTE_MS),
                day_resets_in: secs_until(at.windows.day_end_ms),
                month_resets_in: secs_until(at.windows.month_end_ms),
            };
            let tokens = prompt + answer;
            let after = Usage {
                requests_this_minute: before.requests_this_minute + 1,
                requests_today: before.requests_today + 1,
                tokens_today: before.tokens_today + tokens,
                tokens_this_month: before.tokens_this_month + tokens,
                ..before
            };
            let pools = values[5..]
                .chunks(4)
                .map(|pool| PoolUsage {
                    requests_today: count(pool[0]),
                    requests_this_month: count(pool[1]),
                    tokens_today: count(pool[2]),
                    tokens_this_month: count(pool[3]),
                    day_resets_in: before.day_resets_in,
                    month_resets_in: before.month_resets_in,
                })
                .collect();
            Ok(Reserved {
                before,
                after,
                answer,
                pools,
            })
        }))
    }

    fn unreserve(&self, payer: Payer<'_>, at: &Moment, tokens: u64) {
        self.local.unreserve(payer, at, tokens);
        self.queue(&payer, at, -1, -(tokens as i64));
    }

    fn settle(
        &self,
        payer: Payer<'_>,
        at: &Moment,
        reserved: u64,
        actual: u64,
        journal: &mut dyn FnMut(Settled),
    ) {
        self.local.settle(payer, at, reserved, actual, journal);
        // A call given back earlier, or never reserved, has nothing here.
        if reserved > 0 || actual > 0 {
            self.queue(&payer, at, 0, actual as i64 - reserved as i64);
        }
    }
}

/// Sends queued adjustments in order, many per round trip; while Redis is
/// unreachable they wait (and are sent when it answers again).
async fn send_adjustments(
    mut manager: ConnectionManager,
    mut queue: mpsc::UnboundedReceiver<Adjustment>,
    health: Arc<Mutex<Result<(), String>>>,
    inflight: String,
) {
    let mut batch = Vec::new();
    while queue.recv_many(&mut batch, 256).await > 0 {
        // One transaction: an adjustment and the removal of its in-flight
        // entry happen together or not at all.
        let mut pipe = redis::pipe();
        pipe.atomic();
        for adjustment in &batch {
            adjust(
                &mut pipe,
                &adjustment.keys,
                adjustment.requests,
                adjustment.tokens,
            );
            pipe.hdel(&inflight, &adjustment.request).ignore();
        }
        let mut backoff = Duration::from_millis(50);
        loop {
            match pipe.query_async::<()>(&mut manager).await {
                Ok(()) => {
                    RedisCounters::note(&health, Ok(()));
                    break;
                }
                Err(e) => {
                    RedisCounters::note(&health, Err(format!("sending settlements: {e}")));
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(1));
                }
            }
        }
        batch.clear();
    }
}
