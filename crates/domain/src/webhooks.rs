//! Tenants' webhooks: URLs told about what happens in their organisation
//! (users warned, flagged, blocked, re-enabled; plugins rejected; policy
//! and subscription changes; a trial ending; quotas at 80 % and 100 %),
//! each delivery signed, retried and logged.

use serde::{Deserialize, Serialize};

/// The events a webhook may ask for, and the audit actions they come from.
pub const EVENTS: &[(&str, &[&str])] = &[
    ("user.warned", &["user.warn"]),
    ("user.flagged", &["user.flag"]),
    ("user.blocked", &["user.block"]),
    ("user.enabled", &["user.enable"]),
    ("plugin.rejected", &["plugin.rejected", "chain.rejected"]),
    (
        "policy.changed",
        &["policy.put", "policy.rollback", "policy.reset"],
    ),
    (
        "subscription.changed",
        &["subscription.change", "subscription.billing"],
    ),
    ("subscription.trial_ending", &["subscription.trial_ending"]),
    ("quota.threshold", &["quota.threshold"]),
];

/// The webhook event an audit action is, if any.
pub fn event_of(action: &str) -> Option<&'static str> {
    EVENTS
        .iter()
        .find(|(_, actions)| actions.contains(&action))
        .map(|(event, _)| *event)
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Webhook {
    pub tenant_id: String,
    pub id: String,
    pub url: String,
    /// Events it receives; empty: all of them.
    #[serde(default)]
    pub events: Vec<String>,
    #[serde(default)]
    pub description: String,
    /// Signs each delivery; shown once, when the webhook is made.
    pub secret: String,
    pub created_at: u64,
}

impl Webhook {
    pub fn wants(&self, event: &str) -> bool {
        self.events.is_empty() || self.events.iter().any(|e| e == event)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeliveryStatus {
    Pending,
    Delivered,
    /// Every attempt failed.
    Failed,
}

/// One event sent (or being sent) to one webhook.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Delivery {
    pub tenant_id: String,
    pub id: String,
    pub webhook_id: String,
    pub event: String,
    /// The body, exactly as signed and sent.
    pub body: String,
    pub created_at: u64,
    pub status: DeliveryStatus,
    pub attempts: u32,
    /// The receiver's last HTTP status, if it answered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_status: Option<u16>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
    /// When the next attempt is due (unix ms), while pending.
    pub next_attempt_at: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn audit_actions_map_to_webhook_events() {
        assert_eq!(event_of("user.block"), Some("user.blocked"));
        assert_eq!(event_of("chain.rejected"), Some("plugin.rejected"));
        assert_eq!(event_of("token.issue"), None);
    }
}
