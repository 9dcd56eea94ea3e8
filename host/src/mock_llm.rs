//! A deterministic OpenAI-compatible LLM for the demo, the tests and the
//! benchmark (`warden mock-llm --listen ADDR`). Answers depend only on the
//! request; `usage` counts whitespace-separated words as tokens, like a
//! (very) simple tokenizer, so tests can predict it.

use std::convert::Infallible;
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
use serde::Deserialize;
use serde_json::json;
use tokio::net::TcpListener;

use crate::http::{json_response, Body};

#[derive(Clone, Default)]
pub struct MockOptions {
    /// When set, requests must carry `Authorization: Bearer <key>`.
    pub require_key: Option<String>,
    /// Delay before answering (and between streamed chunks).
    pub latency: Duration,
}

#[derive(Deserialize)]
struct MockRequest {
    #[serde(default)]
    model: String,
    #[serde(default)]
    messages: Vec<serde_json::Value>,
    #[serde(default)]
    stream: bool,
    stream_options: Option<StreamOptions>,
    max_tokens: Option<u64>,
}

#[derive(Deserialize)]
struct StreamOptions {
    #[serde(default)]
    include_usage: bool,
}

fn words_in(value: &serde_json::Value) -> u64 {
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

fn last_user_text(messages: &[serde_json::Value]) -> String {
    messages
        .iter()
        .rev()
        .find(|m| m.get("role").and_then(|r| r.as_str()) == Some("user"))
        .and_then(|m| m.get("content"))
        .map(|c| match c {
            serde_json::Value::String(s) => s.clone(),
            other => other.to_string(),
        })
        .unwrap_or_default()
}

/// The answer for a prompt: deterministic, a few sentences long.
fn answer_for(prompt: &str, max_tokens: Option<u64>) -> Vec<String> {
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
fn asked_for_label(messages: &[serde_json::Value]) -> bool {
    messages.iter().any(|m| {
        m.get("role").and_then(|r| r.as_str()) == Some("system")
            && m.get("content")
                .and_then(|c| c.as_str())
                .is_some_and(|c| c.contains(crate::embedded_intent::MARKER_OPEN))
    })
}

/// The mock's stand-in for a model's judgement: a few telling words.
fn label_for(prompt: &str) -> &'static str {
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

async fn handle(options: MockOptions, req: Request<Incoming>) -> Response<Body> {
    if let Some(key) = &options.require_key {
        let expected = format!("Bearer {key}");
        if req
            .headers()
            .get(AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            != Some(expected.as_str())
        {
            return error(StatusCode::UNAUTHORIZED, "Incorrect API key provided.");
        }
    }
    match (req.method(), req.uri().path()) {
        (&Method::GET, "/v1/models") => json_response(
            StatusCode::OK,
            serde_json::to_vec(&json!({"object": "list", "data": [
                {"id": "gpt-4o-mini", "object": "model", "created": 0, "owned_by": "mock"},
                {"id": "gpt-4o", "object": "model", "created": 0, "owned_by": "mock"}]}))
            .unwrap_or_default(),
        ),
        (&Method::POST, "/v1/chat/completions") => {
            let body = match req.into_body().collect().await {
                Ok(b) => b.to_bytes(),
                Err(_) => return error(StatusCode::BAD_REQUEST, "unreadable body"),
            };
            let request: MockRequest = match serde_json::from_slice(&body) {
                Ok(r) => r,
                Err(e) => return error(StatusCode::BAD_REQUEST, &format!("invalid JSON: {e}")),
            };
            if request.model.is_empty() {
                return error(
                    StatusCode::BAD_REQUEST,
                    "you must provide a model parameter",
                );
            }
            if !options.latency.is_zero() {
                tokio::time::sleep(options.latency).await;
            }
            complete(request, options.latency)
        }
        _ => error(StatusCode::NOT_FOUND, "unknown route"),
    }
}

fn complete(request: MockRequest, latency: Duration) -> Response<Body> {
    let prompt_tokens: u64 =
        request.messages.iter().map(words_in).sum::<u64>() + 3 * request.messages.len() as u64;
    let prompt = last_user_text(&request.messages);
    let mut pieces = answer_for(&prompt, request.max_tokens);
    if asked_for_label(&request.messages) {
        // The label line, split mid-marker as a real stream may split it.
        pieces.push("\n[[warden-".into());
        pieces.push(format!("intent: {}]]", label_for(&prompt)));
    }
    let completion_tokens = pieces.len() as u64;
    let usage = json!({"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
                       "total_tokens": prompt_tokens + completion_tokens});
    let id = format!(
        "chatcmpl-mock{:016x}",
        prompt_tokens * 1_000_003 + completion_tokens
    );
    let created = 1_700_000_000u64;
    let finish = if request
        .max_tokens
        .is_some_and(|m| (m as usize) <= pieces.len())
    {
        "length"
    } else {
        "stop"
    };

    if !request.stream {
        let body = json!({
            "id": id, "object": "chat.completion", "created": created, "model": request.model,
            "choices": [{"index": 0, "message": {"role": "assistant", "content": pieces.concat(), "refusal": null},
                         "logprobs": null, "finish_reason": finish}],
            "usage": usage, "system_fingerprint": "fp_warden_mock"
        });
        return json_response(
            StatusCode::OK,
            serde_json::to_vec(&body).unwrap_or_default(),
        );
    }

    let include_usage = request.stream_options.is_some_and(|o| o.include_usage);
    let chunk = |delta: serde_json::Value, finish: Option<&str>| {
        let mut c = json!({"id": id, "object": "chat.completion.chunk", "created": created, "model": request.model,
                            "system_fingerprint": "fp_warden_mock",
                            "choices": [{"index": 0, "delta": delta, "logprobs": null, "finish_reason": finish}]});
        if include_usage {
            c["usage"] = serde_json::Value::Null;
        }
        format!("data: {c}\n\n")
    };
    let mut events = vec![chunk(json!({"role": "assistant", "content": ""}), None)];
    events.extend(pieces.iter().map(|p| chunk(json!({"content": p}), None)));
    events.push(chunk(json!({}), Some(finish)));
    if include_usage {
        let c = json!({"id": id, "object": "chat.completion.chunk", "created": created, "model": request.model,
                        "system_fingerprint": "fp_warden_mock", "choices": [], "usage": usage});
        events.push(format!("data: {c}\n\n"));
    }
    events.push("data: [DONE]\n\n".into());

    let stream = futures_util::stream::unfold(events.into_iter(), move |mut it| async move {
        let event = it.next()?;
        if !latency.is_zero() {
            tokio::time::sleep(latency / 10).await;
        }
        Some((Ok::<_, Infallible>(Frame::data(Bytes::from(event))), it))
    });
    let mut response = Response::new(
        StreamBody::new(stream)
            .map_err(|never| match never {})
            .boxed_unsync(),
    );
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("text/event-stream"));
    response
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
            let service = service_fn(move |req| {
                let options = options.clone();
                async move { Ok::<_, Infallible>(handle(options, req).await) }
            });
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
