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
use crate::domain::ChatMessage;
use crate::embedded_intent::LabelSlot;
use crate::error::ApiError;
use crate::guardrails::Guard;
use crate::sse::EventRewrite;
use crate::state::model::Task;
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

pub trait ApiShape: Send + Sync + 'static {
    /// The endpoint's name in tokens, tasks and the log.
    const ENDPOINT: &'static str;
    /// Where it is sent, under the provider's base URL.
    const UPSTREAM_PATH: &'static str;

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
