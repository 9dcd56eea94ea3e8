//! `POST /v1/responses` (OpenAI's Responses API): the last user input is
//! what the chain judges; usage comes in `usage` (plain) or with the
//! `response.completed` event (streamed, always sent).

use std::borrow::Cow;
use std::collections::{BTreeMap, HashSet};

use bytes::Bytes;
use serde_json::Value;

use super::{events, model_of, parse_value, to_bytes, write_event};
use crate::api::shape::{forward_json, metadata_task, ApiShape, Call, Forward};
use crate::chain::StageSlot;
use crate::domain::providers::Dialect;
use crate::domain::ChatMessage;
use crate::embedded_intent::LabelSlot;
use crate::error::{ApiError, ErrorCode};
use crate::guardrails::{self, Guard};
use crate::sse::EventRewrite;
use crate::upstream::{self, Usage};

pub struct Responses;

/// The text of an input item's content: a string, or its text parts.
fn content_text(content: &Value) -> Cow<'_, str> {
    match content {
        Value::String(s) => Cow::Borrowed(s),
        Value::Array(parts) => {
            let texts: Vec<&str> = parts.iter().filter_map(|p| p["text"].as_str()).collect();
            match texts.as_slice() {
                [one] => Cow::Borrowed(one),
                _ => Cow::Owned(texts.join("\n")),
            }
        }
        _ => Cow::Borrowed(""),
    }
}

/// The input's messages: the string as one user message, or each item
/// with a role.
fn input_messages(input: &Value) -> Vec<(&str, Cow<'_, str>)> {
    match input {
        Value::String(s) => vec![("user", Cow::Borrowed(s.as_str()))],
        Value::Array(items) => items
            .iter()
            .filter_map(|i| Some((i["role"].as_str()?, content_text(&i["content"]))))
            .collect(),
        _ => Vec::new(),
    }
}

/// The usage of a streamed answer, in `response.completed`.
fn read_stream_usage(data: &[u8], usage: &mut Option<Usage>) {
    if !data.windows(7).any(|w| w == b"\"usage\"") {
        return;
    }
    #[derive(serde::Deserialize)]
    struct Event {
        response: Option<upstream::UsageOnly>,
    }
    let event = serde_json::from_slice::<Event>(data.trim_ascii()).ok();
    if let Some(found) = event.and_then(|e| e.response?.usage) {
        *usage = Some(found);
    }
}

impl ApiShape for Responses {
    const ENDPOINT: &'static str = "responses";
    const UPSTREAM_PATH: &'static str = "responses";
    const DIALECT: Dialect = Dialect::OpenAi;

    type Request<'a> = Value;

    fn parse(body: &[u8]) -> Result<Value, ApiError> {
        parse_value(body, "a response")
    }

