//! Per-user activity kept in memory on the request path: usage counters for
//! quota windows (minute, and the tenant's local day, week and month), the deviation score and the
//! recent intent history. Counters include requests in flight at their
//! estimate ("reserve, then reconcile"), so concurrent requests cannot
//! overshoot a limit by more than what is in flight.

use std::collections::{HashMap, VecDeque};
use std::sync::{Mutex, MutexGuard, PoisonError};

use serde::{Deserialize, Serialize};

use warden_domain::calendar::{Moment, Windows};
use warden_domain::groups::PoolUsage;
use warden_domain::{Drift, IntentLabel, Usage, UsageStats};

const HISTORY_LEN: usize = 50;
/// Off-task prompts kept per user as evidence for an automatic action.
const OFF_TASK_KEPT: usize = 5;
/// Characters of each such prompt kept (the request log has the full text).
const EVIDENCE_PROMPT_CHARS: usize = 300;
const MINUTE_MS: u64 = 60_000;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct HistoryItem {
    pub at_ms: u64,
    pub task_id: String,
    pub label: IntentLabel,
    pub drift: Drift,
}

/// An off-task prompt, kept as evidence for the action it may lead to.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct OffTaskPrompt {
    pub at_ms: u64,
    pub request_id: String,
    pub task_id: String,
    /// The first 300 characters.
    pub prompt: String,
    pub label: IntentLabel,
    pub drift: Drift,
    pub confidence: f32,
    /// What this prompt added to the score (an admin's correction takes
    /// it back).
    #[serde(default)]
    pub score_delta: f32,
    /// [`OffTaskPrompt::hash`] of the whole prompt, to know a repeat.
    #[serde(default)]
    pub prompt_hash: u64,
}

/// A prompt sent again within this time (a client's retry, the same
/// question asked twice) counts once toward the deviation score.
const REPEAT_WINDOW_MS: u64 = 60 * 60 * 1000;

impl OffTaskPrompt {
    /// FNV-1a of the prompt: stable across builds, as it is stored.
    pub fn hash(prompt: &str) -> u64 {
        prompt.bytes().fold(0xcbf2_9ce4_8422_2325, |h: u64, b| {
            (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
        })
    }

    /// Keeps the head of `prompt` only: evidence, not a second request log.
    pub fn excerpt(prompt: &str) -> String {
        match prompt.char_indices().nth(EVIDENCE_PROMPT_CHARS) {
            Some((cut, _)) => format!("{}…", &prompt[..cut]),
            None => prompt.to_string(),
        }
    }
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct UserActivity {
    /// Quota windows and score: what the journal keeps after each request.
    #[serde(flatten)]
    pub counters: Counters,
    pub history: VecDeque<HistoryItem>,
    /// The latest off-task prompts, oldest first.
    #[serde(default)]
    pub off_task: VecDeque<OffTaskPrompt>,
    pub last_warning: Option<String>,
    /// What the admin wrote when they last re-enabled the user or corrected
    /// one of their prompts; the user sees it on their page.
    #[serde(default)]
    pub admin_note: Option<String>,
    /// Changed since the state writer last persisted it.
    #[serde(skip)]
    dirty: bool,
    /// Reservations of calls still in flight, included in `counters` (so
    /// concurrent calls see each other) but never persisted: a call cut
    /// by `kill -9` must not hold its reservation after a restart.
    #[serde(skip)]
    pending: Pending,
}

#[derive(Debug, Clone, Copy, Default)]
struct Pending {
    requests: u64,
    tokens: u64,
}

/// The part of a user's activity the journal keeps after every request:
/// quota windows and the score (history is rebuilt by use).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Counters {
    minute: u64,
    requests_minute: u64,
    day: u64,
    requests_day: u64,
    tokens_day: u64,
    month: u64,
    tokens_month: u64,
    /// Requests this month: a pool's allowance (a group's, a plan's).
    #[serde(default)]
    requests_month: u64,
    pub score: f32,
    pub score_updated_at_ms: u64,
    first_request_ms: u64,
    total_requests: u64,
    /// Weeks (Monday to Sunday, UTC) since 1970; shown to users, not a limit.
    #[serde(default)]
    week: u64,
    #[serde(default)]
    requests_week: u64,
    #[serde(default)]
    tokens_week: u64,
}

impl UserActivity {
    /// A user's deviation memory as a shared store holds it (Redis), to
    /// read it the way this process reads its own.
    pub fn from_shared(
        score: f32,
        score_updated_at_ms: u64,
        first_request_ms: u64,
        total_requests: u64,
        history: VecDeque<HistoryItem>,
        off_task: VecDeque<OffTaskPrompt>,
    ) -> Self {
        Self {
            counters: Counters {
                score,
                score_updated_at_ms,
                first_request_ms,
                total_requests,
                ..Counters::default()
            },
            history,
            off_task,
            ..Self::default()
        }
    }

