//! The tenant's guardrails over Messages: the texts of the request's
//! messages, and the text blocks of the answer, whole or streamed.

use std::collections::BTreeMap;

use bytes::Bytes;
use serde_json::Value;

use crate::chain::StageSlot;
use crate::domain::ChatMessage;
use crate::error::{ApiError, ErrorCode};
use crate::guardrails::{self, Guard};
use crate::translate::event_json;

fn parse(body: &[u8]) -> Result<Value, ApiError> {
    serde_json::from_slice(body).map_err(|e| ApiError::new(ErrorCode::InvalidJson, e.to_string()))
}

fn to_bytes(value: &Value) -> Result<Bytes, ApiError> {
    serde_json::to_vec(value)
        .map(Bytes::from)
        .map_err(|e| ApiError::internal(e.to_string()))
}

/// Puts rewritten message texts into the body (same order): a string
/// content becomes the new text; in a list of blocks, the first text block
/// takes it and the other text blocks go (images and tool blocks stay).
pub fn apply_rewrite(body: &Bytes, messages: &[ChatMessage]) -> Result<Bytes, ApiError> {
    let mut value = parse(body)?;
    if let Some(list) = value.get_mut("messages").and_then(|m| m.as_array_mut()) {
        for (slot, message) in list.iter_mut().zip(messages) {
            match slot.get_mut("content") {
                Some(Value::Array(blocks)) => {
                    let mut placed = false;
                    blocks.retain_mut(|block| {
                        if block["type"] != "text" {
                            return true;
                        }
                        if placed {
                            return false;
                        }
                        placed = true;
                        block["text"] = message.content.clone().into();
                        true
                    });
                }
                Some(content) => *content = message.content.clone().into(),
                None => {}
            }
        }
    }
    to_bytes(&value)
}

/// A complete message with each text block screened.
pub async fn answer(
    guardrails: &[StageSlot],
    guard: &Guard,
    body: Bytes,
) -> Result<Bytes, ApiError> {
    guardrails::screen_json_answer(guardrails, guard, body, |v| {
        let blocks = v["content"].as_array_mut().into_iter().flatten();
        let text_blocks = blocks.filter(|b| b["type"] == "text");
        text_blocks.map(|b| &mut b["text"]).collect()
    })
    .await
}

/// A whole stream with each text block screened: a redacted block's new
/// text goes in its first delta, its later deltas are emptied.
pub async fn stream(
    guardrails: &[StageSlot],
    guard: &Guard,
    sse: Bytes,
) -> Result<Bytes, ApiError> {
    let text = String::from_utf8_lossy(&sse).into_owned();
    let events: Vec<(&str, Option<Value>)> = text
        .split_inclusive("\n\n")
        .map(|e| (e, event_json(e.as_bytes())))
        .collect();
    let mut blocks: BTreeMap<u64, String> = BTreeMap::new();
    for (_, event) in &events {
        if let Some((index, delta)) = event.as_ref().and_then(text_delta) {
            blocks.entry(index).or_default().push_str(delta);
        }
    }
    let mut redacted = guardrails::screen_answer_texts(guardrails, guard, blocks).await?;
    if redacted.is_empty() {
        return Ok(sse);
    }
    let mut out = String::with_capacity(sse.len());
    for (raw, event) in events {
        let Some(mut event) = event.filter(|e| text_delta(e).is_some()) else {
            out.push_str(raw);
            continue;
        };
        let index = event["index"].as_u64().unwrap_or(0);
        let Some(clean) = redacted.get_mut(&index) else {
            out.push_str(raw);
            continue;
        };
        // The whole text once, then empty deltas.
        event["delta"]["text"] = std::mem::take(clean).into();
        out.push_str("event: content_block_delta\ndata: ");
        out.push_str(&event.to_string());
        out.push_str("\n\n");
    }
    Ok(Bytes::from(out))
}

fn text_delta(event: &Value) -> Option<(u64, &str)> {
    if event["type"] != "content_block_delta" || event["delta"]["type"] != "text_delta" {
        return None;
    }
    Some((event["index"].as_u64()?, event["delta"]["text"].as_str()?))
}
