//! An OpenAI chat-completions client, an Anthropic provider: the request
//! into a Messages request, and the message (whole or streamed) back into a
//! chat completion.

use serde_json::{json, Map, Value};

use super::{data_event, event_json};
use crate::sse::EventRewrite;

/// Anthropic requires `max_tokens`; OpenAI clients often send none.
pub const DEFAULT_MAX_TOKENS: u64 = 4096;

/// The chat request `chat` as a Messages request for `model`.
pub fn request(chat: &Value, model: &str) -> Value {
    let mut system = Vec::new();
    let mut messages: Vec<Value> = Vec::new();
    for message in chat["messages"].as_array().into_iter().flatten() {
        match message["role"].as_str().unwrap_or("user") {
            "system" | "developer" => system.push(text_of(&message["content"])),
            "assistant" => push(&mut messages, "assistant", assistant_blocks(message)),
            "tool" => {
                let result = json!({
                    "type": "tool_result",
                    "tool_use_id": message["tool_call_id"],
                    "content": text_of(&message["content"]),
                });
                push(&mut messages, "user", vec![result]);
            }
            _ => push(&mut messages, "user", user_blocks(&message["content"])),
        }
    }
    let mut out = Map::new();
    out.insert("model".into(), model.into());
    out.insert("messages".into(), messages.into());
    if !system.is_empty() {
        out.insert("system".into(), system.join("\n\n").into());
    }
    let max_tokens = chat["max_completion_tokens"]
        .as_u64()
        .or(chat["max_tokens"].as_u64())
        .unwrap_or(DEFAULT_MAX_TOKENS);
    out.insert("max_tokens".into(), max_tokens.into());
    for field in ["temperature", "top_p"] {
        if let Some(v) = chat.get(field).filter(|v| v.is_number()) {
            out.insert(field.into(), v.clone());
        }
    }
    match &chat["stop"] {
        Value::String(s) => {
            out.insert("stop_sequences".into(), json!([s]));
        }
        Value::Array(list) => {
            out.insert("stop_sequences".into(), list.clone().into());
        }
        _ => {}
    }
    if chat["stream"].as_bool() == Some(true) {
        out.insert("stream".into(), true.into());
    }
    if let Some(tools) = chat["tools"].as_array() {
        let tools: Vec<Value> = tools
            .iter()
            .filter_map(|t| {
                let f = t.get("function")?;
                Some(json!({
                    "name": f["name"],
                    "description": f.get("description").cloned().unwrap_or(Value::Null),
                    "input_schema": f.get("parameters").cloned().unwrap_or_else(|| json!({"type": "object"})),
                }))
            })
            .map(drop_nulls)
            .collect();
        out.insert("tools".into(), tools.into());
    }
    if let Some(choice) = tool_choice(&chat["tool_choice"]) {
        out.insert("tool_choice".into(), choice);
    }
    if let Some(user) = chat["user"].as_str() {
        out.insert("metadata".into(), json!({ "user_id": user }));
    }
    Value::Object(out)
}

fn tool_choice(choice: &Value) -> Option<Value> {
    match choice {
        Value::String(s) if s == "auto" => Some(json!({"type": "auto"})),
        Value::String(s) if s == "required" => Some(json!({"type": "any"})),
        Value::String(s) if s == "none" => Some(json!({"type": "none"})),
        Value::Object(o) => {
            let name = o.get("function")?.get("name")?;
            Some(json!({"type": "tool", "name": name}))
        }
        _ => None,
    }
}

fn drop_nulls(mut value: Value) -> Value {
    if let Some(object) = value.as_object_mut() {
        object.retain(|_, v| !v.is_null());
    }
    value
}

/// Appends blocks, merging into the previous message of the same role
/// (Anthropic wants user and assistant turns to alternate).
fn push(messages: &mut Vec<Value>, role: &str, blocks: Vec<Value>) {
    if blocks.is_empty() {
        return;
    }
    if let Some(last) = messages.last_mut().filter(|m| m["role"] == role) {
        if let Some(content) = last["content"].as_array_mut() {
            content.extend(blocks);
            return;
        }
    }
    messages.push(json!({ "role": role, "content": blocks }));
}

/// The text of a content value (a string, or the `text` of its parts).
pub fn text_of(content: &Value) -> String {
    match content {
        Value::String(s) => s.clone(),
        Value::Array(parts) => parts
            .iter()
            .filter_map(|p| p["text"].as_str())
            .collect::<Vec<_>>()
            .join("\n"),
        _ => String::new(),
    }
}

fn user_blocks(content: &Value) -> Vec<Value> {
    match content {
        Value::String(s) => vec![json!({"type": "text", "text": s})],
        Value::Array(parts) => parts.iter().filter_map(user_part).collect(),
        _ => Vec::new(),
    }
}

fn user_part(part: &Value) -> Option<Value> {
    match part["type"].as_str()? {
        "text" => Some(json!({"type": "text", "text": part["text"]})),
        "image_url" => {
            let url = part["image_url"]["url"].as_str()?;
            let source = match url
                .strip_prefix("data:")
                .and_then(|d| d.split_once(";base64,"))
            {
                Some((media_type, data)) => {
                    json!({"type": "base64", "media_type": media_type, "data": data})
                }
                None => json!({"type": "url", "url": url}),
            };
            Some(json!({"type": "image", "source": source}))
        }
        _ => None,
    }
}