    fn roll(&mut self, at: &Moment) {
        let minute = at.now_ms / MINUTE_MS;
        let Windows {
            day, week, month, ..
        } = at.windows;
        if self.counters.minute != minute {
            self.counters.minute = minute;
            self.counters.requests_minute = 0;
        }
        if self.counters.day != day {
            self.counters.day = day;
            self.counters.requests_day = 0;
            self.counters.tokens_day = 0;
        }
        if self.counters.month != month {
            self.counters.month = month;
            self.counters.tokens_month = 0;
            self.counters.requests_month = 0;
        }
        if self.counters.week != week {
            self.counters.week = week;
            self.counters.requests_week = 0;
            self.counters.tokens_week = 0;
        }
    }

    /// Requests and tokens this week (Monday to Sunday, tenant's local time).
    pub fn this_week(&self) -> (u64, u64) {
        (self.counters.requests_week, self.counters.tokens_week)
    }

    pub fn usage(&self, at: &Moment) -> Usage {
        let secs_until = |boundary_ms: u64| boundary_ms.saturating_sub(at.now_ms).div_ceil(1000);
        Usage {
            requests_this_minute: self.counters.requests_minute,
            requests_today: self.counters.requests_day,
            tokens_today: self.counters.tokens_day,
            tokens_this_month: self.counters.tokens_month,
            minute_resets_in: secs_until((self.counters.minute + 1) * MINUTE_MS),
            day_resets_in: secs_until(at.windows.day_end_ms),
            month_resets_in: secs_until(at.windows.month_end_ms),
        }
    }

    /// What a pool (a group, a plan) has used in its windows.
    pub fn pool_usage(&self, at: &Moment) -> PoolUsage {
        let secs_until = |boundary_ms: u64| boundary_ms.saturating_sub(at.now_ms).div_ceil(1000);
        PoolUsage {
            requests_today: self.counters.requests_day,
            requests_this_month: self.counters.requests_month,
            tokens_today: self.counters.tokens_day,
            tokens_this_month: self.counters.tokens_month,
            day_resets_in: secs_until(at.windows.day_end_ms),
            month_resets_in: secs_until(at.windows.month_end_ms),
        }
    }

    pub fn stats(&self, now_ms: u64) -> UsageStats {
        let hour_ago = now_ms.saturating_sub(3_600_000);
        let ten_min_ago = now_ms.saturating_sub(600_000);
        let recent = self.history.iter().filter(|h| h.at_ms >= hour_ago).count() as u32;
        let unrelated = self
            .history
            .iter()
            .filter(|h| h.at_ms >= ten_min_ago && h.drift != Drift::OnTask)
            .count() as u32;
        let hours =
            (now_ms.saturating_sub(self.counters.first_request_ms) as f32 / 3_600_000.0).max(1.0);
        UsageStats {
            requests_last_hour: recent,
            baseline_requests_per_hour: self.counters.total_requests as f32 / hours,
            unrelated_last_ten_minutes: unrelated,
        }
    }

    /// Counts a request at its estimate before it is forwarded.
    pub fn reserve(&mut self, estimated_tokens: u64, now_ms: u64) {
        self.counters.requests_minute += 1;
        self.counters.requests_day += 1;
        self.counters.requests_week += 1;
        self.counters.requests_month += 1;
        self.counters.tokens_day += estimated_tokens;
        self.counters.tokens_week += estimated_tokens;
        self.counters.tokens_month += estimated_tokens;
        self.counters.total_requests += 1;
        self.pending.requests += 1;
        self.pending.tokens += estimated_tokens;
        if self.counters.first_request_ms == 0 {
            self.counters.first_request_ms = now_ms;
        }
    }

