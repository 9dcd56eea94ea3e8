//! Tenant guardrails: after the five stages, each guardrail of the tenant's
//! policy sees the messages before they are forwarded (allow, deny, or
//! rewrite them) and a complete answer before it is returned (allow, deny,
//! or redact it). They run in policy order; a rewrite is what the next one
//! sees. A failing guardrail fails the call closed unless its policy says
//! `fail_open`.
//!
//! A streamed answer is screened too, unless the tenant's policy sets
//! `screen_streamed_answers = false`: the stream is then held until it is
//! complete, its text assembled per choice and screened like a complete
//! answer, and sent as the same SSE events (a redaction puts the new text in
//! each choice's first content delta and empties the others). That costs the
//! caller the time to the first token; a tenant that prefers speed turns it
//! off and gets its requests screened only.

use std::collections::BTreeMap;

use bytes::Bytes;

use crate::chain::StageSlot;
use crate::domain::ChatMessage;
use crate::error::{ApiError, ErrorCode};
use crate::runtime::bindings::guardrail::{
    CallContext, Message, RequestDecision, ResponseDecision,
};
use crate::runtime::bindings::types;
use crate::runtime::PluginError;
use crate::state::model::User;
use crate::token::Claims;

/// What a call's guardrails are told about it, built once per call.
#[derive(Clone)]
pub struct Guard(CallContext);

/// What a guardrail is told about a call.
pub fn context(claims: &Claims, user: &User, task_id: &str, endpoint: &str, model: &str) -> Guard {
    Guard(CallContext {
        identity: types::Identity {
            tenant_id: claims.tid.clone(),
            user_id: claims.sub.clone(),
            role: user.role.into(),
        },
        task_id: task_id.to_string(),
        endpoint: endpoint.to_string(),
        model: model.to_string(),
    })
}

/// Longest refusal reason passed on to the caller.
const MAX_REASON_BYTES: usize = 1 << 10;
/// Most text a rewrite or redaction may return: a guardrail shrinks or edits
/// what it is given, it does not inflate it (the cap keeps a faulty one from
/// sending megabytes upstream or to the caller).
const fn max_output(input: usize) -> usize {
    input * 2 + (64 << 10)
}

/// A guardrail's refusal, its reason cut to a bound (taken, not refused).
fn denied(slot: &StageSlot, reason: &str) -> ApiError {
    slot.plugin.output_accepted();
    let mut end = reason.len().min(MAX_REASON_BYTES);
    while !reason.is_char_boundary(end) {
        end -= 1;
    }
    ApiError::new(
        ErrorCode::GuardrailDenied,
        format!("{} (guardrail '{}')", &reason[..end], slot.plugin.name()),
    )
}

fn oversized(slot: &StageSlot, got: usize, cap: usize) -> ApiError {
    slot.plugin.output_refused();
    ApiError::plugin_failed(format!(
        "guardrail '{}' returned {got} bytes, more than its cap of {cap}",
        slot.plugin.name()
    ))
}

fn text_len(messages: &[Message]) -> usize {
    messages
        .iter()
        .map(|m| m.role.len() + m.content.len())
        .sum()
}

/// A guardrail's answer; `None` when it failed and its policy lets the
/// call go on without it (`fail_open`), an error when it fails closed.
fn tolerate<T>(slot: &StageSlot, result: Result<T, PluginError>) -> Result<Option<T>, ApiError> {
    match result {
        Ok(decision) => Ok(Some(decision)),
        Err(e) if slot.fail_open => {
            crate::throttled!(warn, error = %e, "guardrail failed open");
            Ok(None)
        }
        Err(e) => Err(ApiError::plugin_failed(e.to_string())),
    }
}

