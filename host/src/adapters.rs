//! The runtime's edge: Warden's domain values to and from the WIT types the
//! stages speak. The only place, with the stage calls in `pipeline.rs` and
//! `guardrails.rs`, where both meet.

use crate::domain::{Action, DeviationOutcome, Drift, Intent, IntentLabel, Usage, UsageStats};
use crate::runtime::bindings::deviation;
use crate::runtime::bindings::types;
use crate::state::model::{Role, Task};
use crate::state::UserActivity;
use crate::token::Claims;

impl From<types::IntentLabel> for IntentLabel {
    fn from(label: types::IntentLabel) -> Self {
        match label {
            types::IntentLabel::Code => Self::Code,
            types::IntentLabel::Test => Self::Test,
            types::IntentLabel::Doc => Self::Doc,
            types::IntentLabel::Analysis => Self::Analysis,
            types::IntentLabel::OffTopic => Self::OffTopic,
        }
    }
}

impl From<IntentLabel> for types::IntentLabel {
    fn from(label: IntentLabel) -> Self {
        match label {
            IntentLabel::Code => Self::Code,
            IntentLabel::Test => Self::Test,
            IntentLabel::Doc => Self::Doc,
            IntentLabel::Analysis => Self::Analysis,
            IntentLabel::OffTopic => Self::OffTopic,
        }
    }
}

impl From<types::Drift> for Drift {
    fn from(drift: types::Drift) -> Self {
        match drift {
            types::Drift::OnTask => Self::OnTask,
            types::Drift::Slight => Self::Slight,
            types::Drift::Major => Self::Major,
        }
    }
}

impl From<Drift> for types::Drift {
    fn from(drift: Drift) -> Self {
        match drift {
            Drift::OnTask => Self::OnTask,
            Drift::Slight => Self::Slight,
            Drift::Major => Self::Major,
        }
    }
}

impl From<types::Action> for Action {
    fn from(action: types::Action) -> Self {
        match action {
            types::Action::None => Self::None,
            types::Action::Warn => Self::Warn,
            types::Action::Flag => Self::Flag,
            types::Action::Block => Self::Block,
        }
    }
}

impl From<types::Intent> for Intent {
    fn from(intent: types::Intent) -> Self {
        Self {
            label: intent.label.into(),
            confidence: intent.confidence,
            drift: intent.drift.into(),
        }
    }
}

impl From<Intent> for types::Intent {
    fn from(intent: Intent) -> Self {
        Self {
            label: intent.label.into(),
            confidence: intent.confidence,
            drift: intent.drift.into(),
        }
    }
}

impl From<deviation::DeviationOutcome> for DeviationOutcome {
    fn from(o: deviation::DeviationOutcome) -> Self {
        Self {
            score_delta: o.score_delta,
            action: o.action.into(),
            reason: o.reason,
        }
    }
}

impl From<Usage> for types::Usage {
    fn from(u: Usage) -> Self {
        Self {
            requests_this_minute: u.requests_this_minute,
            requests_today: u.requests_today,
            tokens_today: u.tokens_today,
            tokens_this_month: u.tokens_this_month,
            minute_resets_in: u.minute_resets_in,
            day_resets_in: u.day_resets_in,
            month_resets_in: u.month_resets_in,
        }
    }
}

impl From<UsageStats> for types::UsageStats {
    fn from(s: UsageStats) -> Self {
        Self {
            requests_last_hour: s.requests_last_hour,
            baseline_requests_per_hour: s.baseline_requests_per_hour,
            unrelated_last_ten_minutes: s.unrelated_last_ten_minutes,
        }
    }
}

pub fn role(role: Role) -> types::Role {
    match role {
        Role::SuperAdmin => types::Role::SuperAdmin,
        Role::Admin => types::Role::Admin,
        Role::User => types::Role::User,
    }
}

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

pub fn task(t: &Task) -> types::Task {
    types::Task {
        id: t.id.clone(),
        title: t.title.clone(),
        description: t.description.clone(),
        keywords: t.keywords.clone(),
        endpoints: t.endpoints.clone(),
        models: t.models.clone(),
        active: t.active,
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
