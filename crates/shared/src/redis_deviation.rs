//! Users' deviation memory in Redis, shared by replicas: the score (added
//! to atomically, by a script), the last 50 scored calls and the last 5
//! off-task prompts, so a misuser whose calls land on different replicas
//! is scored as on one. Per user:
//!
//! - `dev:{tenant}:{user}`: hash `score`, `at` (when it last changed),
//!   `first` and `total` (scored calls, for the user's usual rate);
//! - `hist:{tenant}:{user}`, `off:{tenant}:{user}`: lists of JSON, newest
//!   first, trimmed.
//!
//! Every key expires after a month without a scored call. The replica
//! keeps applying each call to its own copy ([`Activity`]) too: its views
//! read it, and it answers when Redis cannot (a replica then scores alone
//! until Redis is back).

use std::collections::VecDeque;
use std::time::Duration;

use warden_domain::calendar::Moment;
use warden_state::{
    Activity, DeviationMemory, HistoryItem, OffTaskPrompt, Pending, Recall, Scored, UserActivity,
};

use crate::redis_counters::{connection, RedisCounters};

/// Applies a scored call. KEYS: dev, hist, off. ARGV: score delta, now
/// (ms), the history item and the off-task prompt (JSON, or empty), the
/// warning (or empty), `1` to return the off-task prompts, the keys' TTL.
/// Returns the new score and the off-task prompts asked for.
pub(crate) const REMEMBER: &str = r"
local score = tonumber(redis.call('HGET', KEYS[1], 'score') or '0') + tonumber(ARGV[1])
if score < 0 then score = 0 end
redis.call('HSET', KEYS[1], 'score', tostring(score), 'at', ARGV[2])
redis.call('HSETNX', KEYS[1], 'first', ARGV[2])
redis.call('HINCRBY', KEYS[1], 'total', 1)
if ARGV[3] ~= '' then
  redis.call('LPUSH', KEYS[2], ARGV[3])
  redis.call('LTRIM', KEYS[2], 0, 49)
end
if ARGV[4] ~= '' then
  redis.call('LPUSH', KEYS[3], ARGV[4])
  redis.call('LTRIM', KEYS[3], 0, 4)
end
if ARGV[5] ~= '' then redis.call('HSET', KEYS[1], 'warning', ARGV[5]) end
for i = 1, 3 do redis.call('EXPIRE', KEYS[i], ARGV[7]) end
local evidence = {}
if ARGV[6] == '1' then evidence = redis.call('LRANGE', KEYS[3], 0, -1) end
return {tostring(score), evidence}
";

/// An admin's on-task mark. KEYS: dev, off. ARGV: the request id. Returns
/// the prompt (JSON) and the score before and after, or nil.
const TAKE_BACK: &str = r"
for _, item in ipairs(redis.call('LRANGE', KEYS[2], 0, -1)) do
  local prompt = cjson.decode(item)
  if prompt.request_id == ARGV[1] then
    redis.call('LREM', KEYS[2], 1, item)
    local before = tonumber(redis.call('HGET', KEYS[1], 'score') or '0')
    local after = math.max(before - (tonumber(prompt.score_delta) or 0), 0)
    redis.call('HSET', KEYS[1], 'score', tostring(after))
    return {item, tostring(before), tostring(after)}
  end
end
return false
";

const KEEP_SECS: u64 = 30 * 86_400;
/// How long a read waits for Redis before the replica's own copy answers.
const READ_TIMEOUT: Duration = Duration::from_millis(500);

fn keys(tenant: &str, user: &str) -> [String; 3] {
    [
        format!("dev:{tenant}:{user}"),
        format!("hist:{tenant}:{user}"),
        format!("off:{tenant}:{user}"),
    ]
}

/// JSON items, newest first, as this process keeps them (oldest first).
fn oldest_first<T: serde::de::DeserializeOwned>(items: &[String]) -> VecDeque<T> {
    items
        .iter()
        .rev()
        .filter_map(|item| serde_json::from_str(item).ok())
        .collect()
}

impl DeviationMemory for RedisCounters {
    fn recall(
        &self,
        tenant: &str,
        user: &str,
        at: &Moment,
        task_id: &str,
        prompt_hash: Option<u64>,
    ) -> Pending<Recall> {
        let (id, client, local) = (self.id, self.client.clone(), self.local.clone());
        let [dev, hist, off] = keys(tenant, user);
        let (tenant, user, task, at) = (
            tenant.to_string(),
            user.to_string(),
            task_id.to_string(),
            *at,
        );
        Pending::Waiting(Box::pin(async move {
            let read = async {
                let mut conn = connection(id, &client).await?;
                let mut pipe = redis::pipe();
                pipe.cmd("HMGET")
                    .arg(&dev)
                    .arg(&["score", "at", "first", "total"]);
                pipe.lrange(&hist, 0, -1).lrange(&off, 0, -1);
                pipe.query_async::<(Vec<Option<String>>, Vec<String>, Vec<String>)>(&mut conn)
                    .await
            };
            match tokio::time::timeout(READ_TIMEOUT, read).await {
                Ok(Ok((fields, history, off_task))) => {
                    let number = |i: usize| {
                        fields
                            .get(i)
                            .cloned()
                            .flatten()
                            .and_then(|v| v.parse::<f64>().ok())
                            .unwrap_or(0.0)
                    };
                    let user = UserActivity::from_shared(
                        number(0) as f32,
                        number(1) as u64,
                        number(2) as u64,
                        number(3) as u64,
                        oldest_first::<HistoryItem>(&history),
                        oldest_first::<OffTaskPrompt>(&off_task),
                    );
                    Activity::recall_of(&user, &at, &task, prompt_hash)
                }
                _ => {
                    tracing::warn!(
                        "deviation memory: Redis did not answer; this replica's own copy"
                    );
                    local.with_user(&tenant, &user, &at, |a| {
                        Activity::recall_of(a, &at, &task, prompt_hash)
                    })
                }
            }
        }))
    }