    /// The counters of settled calls only (what is persisted): without the
    /// reservations of calls in flight.
    pub fn settled_counters(&self) -> Counters {
        let mut settled = self.counters.clone();
        let Pending { requests, tokens } = self.pending;
        for field in [
            &mut settled.requests_minute,
            &mut settled.requests_day,
            &mut settled.requests_week,
            &mut settled.requests_month,
            &mut settled.total_requests,
        ] {
            *field = field.saturating_sub(requests);
        }
        for field in [
            &mut settled.tokens_day,
            &mut settled.tokens_week,
            &mut settled.tokens_month,
        ] {
            *field = field.saturating_sub(tokens);
        }
        settled
    }

    fn settle_pending(&mut self, estimated_tokens: u64) {
        self.pending.requests = self.pending.requests.saturating_sub(1);
        self.pending.tokens = self.pending.tokens.saturating_sub(estimated_tokens);
    }

    /// Folds in counters replayed from the journal. Concurrent calls may
    /// journal their snapshots out of order, and sled's copy may be newer
    /// than a leftover journal line; but settled counters only grow within
    /// a window, so the later window wins and, within one, the larger value.
    fn restore(&mut self, replayed: &Counters) {
        let (mine, theirs) = (&mut self.counters, replayed);
        fold_window(
            (&mut mine.minute, theirs.minute),
            &mut [(&mut mine.requests_minute, theirs.requests_minute)],
        );
        fold_window(
            (&mut mine.day, theirs.day),
            &mut [
                (&mut mine.requests_day, theirs.requests_day),
                (&mut mine.tokens_day, theirs.tokens_day),
            ],
        );
        fold_window(
            (&mut mine.month, theirs.month),
            &mut [
                (&mut mine.tokens_month, theirs.tokens_month),
                (&mut mine.requests_month, theirs.requests_month),
            ],
        );
        fold_window(
            (&mut mine.week, theirs.week),
            &mut [
                (&mut mine.requests_week, theirs.requests_week),
                (&mut mine.tokens_week, theirs.tokens_week),
            ],
        );
        if theirs.score_updated_at_ms > mine.score_updated_at_ms {
            mine.score = theirs.score;
            mine.score_updated_at_ms = theirs.score_updated_at_ms;
        }
        mine.total_requests = mine.total_requests.max(theirs.total_requests);
        if mine.first_request_ms == 0 {
            mine.first_request_ms = theirs.first_request_ms;
        }
    }

    /// Takes back a reservation of a call that was refused.
    pub fn unreserve(&mut self, estimated_tokens: u64) {
        self.settle_pending(estimated_tokens);
        self.counters.requests_minute = self.counters.requests_minute.saturating_sub(1);
        self.counters.requests_day = self.counters.requests_day.saturating_sub(1);
        self.counters.requests_week = self.counters.requests_week.saturating_sub(1);
        self.counters.requests_month = self.counters.requests_month.saturating_sub(1);
        self.counters.tokens_week = self.counters.tokens_week.saturating_sub(estimated_tokens);
        self.counters.tokens_day = self.counters.tokens_day.saturating_sub(estimated_tokens);
        self.counters.tokens_month = self.counters.tokens_month.saturating_sub(estimated_tokens);
        self.counters.total_requests = self.counters.total_requests.saturating_sub(1);
    }

    /// Replaces a request's estimate with the provider's real usage.
    pub fn reconcile(&mut self, estimated_tokens: u64, actual_tokens: u64) {
        self.settle_pending(estimated_tokens);
        let adjust = |v: &mut u64| *v = (*v + actual_tokens).saturating_sub(estimated_tokens);
        adjust(&mut self.counters.tokens_day);
        adjust(&mut self.counters.tokens_week);
        adjust(&mut self.counters.tokens_month);
    }

    pub fn remember(&mut self, item: HistoryItem) {
        if self.history.len() == HISTORY_LEN {
            self.history.pop_front();
        }
        self.history.push_back(item);
    }

    pub fn remember_off_task(&mut self, deviation: OffTaskPrompt) {
        if self.off_task.len() == OFF_TASK_KEPT {
            self.off_task.pop_front();
        }
        self.off_task.push_back(deviation);
    }

