//! An Anthropic Messages client, an OpenAI-dialect provider: the request
//! into a chat-completions request, and the completion (whole or streamed)
//! back into a message with Anthropic's events.

use serde_json::{json, Map, Value};

use super::{event_json, typed_event};
use crate::sse::EventRewrite;

/// The Messages request `messages` as a chat request for `model`.
pub fn request(request: &Value, model: &str) -> Value {
    let mut chat: Vec<Value> = Vec::new();
    let system = super::to_anthropic::text_of(&request["system"]);
    if !system.is_empty() {
        chat.push(json!({"role": "system", "content": system}));
    }
    for message in request["messages"].as_array().into_iter().flatten() {
        let role = message["role"].as_str().unwrap_or("user");
        match &message["content"] {
            Value::String(s) => chat.push(json!({"role": role, "content": s})),
            Value::Array(blocks) if role == "assistant" => {
                chat.push(super::assistant_message(blocks))
            }
            Value::Array(blocks) => user(blocks, &mut chat),
            _ => {}
        }
    }
    let mut out = Map::new();
    out.insert("model".into(), model.into());
    out.insert("messages".into(), chat.into());
    if let Some(max) = request["max_tokens"].as_u64() {
        out.insert("max_tokens".into(), max.into());
    }
    for field in ["temperature", "top_p"] {
        if let Some(v) = request.get(field).filter(|v| v.is_number()) {
            out.insert(field.into(), v.clone());
        }
    }
    if let Some(stops) = request["stop_sequences"].as_array() {
        out.insert("stop".into(), stops.clone().into());
    }
    if request["stream"].as_bool() == Some(true) {
        out.insert("stream".into(), true.into());
        out.insert("stream_options".into(), json!({"include_usage": true}));
    }
    if let Some(tools) = request["tools"].as_array() {
        let tools: Vec<Value> = tools
            .iter()
            .map(|t| {
                let mut function = json!({ "name": t["name"], "parameters": t["input_schema"] });
                if let Some(d) = t["description"].as_str() {
                    function["description"] = d.into();
                }
                json!({ "type": "function", "function": function })
            })
            .collect();
        out.insert("tools".into(), tools.into());
    }
    let choice = match request["tool_choice"]["type"].as_str() {
        Some("auto") => Some(json!("auto")),
        Some("any") => Some(json!("required")),
        Some("none") => Some(json!("none")),
        Some("tool") => {
            Some(json!({"type": "function", "function": {"name": request["tool_choice"]["name"]}}))
        }
        _ => None,
    };
    if let Some(choice) = choice {
        out.insert("tool_choice".into(), choice);
    }
    if let Some(user) = request["metadata"]["user_id"].as_str() {
        out.insert("user".into(), user.into());
    }
    Value::Object(out)
}

/// A user turn's blocks: tool results become `tool` messages, the rest one
/// user message with text and image parts.
fn user(blocks: &[Value], chat: &mut Vec<Value>) {
    let mut parts = Vec::new();
    for block in blocks {
        match block["type"].as_str() {
            Some("text") => parts.push(json!({"type": "text", "text": block["text"]})),
            Some("image") => {
                let source = &block["source"];
                let url = match source["type"].as_str() {
                    Some("base64") => format!(
                        "data:{};base64,{}",
                        source["media_type"].as_str().unwrap_or("image/png"),
                        source["data"].as_str().unwrap_or_default()
                    ),
                    _ => source["url"].as_str().unwrap_or_default().to_string(),
                };
                parts.push(json!({"type": "image_url", "image_url": {"url": url}}));
            }
            Some("tool_result") => {
                let content = match &block["content"] {
                    Value::String(s) => s.clone(),
                    other => super::to_anthropic::text_of(other),
                };
                chat.push(json!({"role": "tool", "tool_call_id": block["tool_use_id"], "content": content}));
            }
            _ => {}
        }
    }
    if !parts.is_empty() {
        chat.push(json!({"role": "user", "content": parts}));
    }
}

/// OpenAI's finish reason as Anthropic's stop reason.
fn stop_reason(finish: Option<&str>) -> Value {
    match finish {
        Some("length") => "max_tokens".into(),
        Some("tool_calls" | "function_call") => "tool_use".into(),
        Some("content_filter") => "refusal".into(),
        Some(_) => "end_turn".into(),
        None => Value::Null,
    }
}

/// A complete chat completion as an Anthropic message.
pub fn answer(completion: &Value, model: &str) -> Value {
    let choice = &completion["choices"][0];
    let message = &choice["message"];
    let mut content = Vec::new();
    if let Some(text) = message["content"].as_str().filter(|t| !t.is_empty()) {
        content.push(json!({"type": "text", "text": text}));
    }
    content.extend(super::tool_use_blocks(message));
    let usage = &completion["usage"];
    json!({
        "id": completion["id"],
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": content,
        "stop_reason": stop_reason(choice["finish_reason"].as_str()),
        "stop_sequence": null,
        "usage": {
            "input_tokens": usage["prompt_tokens"].as_u64().unwrap_or(0),
            "output_tokens": usage["completion_tokens"].as_u64().unwrap_or(0),
        },
    })
}

