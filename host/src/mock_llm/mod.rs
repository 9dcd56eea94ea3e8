//! A deterministic LLM for the demo, the tests and the benchmark
//! (`warden mock-llm --listen ADDR`). It speaks OpenAI's shapes (chat
//! completions, responses, embeddings, completions; `openai.rs`, also under
//! Azure's deployment paths) and Anthropic's Messages (`anthropic.rs`),
//! plain and streamed. Answers depend only on the request; `usage` counts
//! whitespace-separated words as tokens, like a (very) simple tokenizer, so
//! tests can predict it.
//!
//! It fails on demand, so routing and fallback are tested for real: a
//! whole instance with `--fail` (every call), or one call whose prompt
//! carries a marker: `[mock:status=503]`, `[mock:reset]` (the connection
//! reset before an answer), `[mock:reset-after=3]` (a stream reset after
//! three events), `[mock:delay-ms=500]`.

mod anthropic;
mod faults;
mod openai;

pub use faults::Fault;

use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::header::{HeaderValue, AUTHORIZATION, CONTENT_TYPE};
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use serde_json::json;
use tokio::net::TcpListener;

use crate::http::{json_response, Body, BoxError};

#[derive(Clone, Default)]
pub struct MockOptions {
    /// When set, requests must carry `Authorization: Bearer <key>`.
    pub require_key: Option<String>,
    /// Delay before answering (and between streamed chunks).
    pub latency: Duration,
    /// Fail every call this way (a provider that is down).
    pub fail: Option<Fault>,
}

pub(super) fn words_in(value: &serde_json::Value) -> u64 {
    match value {
        serde_json::Value::String(s) => s.split_whitespace().count() as u64,
        serde_json::Value::Array(a) => a.iter().map(words_in).sum(),
        serde_json::Value::Object(o) => o
            .get("text")
            .or_else(|| o.get("content"))
            .map_or(0, words_in),
        _ => 0,
    }
}

pub(super) fn last_user_text(messages: &[serde_json::Value]) -> String {
    messages
        .iter()
        .rev()
        .find(|m| m.get("role").and_then(|r| r.as_str()) == Some("user"))
        .and_then(|m| m.get("content"))
        .map(|c| match c {
            serde_json::Value::String(s) => s.clone(),
            // Content parts (OpenAI) or blocks (Anthropic): their texts.
            serde_json::Value::Array(parts) => parts
                .iter()
                .filter_map(|p| p.get("text").and_then(|t| t.as_str()))
                .collect::<Vec<_>>()
                .join(" "),
            other => other.to_string(),
        })
        .unwrap_or_default()
}

/// The answer for a prompt: deterministic, a few sentences long.
pub(super) fn answer_for(prompt: &str, max_tokens: Option<u64>) -> Vec<String> {
    let topic: String = prompt
        .split_whitespace()
        .take(8)
        .collect::<Vec<_>>()
        .join(" ");
    let text = format!(
        "Mock answer about: {topic}. This reply comes from the Warden mock LLM, \
         which answers deterministically so that tests can check every byte."
    );
    let limit = max_tokens.unwrap_or(u64::MAX) as usize;
    text.split_inclusive(' ')
        .take(limit.max(1))
        .map(String::from)
        .collect()
}

/// Whether Warden asked for the prompt's label (embedded classification).
pub(super) fn asked_for_label(messages: &[serde_json::Value]) -> bool {
    messages.iter().any(|m| {
        m.get("role").and_then(|r| r.as_str()) == Some("system")
            && m.get("content")
                .and_then(|c| c.as_str())
                .is_some_and(|c| c.contains(crate::embedded_intent::MARKER_OPEN))
    })
}

/// The mock's stand-in for a model's judgement: a few telling words.
pub(super) fn label_for(prompt: &str) -> &'static str {
    let prompt = prompt.to_lowercase();
    let has = |words: &[&str]| words.iter().any(|w| prompt.contains(w));
    if has(&[
        "recipe", "poem", "birthday", "holiday", "vacation", "homework", "movie",
    ]) {
        "off_topic"
    } else if has(&["test", "failing", "bug"]) {
        "test"
    } else if has(&["document", "readme", "docs"]) {
        "doc"
    } else if has(&["review", "why", "compare", "analy"]) {
        "analysis"
    } else {
        "code"
    }
}

fn error(status: StatusCode, message: &str) -> Response<Body> {
    json_response(
        status,
        serde_json::to_vec(
            &json!({"error": {"message": message, "type": "invalid_request_error", "code": null}}),
        )
        .unwrap_or_default(),
    )
}

/// Whether the call carries the key: as OpenAI (`Authorization: Bearer`),
/// Anthropic (`x-api-key`) or Azure (`api-key`) send it.
fn has_key(req: &Request<Incoming>, key: &str) -> bool {
    let header = |name: &str| req.headers().get(name).and_then(|v| v.to_str().ok());
    header(AUTHORIZATION.as_str()).and_then(|h| h.strip_prefix("Bearer ")) == Some(key)
        || header("x-api-key") == Some(key)
        || header("api-key") == Some(key)
}