/// Runs every guardrail's `on-request`; returns the messages to forward when
/// any guardrail rewrote them.
pub async fn screen_request(
    guardrails: &[StageSlot],
    Guard(context): &Guard,
    original: Vec<ChatMessage>,
) -> Result<Option<Vec<ChatMessage>>, ApiError> {
    let mut messages: Vec<Message> = original.into_iter().map(Message::from).collect();
    let mut rewritten = false;
    for slot in guardrails {
        let Some(decision) = tolerate(slot, slot.plugin.on_request(context, &messages).await)?
        else {
            continue;
        };
        match decision {
            RequestDecision::Allow => {}
            RequestDecision::Deny(reason) => return Err(denied(slot, &reason)),
            RequestDecision::Rewrite(next) if next.len() == messages.len() => {
                let cap = max_output(text_len(&messages));
                if text_len(&next) > cap {
                    return Err(oversized(slot, text_len(&next), cap));
                }
                messages = next;
                rewritten = true;
            }
            RequestDecision::Rewrite(next) => {
                slot.plugin.output_refused();
                return Err(ApiError::plugin_failed(format!(
                    "guardrail '{}' rewrote {} messages into {}; it must keep their number",
                    slot.plugin.name(),
                    messages.len(),
                    next.len()
                )));
            }
        }
        slot.plugin.output_accepted();
    }
    Ok(rewritten.then(|| messages.into_iter().map(ChatMessage::from).collect()))
}

/// Runs every guardrail's `on-response` on one answer text; returns the
/// text to send when any guardrail redacted it.
async fn screen_text(
    guardrails: &[StageSlot],
    context: &CallContext,
    original: &str,
) -> Result<Option<String>, ApiError> {
    let mut text: Option<String> = None;
    for slot in guardrails {
        let current = text.as_deref().unwrap_or(original);
        let Some(decision) = tolerate(slot, slot.plugin.on_response(context, current).await)?
        else {
            continue;
        };
        match decision {
            ResponseDecision::Allow => {}
            ResponseDecision::Deny(reason) => return Err(denied(slot, &reason)),
            ResponseDecision::Redact(clean) => {
                let cap = max_output(current.len());
                if clean.len() > cap {
                    return Err(oversized(slot, clean.len(), cap));
                }
                text = Some(clean);
            }
        }
        slot.plugin.output_accepted();
    }
    Ok(text)
}

/// Runs every guardrail's `on-response` on one answer text (of any API
/// shape); returns the text to send when any guardrail redacted it.
pub async fn screen_answer_text(
    guardrails: &[StageSlot],
    Guard(context): &Guard,
    text: &str,
) -> Result<Option<String>, ApiError> {
    screen_text(guardrails, context, text).await
}

/// Screens each of an answer's texts (by choice, block or output item);
/// returns the redacted ones by the same keys.
pub async fn screen_answer_texts<K: Ord>(
    guardrails: &[StageSlot],
    guard: &Guard,
    texts: impl IntoIterator<Item = (K, String)>,
) -> Result<BTreeMap<K, String>, ApiError> {
    let mut redacted = BTreeMap::new();
    for (key, text) in texts {
        if let Some(clean) = screen_answer_text(guardrails, guard, &text).await? {
            redacted.insert(key, clean);
        }
    }
    Ok(redacted)
}

/// Runs every guardrail's `on-response` on each choice's text of a complete
/// chat completion; returns the body to send (rewritten when redacted).
pub async fn screen_response(
    guardrails: &[StageSlot],
    guard: &Guard,
    body: Bytes,
) -> Result<Bytes, ApiError> {
    screen_json_answer(guardrails, guard, body, |v| {
        let choices = v["choices"].as_array_mut().into_iter().flatten();
        choices.map(|c| &mut c["message"]["content"]).collect()
    })
    .await
}

/// A complete JSON answer of any shape with each of its text slots (what
/// `slots` finds; strings only are read) screened; the body as it came when
/// nothing was redacted or it is not JSON.
pub async fn screen_json_answer(
    guardrails: &[StageSlot],
    guard: &Guard,
    body: Bytes,
    slots: for<'v> fn(&'v mut serde_json::Value) -> Vec<&'v mut serde_json::Value>,
) -> Result<Bytes, ApiError> {
    let Ok(mut value) = serde_json::from_slice::<serde_json::Value>(&body) else {
        return Ok(body); // not JSON: nothing a guardrail could read
    };
    let texts: Vec<(usize, String)> = slots(&mut value)
        .into_iter()
        .enumerate()
        .filter_map(|(i, slot)| Some((i, slot.as_str()?.to_string())))
        .collect();
    let mut redacted = screen_answer_texts(guardrails, guard, texts).await?;
    if redacted.is_empty() {
        return Ok(body);
    }
    for (i, slot) in slots(&mut value).into_iter().enumerate() {
        if let Some(clean) = redacted.remove(&i) {
            *slot = clean.into();
        }
    }
    serde_json::to_vec(&value)
        .map(Bytes::from)
        .map_err(|e| ApiError::internal(e.to_string()))
}