    fn read<'a>(request: &'a Value) -> Result<Call<'a>, ApiError> {
        let model = model_of(request)?;
        let messages = input_messages(&request["input"]);
        let last_user = messages.iter().rev().find(|(role, _)| *role == "user");
        let Some((_, prompt)) = last_user.or(messages.last()) else {
            return Err(ApiError::new(
                ErrorCode::MissingMessages,
                "'input' is required",
            ));
        };
        let words: usize = messages.iter().map(|(_, t)| t.len()).sum();
        let instructions = request["instructions"].as_str().map_or(0, str::len);
        Ok(Call {
            model,
            task_id: metadata_task(request["metadata"].as_object()),
            prompt: prompt.clone(),
            stream: request["stream"].as_bool() == Some(true),
            include_usage: true,
            prompt_tokens: ((words + instructions) / 4 + 4 * messages.len()) as u64,
            completion_cap: request["max_output_tokens"].as_u64(),
        })
    }

    fn messages(request: &Value) -> Vec<ChatMessage> {
        input_messages(&request["input"])
            .into_iter()
            .map(|(role, text)| ChatMessage {
                role: role.into(),
                content: text.into_owned(),
            })
            .collect()
    }

    fn forward_body(
        body: &Bytes,
        request: &Value,
        forward: Forward<'_>,
    ) -> Result<Option<Bytes>, ApiError> {
        let ours = metadata_task(request["metadata"].as_object()).is_some();
        if !ours && forward.output_cap.is_none() {
            return Ok(None);
        }
        forward_json(body, "max_output_tokens", forward.output_cap).map(Some)
    }

    fn apply_rewrite(body: &Bytes, messages: &[ChatMessage]) -> Result<Bytes, ApiError> {
        let mut value = parse_value(body, "a response")?;
        match &mut value["input"] {
            Value::String(s) => {
                if let Some(m) = messages.first() {
                    *s = m.content.clone();
                }
            }
            Value::Array(items) => {
                let with_role = items.iter_mut().filter(|i| i["role"].is_string());
                for (item, message) in with_role.zip(messages) {
                    match &mut item["content"] {
                        Value::Array(parts) => {
                            let mut placed = false;
                            parts.retain_mut(|part| {
                                if !part["text"].is_string() {
                                    return true;
                                }
                                let keep = !placed;
                                if keep {
                                    part["text"] = message.content.clone().into();
                                }
                                placed = true;
                                keep
                            });
                        }
                        content => *content = message.content.clone().into(),
                    }
                }
            }
            _ => {}
        }
        to_bytes(&value)
    }

    fn usage_of(answer: &[u8]) -> Option<Usage> {
        upstream::usage_of(answer)
    }

    fn stream_usage(data: &[u8], usage: &mut Option<Usage>) {
        read_stream_usage(data, usage)
    }

    fn stream_rewrites(_: bool, _: Option<&LabelSlot>) -> Vec<Box<dyn EventRewrite>> {
        Vec::new()
    }

    fn strip_label(answer: Bytes) -> (Bytes, Option<String>) {
        (answer, None)
    }

    async fn screen_answer(
        guardrails: &[StageSlot],
        guard: &Guard,
        answer: Bytes,
    ) -> Result<Bytes, ApiError> {
        let Ok(mut value) = serde_json::from_slice::<Value>(&answer) else {
            return Ok(answer);
        };
        let redacted =
            guardrails::screen_answer_texts(guardrails, guard, output_texts(&value)).await?;
        if redacted.is_empty() {
            return Ok(answer);
        }
        put_output_texts(&mut value, &redacted);
        to_bytes(&value)
    }

    /// Each output message's deltas joined and screened; a redacted one's
    /// text goes in its first delta (later ones emptied) and in every event
    /// that repeats the whole text.
    async fn screen_stream(
        guardrails: &[StageSlot],
        guard: &Guard,
        sse: Bytes,
    ) -> Result<Bytes, ApiError> {
        let text = String::from_utf8_lossy(&sse).into_owned();
        let events = events(&text);
        let mut texts: Vec<(String, String)> = Vec::new();
        for (_, event) in &events {
            let Some(event) = event
                .as_ref()
                .filter(|e| e["type"] == "response.output_text.delta")
            else {
                continue;
            };
            let item = event["item_id"].as_str().unwrap_or_default();
            let delta = event["delta"].as_str().unwrap_or_default();
            match texts.iter_mut().find(|(id, _)| id == item) {
                Some((_, text)) => text.push_str(delta),
                None => texts.push((item.to_string(), delta.to_string())),
            }
        }
        let redacted = guardrails::screen_answer_texts(guardrails, guard, texts).await?;
        if redacted.is_empty() {
            return Ok(sse);
        }
        let mut placed: HashSet<String> = HashSet::new();
        let mut out = String::with_capacity(sse.len());
        for (raw, event) in events {
            let Some(mut event) = event else {
                out.push_str(raw);
                continue;
            };
            let item = event["item_id"].as_str().map(String::from);
            let clean = item.as_ref().and_then(|i| redacted.get(i));
            match (event["type"].as_str().unwrap_or_default(), clean) {
                ("response.output_text.delta", Some(clean)) => {
                    let first = placed.insert(item.unwrap_or_default());
                    event["delta"] = if first { clean.as_str() } else { "" }.into();
                }
                ("response.output_text.done", Some(clean)) => event["text"] = clean.as_str().into(),
                ("response.content_part.done", Some(clean)) => {
                    event["part"]["text"] = clean.as_str().into()
                }
                ("response.output_item.done", _) => {
                    let mut wrapped = serde_json::json!({ "output": [event["item"].take()] });
                    put_output_texts(&mut wrapped, &redacted);
                    event["item"] = wrapped["output"][0].take();
                }
                ("response.completed", _) => put_output_texts(&mut event["response"], &redacted),
                _ => {
                    out.push_str(raw);
                    continue;
                }
            }
            write_event(&mut out, raw, &event);
        }
        Ok(Bytes::from(out))
    }
}

/// Each output message's text (its `output_text` parts joined), by item id.
fn output_texts(response: &Value) -> Vec<(String, String)> {
    let items = response["output"].as_array().into_iter().flatten();
    items
        .filter(|item| item["type"] == "message")
        .map(|item| {
            let parts = item["content"].as_array().into_iter().flatten();
            let text: String = parts.filter_map(|p| p["text"].as_str()).collect();
            (item["id"].as_str().unwrap_or_default().to_string(), text)
        })
        .collect()
}

/// Puts redacted texts into the output messages: the first text part takes
/// the whole text, the others are emptied.
fn put_output_texts(response: &mut Value, redacted: &BTreeMap<String, String>) {
    for item in response["output"].as_array_mut().into_iter().flatten() {
        let Some(clean) = item["id"].as_str().and_then(|id| redacted.get(id)) else {
            continue;
        };
        let mut first = true;
        for part in item["content"].as_array_mut().into_iter().flatten() {
            if part["text"].is_string() {
                part["text"] = if first { clean.as_str() } else { "" }.into();
                first = false;
            }
        }
    }
}
