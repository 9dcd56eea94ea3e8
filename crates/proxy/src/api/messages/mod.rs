//! Anthropic's Messages shape (`POST /v1/messages`): native to Anthropic
//! providers, its SSE events passed through as they come; translated to
//! chat completions for an OpenAI-dialect provider. Errors are worded the
//! Anthropic way, so the official SDK raises its typed exceptions.

mod screen;

use std::borrow::Cow;

use bytes::Bytes;
use serde::Deserialize;

use super::chat::request::{estimate_prompt_tokens, guardrail_messages, Message};
use super::shape::{forward_json, metadata_task, ApiShape, Call, Forward, Prepared};
use crate::chain::StageSlot;
use crate::domain::providers::Dialect;
use crate::domain::ChatMessage;
use crate::embedded_intent::LabelSlot;
use crate::error::{ApiError, ErrorCode};
use crate::guardrails::Guard;
use crate::http::Body;
use crate::providers::Target;
use crate::sse::EventRewrite;
use crate::translate::{self, Translation};
use crate::upstream::Usage;

pub struct Messages;

#[derive(Deserialize)]
pub struct MessagesRequest<'a> {
    #[serde(borrow)]
    model: Option<Cow<'a, str>>,
    messages: Option<Vec<Message>>,
    #[serde(default)]
    system: serde_json::Value,
    #[serde(default)]
    stream: bool,
    max_tokens: Option<u64>,
    metadata: Option<serde_json::Map<String, serde_json::Value>>,
}

impl ApiShape for Messages {
    const ENDPOINT: &'static str = "messages";
    const UPSTREAM_PATH: &'static str = "messages";
    const DIALECT: Dialect = Dialect::Anthropic;

    type Request<'a> = MessagesRequest<'a>;

    fn prepare(body: &Bytes, call: &Call<'_>, target: &Target) -> Result<Prepared, ApiError> {
        if target.provider.kind.dialect() == Dialect::Anthropic {
            return Prepared::native(Self::UPSTREAM_PATH, body, call, target);
        }
        let value: serde_json::Value = serde_json::from_slice(body)
            .map_err(|e| ApiError::new(ErrorCode::InvalidJson, e.to_string()))?;
        let translated = translate::to_openai::request(&value, &target.model);
        Ok(Prepared {
            path: "chat/completions",
            body: Bytes::from(translated.to_string()),
            translation: Some(Translation::MessagesToChat {
                model: call.model.to_string(),
            }),
        })
    }

    fn error_response(error: ApiError) -> hyper::Response<Body> {
        error.into_anthropic_response()
    }

    fn parse(body: &[u8]) -> Result<MessagesRequest<'_>, ApiError> {
        serde_json::from_slice(body).map_err(|e| {
            ApiError::new(
                ErrorCode::InvalidJson,
                format!("the request body is not valid JSON for a message: {e}"),
            )
        })
    }

    fn read<'a>(request: &'a MessagesRequest<'_>) -> Result<Call<'a>, ApiError> {
        let model = request.model.as_deref().filter(|m| !m.is_empty());
        let model =
            model.ok_or_else(|| ApiError::new(ErrorCode::MissingModel, "model: Field required"))?;
        let messages = request.messages.as_deref().filter(|m| !m.is_empty());
        let messages = messages.ok_or_else(|| {
            ApiError::new(
                ErrorCode::MissingMessages,
                "messages: must be a non-empty list",
            )
        })?;
        let max_tokens = request.max_tokens.ok_or_else(|| {
            ApiError::new(ErrorCode::InvalidParameter, "max_tokens: Field required")
        })?;
        let last_user = messages.iter().rev().find(|m| m.role == "user");
        let prompt = last_user.unwrap_or(&messages[messages.len() - 1]).text();
        let system = translate::to_anthropic::text_of(&request.system);
        Ok(Call {
            model,
            task_id: metadata_task(request.metadata.as_ref()),
            prompt,
            stream: request.stream,
            // Anthropic's stream always carries its usage.
            include_usage: true,
            prompt_tokens: estimate_prompt_tokens(messages) + system.len() as u64 / 4,
            completion_cap: Some(max_tokens),
        })
    }

    fn messages(request: &MessagesRequest<'_>) -> Vec<ChatMessage> {
        guardrail_messages(request.messages.as_deref())
    }

    /// Rewritten only to drop Warden's `metadata.task_id` or to cap the
    /// answer at the call's reservation.
    fn forward_body(
        body: &Bytes,
        request: &MessagesRequest<'_>,
        forward: Forward<'_>,
    ) -> Result<Option<Bytes>, ApiError> {
        let cap = forward
            .output_cap
            .filter(|&cap| Some(cap) != request.max_tokens);
        if metadata_task(request.metadata.as_ref()).is_none() && cap.is_none() {
            return Ok(None);
        }
        forward_json(body, "max_tokens", cap).map(Some)
    }

    fn apply_rewrite(body: &Bytes, messages: &[ChatMessage]) -> Result<Bytes, ApiError> {
        screen::apply_rewrite(body, messages)
    }

    fn usage_of(answer: &[u8]) -> Option<Usage> {
        translate::anthropic_usage_of(answer)
    }

    fn stream_usage(data: &[u8], usage: &mut Option<Usage>) {
        translate::read_anthropic_usage(data, usage)
    }

    fn stream_rewrites(
        _hide_usage: bool,
        _label: Option<&LabelSlot>,
    ) -> Vec<Box<dyn EventRewrite>> {
        Vec::new()
    }

    fn strip_label(answer: Bytes) -> (Bytes, Option<String>) {
        (answer, None) // embedded classification speaks chat completions only
    }

    async fn screen_answer(
        guardrails: &[StageSlot],
        guard: &Guard,
        answer: Bytes,
    ) -> Result<Bytes, ApiError> {
        screen::answer(guardrails, guard, answer).await
    }

    async fn screen_stream(
        guardrails: &[StageSlot],
        guard: &Guard,
        sse: Bytes,
    ) -> Result<Bytes, ApiError> {
        screen::stream(guardrails, guard, sse).await
    }
}
