//! The state the request path needs, as traits: what a second backend
//! (PostgreSQL and Redis shared by several replicas) implements to stand in
//! for sled without touching the request path. The embedded default
//! implements them here: [`Db`] (identity snapshot, audit log), [`Activity`]
//! (quota counters, deviation memory, in memory and journaled) and
//! [`StateWriter`] (the request journal and log). What a shared backend
//! must guarantee for each is in `docs/state-backends.md`.

use std::sync::Arc;

use warden_domain::calendar::Moment;
use warden_domain::groups::PoolUsage;
use warden_domain::model::{Event, RequestRecord, UserStatus};
use warden_domain::{Drift, IntentLabel, Usage, UsageStats};

use crate::activity::{Activity, Counters, HistoryItem, OffTaskPrompt, UserActivity};
use crate::{Db, Directory, StateWriter};

/// Tenants, users, tasks and signing keys, read on every request.
pub trait IdentityStore: Send + Sync {
    /// The current snapshot: never waits (a shared backend refreshes it on
    /// change notifications, off the request path).
    fn snapshot(&self) -> Arc<Directory>;
    /// A user's new status (the deviation stage's flag or block), durable
    /// and visible in every later snapshot, on every replica; `false` when
    /// the user does not exist.
    fn set_user_status(&self, tenant: &str, user: &str, status: UserStatus)
        -> anyhow::Result<bool>;
}

/// Whose windows a call counts in: its user's, and the pools the user
/// shares (their groups', the tenant plan's; keys from
/// `warden_domain::groups`), all changed in one atomic step.
#[derive(Debug, Clone, Copy)]
pub struct Payer<'a> {
    pub tenant: &'a str,
    pub user: &'a str,
    pub pools: &'a [String],
    /// The call (its request id): a shared store tracks each reservation
    /// until it is settled, to reconcile after a crash.
    pub request: &'a str,
    /// When it started (its record's `at_ms`).
    pub at_ms: u64,
}

/// A call's reservation, read in the same step as it was made.
#[derive(Debug, Clone, PartialEq)]
pub struct Reserved {
    /// The user's usage before and after the call.
    pub before: Usage,
    pub after: Usage,
    /// The answer's tokens counted.
    pub answer: u64,
    /// Each pool's usage after the call, in the order of `Payer::pools`.
    pub pools: Vec<PoolUsage>,
}

/// Counters after a settled call: the user's and each pool's.
#[derive(Debug, Clone, Default)]
pub struct Settled {
    pub user: Counters,
    pub pools: Vec<(String, Counters)>,
}

/// How many tokens a call reserves for its answer, from the user's usage
/// before it: a rule, not a closure, so a shared store applies it in the
/// same atomic step as it reads the usage (Redis: inside the script).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AnswerBudget {
    /// The client's own cap, reserved as it is.
    pub fixed: Option<u64>,
    /// The user's token quotas: what is left of them (after the prompt)
    /// caps the answer, at most `max_output`.
    pub tokens_per_day: Option<u64>,
    pub tokens_per_month: Option<u64>,
    pub prompt: u64,
    pub max_output: u64,
    /// What an answer is assumed to take when nothing caps it.
    pub estimate: u64,
}

impl AnswerBudget {
    /// A fixed reservation (tests, and clients with their own cap).
    pub fn fixed(tokens: u64) -> Self {
        Self {
            fixed: Some(tokens),
            tokens_per_day: None,
            tokens_per_month: None,
            prompt: 0,
            max_output: 0,
            estimate: 0,
        }
    }

    /// The answer's reservation given the usage before the call.
    pub fn for_usage(&self, before: &Usage) -> u64 {
        if let Some(cap) = self.fixed {
            return cap;
        }
        let left = [
            self.tokens_per_day
                .map(|l| l.saturating_sub(before.tokens_today)),
            self.tokens_per_month
                .map(|l| l.saturating_sub(before.tokens_this_month)),
        ];
        let Some(left) = left.into_iter().flatten().min() else {
            return self.estimate;
        };
        self.max_output.min(left.saturating_sub(self.prompt)).max(1)
    }
}

