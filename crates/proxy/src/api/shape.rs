//! What an API shape contributes to the one call path (`api/call/`):
//! how to read a call (the model, the prompt, the token estimate, the task
//! it names) from its body, what to forward, and how to read usage from a
//! plain or streamed answer. Chat completions is the first shape
//! (`api/chat/`); Anthropic Messages, Responses and embeddings implement the
//! same trait and reuse every phase, the chain and the ledger.

use std::borrow::Cow;
use std::future::Future;

use bytes::Bytes;

use crate::chain::StageSlot;
use crate::domain::providers::Dialect;
use crate::domain::ChatMessage;
use crate::embedded_intent::LabelSlot;
use crate::error::{ApiError, ErrorCode};
use crate::guardrails::Guard;
use crate::http::Body;
use crate::providers::Target;
use crate::sse::EventRewrite;
use crate::state::model::Task;
use crate::translate::Translation;
use crate::upstream::Usage;

/// What the call path reads of a request, whatever its shape.
pub struct Call<'a> {
    pub model: &'a str,
    /// The task the body names (`X-Task-Id` wins over it).
    pub task_id: Option<&'a str>,
    /// The text the chain judges: the last user message, or the input.
    pub prompt: Cow<'a, str>,
    pub stream: bool,
    /// The client asked for the stream's usage itself.
    pub include_usage: bool,
    pub prompt_tokens: u64,
    /// The most the answer may take, as the client capped it.
    pub completion_cap: Option<u64>,
}

/// How the forwarded body differs from the client's.
pub struct Forward<'a> {
    /// Ask the provider for the stream's usage (the client did not).
    pub ask_usage: bool,
    /// Ask the answering model to label the prompt for this task too.
    pub embedded_task: Option<&'a Task>,
    /// Cap the answer at this many tokens (the call's reservation, for a
    /// user with a token quota).
    pub output_cap: Option<u64>,
}

/// What goes to one target: the endpoint under its base URL, the body, and
/// how its answer comes back when it speaks another dialect.
pub struct Prepared {
    pub path: &'static str,
    pub body: Bytes,
    pub translation: Option<Translation>,
}

impl Prepared {
    /// The client's body as it is, but for the target's model name.
    pub fn native(
        path: &'static str,
        body: &Bytes,
        call: &Call<'_>,
        target: &Target,
    ) -> Result<Self, ApiError> {
        let body = if target.model == call.model {
            body.clone()
        } else {
            with_model(body, &target.model)?
        };
        Ok(Self {
            path,
            body,
            translation: None,
        })
    }
}

/// `body` (a JSON object) with its `model` set to `model`.
pub fn with_model(body: &Bytes, model: &str) -> Result<Bytes, ApiError> {
    let mut value: serde_json::Value = serde_json::from_slice(body)
        .map_err(|e| ApiError::new(ErrorCode::InvalidJson, e.to_string()))?;
    value["model"] = model.into();
    serde_json::to_vec(&value)
        .map(Bytes::from)
        .map_err(|e| ApiError::internal(e.to_string()))
}

/// A body without Warden's `metadata.task_id`, its answer capped at
/// `cap` tokens in the field `cap_field` (when given): what most shapes
/// forward.
pub fn forward_json(body: &Bytes, cap_field: &str, cap: Option<u64>) -> Result<Bytes, ApiError> {
    let mut value: serde_json::Value = serde_json::from_slice(body)
        .map_err(|e| ApiError::new(ErrorCode::InvalidJson, e.to_string()))?;
    if let Some(object) = value.as_object_mut() {
        if let Some(cap) = cap {
            object.insert(cap_field.into(), cap.into());
        }
        strip_task_id(object);
    }
    serde_json::to_vec(&value)
        .map(Bytes::from)
        .map_err(|e| ApiError::internal(e.to_string()))
}

