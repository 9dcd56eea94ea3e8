//! OpenAI-style rate-limit headers, so clients and SDKs can pace themselves:
//! `x-ratelimit-{limit,remaining,reset}-{requests,tokens}`. Warden's limits
//! are per day (and per minute / month); the headers report the daily request
//! and token windows, where most users hit their quota.

use hyper::header::{HeaderMap, HeaderValue};

use crate::domain::Usage;
use crate::state::model::Limits;

#[derive(Debug, Clone, Copy, Default)]
pub struct RateLimitInfo {
    requests: Option<(u64, u64)>,
    tokens: Option<(u64, u64)>,
    reset_secs: u64,
}

impl RateLimitInfo {
    /// From the limits and the usage *including* this call's reservation.
    pub fn new(limits: &Limits, usage: &Usage) -> Self {
        Self {
            requests: limits
                .requests_per_day
                .map(|l| (l, l.saturating_sub(usage.requests_today))),
            tokens: limits
                .tokens_per_day
                .map(|l| (l, l.saturating_sub(usage.tokens_today))),
            reset_secs: usage.day_resets_in,
        }
    }

    /// OpenAI's duration format: `1h2m3s`, `6m0s`, `20s`.
    fn duration(secs: u64) -> String {
        let (h, m, s) = (secs / 3600, secs / 60 % 60, secs % 60);
        match (h, m) {
            (0, 0) => format!("{s}s"),
            (0, _) => format!("{m}m{s}s"),
            _ => format!("{h}h{m}m{s}s"),
        }
    }

    pub fn apply(&self, headers: &mut HeaderMap) {
        let reset = HeaderValue::from_str(&Self::duration(self.reset_secs)).ok();
        let mut put = |kind: &str, (limit, remaining): (u64, u64)| {
            headers.insert(
                hyper::header::HeaderName::from_bytes(
                    format!("x-ratelimit-limit-{kind}").as_bytes(),
                )
                .expect("name"),
                HeaderValue::from(limit),
            );
            headers.insert(
                hyper::header::HeaderName::from_bytes(
                    format!("x-ratelimit-remaining-{kind}").as_bytes(),
                )
                .expect("name"),
                HeaderValue::from(remaining),
            );
            if let Some(reset) = &reset {
                headers.insert(
                    hyper::header::HeaderName::from_bytes(
                        format!("x-ratelimit-reset-{kind}").as_bytes(),
                    )
                    .expect("name"),
                    reset.clone(),
                );
            }
        };
        if let Some(r) = self.requests {
            put("requests", r);
        }
        if let Some(t) = self.tokens {
            put("tokens", t);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_like_openai() {
        assert_eq!(RateLimitInfo::duration(20), "20s");
        assert_eq!(RateLimitInfo::duration(360), "6m0s");
        assert_eq!(RateLimitInfo::duration(3723), "1h2m3s");
    }
}
