//! `POST /v1/chat/completions`: authenticate, read and check the body, run
//! the tenant's chain, forward to the provider, pass the answer back (a
//! stream chunk by chunk), then reconcile usage and log the request.

use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::header::{HeaderValue, CACHE_CONTROL, CONTENT_TYPE};
use hyper::{Request, Response, StatusCode};

mod record;
mod request;

use super::header_value;
use crate::auth::authenticate;
use crate::app::App;
use crate::chain::{action_str, drift_str, label_str, StageSlot};
use crate::embedded_intent::{self, StreamStripper};
use crate::error::ApiError;
use crate::guardrails;
use crate::http::{full, Body};
use crate::pipeline::{self, Assessment, CallFacts};
use crate::runtime::bindings::guardrail;
use crate::sse::{EventRewrite, HideUsageChunk};
use crate::state::model::RequestRecord;
use crate::upstream::{usage_of, MeteredStream, StreamSummary, Usage};
use record::complete;
use request::{
    estimate_tokens, read_body, rewrite_body, task_id_header, truncate, ChatRequest,
    DEFAULT_COMPLETION_BUDGET,
};

const ENDPOINT: &str = "chat.completions";
/// Longest prompt text handed to the intent stage.
const INTENT_PROMPT_CAP: usize = 8 << 10;

pub async fn handle(app: &Arc<App>, req: Request<Incoming>) -> Response<Body> {
    let started = Instant::now();
    app.metrics.request();
    let request_id = app.next_request_id();
    let mut response = proxy(app, req, &request_id, started)
        .await
        .unwrap_or_else(ApiError::into_response);
    response
        .headers_mut()
        .insert("x-warden-request-id", header_value(&request_id));
    response
}

