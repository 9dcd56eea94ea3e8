//! One call's bookkeeping, finished exactly once on every exit: its request
//! record and the tokens it holds against the user's quota.
//!
//! A call opens its ledger once it knows its tenant, user and task; the
//! quota phase reserves the call's estimate on it. Then exactly one of:
//! - [`Ledger::finish`] with the provider's usage (the answer was given);
//! - [`Ledger::refuse`] when the call ends without an answer from the
//!   provider (a refusal, an unreachable provider): nothing is charged;
//! - [`Ledger::fail`] when the provider answered but the client gets an
//!   error: charged what the provider reported;
//! - drop, when the handler's future is dropped (the client went away:
//!   status 499; a drain's grace ran out: 503) or a phase panicked (status
//!   500): the call is charged its estimate if the provider had it, nothing
//!   if not.
//!
//! Finishing replaces the reservation with real usage and journals the
//! record with the user's counters, taken under the same lock, before the
//! response is finished, so an answered request survives `kill -9` and the
//! counters always agree with the log (see state/journal.rs).

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Instant;

use crate::app::App;
use crate::calendar::Moment;
use crate::error::ApiError;
use crate::state::model::RequestRecord;
use crate::state::{AnswerBudget, CountersUnavailable, Payer, Reserved};
use crate::upstream::Usage;

/// Status logged for a call whose client left before it was answered
/// (nginx's "client closed request").
pub const CLIENT_CLOSED: u16 = 499;

/// Status logged for a call still in flight when a drain's grace ran out.
pub const SHUTDOWN_CUT: u16 = 503;

pub struct Ledger {
    app: Arc<App>,
    /// `None` once finished.
    record: Option<RequestRecord>,
    reservation: Reservation,
    /// The pools the user shares (groups, plan) the call counts in too.
    pools: Vec<String>,
    /// Counted on this replica alone: the shared counters were unreachable
    /// and the tenant's policy allows a grace (see `reserve`).
    counted_locally: bool,
    started: Instant,
    /// The call's in-flight slots, given back when the ledger is done.
    _admitted: crate::admission::Admitted,
}

/// What a call holds against its user's quota windows.
#[derive(Debug, Clone, Copy, Default)]
struct Reservation {
    prompt_tokens: u64,
    completion_tokens: u64,
    /// The call went to the provider: past this point an abandoned call
    /// still cost what the provider did.
    forwarded: bool,
    /// The provider was asked but its answer is withheld: its prompt counts.
    withheld: bool,
}

impl Reservation {
    fn tokens(&self) -> u64 {
        self.prompt_tokens + self.completion_tokens
    }
}

impl Ledger {
    pub fn open(
        app: &Arc<App>,
        record: RequestRecord,
        started: Instant,
        admitted: crate::admission::Admitted,
    ) -> Self {
        Self {
            app: app.clone(),
            record: Some(record),
            reservation: Reservation::default(),
            pools: Vec::new(),
            counted_locally: false,
            started,
            _admitted: admitted,
        }
    }

    pub fn app(&self) -> &Arc<App> {
        &self.app
    }

    /// When the call's total time (`request_timeout_secs`) runs out.
    pub fn deadline(&self) -> tokio::time::Instant {
        let total = std::time::Duration::from_secs(self.app.config.request_timeout_secs);
        tokio::time::Instant::from_std(self.started + total)
    }

    /// The record being written; a finished ledger is gone, so this always is.
    pub fn record(&mut self) -> &mut RequestRecord {
        self.record
            .as_mut()
            .expect("a ledger is open until finished")
    }