fn assistant_blocks(message: &Value) -> Vec<Value> {
    let mut blocks = Vec::new();
    let text = text_of(&message["content"]);
    if !text.is_empty() {
        blocks.push(json!({"type": "text", "text": text}));
    }
    blocks.extend(super::tool_use_blocks(message));
    blocks
}

/// Anthropic's stop reason as OpenAI's finish reason.
pub fn finish_reason(stop: Option<&str>) -> Value {
    match stop {
        Some("max_tokens") => "length".into(),
        Some("tool_use") => "tool_calls".into(),
        Some("refusal") => "content_filter".into(),
        Some(_) => "stop".into(),
        None => Value::Null,
    }
}

/// A complete Anthropic message as a chat completion.
pub fn answer(message: &Value, model: &str) -> Value {
    let blocks = message["content"].as_array().map_or(&[][..], Vec::as_slice);
    let reply = super::assistant_message(blocks);
    let usage = &message["usage"];
    let prompt = usage["input_tokens"].as_u64().unwrap_or(0)
        + usage["cache_read_input_tokens"].as_u64().unwrap_or(0)
        + usage["cache_creation_input_tokens"].as_u64().unwrap_or(0);
    let completion = usage["output_tokens"].as_u64().unwrap_or(0);
    json!({
        "id": message["id"],
        "object": "chat.completion",
        "created": crate::clock::now_ms() / 1000,
        "model": model,
        "choices": [{
            "index": 0,
            "message": reply,
            "finish_reason": finish_reason(message["stop_reason"].as_str()),
        }],
        "usage": {
            "prompt_tokens": prompt,
            "completion_tokens": completion,
            "total_tokens": prompt + completion,
        },
    })
}

/// Anthropic stream events into chat-completion chunks. The usage chunk
/// (`choices: []`) is always written; the call path hides it from a
/// client that did not ask for it, as for an OpenAI provider.
pub struct Stream {
    model: String,
    id: String,
    created: u64,
    prompt_tokens: u64,
    completion_tokens: u64,
    /// Tool calls by content-block index, numbered in order of appearance.
    tools: Vec<u64>,
}

impl Stream {
    pub fn new(model: &str) -> Self {
        Self {
            model: model.to_string(),
            id: String::new(),
            created: crate::clock::now_ms() / 1000,
            prompt_tokens: 0,
            completion_tokens: 0,
            tools: Vec::new(),
        }
    }

    fn chunk(&self, delta: Value, finish: Value) -> Value {
        json!({
            "id": self.id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.model,
            "choices": [{ "index": 0, "delta": delta, "finish_reason": finish }],
        })
    }
}

impl EventRewrite for Stream {
    fn event(&mut self, event: &[u8], out: &mut Vec<u8>) {
        let Some(value) = event_json(event) else {
            return; // pings, comments
        };
        match value["type"].as_str().unwrap_or_default() {
            "message_start" => {
                let message = &value["message"];
                self.id = message["id"].as_str().unwrap_or("msg").to_string();
                let usage = &message["usage"];
                self.prompt_tokens = usage["input_tokens"].as_u64().unwrap_or(0)
                    + usage["cache_read_input_tokens"].as_u64().unwrap_or(0)
                    + usage["cache_creation_input_tokens"].as_u64().unwrap_or(0);
                let chunk = self.chunk(json!({"role": "assistant", "content": ""}), Value::Null);
                data_event(out, &chunk);
            }
            "content_block_start" if value["content_block"]["type"] == "tool_use" => {
                let block = &value["content_block"];
                let index = value["index"].as_u64().unwrap_or(0);
                self.tools.push(index);
                let call = json!({
                    "index": self.tools.len() - 1,
                    "id": block["id"],
                    "type": "function",
                    "function": { "name": block["name"], "arguments": "" },
                });
                data_event(out, &self.chunk(json!({"tool_calls": [call]}), Value::Null));
            }
            "content_block_delta" => {
                let delta = &value["delta"];
                let index = value["index"].as_u64().unwrap_or(0);
                let chunk = match delta["type"].as_str() {
                    Some("text_delta") => json!({"content": delta["text"]}),
                    Some("input_json_delta") => {
                        let Some(n) = self.tools.iter().position(|&i| i == index) else {
                            return;
                        };
                        let call =
                            json!({"index": n, "function": {"arguments": delta["partial_json"]}});
                        json!({"tool_calls": [call]})
                    }
                    _ => return, // thinking and signatures are not translated
                };
                data_event(out, &self.chunk(chunk, Value::Null));
            }
            "message_delta" => {
                if let Some(output) = value["usage"]["output_tokens"].as_u64() {
                    self.completion_tokens = output;
                }
                let finish = finish_reason(value["delta"]["stop_reason"].as_str());
                data_event(out, &self.chunk(json!({}), finish));
            }
            "message_stop" => {
                let (prompt, completion) = (self.prompt_tokens, self.completion_tokens);
                let usage = json!({
                    "id": self.id,
                    "object": "chat.completion.chunk",
                    "created": self.created,
                    "model": self.model,
                    "choices": [],
                    "usage": {
                        "prompt_tokens": prompt,
                        "completion_tokens": completion,
                        "total_tokens": prompt + completion,
                    },
                });
                data_event(out, &usage);
                out.extend_from_slice(b"data: [DONE]\n\n");
            }
            "error" => {
                let error = json!({ "error": {
                    "message": value["error"]["message"],
                    "type": value["error"]["type"],
                }});
                data_event(out, &error);
            }
            _ => {} // content_block_start (text), content_block_stop, ping
        }
    }
}
