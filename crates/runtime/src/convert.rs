//! Warden's domain values to and from the WIT types the stages speak: the
//! runtime's edge. The host converts with `.into()`; nothing above the
//! stage calls handles a WIT type.

use warden_domain::model::{Role, Task};
use warden_domain::{
    Action, ChatMessage, DeviationOutcome, Drift, Intent, IntentLabel, Usage, UsageStats,
};

use crate::bindings::{deviation, guardrail, types};

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

impl From<ChatMessage> for guardrail::Message {
    fn from(m: ChatMessage) -> Self {
        Self {
            role: m.role,
            content: m.content,
        }
    }
}

impl From<guardrail::Message> for ChatMessage {
    fn from(m: guardrail::Message) -> Self {
        Self {
            role: m.role,
            content: m.content,
        }
    }
}

impl From<Role> for types::Role {
    fn from(role: Role) -> Self {
        match role {
            Role::SuperAdmin => Self::SuperAdmin,
            Role::Admin => Self::Admin,
            // A call to the model carries no admin power: the WIT's roles
            // stay the three plugins were built against.
            Role::Manager | Role::Viewer | Role::User => Self::User,
        }
    }
}

impl From<&Task> for types::Task {
    fn from(t: &Task) -> Self {
        Self {
            id: t.id.clone(),
            title: t.title.clone(),
            description: t.description.clone(),
            keywords: t.keywords.clone(),
            endpoints: t.endpoints.clone(),
            models: t.models.clone(),
            active: t.active,
        }
    }
}
