//! Plans and subscriptions: what a tenant pays for and whether it may call.
//!
//! The catalogue is the server's (config `[[plans]]`, the seeds' Basic, Pro
//! and Enterprise by default). A tenant with a subscription is held to its
//! plan: its user limit when users are added, and its status on every
//! call. A tenant without one (the operator's own, or one made before
//! plans) is not limited by any plan.

use serde::{Deserialize, Serialize};

const DAY_MS: u64 = 24 * 3600 * 1000;
/// A trial's last days are announced on every call.
const TRIAL_NOTICE_MS: u64 = 3 * DAY_MS;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Plan {
    pub id: String,
    pub name: String,
    /// List price, for the console and e-mails; billing is the payment
    /// provider's.
    #[serde(default)]
    pub price_usd_month: u32,
    /// Users (of any role) the tenant may have; `None`: unlimited.
    #[serde(default)]
    pub max_users: Option<u32>,
    /// A new subscription starts as a trial of this many days (0: none).
    #[serde(default)]
    pub trial_days: u32,
    /// Requests per calendar month for the whole tenant; `None`: unlimited.
    #[serde(default)]
    pub requests_per_month: Option<u64>,
    /// Tokens (in + out) per calendar month for the whole tenant.
    #[serde(default)]
    pub tokens_per_month: Option<u64>,
    /// What the plan includes.
    #[serde(default)]
    pub features: Vec<Feature>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Feature {
    /// Upload guardrail plugins and set the policy.
    OwnPlugins,
    /// The answering model labels each prompt too.
    EmbeddedClassification,
    Branding,
    Webhooks,
    /// Own LLM providers and keys.
    OwnProviders,
}

impl Plan {
    pub fn has(&self, feature: Feature) -> bool {
        self.features.contains(&feature)
    }
}

impl Feature {
    /// What the feature lets a tenant do, for refusals.
    pub fn describe(self) -> &'static str {
        match self {
            Self::OwnPlugins => "uploading its own guardrail plugins",
            Self::EmbeddedClassification => "embedded intent classification",
            Self::Branding => "branding",
            Self::Webhooks => "webhooks",
            Self::OwnProviders => "its own LLM providers",
        }
    }
}

