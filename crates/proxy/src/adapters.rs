//! The stage adapters' helpers for host types the runtime does not know:
//! a token's claims and a user's history, as the stages see them. Domain
//! values convert with `.into()` (see `warden_runtime::convert`).

use crate::runtime::bindings::types;
use crate::state::PastCall;
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

/// A user's recent calls as the deviation stage sees them.
pub fn history(calls: &[PastCall]) -> Vec<types::HistoryEntry> {
    calls
        .iter()
        .map(|c| types::HistoryEntry {
            at_ms: c.at_ms,
            same_task: c.same_task,
            label: c.label.into(),
            drift: c.drift.into(),
        })
        .collect()
}