/// What block the stream has open.
#[derive(PartialEq)]
enum Open {
    Nothing,
    Text(u64),
    Tool(u64),
}

/// Chat-completion chunks into Anthropic's stream events: `message_start`,
/// a content block per text run or tool call, `message_delta` with the stop
/// reason and usage, `message_stop`.
pub struct Stream {
    model: String,
    started: bool,
    open: Open,
    next_block: u64,
    stop: Value,
    output_tokens: u64,
    input_tokens: u64,
    ended: bool,
}

impl Stream {
    pub fn new(model: &str) -> Self {
        Self {
            model: model.to_string(),
            started: false,
            open: Open::Nothing,
            next_block: 0,
            stop: Value::Null,
            output_tokens: 0,
            input_tokens: 0,
            ended: false,
        }
    }

    fn start(&mut self, id: &Value, out: &mut Vec<u8>) {
        if self.started {
            return;
        }
        self.started = true;
        let message = json!({
            "id": id, "type": "message", "role": "assistant", "model": self.model,
            "content": [], "stop_reason": null, "stop_sequence": null,
            "usage": {"input_tokens": self.input_tokens, "output_tokens": 0},
        });
        typed_event(out, &json!({"type": "message_start", "message": message}));
    }

    fn close(&mut self, out: &mut Vec<u8>) {
        if let Open::Text(index) | Open::Tool(index) = self.open {
            typed_event(out, &json!({"type": "content_block_stop", "index": index}));
        }
        self.open = Open::Nothing;
    }

    fn open_block(&mut self, block: Value, tool: bool, out: &mut Vec<u8>) -> u64 {
        self.close(out);
        let index = self.next_block;
        self.next_block += 1;
        self.open = if tool {
            Open::Tool(index)
        } else {
            Open::Text(index)
        };
        typed_event(
            out,
            &json!({"type": "content_block_start", "index": index, "content_block": block}),
        );
        index
    }

    fn finish(&mut self, out: &mut Vec<u8>) {
        if self.ended || !self.started {
            return;
        }
        self.ended = true;
        self.close(out);
        let usage = json!({"input_tokens": self.input_tokens, "output_tokens": self.output_tokens});
        let delta = json!({"stop_reason": self.stop, "stop_sequence": null});
        typed_event(
            out,
            &json!({"type": "message_delta", "delta": delta, "usage": usage}),
        );
        typed_event(out, &json!({"type": "message_stop"}));
    }
}

impl EventRewrite for Stream {
    fn event(&mut self, event: &[u8], out: &mut Vec<u8>) {
        if super::super::sse::data_of(event).is_some_and(|d| d == b"[DONE]") {
            self.finish(out);
            return;
        }
        let Some(chunk) = event_json(event) else {
            return;
        };
        if chunk.get("error").is_some_and(Value::is_object) {
            // A provider's error mid-stream: Anthropic's `error` event.
            typed_event(out, &super::anthropic_error(&chunk));
            self.ended = true;
            return;
        }
        if let Some(usage) = chunk.get("usage").filter(|u| u.is_object()) {
            self.input_tokens = usage["prompt_tokens"].as_u64().unwrap_or(self.input_tokens);
            self.output_tokens = usage["completion_tokens"].as_u64().unwrap_or(0);
        }
        let Some(choice) = chunk["choices"].get(0) else {
            return; // the usage chunk
        };
        self.start(&chunk["id"], out);
        let delta = &choice["delta"];
        if let Some(text) = delta["content"].as_str().filter(|t| !t.is_empty()) {
            let index = match self.open {
                Open::Text(index) => index,
                _ => self.open_block(json!({"type": "text", "text": ""}), false, out),
            };
            let delta = json!({"type": "text_delta", "text": text});
            typed_event(
                out,
                &json!({"type": "content_block_delta", "index": index, "delta": delta}),
            );
        }
        for call in delta["tool_calls"].as_array().into_iter().flatten() {
            if let Some(id) = call["id"].as_str() {
                let block = json!({"type": "tool_use", "id": id, "name": call["function"]["name"], "input": {}});
                self.open_block(block, true, out);
            }
            let (Open::Tool(index), Some(args)) =
                (&self.open, call["function"]["arguments"].as_str())
            else {
                continue;
            };
            if !args.is_empty() {
                let delta = json!({"type": "input_json_delta", "partial_json": args});
                typed_event(
                    out,
                    &json!({"type": "content_block_delta", "index": index, "delta": delta}),
                );
            }
        }
        if let Some(finish) = choice["finish_reason"].as_str() {
            self.stop = stop_reason(Some(finish));
        }
    }

    fn end(&mut self, out: &mut Vec<u8>) {
        // A provider that ends without `[DONE]` still gets a closed message.
        self.finish(out);
    }
}
