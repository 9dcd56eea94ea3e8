//! Embedded LLM classification (policy `embedded_intent = true`): the model
//! that answers also labels the prompt. Warden appends a system message
//! asking for a last line `[[warden-intent: LABEL]]`, takes the label out of
//! the answer, plain or streamed, and records it beside the local one. The
//! client sees the model's answer without that line.
//!
//! In a stream the marker may be split over any number of events, so text
//! that could be the start of it (and the whitespace before it) is held back
//! until it is known to be, or not to be, the marker.

use std::sync::{Arc, OnceLock};

use bytes::Bytes;
use serde_json::Value;

use crate::sse::{data_of, EventRewrite};
use crate::state::model::Task;

pub const MARKER_OPEN: &str = "[[warden-intent:";
const MARKER_CLOSE: &str = "]]";
/// Longest label text accepted between the brackets; anything longer was
/// not our marker.
const MAX_LABEL: usize = 32;
/// The labels the model may answer; anything else is recorded as `unknown`.
pub const LABELS: [&str; 5] = ["code", "test", "doc", "analysis", "off_topic"];

/// The system message appended to the forwarded conversation.
pub fn instruction(task: &Task) -> String {
    format!(
        "After your complete answer, add one last line exactly like {MARKER_OPEN} LABEL{MARKER_CLOSE} \
         where LABEL says what the user's last message asks for, relative to the task \
         \"{}\" ({}): code, test, doc, analysis, or off_topic when it is not part of that task. \
         Write nothing after that line.",
        task.title, task.description
    )
}

/// Appends the instruction to the request's `messages`. It goes last, so a
/// guardrail's rewrite (same count and order as the client's messages)
/// still lines up with the client's messages.
pub fn instruct(body: &mut Value, task: &Task) {
    if let Some(messages) = body.get_mut("messages").and_then(Value::as_array_mut) {
        messages.push(serde_json::json!({ "role": "system", "content": instruction(task) }));
    }
}

fn normalise(label: &str) -> String {
    let label = label.trim().trim_matches('`').to_ascii_lowercase();
    let label = label.replace(['-', ' '], "_");
    if LABELS.contains(&label.as_str()) {
        label
    } else {
        "unknown".into()
    }
}

/// The marker-stripping state of one choice's text.
#[derive(Default)]
struct ChoiceText {
    /// Text held back: whitespace and a possible start of the marker.
    held: String,
    /// The marker was found; the rest passes through.
    done: bool,
}

impl ChoiceText {
    /// Takes the next piece of the answer; returns the text to send now and
    /// the label once the marker is complete.
    fn push(&mut self, piece: &str) -> (String, Option<String>) {
        let mut text = std::mem::take(&mut self.held);
        text.push_str(piece);
        if self.done {
            return (text, None);
        }
        if let Some(open) = text.find(MARKER_OPEN) {
            let inner = &text[open + MARKER_OPEN.len()..];
            if let Some(close) = inner.find(MARKER_CLOSE) {
                self.done = true;
                let label = normalise(&inner[..close]);
                let mut out = text[..open].trim_end().to_string();
                out.push_str(inner[close + MARKER_CLOSE.len()..].trim_start());
                return (out, Some(label));
            }
            if inner.len() <= MAX_LABEL {
                let keep = text[..open].trim_end().len();
                self.held = text.split_off(keep);
                return (text, None);
            }
            // Too long to be our marker: plain text.
            return (text, None);
        }
        // Keep a possible beginning of the marker and the whitespace before it.
        let partial = (1..MARKER_OPEN.len().min(text.len() + 1))
            .rev()
            .find(|&k| text.ends_with(&MARKER_OPEN[..k]))
            .unwrap_or(0);
        let keep = text[..text.len() - partial].trim_end().len();
        self.held = text.split_off(keep);
        (text, None)
    }

    /// The held text, once the answer is complete: it was not the marker.
    fn finish(&mut self) -> String {
        std::mem::take(&mut self.held)
    }
}