/// Removes Warden's `metadata.task_id` (and `metadata`, left empty) from a
/// body: it is not the provider's.
pub fn strip_task_id(object: &mut serde_json::Map<String, serde_json::Value>) {
    let empty = match object.get_mut("metadata").and_then(|m| m.as_object_mut()) {
        Some(metadata) => {
            metadata.remove("task_id");
            metadata.is_empty()
        }
        None => false,
    };
    if empty {
        object.remove("metadata");
    }
}

/// The task a body's `metadata.task_id` names.
pub fn metadata_task(
    metadata: Option<&serde_json::Map<String, serde_json::Value>>,
) -> Option<&str> {
    let task = metadata.and_then(|m| m.get("task_id"))?.as_str()?;
    (!task.is_empty()).then_some(task)
}

pub trait ApiShape: Send + Sync + 'static {
    /// The endpoint's name in tokens, tasks and the log.
    const ENDPOINT: &'static str;
    /// Where it is sent, under the provider's base URL.
    const UPSTREAM_PATH: &'static str;
    /// The API family it belongs to.
    const DIALECT: Dialect;

    /// What goes to `target`: the body as it is (with the target's model
    /// name) to a provider of this shape's dialect; a shape that translates
    /// to the other dialect overrides this.
    fn prepare(body: &Bytes, call: &Call<'_>, target: &Target) -> Result<Prepared, ApiError> {
        if target.provider.kind.dialect() == Self::DIALECT {
            return Prepared::native(Self::UPSTREAM_PATH, body, call, target);
        }
        Err(ApiError::new(
            ErrorCode::InvalidParameter,
            format!(
                "model '{}' is served by provider '{}' ({}), and {} calls are not translated to its API",
                call.model,
                target.provider.name,
                target.provider.kind.as_str(),
                Self::ENDPOINT
            ),
        ))
    }

    /// An error as this shape's clients expect it.
    fn error_response(error: ApiError) -> hyper::Response<Body> {
        error.into_response()
    }

    /// The body as this shape parses it, borrowing from the bytes.
    type Request<'a>: Send + Sync;

    fn parse(body: &[u8]) -> Result<Self::Request<'_>, ApiError>;

    /// The call's model, prompt, estimate and task, checked.
    fn read<'a>(request: &'a Self::Request<'_>) -> Result<Call<'a>, ApiError>;

    /// The messages the tenant's guardrails see, in body order.
    fn messages(request: &Self::Request<'_>) -> Vec<ChatMessage>;

    /// The body to forward; `None` forwards the client's as it is.
    fn forward_body(
        body: &Bytes,
        request: &Self::Request<'_>,
        forward: Forward<'_>,
    ) -> Result<Option<Bytes>, ApiError>;

    /// `body` with the guardrails' rewritten message texts (same order).
    fn apply_rewrite(body: &Bytes, messages: &[ChatMessage]) -> Result<Bytes, ApiError>;

    /// The usage a complete answer reports.
    fn usage_of(answer: &[u8]) -> Option<Usage>;

    /// Reads usage from one event's `data:` of a streamed answer into
    /// `usage` (a shape may report it over several events).
    fn stream_usage(data: &[u8], usage: &mut Option<Usage>);

    /// The rewrites a streamed answer's events go through: hiding the
    /// usage Warden asked for, stripping the model's own label.
    fn stream_rewrites(hide_usage: bool, label: Option<&LabelSlot>) -> Vec<Box<dyn EventRewrite>>;

    /// A complete answer without the model's own label, and the label.
    fn strip_label(answer: Bytes) -> (Bytes, Option<String>);

    /// A complete answer screened by the tenant's guardrails.
    fn screen_answer(
        guardrails: &[StageSlot],
        guard: &Guard,
        answer: Bytes,
    ) -> impl Future<Output = Result<Bytes, ApiError>> + Send;

    /// A whole streamed answer (its SSE events) screened by the guardrails.
    fn screen_stream(
        guardrails: &[StageSlot],
        guard: &Guard,
        sse: Bytes,
    ) -> impl Future<Output = Result<Bytes, ApiError>> + Send;
}