    /// Whether this off-task prompt (by [`OffTaskPrompt::hash`]) was already
    /// scored for `task_id` in the last hour.
    pub fn repeats(&self, task_id: &str, prompt_hash: u64, now_ms: u64) -> bool {
        self.off_task.iter().any(|p| {
            p.prompt_hash == prompt_hash
                && p.task_id == task_id
                && now_ms.saturating_sub(p.at_ms) < REPEAT_WINDOW_MS
        })
    }
}

/// One quota window's counts folded with replayed ones: the later window
/// wins; within the same window, the larger count.
fn fold_window((window, replayed_window): (&mut u64, u64), counts: &mut [(&mut u64, u64)]) {
    if replayed_window > *window {
        *window = replayed_window;
        for (count, replayed) in counts.iter_mut() {
            **count = *replayed;
        }
    } else if replayed_window == *window {
        for (count, replayed) in counts.iter_mut() {
            **count = (**count).max(*replayed);
        }
    }
}

#[derive(Default)]
pub(crate) struct Users {
    by_tenant: HashMap<String, HashMap<String, UserActivity>>,
    /// (tenant, user) of every activity changed since the last persist.
    dirty: Vec<(String, String)>,
}

impl Users {
    /// A user's (or a pool's) activity, rolled to `at` and marked changed.
    pub(crate) fn activity(&mut self, tenant: &str, user: &str, at: &Moment) -> &mut UserActivity {
        // Looked up before inserting: the request path allocates no key.
        if !self.by_tenant.contains_key(tenant) {
            self.by_tenant.insert(tenant.to_string(), HashMap::new());
        }
        let tenant_map = self.by_tenant.get_mut(tenant).expect("present");
        if !tenant_map.contains_key(user) {
            tenant_map.insert(user.to_string(), UserActivity::default());
        }
        let activity = tenant_map.get_mut(user).expect("present");
        activity.roll(at);
        if !activity.dirty {
            activity.dirty = true;
            self.dirty.push((tenant.to_string(), user.to_string()));
        }
        activity
    }
}

/// All users' activity, keyed by tenant then user. Changes are persisted in
/// batches by the state writer ([`Activity::take_dirty`]), not per request:
/// a user's record (with its history) is a few KiB, and rewriting it on every
/// request cost more than proxying the request.
pub struct Activity {
    users: Mutex<Users>,
}

impl Activity {
    /// Loads persisted counters from the `usage` tree.
    pub fn load(tree: &sled::Tree) -> anyhow::Result<Self> {
        let mut users = Users::default();
        for item in tree.iter() {
            let (key, value) = item?;
            let key = String::from_utf8_lossy(&key);
            let Some((tenant, user)) = key.split_once('\0') else {
                continue;
            };
            let activity: UserActivity = serde_json::from_slice(&value)?;
            users
                .by_tenant
                .entry(tenant.into())
                .or_default()
                .insert(user.into(), activity);
        }
        Ok(Self {
            users: Mutex::new(users),
        })
    }

    /// Every user's activity, held: what changes several at once (a user
    /// and their pools) does it under one lock.
    pub(crate) fn lock(&self) -> MutexGuard<'_, Users> {
        self.users.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Runs `f` on a user's activity with its windows rolled to `at`.
    pub fn with_user<R>(
        &self,
        tenant: &str,
        user: &str,
        at: &Moment,
        f: impl FnOnce(&mut UserActivity) -> R,
    ) -> R {
        f(self.lock().activity(tenant, user, at))
    }

    /// A pool's usage (a group's, a plan's: see `warden_domain::groups`),
    /// without changing anything.
    pub fn pool_usage(&self, tenant: &str, pool: &str, at: &Moment) -> PoolUsage {
        let guard = self.lock();
        let mut current = guard
            .by_tenant
            .get(tenant)
            .and_then(|t| t.get(pool))
            .cloned()
            .unwrap_or_default();
        current.roll(at);
        current.pool_usage(at)
    }

    /// A user's requests and tokens this week.
    pub fn week_of(&self, tenant: &str, user: &str, at: &Moment) -> (u64, u64) {
        let guard = self.lock();
        guard
            .by_tenant
            .get(tenant)
            .and_then(|t| t.get(user))
            .map_or((0, 0), |a| {
                let mut current = a.clone();
                current.roll(at);
                current.this_week()
            })
    }

    /// Folds in counters replayed from the journal (see `UserActivity::restore`).
    pub fn restore(&self, tenant: &str, user: &str, counters: &Counters) {
        let mut guard = self.lock();
        let users = &mut *guard;
        let activity = users
            .by_tenant
            .entry(tenant.to_string())
            .or_default()
            .entry(user.to_string())
            .or_default();
        activity.restore(counters);
        if !activity.dirty {
            activity.dirty = true;
            users.dirty.push((tenant.to_string(), user.to_string()));
        }
    }