async fn proxy(
    app: &Arc<App>,
    req: Request<Incoming>,
    request_id: &str,
    started: Instant,
) -> Result<Response<Body>, ApiError> {
    let claims = authenticate(app, &req)?;
    let task_header = task_id_header(req.headers());
    let body = read_body(req, app.config.max_body_bytes).await?;
    let chat: ChatRequest = serde_json::from_slice(&body).map_err(|e| {
        ApiError::bad_request(
            "invalid_json",
            format!("the request body is not valid JSON for a chat completion: {e}"),
        )
    })?;
    let model = chat
        .model
        .as_deref()
        .filter(|m| !m.is_empty())
        .ok_or_else(|| ApiError::bad_request("missing_model", "'model' is required"))?;
    let messages = chat
        .messages
        .as_deref()
        .filter(|m| !m.is_empty())
        .ok_or_else(|| {
            ApiError::bad_request("missing_messages", "'messages' must be a non-empty array")
        })?;
    let body_task = chat
        .metadata
        .as_ref()
        .and_then(|m| m.get("task_id"))
        .and_then(|t| t.as_str())
        .filter(|t| !t.is_empty());
    let task_id = task_header.as_deref().or(body_task).ok_or_else(|| {
        ApiError::bad_request(
            "missing_task_id",
            "every call must name its task: set the X-Task-Id header or metadata.task_id in the body",
        )
    })?;

    let directory = app.db.directory_full();
    let entry = directory.tenant(&claims.tid);
    let (tenant, user) =
        match entry.and_then(|e| Some((e.tenant.as_ref()?, e.users.get(&claims.sub)?))) {
            Some(found) => found,
            None => return Err(ApiError::unauthorized("the token's user no longer exists")),
        };
    let task = entry.and_then(|e| e.tasks.get(task_id));
    let prompt_message = messages
        .iter()
        .rev()
        .find(|m| m.role == "user")
        .unwrap_or(&messages[messages.len() - 1]);
    let prompt = prompt_message.text();
    let budget = chat
        .max_completion_tokens
        .or(chat.max_tokens)
        .unwrap_or(DEFAULT_COMPLETION_BUDGET);
    let estimated_tokens = estimate_tokens(messages, budget);

    let mut record = RequestRecord {
        id: request_id.to_string(),
        at_ms: crate::clock::now_ms(),
        tenant_id: tenant.id.clone(),
        user_id: user.id.clone(),
        task_id: task_id.to_string(),
        endpoint: ENDPOINT.into(),
        model: model.to_string(),
        prompt: truncate(&prompt, app.config.prompt_log_cap_bytes).to_string(),
        stream: chat.stream,
        ..RequestRecord::default()
    };

    // The chain.
    let chain = match &app.chains {
        Some(chains) => Some(chains.for_tenant(&tenant.id).map_err(|e| {
            ApiError::plugin_failed(format!("the tenant's policy chain is unavailable: {e:#}"))
        })?),
        None => None,
    };
    let assessment = match &chain {
        Some(chain) => {
            let facts = CallFacts {
                request_id,
                claims: &claims,
                tenant,
                user,
                task_id,
                task,
                endpoint: ENDPOINT,
                model,
                prompt: truncate(&prompt, INTENT_PROMPT_CAP),
                estimated_tokens,
                at: app.moment(&tenant.id),
            };
            let chain_started = Instant::now();
            let assessment = pipeline::run(app, chain, &facts).await;
            app.metrics.chain_run(chain_started.elapsed());
            assessment
        }
        None if claims.tasks.iter().any(|t| t == task_id) => Ok(Assessment::default()),
        None => Err(ApiError::forbidden(
            "task_not_allowed",
            format!("task '{task_id}' is not one of this token's tasks"),
        )),
    };
    let assessment = match assessment {
        Ok(a) => a,
        Err(e) => {
            if e.code == "policy_plugin_failed" {
                app.metrics.plugin_failure();
                if let Some(chains) = &app.chains {
                    chains.note_failure(&tenant.id, record.at_ms, &e.message);
                }
            }
            // Nothing is reserved any more; persist the score and history.
            record.status = e.status.as_u16();
            record.error = Some(e.message.clone());
            complete(app, record, 0, Some(Usage::default()), started);
            return Err(e);
        }
    };
    if let Some(intent) = &assessment.intent {
        record.intent = Some(label_str(intent.label).into());
        record.confidence = Some(intent.confidence);
        record.drift = Some(drift_str(intent.drift).into());
    }
    record.deviation_delta = assessment.deviation_delta;
    record.deviation_score = assessment.score;
    record.action = assessment.action.map(|a| action_str(a).to_string());
    if let Some(refusal) = assessment.blocked {
        record.status = refusal.status.as_u16();
        record.error = Some(refusal.message.clone());
        complete(app, record, 0, Some(Usage::default()), started);
        return Err(refusal);
    }

    // Forward. The body goes out untouched unless it carried our metadata.
    // A streamed answer carries token counts only when asked for: ask for
    // them, and hide that extra chunk from a client that did not.
    let add_usage = chat.stream
        && !chat
            .stream_options
            .as_ref()
            .is_some_and(|o| o.include_usage);
    // Embedded classification: the answering model labels the prompt too.
    let embedded_task = task.filter(|_| chain.as_deref().is_some_and(|c| c.embedded_intent));
    let mut forward = if chat.metadata.is_some() || add_usage || embedded_task.is_some() {
        rewrite_body(&body, add_usage, embedded_task)?
    } else {
        body.clone()
    };
    // Only a call with embedded classification has a label to catch.
    let model_label = embedded_task.map(|_| embedded_intent::LabelSlot::default());
    let stream_rewrites = || {
        let mut rewrites: Vec<Box<dyn EventRewrite>> = Vec::new();
        if add_usage {
            rewrites.push(Box::new(HideUsageChunk));
        }
        if let Some(label) = &model_label {
            rewrites.push(Box::new(StreamStripper::new(label.clone())));
        }
        rewrites
    };
    let stream = chat.stream;
    let reserved = assessment.reserved_tokens;

    // The tenant's guardrails see (and may rewrite) what is forwarded.
    let guardrails = chain
        .as_deref()
        .map_or(&[][..], |c| c.guardrails.as_slice());
    let guard_context = (!guardrails.is_empty())
        .then(|| guardrails::context(&claims, user, task_id, ENDPOINT, model));
    if let Some(context) = &guard_context {
        let original = messages
            .iter()
            .map(|m| guardrail::Message {
                role: m.role.clone(),
                content: m.text().into_owned(),
            })
            .collect();
        let screened = match guardrails::screen_request(guardrails, context, original).await {
            Ok(Some(rewritten)) => {
                guardrails::apply_rewrite(&forward, &rewritten).map(|body| Some((body, rewritten)))
            }
            Ok(None) => Ok(None),
            Err(e) => Err(e),
        };
        match screened {
            Ok(Some((body, rewritten))) => {
                forward = body;
                // The log keeps what was forwarded, not what was redacted away.
                if let Some(last) = rewritten.iter().rev().find(|m| m.role == "user") {
                    record.prompt =
                        truncate(&last.content, app.config.prompt_log_cap_bytes).to_string();
                }
            }
            Ok(None) => {}
            Err(e) => {
                record.status = e.status.as_u16();
                record.error = Some(e.message.clone());
                complete(app, record, reserved, Some(Usage::default()), started);
                return Err(e);
            }
        }
    }
    let upstream = match app.upstream.chat(forward).await {
        Ok(r) => r,
        Err(e) => {
            record.status = e.status.as_u16();
            record.error = Some(e.message.clone());
            complete(app, record, reserved, Some(Usage::default()), started);
            return Err(e);
        }
    };
    let mut status = upstream.status();
    let content_type = upstream.headers().get(CONTENT_TYPE).cloned();
    record.status = status.as_u16();

    let hold_stream = chain.as_deref().is_some_and(|c| c.screen_streams);
    let body: Body = if let (true, Some(context), true) =
        (stream && status.is_success(), &guard_context, hold_stream)
    {
        let screen = (guardrails, context);
        let rewrites = (stream_rewrites(), model_label.clone());
        full(screened_stream(app, upstream, rewrites, screen, record, reserved, started).await?)
    } else if stream && status.is_success() {
        let app = app.clone();
        let label = model_label.clone();
        MeteredStream::new(
            upstream,
            stream_rewrites(),
            Box::new(move |summary: StreamSummary| {
                record.model_intent = label.and_then(|l| l.get().cloned());
                record.response_bytes = summary.bytes;
                record.error = summary.error;
                complete(&app, record, reserved, summary.usage, started);
            }),
        )
        .boxed_unsync()
    } else {
        let bytes = match upstream.bytes().await {
            Ok(b) => b,
            Err(e) => {
                let err = ApiError::bad_gateway(format!("the provider's response failed: {e}"));
                record.status = err.status.as_u16();
                record.error = Some(err.message.clone());
                complete(app, record, reserved, Some(Usage::default()), started);
                return Err(err);
            }
        };
        let usage = if status.is_success() {
            usage_of(&bytes)
        } else {
            Some(Usage::default())
        };
        record.response_bytes = bytes.len() as u64;
        if matches!(status, StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN) {
            // The provider refused *our* key; the caller's token was fine.
            tracing::error!(status = %status, "the provider refused Warden's API key");
            record.error = Some("provider refused the gateway's credentials".into());
            complete(app, record, reserved, usage, started);
            return Err(ApiError::bad_gateway(
                "the provider refused the gateway's credentials; tell the operator",
            ));
        }
        if status.is_server_error() {
            status = StatusCode::BAD_GATEWAY;
            record.status = status.as_u16();
        }
        let bytes = if embedded_task.is_some() && status.is_success() {
            let (clean, label) = embedded_intent::strip_completion(bytes);
            record.model_intent = label;
            clean
        } else {
            bytes
        };
        let bytes = match &guard_context {
            Some(context) if status.is_success() => {
                match guardrails::screen_response(guardrails, context, bytes).await {
                    Ok(bytes) => bytes,
                    Err(e) => {
                        record.status = e.status.as_u16();
                        record.error = Some(e.message.clone());
                        complete(app, record, reserved, usage, started);
                        return Err(e);
                    }
                }
            }
            _ => bytes,
        };
        complete(app, record, reserved, usage, started);
        full(bytes)
    };

    let mut response = Response::new(body);
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(
        CONTENT_TYPE,
        content_type.unwrap_or_else(|| HeaderValue::from_static("application/json")),
    );
    if stream {
        headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    }
    if let Some(intent) = &assessment.intent {
        headers.insert(
            "x-warden-intent",
            HeaderValue::from_static(label_str(intent.label)),
        );
    }
    if let Some(score) = assessment.score {
        headers.insert(
            "x-warden-deviation-score",
            header_value(&format!("{score:.2}")),
        );
    }
    if let Some(warning) = &assessment.warning {
        headers.insert("x-warden-warning", header_value(warning));
    }
    if let Some(rate_limit) = &assessment.rate_limit {
        rate_limit.apply(headers);
    }
    Ok(response)
}

