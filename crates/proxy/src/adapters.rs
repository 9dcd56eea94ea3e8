//! The stage adapters' helpers for host types the runtime does not know:
//! a token's claims and a user's history, as the stages see them. Domain
//! values convert with `.into()` (see `warden_runtime::convert`).

use crate::runtime::bindings::types;
use crate::state::UserActivity;
use crate::token::Claims;

pub fn claims(c: &Claims) -> types::TokenClaims {
    types::TokenClaims {
        token_id: c.jti.clone(),
        issued_at: c.iat,
        expires_at: c.exp,
        tasks: c.tasks.clone(),
        endpoints: c.endpoints.clone(),
        models: c.models.clone(),
    }
}

/// A user's recent history as the deviation stage sees it, relative to
/// `current_task`.
pub fn history(activity: &UserActivity, current_task: &str) -> Vec<types::HistoryEntry> {
    activity
        .history
        .iter()
        .map(|h| types::HistoryEntry {
            at_ms: h.at_ms,
            same_task: h.task_id == current_task,
            label: h.label.into(),
            drift: h.drift.into(),
        })
        .collect()
}
