//! Translation between API dialects, so a client of one reaches a provider
//! of the other: OpenAI chat completions to Anthropic Messages
//! (`to_anthropic`), and Anthropic Messages to OpenAI chat completions
//! (`to_openai`). Each direction translates the request, the complete
//! answer, a provider error, and the stream event by event (an
//! [`EventRewrite`] in the stream's rewrites, so nothing is buffered).
//! Pinned by golden files in `golden/` (request in, body out).
//!
//! What is not translated is listed in the README (Providers, Translation
//! limits): it is dropped, never sent in the wrong shape.

pub mod to_anthropic;
pub mod to_openai;

use bytes::Bytes;
use serde_json::{json, Value};

use crate::sse::EventRewrite;
use crate::upstream::{ReadUsage, Usage};

/// How one call's answer comes back in its client's dialect.
#[derive(Debug, Clone)]
pub enum Translation {
    /// An OpenAI chat client, an Anthropic provider.
    ChatToAnthropic { model: String },
    /// An Anthropic Messages client, an OpenAI-dialect provider.
    MessagesToChat { model: String },
}

impl Translation {
    /// Reads usage from one event of the provider's stream.
    pub fn stream_usage(&self) -> ReadUsage {
        match self {
            Self::ChatToAnthropic { .. } => read_anthropic_usage,
            Self::MessagesToChat { .. } => crate::upstream::read_openai_usage,
        }
    }

    /// The provider's complete answer (or error) in the client's dialect.
    pub fn answer(&self, success: bool, body: &[u8]) -> Bytes {
        let Ok(value) = serde_json::from_slice::<Value>(body) else {
            return Bytes::copy_from_slice(body);
        };
        let out = match (self, success) {
            (Self::ChatToAnthropic { model }, true) => to_anthropic::answer(&value, model),
            (Self::MessagesToChat { model }, true) => to_openai::answer(&value, model),
            (Self::ChatToAnthropic { .. }, false) => openai_error(&value),
            (Self::MessagesToChat { .. }, false) => anthropic_error(&value),
        };
        Bytes::from(out.to_string())
    }

    /// The stream's rewrite into the client's dialect.
    pub fn stream(&self) -> Box<dyn EventRewrite> {
        match self {
            Self::ChatToAnthropic { model } => Box::new(to_anthropic::Stream::new(model)),
            Self::MessagesToChat { model } => Box::new(to_openai::Stream::new(model)),
        }
    }
}

/// The `data:` JSON of one SSE event (whatever line it is on).
pub(crate) fn event_json(event: &[u8]) -> Option<Value> {
    let text = std::str::from_utf8(event).ok()?;
    let data = text.lines().find_map(|l| l.strip_prefix("data:"))?.trim();
    serde_json::from_str(data).ok()
}

/// An error message in either dialect's body (`error.message`).
fn error_message(value: &Value) -> String {
    value["error"]["message"]
        .as_str()
        .unwrap_or("the provider failed without a message")
        .to_string()
}

/// An Anthropic error body in OpenAI's shape.
fn openai_error(value: &Value) -> Value {
    let kind = value["error"]["type"].as_str().unwrap_or("api_error");
    json!({ "error": { "message": error_message(value), "type": kind, "code": null } })
}

/// An OpenAI error body in Anthropic's shape.
fn anthropic_error(value: &Value) -> Value {
    let kind = match value["error"]["type"].as_str() {
        Some("invalid_request_error") => "invalid_request_error",
        Some("authentication_error") => "authentication_error",
        Some("permission_error") => "permission_error",
        Some("rate_limit_error") => "rate_limit_error",
        _ => "api_error",
    };
    json!({ "type": "error", "error": { "type": kind, "message": error_message(value) } })
}