/// Splits a complete answer into the text the client sees and the label.
pub fn split_answer(answer: &str) -> (String, Option<String>) {
    let mut choice = ChoiceText::default();
    let (mut text, label) = choice.push(answer);
    text.push_str(&choice.finish());
    (text, label)
}

/// Strips the marker from every choice of a plain completion; returns the
/// body to send and the first choice's label.
pub fn strip_completion(body: Bytes) -> (Bytes, Option<String>) {
    let Ok(mut value) = serde_json::from_slice::<Value>(&body) else {
        return (body, None);
    };
    let mut first_label = None;
    let Some(choices) = value.get_mut("choices").and_then(Value::as_array_mut) else {
        return (body, None);
    };
    for choice in choices {
        let Some(content) = choice.pointer_mut("/message/content") else {
            continue;
        };
        let Some(text) = content.as_str() else {
            continue;
        };
        let (clean, label) = split_answer(text);
        *content = clean.into();
        if first_label.is_none() {
            first_label = label;
        }
    }
    match serde_json::to_vec(&value) {
        Ok(bytes) => (Bytes::from(bytes), first_label),
        Err(_) => (body, first_label),
    }
}

/// Where a stream's label lands for the request's bookkeeping.
pub type LabelSlot = Arc<OnceLock<String>>;

/// Strips the marker from a streamed answer, event by event.
pub struct StreamStripper {
    choices: Vec<ChoiceText>,
    label: LabelSlot,
    /// The last chunk seen, as a template for a closing event that carries
    /// held text when the stream ends without a `finish_reason`.
    last_chunk: Option<Value>,
}

impl StreamStripper {
    pub fn new(label: LabelSlot) -> Self {
        Self {
            choices: Vec::new(),
            label,
            last_chunk: None,
        }
    }

    fn choice(&mut self, index: usize) -> &mut ChoiceText {
        if self.choices.len() <= index {
            self.choices.resize_with(index + 1, ChoiceText::default);
        }
        &mut self.choices[index]
    }

    /// Rewrites one chunk's choices; true when anything changed.
    fn rewrite(&mut self, chunk: &mut Value) -> bool {
        let Some(choices) = chunk.get_mut("choices").and_then(Value::as_array_mut) else {
            return false;
        };
        let mut changed = false;
        for choice in choices {
            let index = choice.get("index").and_then(Value::as_u64).unwrap_or(0) as usize;
            let finished = choice.get("finish_reason").is_some_and(|f| !f.is_null());
            let Some(delta) = choice.get_mut("delta").and_then(Value::as_object_mut) else {
                continue;
            };
            let piece = delta
                .get("content")
                .and_then(Value::as_str)
                .map(str::to_owned);
            let state = self.choice(index);
            let (mut text, label) = match &piece {
                Some(p) => state.push(p),
                None => (String::new(), None),
            };
            if finished {
                text.push_str(&state.finish());
            }
            if let Some(label) = label {
                let _ = self.label.set(label);
            }
            if piece.as_deref() != Some(text.as_str()) && (piece.is_some() || !text.is_empty()) {
                delta.insert("content".into(), text.into());
                changed = true;
            }
        }
        changed
    }
}

impl EventRewrite for StreamStripper {
    fn event(&mut self, event: &[u8], out: &mut Vec<u8>) {
        let parsed = data_of(event)
            .filter(|d| d.first() == Some(&b'{'))
            .and_then(|d| serde_json::from_slice::<Value>(d).ok());
        let Some(mut chunk) = parsed else {
            if data_of(event) == Some(b"[DONE]") {
                self.end(out);
            }
            out.extend_from_slice(event);
            return;
        };
        let changed = self.rewrite(&mut chunk);
        if changed {
            out.extend_from_slice(format!("data: {chunk}\n\n").as_bytes());
        } else {
            out.extend_from_slice(event);
        }
        if chunk
            .get("choices")
            .is_some_and(|c| c.as_array().is_some_and(|a| !a.is_empty()))
        {
            self.last_chunk = Some(chunk);
        }
    }

