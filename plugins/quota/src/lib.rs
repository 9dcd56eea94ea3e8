//! Default quota stage: refuses a call that would take the caller past any
//! of their limits, counting the call's estimate, and says when to retry.

wit_bindgen::generate!({ path: "../../wit", world: "warden:policy/quota-plugin@0.1.0" });

use exports::warden::policy::quota::{Guest, QuotaDenial, QuotaRequest, QuotaVerdict};

struct Quota;

fn deny(reason: String, retry_after_secs: u64) -> QuotaVerdict {
    QuotaVerdict::Deny(QuotaDenial {
        reason,
        retry_after_secs: retry_after_secs.max(1),
    })
}

impl Guest for Quota {
    fn check(request: QuotaRequest) -> QuotaVerdict {
        let (limits, usage) = (&request.limits, &request.usage);
        let estimate = request.estimated_tokens;
        if let Some(limit) = limits.requests_per_minute {
            if usage.requests_this_minute >= limit {
                return deny(
                    format!("rate limit reached: {limit} requests per minute"),
                    usage.minute_resets_in,
                );
            }
        }
        if let Some(limit) = limits.requests_per_day {
            if usage.requests_today >= limit {
                return deny(
                    format!("daily request quota reached: {limit} requests per day"),
                    usage.day_resets_in,
                );
            }
        }
        if let Some(limit) = limits.tokens_per_day {
            if usage.tokens_today.saturating_add(estimate) > limit {
                return deny(
                    format!(
                        "daily token quota would be exceeded: {} used of {limit}, this call needs up to {estimate}",
                        usage.tokens_today
                    ),
                    usage.day_resets_in,
                );
            }
        }
        if let Some(limit) = limits.tokens_per_month {
            if usage.tokens_this_month.saturating_add(estimate) > limit {
                return deny(
                    format!(
                        "monthly token quota would be exceeded: {} used of {limit}, this call needs up to {estimate}",
                        usage.tokens_this_month
                    ),
                    usage.month_resets_in,
                );
            }
        }
        QuotaVerdict::Allow
    }
}

export!(Quota);