/// Every call's answer, or `Err` to drop the connection without one.
async fn handle(options: MockOptions, req: Request<Incoming>) -> Result<Response<Body>, BoxError> {
    if let Some(key) = &options.require_key {
        if !has_key(&req, key) {
            return Ok(error(
                StatusCode::UNAUTHORIZED,
                "Incorrect API key provided.",
            ));
        }
    }
    let path = req.uri().path().to_string();
    if req.method() == Method::GET && path.ends_with("/models") {
        return Ok(json_response(
            StatusCode::OK,
            serde_json::to_vec(&json!({"object": "list", "data": [
                {"id": "gpt-4o-mini", "object": "model", "created": 0, "owned_by": "mock"},
                {"id": "gpt-4o", "object": "model", "created": 0, "owned_by": "mock"}]}))
            .unwrap_or_default(),
        ));
    }
    if req.method() != Method::POST {
        return Ok(error(StatusCode::NOT_FOUND, "unknown route"));
    }
    let anthropic_version = req.headers().contains_key("anthropic-version");
    let body = match req.into_body().collect().await {
        Ok(b) => b.to_bytes(),
        Err(_) => return Ok(error(StatusCode::BAD_REQUEST, "unreadable body")),
    };
    let request: serde_json::Value = match serde_json::from_slice(&body) {
        Ok(r) => r,
        Err(e) => {
            return Ok(error(
                StatusCode::BAD_REQUEST,
                &format!("invalid JSON: {e}"),
            ))
        }
    };
    let fault = options.fail.or_else(|| Fault::asked_in(&body));
    let reset_after = match fault {
        Some(Fault::Status(status)) => return Ok(faults::failure(status)),
        Some(Fault::Reset) => return Err("reset before answering (asked for)".into()),
        Some(Fault::Delay(delay)) => {
            tokio::time::sleep(delay).await;
            None
        }
        Some(Fault::ResetAfter(events)) => Some(events),
        None => None,
    };
    if !options.latency.is_zero() {
        tokio::time::sleep(options.latency).await;
    }
    let stream = Stream {
        latency: options.latency,
        reset_after,
    };
    let endpoint = |suffix: &str| path.ends_with(suffix);
    Ok(if endpoint("/chat/completions") {
        openai::chat(&request, stream)
    } else if endpoint("/messages") && anthropic_version {
        anthropic::messages(&request, stream)
    } else if endpoint("/messages") {
        let message = "anthropic-version: header is required";
        anthropic::error(StatusCode::BAD_REQUEST, "invalid_request_error", message)
    } else if endpoint("/responses") {
        openai::responses(&request, stream)
    } else if endpoint("/embeddings") {
        openai::embeddings(&request)
    } else if endpoint("/completions") {
        openai::completions(&request, stream)
    } else {
        error(StatusCode::NOT_FOUND, "unknown route")
    })
}

/// How a streamed answer goes out.
#[derive(Clone, Copy)]
struct Stream {
    latency: Duration,
    /// Reset the connection after this many events.
    reset_after: Option<usize>,
}

impl Stream {
    /// SSE events as a response, a tenth of the latency apart.
    fn respond(self, events: Vec<String>) -> Response<Body> {
        let latency = self.latency;
        let cut = self.reset_after.unwrap_or(usize::MAX);
        let stream = futures_util::stream::unfold(
            (events.into_iter(), 0usize),
            move |(mut it, sent)| async move {
                if sent == cut {
                    // What went before reaches the client first.
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    let reset: BoxError = "stream reset (asked for)".into();
                    return Some((Err(reset), (it, usize::MAX)));
                }
                let event = it.next()?;
                if !latency.is_zero() {
                    tokio::time::sleep(latency / 10).await;
                }
                Some((Ok(Frame::data(Bytes::from(event))), (it, sent + 1)))
            },
        );
        let mut response = Response::new(StreamBody::new(stream).boxed_unsync());
        response
            .headers_mut()
            .insert(CONTENT_TYPE, HeaderValue::from_static("text/event-stream"));
        response
    }
}

fn answer_json(body: &serde_json::Value) -> Response<Body> {
    json_response(StatusCode::OK, serde_json::to_vec(body).unwrap_or_default())
}

/// Serves the mock on `listener` until the task is dropped.
pub async fn serve(listener: TcpListener, options: MockOptions) {
    let builder = auto::Builder::new(TokioExecutor::new());
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let _ = stream.set_nodelay(true);
        let options = options.clone();
        let builder = builder.clone();
        tokio::spawn(async move {
            let service = service_fn(move |req| handle(options.clone(), req));
            let _ = builder
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

/// Starts the mock on `addr` in the background; returns the bound address.
pub async fn spawn(
    addr: SocketAddr,
    options: MockOptions,
) -> anyhow::Result<(SocketAddr, tokio::task::JoinHandle<()>)> {
    let listener = TcpListener::bind(addr).await?;
    let bound = listener.local_addr()?;
    Ok((bound, tokio::spawn(serve(listener, options))))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_are_deterministic_and_capped() {
        assert_eq!(
            answer_for("hello world", None),
            answer_for("hello world", None)
        );
        assert_eq!(answer_for("hello world", Some(3)).len(), 3);
    }

    #[test]
    fn word_counts_cover_parts() {
        assert_eq!(words_in(&json!([{"type": "text", "text": "a b c"}])), 3);
    }
}
