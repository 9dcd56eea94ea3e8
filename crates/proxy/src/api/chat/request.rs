//! The client's chat-completion request: parsing what Warden reads of it,
//! reading the body within limits, and the body sent on to the provider.

use std::borrow::Cow;

use bytes::Bytes;
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use hyper::header::{HeaderMap, CONTENT_LENGTH};
use hyper::Request;
use serde::Deserialize;

use crate::embedded_intent;
use crate::error::{ApiError, ErrorCode};
use crate::state::model::Task;

/// Completion budget assumed when the client sets no `max_tokens`.
const DEFAULT_COMPLETION_BUDGET: u64 = 512;
/// Largest oversized body still read (and dropped) before answering 413.
const DRAIN_CAP: usize = 16 << 20;

#[derive(Deserialize)]
pub(super) struct ChatRequest<'a> {
    #[serde(borrow)]
    pub(super) model: Option<Cow<'a, str>>,
    pub(super) messages: Option<Vec<Message>>,
    #[serde(default)]
    pub(super) stream: bool,
    pub(super) max_tokens: Option<u64>,
    pub(super) max_completion_tokens: Option<u64>,
    pub(super) metadata: Option<serde_json::Map<String, serde_json::Value>>,
    pub(super) stream_options: Option<StreamOptions>,
}

impl<'a> ChatRequest<'a> {
    pub(super) fn parse(body: &'a [u8]) -> Result<Self, ApiError> {
        serde_json::from_slice(body).map_err(|e| {
            ApiError::new(
                ErrorCode::InvalidJson,
                format!("the request body is not valid JSON for a chat completion: {e}"),
            )
        })
    }
}

/// What Warden reads of a chat call, checked: the model, the messages,
/// the task it names, the prompt the chain judges (the last user message)
/// and the tokens it may cost.
pub(super) struct ChatCall<'a> {
    pub(super) model: &'a str,
    pub(super) messages: &'a [Message],
    pub(super) task_id: &'a str,
    pub(super) prompt: Cow<'a, str>,
    pub(super) stream: bool,
    /// The client asked for the stream's usage chunk itself.
    pub(super) include_usage: bool,
    pub(super) prompt_tokens: u64,
    /// The most the answer may take: `max_completion_tokens`,
    /// `max_tokens`, or a default.
    pub(super) completion_budget: u64,
}

impl<'a> ChatCall<'a> {
    /// `task_header` (`X-Task-Id`) wins over `metadata.task_id`.
    pub(super) fn read(
        chat: &'a ChatRequest<'a>,
        task_header: Option<&'a str>,
    ) -> Result<Self, ApiError> {
        let model = chat.model.as_deref().filter(|m| !m.is_empty());
        let model =
            model.ok_or_else(|| ApiError::new(ErrorCode::MissingModel, "'model' is required"))?;
        let messages = chat.messages.as_deref().filter(|m| !m.is_empty());
        let messages = messages.ok_or_else(|| {
            ApiError::new(
                ErrorCode::MissingMessages,
                "'messages' must be a non-empty array",
            )
        })?;
        let body_task = chat.metadata.as_ref().and_then(|m| m.get("task_id"));
        let body_task = body_task.and_then(|t| t.as_str()).filter(|t| !t.is_empty());
        let task_id = task_header.or(body_task).ok_or_else(|| {
            ApiError::new(
                ErrorCode::MissingTaskId,
                "every call must name its task: set the X-Task-Id header or metadata.task_id in the body",
            )
        })?;
        let last_user = messages.iter().rev().find(|m| m.role == "user");
        let prompt = last_user.unwrap_or(&messages[messages.len() - 1]).text();
        let completion_budget = chat.max_completion_tokens.or(chat.max_tokens);
        Ok(Self {
            model,
            messages,
            task_id,
            prompt,
            stream: chat.stream,
            include_usage: chat
                .stream_options
                .as_ref()
                .is_some_and(|o| o.include_usage),
            prompt_tokens: estimate_prompt_tokens(messages),
            completion_budget: completion_budget.unwrap_or(DEFAULT_COMPLETION_BUDGET),
        })
    }
}

#[derive(Deserialize)]
pub(super) struct StreamOptions {
    #[serde(default)]
    pub(super) include_usage: bool,
}

#[derive(Deserialize)]
pub(super) struct Message {
    #[serde(default)]
    pub(super) role: String,
    #[serde(default)]
    pub(super) content: serde_json::Value,
}

impl Message {
    /// The text of a message: a plain string or the `text` parts of an array.
    pub(super) fn text(&self) -> Cow<'_, str> {
        match &self.content {
            serde_json::Value::String(s) => Cow::Borrowed(s),
            serde_json::Value::Array(parts) => Cow::Owned(
                parts
                    .iter()
                    .filter_map(|p| p.get("text").and_then(|t| t.as_str()))
                    .collect::<Vec<_>>()
                    .join("\n"),
            ),
            _ => Cow::Borrowed(""),
        }
    }
}

pub(super) fn truncate(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// Prompt tokens: about four bytes each, plus per-message overhead.
fn estimate_prompt_tokens(messages: &[Message]) -> u64 {
    messages.iter().map(|m| m.text().len() as u64 / 4 + 4).sum()
}

pub(super) async fn read_body(req: Request<Incoming>, limit: usize) -> Result<Bytes, ApiError> {
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

/// Removes `metadata.task_id` (Warden's, not the provider's) from a body,
/// asks for stream usage when `add_usage`, and for the model's own label of
/// the prompt when `embedded_task` is set.
pub(super) fn rewrite_body(
    body: &Bytes,
    add_usage: bool,
    embedded_task: Option<&Task>,
) -> Result<Bytes, ApiError> {
    let mut value: serde_json::Value = serde_json::from_slice(body)
        .map_err(|e| ApiError::new(ErrorCode::InvalidJson, e.to_string()))?;
    if let Some(object) = value.as_object_mut() {
        if add_usage {
            let options = object
                .entry("stream_options")
                .or_insert_with(|| serde_json::json!({}));
            if let Some(options) = options.as_object_mut() {
                options.insert("include_usage".into(), true.into());
            }
        }
        let empty = match object.get_mut("metadata").and_then(|m| m.as_object_mut()) {
            Some(metadata) => {
                metadata.remove("task_id");
                metadata.is_empty()
            }
            None => false,
        };
        if empty {
            object.remove("metadata");
        }
    }
    if let Some(task) = embedded_task {
        embedded_intent::instruct(&mut value, task);
    }
    serde_json::to_vec(&value)
        .map(Bytes::from)
        .map_err(|e| ApiError::internal(e.to_string()))
}
