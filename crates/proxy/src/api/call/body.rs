//! Reading a request's body and headers, whatever its API shape.

use bytes::Bytes;
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use hyper::header::{HeaderMap, CONTENT_LENGTH};
use hyper::Request;

use crate::config::Config;
use crate::error::{ApiError, ErrorCode};

/// Largest oversized body still read (and dropped) before answering 413.
const DRAIN_CAP: usize = 16 << 20;

/// The request's body, within `max_body_bytes` and `body_read_timeout_secs`
/// (a client trickling its body must not hold a slot for ever).
pub(super) async fn read_body(req: Request<Incoming>, config: &Config) -> Result<Bytes, ApiError> {
    let timeout = std::time::Duration::from_secs(config.body_read_timeout_secs);
    tokio::time::timeout(timeout, read_within(req, config.max_body_bytes))
        .await
        .unwrap_or_else(|_| {
            Err(ApiError::new(
                ErrorCode::RequestTimeout,
                format!(
                    "the request body did not arrive within {} s",
                    timeout.as_secs()
                ),
            ))
        })
}

async fn read_within(req: Request<Incoming>, limit: usize) -> Result<Bytes, ApiError> {
    let declared = req
        .headers()
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if let Some(declared) = declared.filter(|n| *n > limit) {
        // Read (and drop) a moderately oversized body before answering, so
        // the client is not cut off mid-upload and sees the 413; past the
        // drain cap the connection is simply closed after the answer.
        if declared <= DRAIN_CAP {
            let mut body = req.into_body();
            let drain = async { while let Some(Ok(_)) = body.frame().await {} };
            let _ = tokio::time::timeout(std::time::Duration::from_secs(5), drain).await;
        }
        return Err(ApiError::payload_too_large(limit));
    }
    match Limited::new(req.into_body(), limit).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => {
            Err(ApiError::payload_too_large(limit))
        }
        Err(e) => Err(ApiError::new(
            ErrorCode::BodyReadFailed,
            format!("could not read the request body: {e}"),
        )),
    }
}

pub(super) fn task_id_header(headers: &HeaderMap) -> Option<String> {
    headers
        .get("x-task-id")
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .map(String::from)
}

pub(crate) fn truncate(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}
