//! Groups (departments, teams) of a tenant's users, and the allowances
//! their members share.
//!
//! A user may belong to several groups. A group's limits are one pool for
//! all its members: a call counts against the caller's own limits, each of
//! their groups' and the tenant plan's, and is refused when any of them is
//! used up. A manager manages the users of the groups they belong to.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Group {
    pub tenant_id: String,
    pub id: String,
    pub name: String,
    #[serde(default, skip_serializing_if = "PoolLimits::is_unlimited")]
    pub limits: PoolLimits,
    pub created_at: u64,
}

/// Limits of a pool shared by several users (a group, a tenant's plan);
/// `None` is unlimited. Days and months are the tenant's local calendar.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PoolLimits {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requests_per_day: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requests_per_month: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tokens_per_day: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tokens_per_month: Option<u64>,
}

impl PoolLimits {
    pub fn is_unlimited(&self) -> bool {
        *self == Self::default()
    }
}

/// A pool's key among the users' counters. User ids cannot hold ':' (see
/// provision's id rule), so pools never meet a real user.
pub fn group_pool(group_id: &str) -> String {
    format!("group:{group_id}")
}

/// The key of the tenant-wide pool its plan's monthly allowances count in.
pub const PLAN_POOL: &str = "plan:";

/// What a pool has used in its current windows.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct PoolUsage {
    pub requests_today: u64,
    pub requests_this_month: u64,
    pub tokens_today: u64,
    pub tokens_this_month: u64,
    /// Seconds until the day's and the month's windows reset.
    pub day_resets_in: u64,
    pub month_resets_in: u64,
}

/// A pool's limit a call would pass: which one, and when it frees up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Exhausted {
    /// e.g. "3000 requests a day".
    pub limit: String,
    pub retry_after_secs: u64,
}

impl PoolLimits {
    /// The first limit that `used` (this call's reservation included)
    /// exceeds, if any.
    pub fn exceeded(&self, used: &PoolUsage) -> Option<Exhausted> {
        let checks = [
            (
                self.requests_per_day,
                used.requests_today,
                "requests a day",
                used.day_resets_in,
            ),
            (
                self.tokens_per_day,
                used.tokens_today,
                "tokens a day",
                used.day_resets_in,
            ),
            (
                self.requests_per_month,
                used.requests_this_month,
                "requests a month",
                used.month_resets_in,
            ),
            (
                self.tokens_per_month,
                used.tokens_this_month,
                "tokens a month",
                used.month_resets_in,
            ),
        ];
        checks.into_iter().find_map(|(limit, used, what, resets)| {
            let limit = limit?;
            (used > limit).then(|| Exhausted {
                limit: format!("{limit} {what}"),
                retry_after_secs: resets.max(1),
            })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_exceeded_limit_names_itself_and_its_reset() {
        let limits = PoolLimits {
            requests_per_day: Some(10),
            tokens_per_month: Some(1000),
            ..Default::default()
        };
        let mut used = PoolUsage {
            requests_today: 10,
            tokens_this_month: 900,
            day_resets_in: 60,
            month_resets_in: 3600,
            ..Default::default()
        };
        assert_eq!(limits.exceeded(&used), None, "at the limit is within it");
        used.tokens_this_month = 1001;
        let over = limits.exceeded(&used).expect("over the month's tokens");
        assert_eq!(over.limit, "1000 tokens a month");
        assert_eq!(over.retry_after_secs, 3600);
        assert!(PoolLimits::default().exceeded(&used).is_none());
    }
}