/// Runs every guardrail's `on-response` on each choice's text of a whole
/// SSE stream; returns the stream to send (its content deltas rewritten
/// when redacted).
pub async fn screen_stream(
    guardrails: &[StageSlot],
    guard: &Guard,
    sse: Bytes,
) -> Result<Bytes, ApiError> {
    let redacted = screen_answer_texts(guardrails, guard, sse::assemble(&sse)).await?;
    Ok(if redacted.is_empty() {
        sse
    } else {
        sse::replace_content(&sse, &redacted)
    })
}

/// Reading and rewriting the content deltas of a chat completion stream.
mod sse {
    use std::collections::BTreeMap;

    use bytes::Bytes;
    use serde_json::Value;

    /// The JSON of each `data:` event, with the event's text, in order;
    /// `None` for events that are not JSON (`[DONE]`, comments).
    fn events(sse: &[u8]) -> Vec<(&str, Option<Value>)> {
        let text = std::str::from_utf8(sse).unwrap_or_default();
        text.split_inclusive("\n\n")
            .map(|event| {
                let data = event
                    .lines()
                    .find_map(|l| l.strip_prefix("data:"))
                    .map(str::trim_start);
                (event, data.and_then(|d| serde_json::from_str(d).ok()))
            })
            .collect()
    }

    fn deltas(event: &Value) -> impl Iterator<Item = (u64, &str)> {
        event["choices"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|c| Some((c["index"].as_u64()?, c["delta"]["content"].as_str()?)))
    }

    /// Each choice's text: its content deltas joined.
    pub fn assemble(sse: &[u8]) -> BTreeMap<u64, String> {
        let mut texts: BTreeMap<u64, String> = BTreeMap::new();
        for (_, event) in events(sse) {
            for (index, content) in event.iter().flat_map(deltas) {
                texts.entry(index).or_default().push_str(content);
            }
        }
        texts
    }

    /// The same events, with each redacted choice's whole new text in its
    /// first content delta and its later content deltas emptied.
    pub fn replace_content(sse: &[u8], redacted: &BTreeMap<u64, String>) -> Bytes {
        let mut placed = BTreeMap::new();
        let mut out = String::with_capacity(sse.len());
        for (raw, event) in events(sse) {
            let Some(mut event) = event else {
                out.push_str(raw);
                continue;
            };
            let mut changed = false;
            for choice in event["choices"].as_array_mut().into_iter().flatten() {
                let Some(index) = choice["index"].as_u64() else {
                    continue;
                };
                let (Some(text), Some(_)) =
                    (redacted.get(&index), choice["delta"]["content"].as_str())
                else {
                    continue;
                };
                let first = placed.insert(index, ()).is_none();
                choice["delta"]["content"] = if first { text.as_str() } else { "" }.into();
                changed = true;
            }
            if changed {
                out.push_str("data: ");
                out.push_str(&event.to_string());
                out.push_str("\n\n");
            } else {
                out.push_str(raw);
            }
        }
        Bytes::from(out)
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        const STREAM: &str = "data: {\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"\"}}]}\n\n\
            data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"mail ali@\"}}]}\n\n\
            data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"example.com now\"}}]}\n\n\
            data: {\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}]}\n\n\
            data: [DONE]\n\n";

        #[test]
        fn a_choices_text_is_its_deltas_joined() {
            let texts = assemble(STREAM.as_bytes());
            assert_eq!(texts[&0], "mail ali@example.com now");
        }

        #[test]
        fn a_redaction_replaces_the_deltas_and_keeps_the_events() {
            let redacted = BTreeMap::from([(0, "mail [redacted] now".to_string())]);
            let out = replace_content(STREAM.as_bytes(), &redacted);
            let out = std::str::from_utf8(&out).unwrap();
            assert_eq!(assemble(out.as_bytes())[&0], "mail [redacted] now");
            assert_eq!(out.matches("data: ").count(), 5, "{out}");
            assert!(out.ends_with("data: [DONE]\n\n"), "{out}");
            assert!(out.contains("\"finish_reason\":\"stop\""), "{out}");
            assert!(!out.contains("example.com"), "{out}");
        }
    }
}
