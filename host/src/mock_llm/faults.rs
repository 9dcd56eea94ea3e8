//! The mock's failures on demand: for a whole instance (`--fail`), or for
//! one call by a marker in its body (the prompt passes through Warden
//! untouched, so a test reaches the mock behind it).

use std::time::Duration;

use hyper::{Response, StatusCode};
use serde_json::json;

use crate::http::{json_response, Body};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    /// Answer with this status and a provider-style error.
    Status(u16),
    /// Reset the connection before answering.
    Reset,
    /// Stream this many events, then reset.
    ResetAfter(usize),
    /// Wait this long before answering.
    Delay(Duration),
}

impl Fault {
    /// From `503`, `reset`, `reset-after=3` or `delay-ms=500`.
    pub fn parse(text: &str) -> Option<Self> {
        let text = text.trim();
        if text == "reset" {
            return Some(Self::Reset);
        }
        if let Some(n) = text.strip_prefix("reset-after=") {
            return n.parse().ok().map(Self::ResetAfter);
        }
        if let Some(ms) = text.strip_prefix("delay-ms=") {
            return ms
                .parse()
                .ok()
                .map(|ms| Self::Delay(Duration::from_millis(ms)));
        }
        let status = text.strip_prefix("status=").unwrap_or(text);
        status
            .parse()
            .ok()
            .filter(|s| (400..600).contains(s))
            .map(Self::Status)
    }

    /// The fault a call's body asks for with `[mock:…]`.
    pub fn asked_in(body: &[u8]) -> Option<Self> {
        let text = std::str::from_utf8(body).ok()?;
        let start = text.find("[mock:")? + "[mock:".len();
        let end = text[start..].find(']')? + start;
        Self::parse(&text[start..end])
    }
}

/// A provider's failure: OpenAI's error shape, `Retry-After` on 429 and 503.
pub fn failure(status: u16) -> Response<Body> {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::SERVICE_UNAVAILABLE);
    let body = json!({"error": {"message": format!("mock failure {}", status.as_u16()),
                               "type": "server_error", "code": null}});
    let mut response = json_response(status, serde_json::to_vec(&body).unwrap_or_default());
    if matches!(status.as_u16(), 429 | 503) {
        response.headers_mut().insert(
            hyper::header::RETRY_AFTER,
            hyper::header::HeaderValue::from_static("0"),
        );
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn faults_parse_from_markers() {
        assert_eq!(
            Fault::asked_in(b"{\"x\":\"hi [mock:503] there\"}"),
            Some(Fault::Status(503))
        );
        assert_eq!(
            Fault::asked_in(b"[mock:status=429]"),
            Some(Fault::Status(429))
        );
        assert_eq!(Fault::asked_in(b"[mock:reset]"), Some(Fault::Reset));
        assert_eq!(
            Fault::asked_in(b"[mock:reset-after=3]"),
            Some(Fault::ResetAfter(3))
        );
        assert_eq!(
            Fault::asked_in(b"[mock:delay-ms=20]"),
            Some(Fault::Delay(Duration::from_millis(20)))
        );
        assert_eq!(Fault::asked_in(b"no marker"), None);
        assert_eq!(Fault::parse("200"), None);
    }
}
