//! Anthropic's Messages API: a message, or its stream of typed events.

use hyper::{Response, StatusCode};
use serde_json::{json, Value};

use super::{answer_for, answer_json, last_user_text, words_in, Stream};
use crate::http::{json_response, Body};

/// An Anthropic-shaped error.
pub fn error(status: StatusCode, kind: &str, message: &str) -> Response<Body> {
    let body = json!({"type": "error", "error": {"type": kind, "message": message}});
    json_response(status, serde_json::to_vec(&body).unwrap_or_default())
}

pub fn messages(request: &Value, stream: Stream) -> Response<Body> {
    let Some(model) = request["model"].as_str().filter(|m| !m.is_empty()) else {
        return error(
            StatusCode::BAD_REQUEST,
            "invalid_request_error",
            "model: Field required",
        );
    };
    let Some(max_tokens) = request["max_tokens"].as_u64() else {
        return error(
            StatusCode::BAD_REQUEST,
            "invalid_request_error",
            "max_tokens: Field required",
        );
    };
    let messages = request["messages"].as_array().cloned().unwrap_or_default();
    let input_tokens = messages
        .iter()
        .map(|m| words_in(&m["content"]))
        .sum::<u64>()
        + words_in(&request["system"])
        + 3 * messages.len() as u64;
    let prompt = last_user_text(&messages);
    let pieces = answer_for(&prompt, Some(max_tokens));
    let output_tokens = pieces.len() as u64;
    let stop_reason = if (max_tokens as usize) <= pieces.len() {
        "max_tokens"
    } else {
        "end_turn"
    };
    let id = format!("msg_mock{:016x}", input_tokens * 1_000_003 + output_tokens);
    if request["stream"].as_bool() != Some(true) {
        return answer_json(&json!({
            "id": id, "type": "message", "role": "assistant", "model": model,
            "content": [{"type": "text", "text": pieces.concat()}],
            "stop_reason": stop_reason, "stop_sequence": null,
            "usage": {"input_tokens": input_tokens, "output_tokens": output_tokens,
                      "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0}
        }));
    }
    let event = |value: Value| {
        let kind = value["type"].as_str().unwrap_or_default().to_string();
        format!("event: {kind}\ndata: {value}\n\n")
    };
    let mut events = vec![
        event(json!({"type": "message_start", "message": {
            "id": id, "type": "message", "role": "assistant", "model": model, "content": [],
            "stop_reason": null, "stop_sequence": null,
            "usage": {"input_tokens": input_tokens, "output_tokens": 1,
                      "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0}}})),
        event(
            json!({"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}),
        ),
        event(json!({"type": "ping"})),
    ];
    events.extend(pieces.iter().map(|p| {
        event(json!({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": p}}))
    }));
    events.push(event(json!({"type": "content_block_stop", "index": 0})));
    events.push(event(json!({"type": "message_delta",
        "delta": {"stop_reason": stop_reason, "stop_sequence": null},
        "usage": {"output_tokens": output_tokens}})));
    events.push(event(json!({"type": "message_stop"})));
    stream.respond(events)
}