    /// Text still held when the stream ends without a `finish_reason` goes
    /// out in one last content event: it was the model's, not the marker.
    fn end(&mut self, out: &mut Vec<u8>) {
        let Some(mut template) = self.last_chunk.take() else {
            return;
        };
        let held: Vec<(usize, String)> = self
            .choices
            .iter_mut()
            .enumerate()
            .map(|(i, c)| (i, c.finish()))
            .filter(|(_, text)| !text.is_empty())
            .collect();
        if held.is_empty() {
            return;
        }
        template["choices"] = held
            .into_iter()
            .map(|(i, text)| {
                serde_json::json!({"index": i, "delta": {"content": text}, "finish_reason": null})
            })
            .collect();
        out.extend_from_slice(format!("data: {template}\n\n").as_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sse::SseRewriter;

    #[test]
    fn a_plain_answer_loses_only_the_marker_line() {
        let (text, label) = split_answer("Here is the fix.\n\n[[warden-intent: off_topic]]");
        assert_eq!(text, "Here is the fix.");
        assert_eq!(label.as_deref(), Some("off_topic"));
        let (text, label) = split_answer("No marker [[at all]] here\n");
        assert_eq!(text, "No marker [[at all]] here\n");
        assert_eq!(label, None);
        assert_eq!(
            split_answer("x [[warden-intent: Weather]]").1.as_deref(),
            Some("unknown")
        );
    }

    fn chunk(content: Option<&str>, finish: Option<&str>) -> String {
        let mut delta = serde_json::json!({});
        if let Some(c) = content {
            delta["content"] = c.into();
        }
        let c = serde_json::json!({"id": "c1", "object": "chat.completion.chunk",
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]});
        format!("data: {c}\n\n")
    }

    /// Feeds `pieces` as content events split at every byte boundary given
    /// by `cut`, and returns what the client would read and the label.
    fn stream(pieces: &[&str], finish: bool, cut: usize) -> (String, Option<String>) {
        let mut sse: String = pieces.iter().map(|p| chunk(Some(p), None)).collect();
        if finish {
            sse.push_str(&chunk(None, Some("stop")));
        }
        sse.push_str("data: [DONE]\n\n");
        let slot = LabelSlot::default();
        let mut rewriter = SseRewriter::new(vec![Box::new(StreamStripper::new(slot.clone()))]);
        let mut out = Vec::new();
        for part in sse.as_bytes().chunks(cut) {
            out.extend_from_slice(&rewriter.feed(part));
        }
        out.extend_from_slice(&rewriter.finish());
        let text: String = String::from_utf8(out)
            .unwrap()
            .split("\n\n")
            .filter_map(|e| e.strip_prefix("data: "))
            .filter(|d| d.starts_with('{'))
            .map(|d| {
                let v: Value = serde_json::from_str(d).unwrap();
                v["choices"][0]["delta"]["content"]
                    .as_str()
                    .unwrap_or("")
                    .to_string()
            })
            .collect();
        (text, slot.get().cloned())
    }

    #[test]
    fn a_marker_split_over_events_is_removed_from_the_stream() {
        let pieces = ["Use a ", "join.", "\n[[warden", "-intent: ", "code]", "]"];
        for cut in [1, 7, 4096] {
            let (text, label) = stream(&pieces, true, cut);
            assert_eq!(text, "Use a join.", "cut {cut}");
            assert_eq!(label.as_deref(), Some("code"));
        }
    }

    #[test]
    fn text_that_only_looked_like_the_marker_is_sent_in_full() {
        let pieces = ["a list: [", "[1, 2]] and", " more\n"];
        let (text, label) = stream(&pieces, true, 4096);
        assert_eq!(text, "a list: [[1, 2]] and more\n");
        assert_eq!(label, None);
        // No finish_reason: the held text still reaches the client.
        let (text, _) = stream(&["ends with [[warden"], false, 4096);
        assert_eq!(text, "ends with [[warden");
    }
}