/// The seeds' plans: Basic $29 (5 users, 14-day trial), Pro $99 (20),
/// Enterprise $299 (100).
pub fn default_catalogue() -> Vec<Plan> {
    use Feature::*;
    let plan = |id: &str, name: &str, price, users, trial, requests, features: &[Feature]| Plan {
        id: id.into(),
        name: name.into(),
        price_usd_month: price,
        max_users: Some(users),
        trial_days: trial,
        requests_per_month: requests,
        tokens_per_month: None,
        features: features.to_vec(),
    };
    vec![
        plan("basic", "Basic", 29, 5, 14, Some(100_000), &[OwnProviders]),
        plan(
            "pro",
            "Pro",
            99,
            20,
            0,
            Some(1_000_000),
            &[OwnProviders, OwnPlugins, EmbeddedClassification, Webhooks],
        ),
        plan(
            "enterprise",
            "Enterprise",
            299,
            100,
            0,
            None,
            &[
                OwnProviders,
                OwnPlugins,
                EmbeddedClassification,
                Webhooks,
                Branding,
            ],
        ),
    ]
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SubscriptionStatus {
    Trialing,
    Active,
    /// A payment failed: calls go on (with a warning) while the provider
    /// retries.
    PastDue,
    Suspended,
    Cancelled,
}

impl SubscriptionStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Trialing => "trialing",
            Self::Active => "active",
            Self::PastDue => "past_due",
            Self::Suspended => "suspended",
            Self::Cancelled => "cancelled",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        [
            Self::Trialing,
            Self::Active,
            Self::PastDue,
            Self::Suspended,
            Self::Cancelled,
        ]
        .into_iter()
        .find(|v| v.as_str() == s)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Subscription {
    pub plan: String,
    pub status: SubscriptionStatus,
    /// End of the trial (unix ms), while trialing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trial_ends_at: Option<u64>,
    /// End of the paid period, as the payment provider last said.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub period_ends_at: Option<u64>,
    pub updated_at: u64,
    /// The trial's end was announced (audit log, webhooks) once.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub trial_ending_announced: bool,
}

/// Why a subscription refuses calls, and what to say.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lapse {
    pub kind: LapseKind,
    pub message: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LapseKind {
    /// The trial is over and nothing is paid: 402.
    TrialEnded,
    /// Cancelled: 402.
    Cancelled,
    /// Stopped by the operator or the payment provider: 403.
    Suspended,
}

impl Subscription {
    /// A new subscription to `plan`: a trial when the plan has one.
    pub fn start(plan: &Plan, now_ms: u64) -> Self {
        let trial = plan.trial_days > 0;
        Self {
            plan: plan.id.clone(),
            status: if trial {
                SubscriptionStatus::Trialing
            } else {
                SubscriptionStatus::Active
            },
            trial_ends_at: trial.then(|| now_ms + u64::from(plan.trial_days) * DAY_MS),
            period_ends_at: None,
            updated_at: now_ms,
            trial_ending_announced: false,
        }
    }

    /// Whether the trial ends within three days and nobody was told yet.
    pub fn trial_ending_due(&self, now_ms: u64) -> bool {
        self.status == SubscriptionStatus::Trialing
            && !self.trial_ending_announced
            && self
                .trial_ends_at
                .is_some_and(|end| now_ms < end && end - now_ms <= TRIAL_NOTICE_MS)
    }

    /// Whether calls are refused now, and how to say why.
    /// What a caller is told on every call that still goes ahead: a failed
    /// payment being retried, or a trial ending within three days.
    pub fn notice(&self, plan_name: &str, now_ms: u64) -> Option<String> {
        match (self.status, self.trial_ends_at) {
            (SubscriptionStatus::PastDue, _) => Some(format!(
                "a payment for the {plan_name} plan failed; calls go on while it is retried, \
                 and an admin of the tenant should update the payment details"
            )),
            (SubscriptionStatus::Trialing, Some(end))
                if now_ms < end && end - now_ms <= TRIAL_NOTICE_MS =>
            {
                let days = (end - now_ms).div_ceil(DAY_MS);
                Some(format!(
                    "the free trial of the {plan_name} plan ends in {days} day(s)"
                ))
            }
            _ => None,
        }
    }

    pub fn lapse(&self, plan_name: &str, now_ms: u64) -> Option<Lapse> {
        let what_to_do = "an admin of the tenant renews the subscription (its billing page, or the payment provider)";
        match self.status {
            SubscriptionStatus::Trialing if self.trial_ends_at.is_some_and(|end| now_ms >= end) => {
                Some(Lapse {
                    kind: LapseKind::TrialEnded,
                    message: format!(
                        "the free trial of the {plan_name} plan has ended; {what_to_do} to go on"
                    ),
                })
            }
            SubscriptionStatus::Cancelled => Some(Lapse {
                kind: LapseKind::Cancelled,
                message: format!("the {plan_name} subscription is cancelled; {what_to_do}"),
            }),
            SubscriptionStatus::Suspended => Some(Lapse {
                kind: LapseKind::Suspended,
                message: format!(
                    "the {plan_name} subscription is suspended; {what_to_do}, or contact the service's operator"
                ),
            }),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failed_payment_and_a_trials_last_days_are_announced() {
        let basic = &default_catalogue()[0];
        let mut sub = Subscription::start(basic, 0);
        assert_eq!(sub.notice("Basic", 0), None, "14 days left: nothing yet");
        let notice = sub.notice("Basic", 12 * DAY_MS).unwrap();
        assert!(notice.contains("ends in 2 day(s)"), "{notice}");
        sub.status = SubscriptionStatus::PastDue;
        assert!(sub.notice("Basic", 0).unwrap().contains("payment"));
        sub.status = SubscriptionStatus::Active;
        assert_eq!(sub.notice("Basic", 13 * DAY_MS), None);
    }

    #[test]
    fn a_trial_lapses_at_its_end_and_an_active_plan_does_not() {
        let basic = &default_catalogue()[0];
        let sub = Subscription::start(basic, 0);
        assert_eq!(sub.status, SubscriptionStatus::Trialing);
        assert_eq!(sub.lapse("Basic", 14 * DAY_MS - 1), None);
        let lapse = sub.lapse("Basic", 14 * DAY_MS).unwrap();
        assert_eq!(lapse.kind, LapseKind::TrialEnded);
        assert!(
            lapse.message.contains("trial of the Basic plan"),
            "{}",
            lapse.message
        );
        let active = Subscription {
            status: SubscriptionStatus::Active,
            ..sub.clone()
        };
        assert_eq!(active.lapse("Basic", 100 * DAY_MS), None);
        let suspended = Subscription {
            status: SubscriptionStatus::Suspended,
            ..sub
        };
        assert_eq!(
            suspended.lapse("Basic", 0).unwrap().kind,
            LapseKind::Suspended
        );
    }
}
