//! Tenant guardrails: after the five stages, each guardrail of the tenant's
//! policy sees the messages before they are forwarded (allow, deny, or
//! rewrite them) and a complete answer before it is returned (allow, deny,
//! or redact it). They run in policy order; a rewrite is what the next one
//! sees. A failing guardrail fails the call closed unless its policy says
//! `fail_open`.
//!
//! Streamed answers pass through unscreened for now (screening them needs
//! buffering or a per-chunk contract).

use bytes::Bytes;

use crate::chain::StageSlot;
use crate::error::ApiError;
use crate::runtime::bindings::guardrail::{
    CallContext, Message, RequestDecision, ResponseDecision,
};
use crate::runtime::bindings::types;
use crate::runtime::PluginError;
use crate::state::model::User;
use crate::token::Claims;

/// What a guardrail is told about a call.
pub fn context(
    claims: &Claims,
    user: &User,
    task_id: &str,
    endpoint: &str,
    model: &str,
) -> CallContext {
    CallContext {
        identity: types::Identity {
            tenant_id: claims.tid.clone(),
            user_id: claims.sub.clone(),
            role: crate::pipeline::wit_role(user.role),
        },
        task_id: task_id.to_string(),
        endpoint: endpoint.to_string(),
        model: model.to_string(),
    }
}

/// Longest refusal reason passed on to the caller.
const MAX_REASON_BYTES: usize = 1 << 10;
/// Most text a rewrite or redaction may return: a guardrail shrinks or edits
/// what it is given, it does not inflate it (the cap keeps a faulty one from
/// sending megabytes upstream or to the caller).
const fn max_output(input: usize) -> usize {
    input * 2 + (64 << 10)
}

fn denied(slot: &StageSlot, reason: &str) -> ApiError {
    let mut end = reason.len().min(MAX_REASON_BYTES);
    while !reason.is_char_boundary(end) {
        end -= 1;
    }
    ApiError::forbidden(
        "guardrail_denied",
        format!("{} (guardrail '{}')", &reason[..end], slot.plugin.name()),
    )
}

fn oversized(slot: &StageSlot, got: usize, cap: usize) -> ApiError {
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
            tracing::warn!(error = %e, "guardrail failed open");
            Ok(None)
        }
        Err(e) => Err(ApiError::plugin_failed(e.to_string())),
    }
}

/// Runs every guardrail's `on-request`; returns the messages to forward when
/// any guardrail rewrote them.
pub async fn screen_request(
    guardrails: &[StageSlot],
    context: &CallContext,
    original: Vec<Message>,
) -> Result<Option<Vec<Message>>, ApiError> {
    let mut messages = original;
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
                return Err(ApiError::plugin_failed(format!(
                    "guardrail '{}' rewrote {} messages into {}; it must keep their number",
                    slot.plugin.name(),
                    messages.len(),
                    next.len()
                )))
            }
        }
    }
    Ok(rewritten.then_some(messages))
}

/// Puts rewritten message texts into the request body (same order).
pub fn apply_rewrite(body: &Bytes, messages: &[Message]) -> Result<Bytes, ApiError> {
    let mut value: serde_json::Value = serde_json::from_slice(body)
        .map_err(|e| ApiError::bad_request("invalid_json", e.to_string()))?;
    if let Some(list) = value.get_mut("messages").and_then(|m| m.as_array_mut()) {
        for (slot, message) in list.iter_mut().zip(messages) {
            slot["content"] = message.content.clone().into();
        }
    }
    serde_json::to_vec(&value)
        .map(Bytes::from)
        .map_err(|e| ApiError::internal(e.to_string()))
}

/// Runs every guardrail's `on-response` on each choice's text of a complete
/// chat completion; returns the body to send (rewritten when redacted).
pub async fn screen_response(
    guardrails: &[StageSlot],
    context: &CallContext,
    body: Bytes,
) -> Result<Bytes, ApiError> {
    let Ok(mut value) = serde_json::from_slice::<serde_json::Value>(&body) else {
        return Ok(body); // not JSON: nothing a guardrail could read
    };
    let mut redacted = false;
    let choices = value
        .get_mut("choices")
        .and_then(|c| c.as_array_mut())
        .map(std::mem::take)
        .unwrap_or_default();
    let mut screened = Vec::with_capacity(choices.len());
    for mut choice in choices {
        if let Some(mut text) = choice["message"]["content"].as_str().map(str::to_string) {
            for slot in guardrails {
                let Some(decision) = tolerate(slot, slot.plugin.on_response(context, &text).await)?
                else {
                    continue;
                };
                match decision {
                    ResponseDecision::Allow => {}
                    ResponseDecision::Deny(reason) => return Err(denied(slot, &reason)),
                    ResponseDecision::Redact(clean) => {
                        let cap = max_output(text.len());
                        if clean.len() > cap {
                            return Err(oversized(slot, clean.len(), cap));
                        }
                        text = clean;
                        redacted = true;
                    }
                }
            }
            choice["message"]["content"] = text.into();
        }
        screened.push(choice);
    }
    if !redacted {
        return Ok(body);
    }
    value["choices"] = screened.into();
    serde_json::to_vec(&value)
        .map(Bytes::from)
        .map_err(|e| ApiError::internal(e.to_string()))
}
