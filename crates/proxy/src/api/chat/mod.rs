//! The chat-completions shape (`POST /v1/chat/completions`, OpenAI's and
//! every OpenAI-compatible provider's): what it contributes to the call
//! path in `api/call/`.

#[cfg(test)]
mod fuzz;
pub(super) mod request;

use bytes::Bytes;

use super::shape::{ApiShape, Call, Forward, Prepared};
use crate::chain::StageSlot;
use crate::domain::providers::Dialect;
use crate::domain::ChatMessage;
use crate::embedded_intent::{self, LabelSlot, StreamStripper};
use crate::error::ApiError;
use crate::error::ErrorCode;
use crate::guardrails::{self, Guard};
use crate::providers::Target;
use crate::sse::{EventRewrite, HideUsageChunk};
use crate::translate::{self, Translation};
use crate::upstream::{self, Usage};
use request::{apply_rewrite, guardrail_messages, rewrite_body, ChatRequest};

pub struct Chat;

impl ApiShape for Chat {
    const ENDPOINT: &'static str = "chat.completions";
    const UPSTREAM_PATH: &'static str = "chat/completions";
    const DIALECT: Dialect = Dialect::OpenAi;

    type Request<'a> = ChatRequest<'a>;

    /// Native to OpenAI-dialect providers; translated for Anthropic's.
    fn prepare(body: &Bytes, call: &Call<'_>, target: &Target) -> Result<Prepared, ApiError> {
        if target.provider.kind.dialect() == Dialect::OpenAi {
            return Prepared::native(Self::UPSTREAM_PATH, body, call, target);
        }
        let value: serde_json::Value = serde_json::from_slice(body)
            .map_err(|e| ApiError::new(ErrorCode::InvalidJson, e.to_string()))?;
        let translated = translate::to_anthropic::request(&value, &target.model);
        Ok(Prepared {
            path: "messages",
            body: Bytes::from(translated.to_string()),
            translation: Some(Translation::ChatToAnthropic {
                model: call.model.to_string(),
            }),
        })
    }

    fn parse(body: &[u8]) -> Result<ChatRequest<'_>, ApiError> {
        ChatRequest::parse(body)
    }

    fn read<'a>(request: &'a ChatRequest<'_>) -> Result<Call<'a>, ApiError> {
        request.call()
    }

    fn messages(request: &ChatRequest<'_>) -> Vec<ChatMessage> {
        guardrail_messages(request.messages.as_deref())
    }

    /// Rewritten only when the body carries Warden's `metadata.task_id`,
    /// the stream's usage must be asked for, or the model labels the prompt.
    fn forward_body(
        body: &Bytes,
        request: &ChatRequest<'_>,
        forward: Forward<'_>,
    ) -> Result<Option<Bytes>, ApiError> {
        let plain = !forward.ask_usage && forward.output_cap.is_none();
        if request.metadata.is_none() && plain && forward.embedded_task.is_none() {
            return Ok(None);
        }
        let (usage, cap) = (forward.ask_usage, forward.output_cap);
        rewrite_body(body, usage, cap, forward.embedded_task).map(Some)
    }

    fn apply_rewrite(body: &Bytes, messages: &[ChatMessage]) -> Result<Bytes, ApiError> {
        apply_rewrite(body, messages)
    }

    fn usage_of(answer: &[u8]) -> Option<Usage> {
        upstream::usage_of(answer)
    }

    fn stream_usage(data: &[u8], usage: &mut Option<Usage>) {
        upstream::read_openai_usage(data, usage)
    }

    fn stream_rewrites(hide_usage: bool, label: Option<&LabelSlot>) -> Vec<Box<dyn EventRewrite>> {
        let mut rewrites: Vec<Box<dyn EventRewrite>> = Vec::new();
        if hide_usage {
            rewrites.push(Box::new(HideUsageChunk));
        }
        if let Some(label) = label {
            rewrites.push(Box::new(StreamStripper::new(label.clone())));
        }
        rewrites
    }

    fn strip_label(answer: Bytes) -> (Bytes, Option<String>) {
        embedded_intent::strip_completion(answer)
    }

    async fn screen_answer(
        guardrails: &[StageSlot],
        guard: &Guard,
        answer: Bytes,
    ) -> Result<Bytes, ApiError> {
        guardrails::screen_response(guardrails, guard, answer).await
    }

    async fn screen_stream(
        guardrails: &[StageSlot],
        guard: &Guard,
        sse: Bytes,
    ) -> Result<Bytes, ApiError> {
        guardrails::screen_stream(guardrails, guard, sse).await
    }
}
