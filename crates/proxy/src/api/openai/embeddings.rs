//! `POST /v1/embeddings`: the input's texts are the prompt the chain
//! judges and the guardrails screen; the answer is vectors, nothing to
//! screen, and costs no output tokens.

use bytes::Bytes;
use serde_json::Value;

use super::{model_of, parse_value, put_texts, texts, to_bytes};
use crate::api::shape::{ApiShape, Call, Forward};
use crate::chain::StageSlot;
use crate::domain::providers::Dialect;
use crate::domain::ChatMessage;
use crate::embedded_intent::LabelSlot;
use crate::error::{ApiError, ErrorCode};
use crate::guardrails::Guard;
use crate::sse::EventRewrite;
use crate::upstream::{self, Usage};

pub struct Embeddings;

impl ApiShape for Embeddings {
    const ENDPOINT: &'static str = "embeddings";
    const UPSTREAM_PATH: &'static str = "embeddings";
    const DIALECT: Dialect = Dialect::OpenAi;

    type Request<'a> = Value;

    fn parse(body: &[u8]) -> Result<Value, ApiError> {
        parse_value(body, "embeddings")
    }

    fn read<'a>(request: &'a Value) -> Result<Call<'a>, ApiError> {
        let model = model_of(request)?;
        let input = &request["input"];
        if input.is_null() {
            return Err(ApiError::new(
                ErrorCode::InvalidParameter,
                "'input' is required",
            ));
        }
        let inputs = texts(input);
        let prompt = match inputs.len() {
            1 => inputs[0].clone(),
            _ => inputs.join("\n").into(),
        };
        // Token arrays count as they are; texts at about four bytes a token.
        let token_ids = input
            .as_array()
            .map_or(0, |l| l.iter().filter(|v| !v.is_string()).count());
        Ok(Call {
            model,
            task_id: None,
            prompt_tokens: prompt.len() as u64 / 4 + token_ids as u64 + 1,
            prompt,
            stream: false,
            include_usage: true,
            completion_cap: Some(0),
        })
    }

    fn messages(request: &Value) -> Vec<ChatMessage> {
        texts(&request["input"])
            .into_iter()
            .map(|text| ChatMessage {
                role: "user".into(),
                content: text.into_owned(),
            })
            .collect()
    }

    fn forward_body(_: &Bytes, _: &Value, _: Forward<'_>) -> Result<Option<Bytes>, ApiError> {
        Ok(None) // nothing of Warden's in it, no answer to cap
    }

    fn apply_rewrite(body: &Bytes, messages: &[ChatMessage]) -> Result<Bytes, ApiError> {
        let mut value = parse_value(body, "embeddings")?;
        let new: Vec<String> = messages.iter().map(|m| m.content.clone()).collect();
        put_texts(&mut value["input"], &new);
        to_bytes(&value)
    }

    fn usage_of(answer: &[u8]) -> Option<Usage> {
        upstream::usage_of(answer)
    }

    fn stream_usage(_: &[u8], _: &mut Option<Usage>) {}

    fn stream_rewrites(_: bool, _: Option<&LabelSlot>) -> Vec<Box<dyn EventRewrite>> {
        Vec::new()
    }

    fn strip_label(answer: Bytes) -> (Bytes, Option<String>) {
        (answer, None)
    }

    async fn screen_answer(_: &[StageSlot], _: &Guard, answer: Bytes) -> Result<Bytes, ApiError> {
        Ok(answer) // vectors
    }

    async fn screen_stream(_: &[StageSlot], _: &Guard, sse: Bytes) -> Result<Bytes, ApiError> {
        Ok(sse)
    }
}