/// Anthropic's stream usage: the prompt in `message_start`, the answer's
/// running total in each `message_delta`.
pub fn read_anthropic_usage(data: &[u8], usage: &mut Option<Usage>) {
    if !data.windows(7).any(|w| w == b"\"usage\"") {
        return;
    }
    let Ok(event) = serde_json::from_slice::<WithUsage>(data.trim_ascii()) else {
        return;
    };
    // `message_start` carries it in its message, `message_delta` at the top.
    let found = event.usage.or_else(|| event.message.and_then(|m| m.usage));
    if let Some(found) = found {
        found.fold_into(usage.get_or_insert_with(Usage::default));
    }
}

/// The usage of a complete Anthropic message (cached prompt tokens count).
pub fn anthropic_usage_of(body: &[u8]) -> Option<Usage> {
    let found = serde_json::from_slice::<WithUsage>(body).ok()?.usage?;
    let mut usage = Usage::default();
    found.fold_into(&mut usage);
    Some(usage)
}

/// What Warden reads of an Anthropic message or event: its usage, typed,
/// so the rest of the body is skipped rather than built into a `Value`.
#[derive(serde::Deserialize)]
struct WithUsage {
    usage: Option<AnthropicUsage>,
    message: Option<Box<WithUsage>>,
}

#[derive(serde::Deserialize)]
struct AnthropicUsage {
    input_tokens: Option<u64>,
    output_tokens: Option<u64>,
    cache_read_input_tokens: Option<u64>,
    cache_creation_input_tokens: Option<u64>,
}

impl AnthropicUsage {
    /// Prompt tokens include the cache's reads and writes; a delta's
    /// output count is the running total.
    fn fold_into(self, current: &mut Usage) {
        if let Some(input) = self.input_tokens {
            let read = self.cache_read_input_tokens.unwrap_or(0);
            let written = self.cache_creation_input_tokens.unwrap_or(0);
            current.prompt_tokens = input + read + written;
            current.cached_tokens = read;
        }
        if let Some(output) = self.output_tokens {
            current.completion_tokens = output;
        }
    }
}

/// Anthropic content blocks (text and `tool_use`) as an OpenAI assistant
/// message: the texts joined, each tool use a tool call.
fn assistant_message(blocks: &[Value]) -> Value {
    let text: String = blocks
        .iter()
        .filter(|b| b["type"] == "text")
        .filter_map(|b| b["text"].as_str())
        .collect();
    let calls: Vec<Value> = blocks
        .iter()
        .filter(|b| b["type"] == "tool_use")
        .map(|b| {
            let function = json!({ "name": b["name"], "arguments": b["input"].to_string() });
            json!({ "id": b["id"], "type": "function", "function": function })
        })
        .collect();
    let mut message = json!({ "role": "assistant", "content": text });
    if !calls.is_empty() {
        message["tool_calls"] = calls.into();
    }
    message
}

/// An OpenAI message's tool calls as Anthropic `tool_use` blocks.
fn tool_use_blocks(message: &Value) -> impl Iterator<Item = Value> + '_ {
    message["tool_calls"].as_array().into_iter().flatten().map(|call| {
        let arguments = call["function"]["arguments"].as_str().unwrap_or("{}");
        let input: Value = serde_json::from_str(arguments).unwrap_or_else(|_| json!({}));
        json!({ "type": "tool_use", "id": call["id"], "name": call["function"]["name"], "input": input })
    })
}

/// One SSE event, OpenAI style (`data:` only).
fn data_event(out: &mut Vec<u8>, value: &Value) {
    out.extend_from_slice(b"data: ");
    out.extend_from_slice(value.to_string().as_bytes());
    out.extend_from_slice(b"\n\n");
}

/// One SSE event, Anthropic style (`event:` and `data:`).
fn typed_event(out: &mut Vec<u8>, value: &Value) {
    let kind = value["type"].as_str().unwrap_or("message");
    out.extend_from_slice(b"event: ");
    out.extend_from_slice(kind.as_bytes());
    out.extend_from_slice(b"\n");
    data_event(out, value);
}

#[cfg(test)]
mod golden;
