//! Warden's domain: the records it keeps (tenants, users, tasks, tokens,
//! requests: [`model`]), the clock and the tenants' quota calendars, model
//! pricing, and the values below.
//!
//! Warden's own values for what the chain says of a call: the intent
//! stage's label and drift, the deviation stage's action, and a user's
//! usage in their quota windows. The request log, a user's history and the
//! console hold these, never the wasm bindings' types, which convert at the
//! runtime's edge (`warden_runtime::convert`). Stored as the same strings the log always
//! held (`"off_topic"`, `"on-task"`, `"block"`).

use std::fmt;

use serde::{Deserialize, Serialize};

pub mod branding;
pub mod calendar;
pub mod clock;
pub mod groups;
pub mod invitations;
pub mod model;
pub mod plans;
pub mod policies;
pub mod pricing;
pub mod providers;
pub mod webhooks;

/// What a prompt is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum IntentLabel {
    Code,
    Test,
    Doc,
    Analysis,
    /// Not work of the task; also what an unknown stored label reads as.
    #[serde(other)]
    OffTopic,
}

impl IntentLabel {
    pub const ALL: [Self; 5] = [
        Self::Code,
        Self::Test,
        Self::Doc,
        Self::Analysis,
        Self::OffTopic,
    ];

    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Code => "code",
            Self::Test => "test",
            Self::Doc => "doc",
            Self::Analysis => "analysis",
            Self::OffTopic => "off_topic",
        }
    }
}

/// How far a prompt strays from its task.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Drift {
    OnTask,
    Slight,
    /// Also what an unknown stored drift reads as.
    #[serde(other)]
    Major,
}

impl Drift {
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::OnTask => "on-task",
            Self::Slight => "slight",
            Self::Major => "major",
        }
    }
}

/// What the deviation stage decided for a user.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    None,
    Warn,
    Flag,
    Block,
}

impl Action {
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::None => "none",
            Self::Warn => "warn",
            Self::Flag => "flag",
            Self::Block => "block",
        }
    }

    /// The audit-log action of an automatic step, `None` for no step.
    pub const fn event_name(self) -> Option<&'static str> {
        match self {
            Self::None => None,
            Self::Warn => Some("user.warn"),
            Self::Flag => Some("user.flag"),
            Self::Block => Some("user.block"),
        }
    }
}

macro_rules! display_as_str {
    ($($t:ty),*) => {$(
        impl fmt::Display for $t {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }
    )*};
}
display_as_str!(IntentLabel, Drift, Action);

/// The intent stage's answer for one prompt.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Intent {
    pub label: IntentLabel,
    pub confidence: f32,
    pub drift: Drift,
}

/// What the deviation stage answered for one call.
#[derive(Debug, Clone, PartialEq)]
pub struct DeviationOutcome {
    /// Added to the score (negative for decay); the host keeps it >= 0.
    pub score_delta: f32,
    pub action: Action,
    /// Why, in words an admin and the user can read.
    pub reason: String,
}

/// A message of a call as the tenant's guardrails see (and may rewrite) it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChatMessage {
    pub role: String,
    pub content: String,
}

/// A user's usage in their quota windows, requests in flight included.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Usage {
    pub requests_this_minute: u64,
    pub requests_today: u64,
    pub tokens_today: u64,
    pub tokens_this_month: u64,
    /// Seconds until each window resets.
    pub minute_resets_in: u64,
    pub day_resets_in: u64,
    pub month_resets_in: u64,
}

/// A user's recent request pattern, for the deviation stage.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct UsageStats {
    pub requests_last_hour: u32,
    /// The user's own average requests per hour over their history.
    pub baseline_requests_per_hour: f32,
    /// Off-task (slight or major) requests in the last ten minutes.
    pub unrelated_last_ten_minutes: u32,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stored_strings_are_the_logs_and_unknown_ones_read_safely() {
        for label in IntentLabel::ALL {
            let json = serde_json::to_string(&label).unwrap();
            assert_eq!(json, format!("\"{}\"", label.as_str()));
            assert_eq!(serde_json::from_str::<IntentLabel>(&json).unwrap(), label);
        }
        let drift: Drift = serde_json::from_str("\"on-task\"").unwrap();
        assert_eq!(drift, Drift::OnTask);
        assert_eq!(
            serde_json::from_str::<Drift>("\"sideways\"").unwrap(),
            Drift::Major
        );
        assert_eq!(
            serde_json::from_str::<IntentLabel>("\"poetry\"").unwrap(),
            IntentLabel::OffTopic
        );
        assert_eq!(serde_json::to_string(&Action::Block).unwrap(), "\"block\"");
        assert_eq!(Action::None.event_name(), None);
    }
}