    fn payer(&self) -> Payer<'_> {
        let record = self.record.as_ref().expect("open");
        Payer {
            tenant: &record.tenant_id,
            user: &record.user_id,
            pools: &self.pools,
            request: &record.id,
            at_ms: record.at_ms,
        }
    }

    /// Counts the call in the user's windows and in `pools` (keys of
    /// `warden_domain::groups`), in one step with reading them: its
    /// prompt's tokens and what `answer` allows its answer from the usage
    /// before it. Concurrent calls each see the others' reservations.
    /// When the shared counters cannot be reached, a tenant whose policy
    /// grants an outage `grace` is counted on this replica alone for that
    /// long after the outage began; after it, or without one, the call is
    /// refused.
    pub async fn reserve(
        &mut self,
        at: &Moment,
        pools: Vec<String>,
        prompt_tokens: u64,
        answer: &AnswerBudget,
        grace: std::time::Duration,
    ) -> Result<Reserved, CountersUnavailable> {
        self.pools = pools;
        let reserving = self
            .app
            .stores
            .counters
            .reserve(self.payer(), at, prompt_tokens, answer);
        let reserved = match reserving.reserved().await {
            Ok(reserved) => reserved,
            Err(unavailable) => {
                let outage = self.app.shared_counters.as_ref().and_then(|c| c.outage());
                if grace.is_zero() || outage.is_none_or(|o| o > grace) {
                    self.pools.clear();
                    return Err(unavailable);
                }
                self.counted_locally = true;
                self.app
                    .activity
                    .reserve_now(self.payer(), at, prompt_tokens, answer)
            }
        };
        self.reservation = Reservation {
            prompt_tokens,
            completion_tokens: reserved.answer,
            ..Reservation::default()
        };
        Ok(reserved)
    }

    /// The tokens reserved for the answer.
    pub fn answer_tokens(&self) -> u64 {
        self.reservation.completion_tokens
    }

    /// Takes the call back out of the user's windows, request included:
    /// the quota refused it, so it must not count against the next one.
    pub fn unreserve(&mut self, at: &Moment) {
        let tokens = self.reservation.tokens();
        self.reservation = Reservation::default();
        self.counters().unreserve(self.payer(), at, tokens);
        self.pools.clear();
        self.record().quota_returned = true;
    }

    /// Where this call is counted: the stores' counters, or this replica's
    /// own during a shared-counter outage.
    fn counters(&self) -> &dyn crate::state::QuotaCounters {
        if self.counted_locally {
            &*self.app.activity
        } else {
            &*self.app.stores.counters
        }
    }

    /// Tokens held against the quota.
    pub fn reserved_tokens(&self) -> u64 {
        self.reservation.tokens()
    }

    /// What a streamed answer cut short is charged when the provider sent
    /// no usage: the prompt's estimate, and one token per event delivered
    /// (a chunk carries about one), at most the answer's reservation.
    pub fn delivered_estimate(&self, events: u64) -> Usage {
        Usage::new(
            self.reservation.prompt_tokens,
            events.min(self.reservation.completion_tokens),
        )
    }

    /// The call is about to go to the provider.
    pub fn forwarded(&mut self) {
        self.reservation.forwarded = true;
    }

    /// The answer was given: real usage replaces the reservation. `None`
    /// (the provider reported none) charges the estimate, in the counters
    /// and the log alike.
    pub fn finish(mut self, usage: Option<Usage>) {
        self.write(usage);
    }

    /// The provider was asked, but the stages judging the call beside it
    /// blocked the user: its answer is withheld, cut before its first byte.
    /// (A scoring stage failing closed charges nothing, as before the call
    /// went out: the tenant's plugin failed, not the user.) The prompt counts when [`Self::refuse`] finishes the
    /// call; the answer does not.
    pub fn withhold(&mut self) {
        self.reservation.withheld = self.reservation.forwarded;
    }

    /// The call ends with `error` and no answer from the provider: the
    /// reservation is given back, the request still counts (and a withheld
    /// answer's prompt).
    pub fn refuse(self, error: &ApiError) {
        let prompt = if self.reservation.withheld {
            self.reservation.prompt_tokens
        } else {
            0
        };
        self.fail(error, Some(Usage::new(prompt, 0)));
    }

    /// The provider answered but the client gets `error`: charged what the
    /// provider reported (`None`: the estimate).
    pub fn fail(mut self, error: &ApiError, usage: Option<Usage>) {
        let record = self.record();
        record.status = error.status().as_u16();
        record.error = Some(error.message.clone());
        self.write(usage);
    }

    fn write(&mut self, usage: Option<Usage>) {
        let Some(mut record) = self.record.take() else {
            return;
        };
        let reserved = self.reservation.tokens();
        let usage = usage.unwrap_or_else(|| {
            // Unknown usage: the estimate stands, and the log says so.
            let note = "the provider reported no usage: charged at the estimate";
            record.error = Some(match record.error.take() {
                Some(error) => format!("{error}; {note}"),
                None => note.into(),
            });
            Usage::new(
                self.reservation.prompt_tokens,
                self.reservation.completion_tokens,
            )
        });
        record.tokens_in = usage.prompt_tokens;
        record.tokens_out = usage.completion_tokens;
        record.tokens_cached = usage.cached_tokens;
        record.latency_ms = self.started.elapsed().as_millis() as u64;
        let actual = usage.prompt_tokens + usage.completion_tokens;
        let at = self.app.moment(&record.tenant_id);
        let (tenant, user) = (record.tenant_id.clone(), record.user_id.clone());
        let (request, at_ms) = (record.id.clone(), record.at_ms);
        let stores = &self.app.stores;
        // Journaled while the counters are held: see QuotaCounters::settle.
        let mut record = Some(record);
        let mut journal = |counters| {
            if let Some(record) = record.take() {
                stores.journal.record(record, Some(counters));
            }
        };
        let payer = Payer {
            tenant: &tenant,
            user: &user,
            pools: &self.pools,
            request: &request,
            at_ms,
        };
        let counters: &dyn crate::state::QuotaCounters = if self.counted_locally {
            &*self.app.activity
        } else {
            &*stores.counters
        };
        counters.settle(payer, &at, reserved, actual, &mut journal);
    }
}

impl Drop for Ledger {
    fn drop(&mut self) {
        let Some(record) = self.record.as_mut() else {
            return;
        };
        let forwarded = self.reservation.forwarded;
        let cut = self.app.grace_expired.load(Ordering::Relaxed);
        let (status, error) = match (std::thread::panicking(), forwarded) {
            (true, _) => (500, "internal error: the request handler panicked"),
            _ if cut => (
                SHUTDOWN_CUT,
                "cut at shutdown: the call did not finish within shutdown_grace_secs",
            ),
            (false, true) => (
                CLIENT_CLOSED,
                "the client closed the connection before the answer was complete",
            ),
            (false, false) => (
                CLIENT_CLOSED,
                "the client closed the connection before the call was forwarded",
            ),
        };
        record.status = status;
        record.error = Some(error.into());
        // Before forwarding nothing was spent; after, the provider may have
        // done all the work: charge the estimate.
        self.write((!forwarded).then(Usage::default));
    }
}