/// The counters could not be reached (a shared store down): the call is
/// refused rather than counted nowhere.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CountersUnavailable(pub String);

/// A reservation: made already (in memory), or on its way (one round trip
/// to a shared store).
pub enum Reserving {
    Done(Reserved),
    Waiting(
        std::pin::Pin<
            Box<dyn std::future::Future<Output = Result<Reserved, CountersUnavailable>> + Send>,
        >,
    ),
}

impl Reserving {
    pub async fn reserved(self) -> Result<Reserved, CountersUnavailable> {
        match self {
            Reserving::Done(reserved) => Ok(reserved),
            Reserving::Waiting(future) => future.await,
        }
    }
}

/// A value a store answers at once (memory) or after a round trip (a
/// shared store; such a store falls back on its local copy when it cannot
/// be reached, so the value always comes).
pub enum Pending<T> {
    Done(T),
    Waiting(std::pin::Pin<Box<dyn std::future::Future<Output = T> + Send>>),
}

impl<T> Pending<T> {
    pub async fn get(self) -> T {
        match self {
            Pending::Done(value) => value,
            Pending::Waiting(future) => future.await,
        }
    }
}

/// Users' and pools' quota windows, with the calls in flight counted at
/// their estimate ("reserve, then settle").
pub trait QuotaCounters: Send + Sync {
    /// Counts a call in one atomic step with reading the windows: its
    /// prompt's tokens and what `answer` allows the answer from the user's
    /// usage before it.
    fn reserve(
        &self,
        payer: Payer<'_>,
        at: &Moment,
        prompt: u64,
        answer: &AnswerBudget,
    ) -> Reserving;
    /// Takes a refused call back out, request and tokens.
    fn unreserve(&self, payer: Payer<'_>, at: &Moment, tokens: u64);
    /// Replaces a reservation with what the call really cost and hands the
    /// counters after it to `journal`, which journals them with the call's
    /// record before any other call of the store can settle or persist:
    /// counters in the journal and in sled never include a call whose
    /// record is not journaled (a `kill -9` between the two would leave the
    /// counters one call ahead of the log).
    fn settle(
        &self,
        payer: Payer<'_>,
        at: &Moment,
        reserved: u64,
        actual: u64,
        journal: &mut dyn FnMut(Settled),
    );
}

/// One of a user's earlier calls, as the deviation stage sees it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PastCall {
    pub at_ms: u64,
    /// For the same task as the call being scored.
    pub same_task: bool,
    pub label: IntentLabel,
    pub drift: Drift,
}

/// What the deviation stage reads of a user before scoring a call.
pub struct Recall {
    /// The same off-task prompt was scored for this task within the hour.
    pub repeat: bool,
    /// The most recent calls, oldest first.
    pub history: Vec<PastCall>,
    pub stats: UsageStats,
    pub score: f32,
    pub score_updated_at_ms: u64,
}

/// What the host keeps of a scored call.
#[derive(Clone)]
pub struct Scored {
    pub at_ms: u64,
    pub score_delta: f32,
    /// Kept in the history (`None` for a repeat: it counts once).
    pub history: Option<HistoryItem>,
    /// Kept as evidence when the call was off-task.
    pub off_task: Option<OffTaskPrompt>,
    /// The warning the user gets, kept for `/v1/me`.
    pub warning: Option<String>,
}

/// A user's deviation score, recent intents and off-task prompts.
pub trait DeviationMemory: Send + Sync {
    /// `prompt_hash` is the off-task prompt's hash (`None` when on-task).
    fn recall(
        &self,
        tenant: &str,
        user: &str,
        at: &Moment,
        task_id: &str,
        prompt_hash: Option<u64>,
    ) -> Pending<Recall>;
    /// Applies a scored call; returns the new score and, when `evidence`,
    /// the user's latest off-task prompts (this call's included).
    fn remember(
        &self,
        tenant: &str,
        user: &str,
        at: &Moment,
        scored: Scored,
        evidence: bool,
    ) -> Pending<(f32, Option<Vec<OffTaskPrompt>>)>;
    /// The user's latest off-task prompts, oldest first.
    fn off_task(&self, tenant: &str, user: &str, at: &Moment) -> Pending<Vec<OffTaskPrompt>>;
    /// An admin marked the off-task prompt of call `request` on-task: it
    /// leaves the evidence and its score is taken back. Returns the prompt
    /// and the score before and after; `None` when it is not held.
    fn take_back(
        &self,
        tenant: &str,
        user: &str,
        at: &Moment,
        request: &str,
        note: Option<String>,
    ) -> Option<(OffTaskPrompt, f32, f32)>;
    /// An admin re-enabled the user: score, warning and evidence start
    /// afresh, with the admin's note.
    fn start_afresh(&self, tenant: &str, user: &str, at: &Moment, note: String);
}

