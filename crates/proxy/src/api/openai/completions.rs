//! `POST /v1/completions` (legacy text completions): the prompt is what the
//! chain judges; usage and the stream's usage chunk work as in chat.

use std::collections::BTreeMap;

use bytes::Bytes;
use serde_json::Value;

use super::{events, model_of, parse_value, put_texts, texts, to_bytes, write_event};
use crate::api::shape::{forward_json, metadata_task, ApiShape, Call, Forward};
use crate::chain::StageSlot;
use crate::domain::providers::Dialect;
use crate::domain::ChatMessage;
use crate::embedded_intent::LabelSlot;
use crate::error::{ApiError, ErrorCode};
use crate::guardrails::{self, Guard};
use crate::sse::{EventRewrite, HideUsageChunk};
use crate::upstream::{self, Usage};

pub struct Completions;

impl ApiShape for Completions {
    const ENDPOINT: &'static str = "completions";
    const UPSTREAM_PATH: &'static str = "completions";
    const DIALECT: Dialect = Dialect::OpenAi;

    type Request<'a> = Value;

    fn parse(body: &[u8]) -> Result<Value, ApiError> {
        parse_value(body, "a completion")
    }

    fn read<'a>(request: &'a Value) -> Result<Call<'a>, ApiError> {
        let model = model_of(request)?;
        let prompts = texts(&request["prompt"]);
        if prompts.is_empty() {
            return Err(ApiError::new(
                ErrorCode::InvalidParameter,
                "'prompt' is required",
            ));
        }
        let prompt = match prompts.len() {
            1 => prompts[0].clone(),
            _ => prompts.join("\n").into(),
        };
        Ok(Call {
            model,
            task_id: metadata_task(request["metadata"].as_object()),
            prompt_tokens: prompt.len() as u64 / 4 + 4,
            prompt,
            stream: request["stream"].as_bool() == Some(true),
            include_usage: request["stream_options"]["include_usage"].as_bool() == Some(true),
            completion_cap: request["max_tokens"].as_u64(),
        })
    }

    fn messages(request: &Value) -> Vec<ChatMessage> {
        texts(&request["prompt"])
            .into_iter()
            .map(|text| ChatMessage {
                role: "user".into(),
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
        if !ours && !forward.ask_usage && forward.output_cap.is_none() {
            return Ok(None);
        }
        let body = forward_json(body, "max_tokens", forward.output_cap)?;
        if !forward.ask_usage {
            return Ok(Some(body));
        }
        let mut value = parse_value(&body, "a completion")?;
        value["stream_options"] = serde_json::json!({ "include_usage": true });
        to_bytes(&value).map(Some)
    }

    fn apply_rewrite(body: &Bytes, messages: &[ChatMessage]) -> Result<Bytes, ApiError> {
        let mut value = parse_value(body, "a completion")?;
        let new: Vec<String> = messages.iter().map(|m| m.content.clone()).collect();
        put_texts(&mut value["prompt"], &new);
        to_bytes(&value)
    }

    fn usage_of(answer: &[u8]) -> Option<Usage> {
        upstream::usage_of(answer)
    }

    fn stream_usage(data: &[u8], usage: &mut Option<Usage>) {
        upstream::read_openai_usage(data, usage)
    }

    fn stream_rewrites(hide_usage: bool, _: Option<&LabelSlot>) -> Vec<Box<dyn EventRewrite>> {
        if hide_usage {
            vec![Box::new(HideUsageChunk)]
        } else {
            Vec::new()
        }
    }

    fn strip_label(answer: Bytes) -> (Bytes, Option<String>) {
        (answer, None)
    }

    async fn screen_answer(
        guardrails: &[StageSlot],
        guard: &Guard,
        answer: Bytes,
    ) -> Result<Bytes, ApiError> {
        guardrails::screen_json_answer(guardrails, guard, answer, |v| {
            let choices = v["choices"].as_array_mut().into_iter().flatten();
            choices.map(|c| &mut c["text"]).collect()
        })
        .await
    }

    /// Each choice's text deltas joined and screened; a redacted choice's
    /// text goes in its first delta, its later deltas are emptied.
    async fn screen_stream(
        guardrails: &[StageSlot],
        guard: &Guard,
        sse: Bytes,
    ) -> Result<Bytes, ApiError> {
        let text = String::from_utf8_lossy(&sse).into_owned();
        let events = events(&text);
        let mut choices: BTreeMap<u64, String> = BTreeMap::new();
        for (_, event) in &events {
            for choice in event
                .iter()
                .flat_map(|e| e["choices"].as_array().into_iter().flatten())
            {
                if let (Some(index), Some(text)) =
                    (choice["index"].as_u64(), choice["text"].as_str())
                {
                    choices.entry(index).or_default().push_str(text);
                }
            }
        }
        let mut redacted = guardrails::screen_answer_texts(guardrails, guard, choices).await?;
        if redacted.is_empty() {
            return Ok(sse);
        }
        let mut out = String::with_capacity(sse.len());
        for (raw, event) in events {
            let Some(mut event) = event else {
                out.push_str(raw);
                continue;
            };
            for choice in event["choices"].as_array_mut().into_iter().flatten() {
                let index = choice["index"].as_u64().unwrap_or(0);
                if let Some(clean) = redacted.get_mut(&index) {
                    if choice["text"].is_string() {
                        choice["text"] = std::mem::take(clean).into();
                    }
                }
            }
            write_event(&mut out, raw, &event);
        }
        Ok(Bytes::from(out))
    }
}
