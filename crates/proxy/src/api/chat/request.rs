//! The client's chat-completion request: parsing what Warden reads of it,
//! and the body sent on to the provider.

use std::borrow::Cow;

use bytes::Bytes;
use serde::Deserialize;

use super::super::shape::Call;
use crate::domain::ChatMessage;
use crate::embedded_intent;
use crate::error::{ApiError, ErrorCode};
use crate::state::model::Task;

#[derive(Deserialize)]
pub struct ChatRequest<'a> {
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

impl ChatRequest<'_> {
    /// The model, the prompt the chain judges (the last user message, or
    /// the last message), the estimate and the task the body names.
    pub(super) fn call(&self) -> Result<Call<'_>, ApiError> {
        let model = self.model.as_deref().filter(|m| !m.is_empty());
        let missing_model = || ApiError::new(ErrorCode::MissingModel, "'model' is required");
        let model = model.ok_or_else(missing_model)?;
        let messages = self.messages.as_deref().filter(|m| !m.is_empty());
        let messages = messages.ok_or_else(|| {
            ApiError::new(
                ErrorCode::MissingMessages,
                "'messages' must be a non-empty array",
            )
        })?;
        let task_id = self.metadata.as_ref().and_then(|m| m.get("task_id"));
        let task_id = task_id.and_then(|t| t.as_str()).filter(|t| !t.is_empty());
        let last_user = messages.iter().rev().find(|m| m.role == "user");
        let prompt = last_user.unwrap_or(&messages[messages.len() - 1]).text();

        Ok(Call {
            model,
            task_id,
            prompt,
            stream: self.stream,
            include_usage: self
                .stream_options
                .as_ref()
                .is_some_and(|o| o.include_usage),
            prompt_tokens: estimate_prompt_tokens(messages),
            completion_cap: self.max_completion_tokens.or(self.max_tokens),
        })
    }
}

#[derive(Deserialize)]
pub(super) struct StreamOptions {
    #[serde(default)]
    pub(super) include_usage: bool,
}

#[derive(Deserialize)]
pub(crate) struct Message {
    #[serde(default)]
    pub(crate) role: String,
    #[serde(default)]
    pub(crate) content: serde_json::Value,
}

impl Message {
    /// The text of a message: a plain string or the `text` parts of an array.
    pub(crate) fn text(&self) -> Cow<'_, str> {
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

/// What the guardrails see of chat-style messages: role and text.
pub(crate) fn guardrail_messages(messages: Option<&[Message]>) -> Vec<crate::domain::ChatMessage> {
    messages
        .unwrap_or_default()
        .iter()
        .map(|m| crate::domain::ChatMessage {
            role: m.role.clone(),
            content: m.text().into_owned(),
        })
        .collect()
}

/// Prompt tokens: about four bytes each, plus per-message overhead.
pub(crate) fn estimate_prompt_tokens(messages: &[Message]) -> u64 {
    messages.iter().map(|m| m.text().len() as u64 / 4 + 4).sum()
}

/// Removes `metadata.task_id` (Warden's, not the provider's) from a body,
/// asks for stream usage when `add_usage`, caps the answer at `output_cap`
/// (in the client's own field, else `max_tokens`), and asks for the model's
/// own label of the prompt when `embedded_task` is set.
pub(super) fn rewrite_body(
    body: &Bytes,
    add_usage: bool,
    output_cap: Option<u64>,
    embedded_task: Option<&Task>,
) -> Result<Bytes, ApiError> {
    let mut value: serde_json::Value = serde_json::from_slice(body)
        .map_err(|e| ApiError::new(ErrorCode::InvalidJson, e.to_string()))?;
    if let Some(object) = value.as_object_mut() {
        if let Some(cap) = output_cap {
            let field = if object.contains_key("max_completion_tokens") {
                "max_completion_tokens"
            } else {
                "max_tokens"
            };
            object.insert(field.into(), cap.into());
        }
        if add_usage {
            // Missing, `null` or anything but an object: Warden's own.
            let options = object
                .entry("stream_options")
                .or_insert_with(|| serde_json::json!({}));
            if !options.is_object() {
                *options = serde_json::json!({});
            }
            if let Some(options) = options.as_object_mut() {
                options.insert("include_usage".into(), true.into());
            }
        }
        super::super::shape::strip_task_id(object);
    }
    if let Some(task) = embedded_task {
        embedded_intent::instruct(&mut value, task);
    }
    serde_json::to_vec(&value)
        .map(Bytes::from)
        .map_err(|e| ApiError::internal(e.to_string()))
}

/// Puts rewritten message texts into the request body (same order).
pub(super) fn apply_rewrite(body: &Bytes, messages: &[ChatMessage]) -> Result<Bytes, ApiError> {
    let mut value: serde_json::Value = serde_json::from_slice(body)
        .map_err(|e| ApiError::new(ErrorCode::InvalidJson, e.to_string()))?;
    if let Some(list) = value.get_mut("messages").and_then(|m| m.as_array_mut()) {
        for (slot, message) in list.iter_mut().zip(messages) {
            slot["content"] = message.content.clone().into();
        }
    }
    serde_json::to_vec(&value)
        .map(Bytes::from)
        .map_err(|e| ApiError::internal(e.to_string()))
}