    /// A user's usage, score and last warning, without changing anything.
    /// The user's latest off-task prompts (newest first) and the admin's
    /// last note: what the user's own page explains.
    pub fn notes(&self, tenant: &str, user: &str) -> (Vec<OffTaskPrompt>, Option<String>) {
        let guard = self.lock();
        match guard.by_tenant.get(tenant).and_then(|t| t.get(user)) {
            Some(a) => (
                a.off_task.iter().rev().cloned().collect(),
                a.admin_note.clone(),
            ),
            None => (Vec::new(), None),
        }
    }

    pub fn peek(&self, tenant: &str, user: &str, at: &Moment) -> (Usage, f32, Option<String>) {
        let guard = self.lock();
        match guard.by_tenant.get(tenant).and_then(|t| t.get(user)) {
            Some(a) => {
                let mut current = a.clone();
                current.roll(at);
                (
                    current.usage(at),
                    current.counters.score,
                    current.last_warning.clone(),
                )
            }
            None => {
                let mut fresh = UserActivity::default();
                fresh.roll(at);
                (fresh.usage(at), 0.0, None)
            }
        }
    }

    /// Serialised records of every user changed since the last call, keyed
    /// as in the `usage` tree.
    pub fn take_dirty(&self) -> Vec<(Vec<u8>, Vec<u8>)> {
        let mut guard = self.lock();
        let users = &mut *guard;
        let dirty = std::mem::take(&mut users.dirty);
        dirty
            .into_iter()
            .filter_map(|(tenant, user)| {
                let activity = users.by_tenant.get_mut(&tenant)?.get_mut(&user)?;
                activity.dirty = false;
                let persisted = UserActivity {
                    counters: activity.settled_counters(),
                    ..activity.clone()
                };
                let value = serde_json::to_vec(&persisted).ok()?;
                Some((super::compound_key(&[&tenant, &user]), value))
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY_MS: u64 = 86_400_000;

    fn utc(now_ms: u64) -> Moment {
        warden_domain::calendar::Calendar::utc().at(now_ms)
    }

    #[test]
    fn weeks_start_on_monday() {
        let mut a = UserActivity::default();
        let sunday = 20_520 * DAY_MS; // 2026-03-08, a Sunday
        a.roll(&utc(sunday));
        a.reserve(10, sunday);
        assert_eq!(a.this_week(), (1, 10));
        a.roll(&utc(sunday + DAY_MS)); // Monday: a new week
        assert_eq!(a.this_week(), (0, 0));
    }

    #[test]
    fn reconcile_replaces_the_estimate() {
        let mut a = UserActivity::default();
        let at = utc(1_000);
        a.roll(&at);
        a.reserve(500, 1_000);
        a.reconcile(500, 120);
        assert_eq!(a.usage(&at).tokens_today, 120);
        assert_eq!(a.usage(&at).requests_today, 1);
    }

    #[test]
    fn reservations_in_flight_are_counted_but_never_persisted() {
        let mut a = UserActivity::default();
        let at = utc(1_000);
        a.roll(&at);
        a.reserve(500, 1_000);
        a.reconcile(500, 120); // settled
        a.reserve(700, 1_000); // still in flight
        assert_eq!(a.usage(&at).tokens_today, 820, "quota decisions see it");
        let settled = a.settled_counters();
        assert_eq!((settled.tokens_day, settled.requests_day), (120, 1));
        a.unreserve(700);
        assert_eq!(a.settled_counters().tokens_day, a.usage(&at).tokens_today);
    }

    #[test]
    fn replayed_counters_out_of_order_keep_the_latest() {
        let at = utc(1_000);
        let mut a = UserActivity::default();
        a.roll(&at);
        let snapshot = |a: &mut UserActivity, tokens| {
            a.reserve(tokens, 1_000);
            a.reconcile(tokens, tokens);
            a.settled_counters()
        };
        let first = snapshot(&mut a, 10);
        let second = snapshot(&mut a, 20);
        let mut replayed = UserActivity::default();
        replayed.restore(&second);
        replayed.restore(&first); // journaled late
        assert_eq!(replayed.usage(&at).tokens_today, 30);
        assert_eq!(replayed.usage(&at).requests_today, 2);
        // A later day's counters replace the earlier day's.
        let mut tomorrow = second.clone();
        tomorrow.day += 1;
        tomorrow.tokens_day = 5;
        replayed.restore(&tomorrow);
        assert_eq!(replayed.counters.tokens_day, 5);
    }
}
