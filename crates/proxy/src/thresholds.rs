//! Quotas running out, announced: when a call takes one of its user's own
//! daily or monthly limits, or a shared pool's (a group's, the plan's),
//! across 80 % or 100 %, one audit event `quota.threshold` (actor `warden`)
//! says which, and the tenant's webhooks asking for `quota.threshold` hear
//! of it. A crossing is found from the usage before and after the call's
//! reservation, so each is announced once per window, by the call that
//! crossed it (tokens at their estimate: the reservation is what the quota
//! decided on). Cost per call: a few comparisons; an event only on a crossing.

use serde_json::json;

use crate::app::App;
use crate::domain::groups::PoolUsage;
use crate::domain::Usage;
use crate::state::model::{Limits, PoolLimits};

/// The percentages of a limit announced.
const MARKS: [u64; 2] = [80, 100];

/// One limit and the usage it counts, before and after a call.
struct Measure {
    what: &'static str,
    limit: Option<u64>,
    before: u64,
    after: u64,
}

/// The highest mark the call crossed, if any.
fn crossed(m: &Measure) -> Option<u64> {
    let limit = m.limit.filter(|l| *l > 0)?;
    MARKS.iter().rev().copied().find(|percent| {
        let mark = (limit * percent).div_ceil(100);
        m.before < mark && m.after >= mark
    })
}

/// Whose quota it is: a user, a group or the tenant's plan, by id and
/// the name messages use (borrowed: nothing is written unless needed).
#[derive(Debug, Clone, Copy)]
pub enum Owner<'a> {
    User { id: &'a str },
    Group { id: &'a str, name: &'a str },
    Plan { id: &'a str, name: &'a str },
}

impl Owner<'_> {
    fn scope(&self) -> &'static str {
        match self {
            Self::User { .. } => "user",
            Self::Group { .. } => "group",
            Self::Plan { .. } => "plan",
        }
    }

    fn id(&self) -> &str {
        match self {
            Self::User { id } | Self::Group { id, .. } | Self::Plan { id, .. } => id,
        }
    }

    /// How a message names it: "user 'ali'", "group 'Support'", "your
    /// organisation's Basic plan".
    pub fn label(&self) -> String {
        match self {
            Self::User { id } => format!("user '{id}'"),
            Self::Group { name, .. } => format!("group '{name}'"),
            Self::Plan { name, .. } => format!("your organisation's {name} plan"),
        }
    }
}

fn announce(app: &App, tenant: &str, owner: &Owner<'_>, measures: &[Measure]) {
    for m in measures {
        let Some(percent) = crossed(m) else { continue };
        let limit = m.limit.unwrap_or_default();
        let reason = format!(
            "{} has used {percent}% of its {limit} {}",
            owner.label(),
            m.what
        );
        let details = json!({
            "scope": owner.scope(),
            "id": owner.id(),
            "limit": limit,
            "per": m.what,
            "used": m.after,
            "percent": percent,
        });
        let event = app.event(
            tenant,
            "warden".into(),
            "quota.threshold",
            owner.id(),
            Some(reason),
            details,
        );
        if let Err(e) = app.stores.audit.insert_event(&event) {
            tracing::error!(error = %e, "cannot record a quota threshold");
        }
    }
}

/// A user's own limits, from their usage before and after the call.
pub fn user(
    app: &App,
    tenant: &str,
    owner: &Owner<'_>,
    limits: &Limits,
    before: &Usage,
    after: &Usage,
) {
    let measures = [
        Measure {
            what: "requests a day",
            limit: limits.requests_per_day,
            before: before.requests_today,
            after: after.requests_today,
        },
        Measure {
            what: "tokens a day",
            limit: limits.tokens_per_day,
            before: before.tokens_today,
            after: after.tokens_today,
        },
        Measure {
            what: "tokens a month",
            limit: limits.tokens_per_month,
            before: before.tokens_this_month,
            after: after.tokens_this_month,
        },
    ];
    announce(app, tenant, owner, &measures);
}

/// A shared pool's limits, from its usage after the call, which counted
/// one request and `tokens` in it.
pub fn pool(
    app: &App,
    tenant: &str,
    owner: &Owner<'_>,
    limits: &PoolLimits,
    after: &PoolUsage,
    tokens: u64,
) {
    let measure = |what, limit, after: u64, this_call: u64| Measure {
        what,
        limit,
        before: after.saturating_sub(this_call),
        after,
    };
    let measures = [
        measure(
            "requests a day",
            limits.requests_per_day,
            after.requests_today,
            1,
        ),
        measure(
            "requests a month",
            limits.requests_per_month,
            after.requests_this_month,
            1,
        ),
        measure(
            "tokens a day",
            limits.tokens_per_day,
            after.tokens_today,
            tokens,
        ),
        measure(
            "tokens a month",
            limits.tokens_per_month,
            after.tokens_this_month,
            tokens,
        ),
    ];
    announce(app, tenant, owner, &measures);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(limit: u64, before: u64, after: u64) -> Measure {
        Measure {
            what: "requests a day",
            limit: Some(limit),
            before,
            after,
        }
    }

    #[test]
    fn each_mark_is_crossed_once_by_the_call_that_reaches_it() {
        assert_eq!(crossed(&m(10, 6, 7)), None);
        assert_eq!(crossed(&m(10, 7, 8)), Some(80));
        assert_eq!(crossed(&m(10, 8, 9)), None, "past 80 %, not yet 100 %");
        assert_eq!(crossed(&m(10, 9, 10)), Some(100), "the last one allowed");
        assert_eq!(crossed(&m(10, 10, 11)), None, "announced already");
        assert_eq!(
            crossed(&m(10, 0, 500)),
            Some(100),
            "a big call: the highest"
        );
        assert_eq!(crossed(&m(3, 2, 3)), Some(100), "80 % of 3 rounds up to 3");
        assert_eq!(
            crossed(&Measure {
                limit: None,
                ..m(1, 0, 5)
            }),
            None
        );
    }
}