    fn remember(
        &self,
        tenant: &str,
        user: &str,
        at: &Moment,
        scored: Scored,
        evidence: bool,
    ) -> Pending<(f32, Option<Vec<OffTaskPrompt>>)> {
        let mine = self
            .local
            .remember_now(tenant, user, at, scored.clone(), evidence);
        // An on-task call that led to no action changes only the history:
        // written without waiting (the call goes on with this replica's
        // view of the score). The others wait for the shared score.
        let settled_locally = !evidence && scored.off_task.is_none();
        let json = |value: Option<String>| value.unwrap_or_default();
        let args = [
            scored.score_delta.to_string(),
            scored.at_ms.to_string(),
            json(scored.history.and_then(|h| serde_json::to_string(&h).ok())),
            json(scored.off_task.and_then(|p| serde_json::to_string(&p).ok())),
            json(scored.warning),
            if evidence { "1" } else { "0" }.to_string(),
            KEEP_SECS.to_string(),
        ];
        let (id, client, script) = (self.id, self.client.clone(), self.remember.clone());
        let keys = keys(tenant, user);
        let write = async move {
            let mut conn = connection(id, &client).await?;
            let mut invocation = script.prepare_invoke();
            for key in &keys {
                invocation.key(key);
            }
            for arg in &args {
                invocation.arg(arg);
            }
            invocation
                .invoke_async::<(String, Vec<String>)>(&mut conn)
                .await
        };
        if settled_locally {
            tokio::spawn(async move {
                if tokio::time::timeout(READ_TIMEOUT, write).await.is_err() {
                    tracing::warn!("deviation memory: Redis did not take an on-task call");
                }
            });
            return Pending::Done(mine);
        }
        Pending::Waiting(Box::pin(async move {
            match tokio::time::timeout(READ_TIMEOUT, write).await {
                Ok(Ok((score, prompts))) => {
                    let score = score.parse().unwrap_or(mine.0);
                    let prompts = evidence.then(|| oldest_first(&prompts).into());
                    (score, prompts)
                }
                _ => {
                    tracing::warn!(
                        "deviation memory: Redis did not answer; scored on this replica only"
                    );
                    mine
                }
            }
        }))
    }

    fn off_task(&self, tenant: &str, user: &str, at: &Moment) -> Pending<Vec<OffTaskPrompt>> {
        let (id, client, local) = (self.id, self.client.clone(), self.local.clone());
        let [_, _, off] = keys(tenant, user);
        let (tenant, user, at) = (tenant.to_string(), user.to_string(), *at);
        Pending::Waiting(Box::pin(async move {
            let read = async {
                let mut conn = connection(id, &client).await?;
                redis::cmd("LRANGE")
                    .arg(&off)
                    .arg(0)
                    .arg(-1)
                    .query_async::<Vec<String>>(&mut conn)
                    .await
            };
            match tokio::time::timeout(READ_TIMEOUT, read).await {
                Ok(Ok(items)) => oldest_first(&items).into(),
                _ => local.with_user(&tenant, &user, &at, |a| {
                    a.off_task.iter().cloned().collect()
                }),
            }
        }))
    }

    fn take_back(
        &self,
        tenant: &str,
        user: &str,
        at: &Moment,
        request: &str,
        note: Option<String>,
    ) -> Option<(OffTaskPrompt, f32, f32)> {
        let mine = self.local.take_back(tenant, user, at, request, note);
        let [dev, _, off] = keys(tenant, user);
        let shared = self.blocking(|conn| {
            redis::Script::new(TAKE_BACK)
                .key(&dev)
                .key(&off)
                .arg(request)
                .invoke::<Option<(String, String, String)>>(conn)
        });
        match shared {
            Ok(Some((prompt, before, after))) => {
                let prompt = serde_json::from_str(&prompt).ok()?;
                Some((prompt, before.parse().ok()?, after.parse().ok()?))
            }
            Ok(None) => None,
            Err(e) => {
                tracing::warn!(error = %e, "deviation memory: a correction reached this replica only");
                mine
            }
        }
    }

    fn start_afresh(&self, tenant: &str, user: &str, at: &Moment, note: String) {
        self.local.start_afresh(tenant, user, at, note);
        let [dev, _, off] = keys(tenant, user);
        let now = at.now_ms;
        let reset = self.blocking(|conn| {
            redis::pipe()
                .atomic()
                .cmd("HSET")
                .arg(&dev)
                .arg("score")
                .arg("0")
                .arg("at")
                .arg(now)
                .ignore()
                .hdel(&dev, "warning")
                .ignore()
                .del(&off)
                .ignore()
                .query::<()>(conn)
        });
        if let Err(e) = reset {
            tracing::warn!(error = %e, "deviation memory: a re-enable reached this replica only");
        }
    }
}