/// A streamed answer held until the tenant's guardrails have screened all
/// of it (see guardrails.rs), then sent whole, as the same SSE events.
async fn screened_stream(
    app: &App,
    upstream: reqwest::Response,
    (rewrites, model_label): (
        Vec<Box<dyn EventRewrite>>,
        Option<embedded_intent::LabelSlot>,
    ),
    (guardrails, context): (&[StageSlot], &guardrail::CallContext),
    mut record: RequestRecord,
    reserved: u64,
    started: Instant,
) -> Result<Bytes, ApiError> {
    let (done, summary) = tokio::sync::oneshot::channel();
    let metered = MeteredStream::new(
        upstream,
        rewrites,
        Box::new(move |summary: StreamSummary| {
            let _ = done.send(summary);
        }),
    );
    let collected = metered.collect().await;
    let summary = summary.await.ok();
    let usage = summary.as_ref().and_then(|s| s.usage);
    record.response_bytes = summary.as_ref().map_or(0, |s| s.bytes);
    record.model_intent = model_label.and_then(|l| l.get().cloned());
    let screened = match collected {
        Ok(sse) => guardrails::screen_stream(guardrails, context, sse.to_bytes()).await,
        Err(e) => Err(ApiError::bad_gateway(format!(
            "the provider's stream failed: {e}"
        ))),
    };
    if let Err(e) = &screened {
        record.status = e.status.as_u16();
        record.error = Some(e.message.clone());
    }
    complete(app, record, reserved, usage, started);
    screened
}