/// Every finished call's record, exactly once.
pub trait RequestJournal: Send + Sync {
    /// Durable before the call's answer completes (survives `kill -9`),
    /// with the user's (and their pools') counters after it.
    fn record(&self, record: RequestRecord, counters: Option<Settled>);
    /// Whether records reach the store now (what `/readyz` reports); why not.
    fn health(&self) -> Result<(), String>;
}

/// Automatic actions and admin changes, ordered per tenant.
pub trait AuditLog: Send + Sync {
    /// Appended without waiting for a flush (the request path's evidence).
    fn insert_event(&self, event: &Event) -> anyhow::Result<()>;
}

/// Every store the request path uses.
#[derive(Clone)]
pub struct Stores {
    pub identity: Arc<dyn IdentityStore>,
    pub counters: Arc<dyn QuotaCounters>,
    pub deviation: Arc<dyn DeviationMemory>,
    pub journal: Arc<dyn RequestJournal>,
    pub audit: Arc<dyn AuditLog>,
}

impl Stores {
    /// The embedded default: sled and memory.
    pub fn embedded(db: Arc<Db>, activity: Arc<Activity>, writer: StateWriter) -> Self {
        Self {
            identity: db.clone(),
            counters: activity.clone(),
            deviation: activity,
            journal: Arc::new(writer),
            audit: db,
        }
    }
}

impl IdentityStore for Db {
    fn snapshot(&self) -> Arc<Directory> {
        self.directory_full()
    }

    fn set_user_status(
        &self,
        tenant: &str,
        user: &str,
        status: UserStatus,
    ) -> anyhow::Result<bool> {
        Db::set_user_status(self, tenant, user, status)
    }
}

impl AuditLog for Db {
    fn insert_event(&self, event: &Event) -> anyhow::Result<()> {
        Db::insert_event(self, event)
    }
}

impl RequestJournal for StateWriter {
    fn record(&self, record: RequestRecord, counters: Option<Settled>) {
        StateWriter::record(self, record, counters)
    }

    fn health(&self) -> Result<(), String> {
        StateWriter::health(self)
    }
}

impl Activity {
    /// A reservation in memory: the user's windows and pools under one lock.
    pub fn reserve_now(
        &self,
        payer: Payer<'_>,
        at: &Moment,
        prompt: u64,
        answer: &AnswerBudget,
    ) -> Reserved {
        let mut users = self.lock();
        let mine = users.activity(payer.tenant, payer.user, at);
        let before = mine.usage(at);
        let answer = answer.for_usage(&before);
        let tokens = prompt + answer;
        mine.reserve(tokens, at.now_ms);
        let after = mine.usage(at);
        let pools = payer
            .pools
            .iter()
            .map(|pool| {
                let shared = users.activity(payer.tenant, pool, at);
                shared.reserve(tokens, at.now_ms);
                shared.pool_usage(at)
            })
            .collect();
        Reserved {
            before,
            after,
            answer,
            pools,
        }
    }
}

impl QuotaCounters for Activity {
    fn reserve(
        &self,
        payer: Payer<'_>,
        at: &Moment,
        prompt: u64,
        answer: &AnswerBudget,
    ) -> Reserving {
        Reserving::Done(self.reserve_now(payer, at, prompt, answer))
    }

