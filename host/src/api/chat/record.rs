//! The end of a request's bookkeeping.

use std::time::Instant;

use crate::app::App;
use crate::state::model::RequestRecord;
use crate::upstream::Usage;

/// Ends a request's bookkeeping: replaces the reservation with real usage
/// (the estimate stays when the provider reported none), and journals the
/// record with the user's counters, taken under the same lock, before the
/// response is finished, so an answered request survives `kill -9`
/// (see state/journal.rs).
pub(super) fn complete(
    app: &App,
    mut record: RequestRecord,
    reserved: u64,
    usage: Option<Usage>,
    started: Instant,
) {
    let actual = usage.map_or(reserved, |u| u.prompt_tokens + u.completion_tokens);
    if let Some(u) = usage {
        record.tokens_in = u.prompt_tokens;
        record.tokens_out = u.completion_tokens;
    }
    record.latency_ms = started.elapsed().as_millis() as u64;
    let counters = app.activity.with_user(
        &record.tenant_id,
        &record.user_id,
        &app.moment(&record.tenant_id),
        |a| {
            a.reconcile(reserved, actual);
            a.counters()
        },
    );
    app.writer.record(record, Some(counters));
}
