//! OpenAI's other shapes, each through the same call path as chat
//! completions: `POST /v1/responses` (`responses.rs`), `/v1/embeddings`
//! (`embeddings.rs`) and the legacy `/v1/completions` (`completions.rs`).
//! They go to OpenAI-dialect providers only (an Anthropic provider gets no
//! translation of them; the call is refused with a clear error).

pub mod completions;
pub mod embeddings;
pub mod responses;

use std::borrow::Cow;

use bytes::Bytes;
use serde_json::Value;

use crate::error::{ApiError, ErrorCode};

/// The body's JSON, or the error a client of `shape` is told.
fn parse_value(body: &[u8], shape: &str) -> Result<Value, ApiError> {
    serde_json::from_slice(body).map_err(|e| {
        ApiError::new(
            ErrorCode::InvalidJson,
            format!("the request body is not valid JSON for {shape}: {e}"),
        )
    })
}

fn model_of(value: &Value) -> Result<&str, ApiError> {
    value["model"]
        .as_str()
        .filter(|m| !m.is_empty())
        .ok_or_else(|| ApiError::new(ErrorCode::MissingModel, "'model' is required"))
}

/// The texts of a string or a list of strings (token arrays have none).
fn texts(value: &Value) -> Vec<Cow<'_, str>> {
    match value {
        Value::String(s) => vec![Cow::Borrowed(s.as_str())],
        Value::Array(list) => list
            .iter()
            .filter_map(|v| v.as_str().map(Cow::Borrowed))
            .collect(),
        _ => Vec::new(),
    }
}

/// Writes `new` texts back over the strings of `slot` (same order).
fn put_texts(slot: &mut Value, new: &[String]) {
    match slot {
        Value::String(s) => {
            if let Some(text) = new.first() {
                *s = text.clone();
            }
        }
        Value::Array(list) => {
            let strings = list.iter_mut().filter(|v| v.is_string());
            for (item, text) in strings.zip(new) {
                *item = text.clone().into();
            }
        }
        _ => {}
    }
}

fn to_bytes(value: &Value) -> Result<Bytes, ApiError> {
    serde_json::to_vec(value)
        .map(Bytes::from)
        .map_err(|e| ApiError::internal(e.to_string()))
}

/// The `data:` events of a whole SSE stream with their JSON.
fn events(sse: &str) -> Vec<(&str, Option<Value>)> {
    sse.split_inclusive("\n\n")
        .map(|event| (event, crate::translate::event_json(event.as_bytes())))
        .collect()
}

/// An event written back as `event:` (when it had one) and `data:`.
fn write_event(out: &mut String, raw: &str, value: &Value) {
    if let Some(kind) = raw.lines().find_map(|l| l.strip_prefix("event:")) {
        out.push_str("event:");
        out.push_str(kind);
        out.push('\n');
    }
    out.push_str("data: ");
    out.push_str(&value.to_string());
    out.push_str("\n\n");
}