    fn unreserve(&self, payer: Payer<'_>, at: &Moment, tokens: u64) {
        let mut users = self.lock();
        for key in std::iter::once(payer.user).chain(payer.pools.iter().map(String::as_str)) {
            users.activity(payer.tenant, key, at).unreserve(tokens);
        }
    }

    fn settle(
        &self,
        payer: Payer<'_>,
        at: &Moment,
        reserved: u64,
        actual: u64,
        journal: &mut dyn FnMut(Settled),
    ) {
        let mut users = self.lock();
        let mut settle = |key: &str| {
            let a = users.activity(payer.tenant, key, at);
            a.reconcile(reserved, actual);
            a.settled_counters()
        };
        let user = settle(payer.user);
        let pools = payer
            .pools
            .iter()
            .map(|pool| (pool.clone(), settle(pool)))
            .collect();
        journal(Settled { user, pools });
    }
}

impl Activity {
    /// What the deviation stage reads of a user's activity.
    pub fn recall_of(
        a: &UserActivity,
        at: &Moment,
        task_id: &str,
        prompt_hash: Option<u64>,
    ) -> Recall {
        Recall {
            repeat: prompt_hash.is_some_and(|h| a.repeats(task_id, h, at.now_ms)),
            history: a
                .history
                .iter()
                .map(|h| PastCall {
                    at_ms: h.at_ms,
                    same_task: h.task_id == task_id,
                    label: h.label,
                    drift: h.drift,
                })
                .collect(),
            stats: a.stats(at.now_ms),
            score: a.counters.score,
            score_updated_at_ms: a.counters.score_updated_at_ms,
        }
    }

    /// Applies a scored call to this process's copy of the user.
    pub fn remember_now(
        &self,
        tenant: &str,
        user: &str,
        at: &Moment,
        scored: Scored,
        evidence: bool,
    ) -> (f32, Option<Vec<OffTaskPrompt>>) {
        self.with_user(tenant, user, at, |a| {
            a.counters.score = (a.counters.score + scored.score_delta).max(0.0);
            a.counters.score_updated_at_ms = scored.at_ms;
            if let Some(item) = scored.history {
                a.remember(item);
            }
            if let Some(prompt) = scored.off_task {
                a.remember_off_task(prompt);
            }
            if scored.warning.is_some() {
                a.last_warning = scored.warning;
            }
            let prompts = evidence.then(|| a.off_task.iter().cloned().collect());
            (a.counters.score, prompts)
        })
    }
}

impl DeviationMemory for Activity {
    fn recall(
        &self,
        tenant: &str,
        user: &str,
        at: &Moment,
        task_id: &str,
        prompt_hash: Option<u64>,
    ) -> Pending<Recall> {
        let recall = self.with_user(tenant, user, at, |a| {
            Activity::recall_of(a, at, task_id, prompt_hash)
        });
        Pending::Done(recall)
    }

    fn remember(
        &self,
        tenant: &str,
        user: &str,
        at: &Moment,
        scored: Scored,
        evidence: bool,
    ) -> Pending<(f32, Option<Vec<OffTaskPrompt>>)> {
        Pending::Done(self.remember_now(tenant, user, at, scored, evidence))
    }

    fn off_task(&self, tenant: &str, user: &str, at: &Moment) -> Pending<Vec<OffTaskPrompt>> {
        Pending::Done(self.with_user(tenant, user, at, |a| a.off_task.iter().cloned().collect()))
    }

    fn take_back(
        &self,
        tenant: &str,
        user: &str,
        at: &Moment,
        request: &str,
        note: Option<String>,
    ) -> Option<(OffTaskPrompt, f32, f32)> {
        self.with_user(tenant, user, at, |a| {
            let index = a.off_task.iter().position(|p| p.request_id == request)?;
            let prompt = a.off_task.remove(index)?;
            let before = a.counters.score;
            a.counters.score = (before - prompt.score_delta).max(0.0);
            if a.off_task.is_empty() {
                a.last_warning = None;
            }
            if note.is_some() {
                a.admin_note = note;
            }
            Some((prompt, before, a.counters.score))
        })
    }

