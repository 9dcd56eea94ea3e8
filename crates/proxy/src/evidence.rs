//! What Warden writes down when the deviation stage acts on its own: one
//! audit event (`user.warn`, `user.flag`, `user.block`, actor `warden`) per
//! action, carrying the evidence an admin reviews: the prompts that strayed,
//! their labels, the score before and after, and the usage signals.

use serde_json::json;

use crate::app::App;
use crate::domain::{DeviationOutcome, Intent, UsageStats};
use crate::state::OffTaskPrompt;

/// The score and signals the deviation stage saw, and what it answered.
pub struct Scoring<'a> {
    pub request_id: &'a str,
    pub task_id: &'a str,
    pub intent: Intent,
    pub outcome: &'a DeviationOutcome,
    pub score_before: f32,
    pub score_after: f32,
    pub stats: &'a UsageStats,
    /// The user's latest off-task prompts, oldest first (this call's included).
    pub prompts: Vec<OffTaskPrompt>,
}

/// Appends the event of an automatic action. The event is inserted without
/// waiting for a disk flush (the state writer flushes every second): the
/// caller's request must not wait on fsync for a warning.
pub fn record(app: &App, tenant: &str, user: &str, scoring: Scoring<'_>) {
    let Some(action) = scoring.outcome.action.event_name() else {
        return;
    };
    let details = json!({
        "request_id": scoring.request_id,
        "task_id": scoring.task_id,
        "intent": {
            "label": scoring.intent.label,
            "drift": scoring.intent.drift,
            "confidence": scoring.intent.confidence,
        },
        "score_before": round2(scoring.score_before),
        "score": round2(scoring.score_after),
        "score_delta": round2(scoring.outcome.score_delta),
        "signals": {
            "requests_last_hour": scoring.stats.requests_last_hour,
            "baseline_requests_per_hour": round2(scoring.stats.baseline_requests_per_hour),
            "unrelated_last_ten_minutes": scoring.stats.unrelated_last_ten_minutes,
        },
        "prompts": scoring.prompts,
    });
    let event = app.event(
        tenant,
        "warden".into(),
        action,
        user,
        Some(scoring.outcome.reason.clone()),
        details,
    );
    if let Err(e) = app.stores.audit.insert_event(&event) {
        tracing::error!(error = %e, action, "cannot record an automatic action");
    }
}

fn round2(v: f32) -> f64 {
    (f64::from(v) * 100.0).round() / 100.0
}
