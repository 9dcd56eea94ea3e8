//! OpenAI's shapes: chat completions, responses, embeddings, completions.

use serde_json::{json, Value};

use super::{
    answer_for, answer_json, asked_for_label, error, label_for, last_user_text, words_in, Stream,
};
use crate::http::Body;
use hyper::{Response, StatusCode};

const CREATED: u64 = 1_700_000_000;

fn model_of(request: &Value) -> Option<&str> {
    request["model"].as_str().filter(|m| !m.is_empty())
}

fn missing_model() -> Response<Body> {
    error(
        StatusCode::BAD_REQUEST,
        "you must provide a model parameter",
    )
}

pub fn chat(request: &Value, stream: Stream) -> Response<Body> {
    let Some(model) = model_of(request) else {
        return missing_model();
    };
    let messages = request["messages"].as_array().cloned().unwrap_or_default();
    let max_tokens = request["max_completion_tokens"]
        .as_u64()
        .or(request["max_tokens"].as_u64());
    let prompt_tokens: u64 = messages.iter().map(words_in).sum::<u64>() + 3 * messages.len() as u64;
    let prompt = last_user_text(&messages);
    let mut pieces = answer_for(&prompt, max_tokens);
    if asked_for_label(&messages) {
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
    let finish = if max_tokens.is_some_and(|m| (m as usize) <= pieces.len()) {
        "length"
    } else {
        "stop"
    };
    if request["stream"].as_bool() != Some(true) {
        return answer_json(&json!({
            "id": id, "object": "chat.completion", "created": CREATED, "model": model,
            "choices": [{"index": 0, "message": {"role": "assistant", "content": pieces.concat(), "refusal": null},
                         "logprobs": null, "finish_reason": finish}],
            "usage": usage, "system_fingerprint": "fp_warden_mock"
        }));
    }
    let include_usage = request["stream_options"]["include_usage"].as_bool() == Some(true);
    let chunk = |delta: Value, finish: Option<&str>| {
        let mut c = json!({"id": id, "object": "chat.completion.chunk", "created": CREATED, "model": model,
                            "system_fingerprint": "fp_warden_mock",
                            "choices": [{"index": 0, "delta": delta, "logprobs": null, "finish_reason": finish}]});
        if include_usage {
            c["usage"] = Value::Null;
        }
        format!("data: {c}\n\n")
    };
    let mut events = vec![chunk(json!({"role": "assistant", "content": ""}), None)];
    events.extend(pieces.iter().map(|p| chunk(json!({"content": p}), None)));
    events.push(chunk(json!({}), Some(finish)));
    if include_usage {
        let c = json!({"id": id, "object": "chat.completion.chunk", "created": CREATED, "model": model,
                        "system_fingerprint": "fp_warden_mock", "choices": [], "usage": usage});
        events.push(format!("data: {c}\n\n"));
    }
    events.push("data: [DONE]\n\n".into());
    stream.respond(events)
}

/// The text of a Responses `input`: a string, or its items' texts.
fn input_text(input: &Value) -> (String, u64) {
    match input {
        Value::String(s) => (s.clone(), words_in(input)),
        Value::Array(items) => {
            let last_user = items.iter().rev().find(|i| i["role"] == "user");
            let text = last_user.map(|i| match &i["content"] {
                Value::String(s) => s.clone(),
                Value::Array(parts) => parts
                    .iter()
                    .filter_map(|p| p["text"].as_str())
                    .collect::<Vec<_>>()
                    .join(" "),
                _ => String::new(),
            });
            let words = items.iter().map(|i| words_in(&i["content"])).sum();
            (text.unwrap_or_default(), words)
        }
        _ => (String::new(), 0),
    }
}

pub fn responses(request: &Value, stream: Stream) -> Response<Body> {
    let Some(model) = model_of(request) else {
        return missing_model();
    };
    let (prompt, words) = input_text(&request["input"]);
    let instructions = words_in(&request["instructions"]);
    let pieces = answer_for(&prompt, request["max_output_tokens"].as_u64());
    let text = pieces.concat();
    let (input_tokens, output_tokens) = (words + instructions + 3, pieces.len() as u64);
    let id = format!("resp_mock{:016x}", input_tokens * 1_000_003 + output_tokens);
    let item_id = format!("msg_mock{:016x}", input_tokens);
    let usage = json!({"input_tokens": input_tokens, "input_tokens_details": {"cached_tokens": 0},
                       "output_tokens": output_tokens, "output_tokens_details": {"reasoning_tokens": 0},
                       "total_tokens": input_tokens + output_tokens});
    let message = |text: &str, status: &str| {
        json!({"id": item_id, "type": "message", "status": status, "role": "assistant",
               "content": [{"type": "output_text", "text": text, "annotations": []}]})
    };
    let response = |status: &str, output: Value, usage: Value| {
        json!({"id": id, "object": "response", "created_at": CREATED, "status": status,
               "model": model, "output": output, "usage": usage, "error": null,
               "incomplete_details": null, "instructions": request["instructions"],
               "metadata": request.get("metadata").cloned().unwrap_or_else(|| json!({})),
               "parallel_tool_calls": true, "temperature": 1.0, "tool_choice": "auto",
               "tools": [], "top_p": 1.0, "text": {"format": {"type": "text"}}})
    };
    if request["stream"].as_bool() != Some(true) {
        return answer_json(&response(
            "completed",
            json!([message(&text, "completed")]),
            usage,
        ));
    }
    let mut seq = 0u64;
    let mut events = Vec::new();
    let mut event = |mut value: Value| {
        value["sequence_number"] = seq.into();
        seq += 1;
        let kind = value["type"].as_str().unwrap_or_default().to_string();
        events.push(format!("event: {kind}\ndata: {value}\n\n"));
    };
    event(
        json!({"type": "response.created", "response": response("in_progress", json!([]), Value::Null)}),
    );
    event(
        json!({"type": "response.in_progress", "response": response("in_progress", json!([]), Value::Null)}),
    );
    event(
        json!({"type": "response.output_item.added", "output_index": 0,
                 "item": {"id": item_id, "type": "message", "status": "in_progress", "role": "assistant", "content": []}}),
    );
    event(
        json!({"type": "response.content_part.added", "item_id": item_id, "output_index": 0, "content_index": 0,
                 "part": {"type": "output_text", "text": "", "annotations": []}}),
    );
    for piece in &pieces {
        event(
            json!({"type": "response.output_text.delta", "item_id": item_id, "output_index": 0,
                     "content_index": 0, "delta": piece, "logprobs": []}),
        );
    }
    event(
        json!({"type": "response.output_text.done", "item_id": item_id, "output_index": 0,
                 "content_index": 0, "text": text, "logprobs": []}),
    );
    event(
        json!({"type": "response.content_part.done", "item_id": item_id, "output_index": 0, "content_index": 0,
                 "part": {"type": "output_text", "text": text, "annotations": []}}),
    );
    event(
        json!({"type": "response.output_item.done", "output_index": 0, "item": message(&text, "completed")}),
    );
    event(json!({"type": "response.completed",
                 "response": response("completed", json!([message(&text, "completed")]), usage)}));
    stream.respond(events)
}

pub fn embeddings(request: &Value) -> Response<Body> {
    let Some(model) = model_of(request) else {
        return missing_model();
    };
    let inputs: Vec<String> = match &request["input"] {
        Value::String(s) => vec![s.clone()],
        Value::Array(list) => list
            .iter()
            .map(|i| i.as_str().map_or_else(|| i.to_string(), String::from))
            .collect(),
        _ => return error(StatusCode::BAD_REQUEST, "'input' is required"),
    };
    let dimensions = request["dimensions"].as_u64().unwrap_or(8) as usize;
    // The SDKs ask for base64 (little-endian f32s) by default.
    let base64 = request["encoding_format"] == "base64";
    let data: Vec<Value> = inputs
        .iter()
        .enumerate()
        .map(|(index, text)| {
            // Deterministic: each component from the text's bytes.
            let vector: Vec<f64> = (0..dimensions)
                .map(|d| {
                    let sum: u64 = text
                        .bytes()
                        .enumerate()
                        .map(|(i, b)| (b as u64) * (i as u64 + d as u64 + 1))
                        .sum();
                    ((sum % 2000) as f64 / 1000.0) - 1.0
                })
                .collect();
            let embedding = if base64 {
                let bytes: Vec<u8> = vector
                    .iter()
                    .flat_map(|v| (*v as f32).to_le_bytes())
                    .collect();
                json!(base64::Engine::encode(
                    &base64::engine::general_purpose::STANDARD,
                    bytes
                ))
            } else {
                json!(vector)
            };
            json!({"object": "embedding", "index": index, "embedding": embedding})
        })
        .collect();
    let tokens: u64 = inputs
        .iter()
        .map(|t| t.split_whitespace().count() as u64)
        .sum();
    answer_json(&json!({"object": "list", "data": data, "model": model,
                        "usage": {"prompt_tokens": tokens, "total_tokens": tokens}}))
}

pub fn completions(request: &Value, stream: Stream) -> Response<Body> {
    let Some(model) = model_of(request) else {
        return missing_model();
    };
    let prompt = match &request["prompt"] {
        Value::String(s) => s.clone(),
        Value::Array(list) => list
            .iter()
            .filter_map(|p| p.as_str())
            .collect::<Vec<_>>()
            .join("\n"),
        _ => String::new(),
    };
    let pieces = answer_for(&prompt, request["max_tokens"].as_u64());
    let prompt_tokens = prompt.split_whitespace().count() as u64;
    let completion_tokens = pieces.len() as u64;
    let usage = json!({"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
                       "total_tokens": prompt_tokens + completion_tokens});
    let id = format!(
        "cmpl-mock{:016x}",
        prompt_tokens * 1_000_003 + completion_tokens
    );
    if request["stream"].as_bool() != Some(true) {
        return answer_json(
            &json!({"id": id, "object": "text_completion", "created": CREATED, "model": model,
            "choices": [{"text": pieces.concat(), "index": 0, "logprobs": null, "finish_reason": "stop"}],
            "usage": usage}),
        );
    }
    let chunk = |text: &str, finish: Option<&str>| {
        let c = json!({"id": id, "object": "text_completion", "created": CREATED, "model": model,
                       "choices": [{"text": text, "index": 0, "logprobs": null, "finish_reason": finish}]});
        format!("data: {c}\n\n")
    };
    let mut events: Vec<String> = pieces.iter().map(|p| chunk(p, None)).collect();
    events.push(chunk("", Some("stop")));
    if request["stream_options"]["include_usage"].as_bool() == Some(true) {
        let c = json!({"id": id, "object": "text_completion", "created": CREATED, "model": model,
                       "choices": [], "usage": usage});
        events.push(format!("data: {c}\n\n"));
    }
    events.push("data: [DONE]\n\n".into());
    stream.respond(events)
}