    fn start_afresh(&self, tenant: &str, user: &str, at: &Moment, note: String) {
        self.with_user(tenant, user, at, |a| {
            a.counters.score = 0.0;
            a.counters.score_updated_at_ms = at.now_ms;
            a.last_warning = None;
            a.off_task.clear();
            a.admin_note = Some(note);
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use warden_domain::calendar::Calendar;

    fn memory() -> Activity {
        let (db, dir) = crate::test_db("store", &["acme"]);
        let activity = db.load_activity().unwrap();
        drop(db);
        let _ = std::fs::remove_dir_all(dir);
        activity
    }

    #[test]
    fn reservations_settle_and_a_refusal_counts_nothing() {
        let (activity, at) = (memory(), Calendar::utc().at(1_000_000));
        let counters: &dyn QuotaCounters = &activity;
        let pools = ["group:eng".to_string()];
        let ali = Payer {
            tenant: "acme",
            user: "ali",
            pools: &pools,
            request: "r1",
            at_ms: 0,
        };
        let reserve = |payer, prompt, answer| match counters.reserve(
            payer,
            &at,
            prompt,
            &AnswerBudget::fixed(answer),
        ) {
            Reserving::Done(reserved) => reserved,
            Reserving::Waiting(_) => panic!("memory answers at once"),
        };
        let r = reserve(ali, 100, 400);
        assert_eq!(
            (r.before.tokens_today, r.after.tokens_today, r.answer),
            (0, 500, 400)
        );
        assert_eq!(r.after.requests_today, 1);
        assert_eq!(r.pools[0].tokens_today, 500, "the group counts it too");
        let mut journaled = None;
        counters.settle(ali, &at, 500, 120, &mut |c| journaled = Some(c));
        let journaled = journaled.expect("settling hands the counters to the journal");
        assert_eq!(journaled.pools.len(), 1, "with the group's");
        reserve(ali, 500, 0);
        counters.unreserve(ali, &at, 500);
        let now = reserve(ali, 0, 0);
        assert_eq!(
            (now.before.requests_today, now.before.tokens_today),
            (1, 120)
        );
        // Another member of the group shares its pool, not ali's windows.
        let bo = Payer { user: "bo", ..ali };
        let theirs = reserve(bo, 10, 0);
        assert_eq!(theirs.before.requests_today, 0);
        assert_eq!(theirs.pools[0].requests_today, 3);
        assert_eq!(theirs.pools[0].requests_this_month, 3);
    }

    #[test]
    fn a_remembered_off_task_prompt_is_a_repeat_for_its_task_only() {
        let (activity, at) = (memory(), Calendar::utc().at(1_000_000));
        let memory: &dyn DeviationMemory = &activity;
        let prompt = OffTaskPrompt {
            at_ms: at.now_ms,
            request_id: "r1".into(),
            task_id: "t".into(),
            prompt: "a sonnet".into(),
            label: IntentLabel::OffTopic,
            drift: Drift::Major,
            confidence: 0.9,
            score_delta: 1.0,
            prompt_hash: 42,
        };
        let item = HistoryItem {
            at_ms: at.now_ms,
            task_id: "t".into(),
            label: IntentLabel::OffTopic,
            drift: Drift::Major,
        };
        let scored = Scored {
            at_ms: at.now_ms,
            score_delta: 1.0,
            history: Some(item),
            off_task: Some(prompt),
            warning: Some("off task".into()),
        };
        let remembered = match memory.remember("acme", "ali", &at, scored, true) {
            Pending::Done(done) => done,
            Pending::Waiting(_) => panic!("memory answers at once"),
        };
        let (score, evidence) = remembered;
        assert_eq!((score, evidence.map(|e| e.len())), (1.0, Some(1)));
        let recall_now = |task, hash| match memory.recall("acme", "ali", &at, task, hash) {
            Pending::Done(recall) => recall,
            Pending::Waiting(_) => panic!("memory answers at once"),
        };
        let recall = recall_now("t", Some(42));
        assert!(recall.repeat);
        assert_eq!(recall.history.len(), 1);
        assert!(recall.history[0].same_task);
        assert!(!recall_now("other", Some(42)).repeat);
        assert!(!recall_now("t", None).repeat);
    }
}
