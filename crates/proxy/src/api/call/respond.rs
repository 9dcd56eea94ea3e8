//! The respond phase: the provider's answer back to the client (whole,
//! streamed chunk by chunk, or held until the tenant's guardrails screened
//! it), and the call's ledger finished with the usage it reported.

use std::sync::atomic::Ordering;

use bytes::Bytes;
use http_body_util::BodyExt;
use hyper::header::{CONTENT_TYPE, RETRY_AFTER};
use hyper::{Response, StatusCode};

use super::{annotate, provider_refused_key, Answer};
use crate::api::shape::ApiShape;
use crate::chain::StageSlot;
use crate::embedded_intent::LabelSlot;
use crate::error::ApiError;
use crate::guardrails::Guard;
use crate::http::{full, Body};
use crate::ledger::{Ledger, CLIENT_CLOSED, SHUTDOWN_CUT};
use crate::sse::EventRewrite;
use crate::translate::Translation;
use crate::upstream::{
    read_capped, MeteredStream, ReadFailure, ReadUsage, StreamEnd, StreamSummary, Usage,
};

pub(super) async fn respond<S: ApiShape>(
    mut ledger: Ledger,
    answer: Answer,
) -> Result<Response<Body>, ApiError> {
    let Answer {
        upstream,
        translation,
        assessment,
        stream,
        hide_usage,
        model_label,
        chain,
        guard,
    } = answer;
    let status = upstream.status();
    let content_type = upstream.headers().get(CONTENT_TYPE).cloned();
    // A provider's 429 or 503 says when to come back: the client is told too.
    let retry_after = upstream.headers().get(RETRY_AFTER).cloned();
    ledger.record().status = status.as_u16();
    let streamed = stream && status.is_success();
    // A translated stream becomes the client's dialect first; the shape's
    // own rewrites then see what the client will.
    let mut rewrites = translation
        .iter()
        .map(Translation::stream)
        .collect::<Vec<_>>();
    rewrites.extend(S::stream_rewrites(hide_usage, model_label.as_ref()));
    let read_usage = translation
        .as_ref()
        .map_or(S::stream_usage as ReadUsage, Translation::stream_usage);
    // The tenant's guardrails, when it has any, with this call's context.
    let screen = chain.as_deref().zip(guard.as_ref());
    let screen = screen.map(|(chain, context)| (chain.guardrails.as_slice(), context));
    let hold = chain.as_deref().is_some_and(|c| c.screen_streams);
    let (status, body) = match screen {
        Some(screen) if streamed && hold => {
            let sse =
                held_stream::<S>(ledger, upstream, rewrites, read_usage, &model_label, screen)
                    .await?;
            (status, full(sse))
        }
        _ if streamed => (
            status,
            live_stream(ledger, upstream, rewrites, read_usage, &model_label),
        ),
        _ => {
            let embedded = model_label.is_some();
            let plain = Plain {
                embedded,
                screen,
                translation: translation.as_ref(),
            };
            plain.answer::<S>(ledger, upstream).await?
        }
    };
    let mut response = Response::new(body);
    *response.status_mut() = status;
    annotate(&mut response, &assessment, stream, content_type);
    if let Some(retry_after) = retry_after {
        response.headers_mut().insert(RETRY_AFTER, retry_after);
    }
    Ok(response)
}

/// The tenant's guardrails and this call's context for them.
type Screen<'a> = (&'a [StageSlot], &'a Guard);

/// Chunks pass as they come; the ledger finishes when the stream ends,
/// fails, or the client goes away (see `MeteredStream`).
fn live_stream(
    mut ledger: Ledger,
    upstream: reqwest::Response,
    rewrites: Vec<Box<dyn EventRewrite>>,
    read_usage: ReadUsage,
    model_label: &Option<LabelSlot>,
) -> Body {
    let label = model_label.clone();
    let deadline = ledger.deadline();
    let done = move |summary: StreamSummary| {
        let record = ledger.record();
        record.model_intent = label.and_then(|l| l.get().cloned());
        record.response_bytes = summary.bytes;
        let usage = summary
            .usage
            .unwrap_or_else(|| ledger.delivered_estimate(summary.events));
        match summary.end {
            StreamEnd::Complete => ledger.finish(summary.usage),
            // The client had its 200 already; the log says what happened.
            StreamEnd::ProviderFailed(why) => {
                let error = ApiError::bad_gateway(format!(
                    "upstream_error after {} bytes: the provider's stream broke: {why}",
                    summary.bytes
                ));
                ledger.fail(&error, Some(usage));
            }
            StreamEnd::ClientClosed => {
                let cut = ledger.app().grace_expired.load(Ordering::Relaxed);
                let record = ledger.record();
                let bytes = summary.bytes;
                (record.status, record.error) = if cut {
                    let why = format!("cut at shutdown after {bytes} bytes (shutdown_grace_secs)");
                    (SHUTDOWN_CUT, Some(why))
                } else {
                    let why = format!("the client closed the stream after {bytes} bytes");
                    (CLIENT_CLOSED, Some(why))
                };
                ledger.finish(Some(usage));
            }
        }
    };
    MeteredStream::new(upstream, rewrites, read_usage, Box::new(done), deadline).boxed_unsync()
}

/// A streamed answer held until the tenant's guardrails have screened all
/// of it (see guardrails.rs), then sent whole, as the same SSE events.
async fn held_stream<S: ApiShape>(
    mut ledger: Ledger,
    upstream: reqwest::Response,
    rewrites: Vec<Box<dyn EventRewrite>>,
    read_usage: ReadUsage,
    model_label: &Option<LabelSlot>,
    (guardrails, context): Screen<'_>,
) -> Result<Bytes, ApiError> {
    let (done, summary) = tokio::sync::oneshot::channel();
    let report = move |summary: StreamSummary| {
        let _ = done.send(summary);
    };
    let cap = ledger.app().max_response_bytes();
    let deadline = ledger.deadline();
    let metered = MeteredStream::new(upstream, rewrites, read_usage, Box::new(report), deadline);
    let collected = http_body_util::Limited::new(metered, cap).collect().await;
    let summary = summary.await.ok();
    let usage = summary.as_ref().and_then(|s| s.usage);
    let record = ledger.record();
    record.response_bytes = summary.as_ref().map_or(0, |s| s.bytes);
    record.model_intent = model_label.as_ref().and_then(|l| l.get().cloned());
    let screened = match collected {
        Ok(sse) => S::screen_stream(guardrails, context, sse.to_bytes()).await,
        Err(e) if e.is::<http_body_util::LengthLimitError>() => Err(ApiError::bad_gateway(
            format!("the provider's answer is larger than the gateway's limit of {cap} bytes"),
        )),
        Err(e) => Err(ApiError::bad_gateway(format!(
            "the provider's stream failed: {e}"
        ))),
    };
    match &screened {
        Ok(_) => ledger.finish(usage),
        Err(e) => ledger.fail(e, usage),
    }
    screened
}

/// How a plain (whole) answer is passed on.
struct Plain<'a> {
    /// The answer carries the model's own label, to strip.
    embedded: bool,
    screen: Option<Screen<'a>>,
    /// The answer is in the provider's dialect, to translate.
    translation: Option<&'a Translation>,
}

impl Plain<'_> {
    async fn answer<S: ApiShape>(
        self,
        mut ledger: Ledger,
        upstream: reqwest::Response,
    ) -> Result<(StatusCode, Body), ApiError> {
        let status = upstream.status();
        let cap = ledger.app().max_response_bytes();
        let total = tokio::time::timeout_at(ledger.deadline(), read_capped(upstream, cap));
        let read = total.await.unwrap_or(Err(ReadFailure::PastDeadline));
        let bytes = match read {
            Ok(bytes) => bytes,
            Err(failure) => {
                // The provider worked on it: charged at the estimate.
                let error = failure.into_error();
                ledger.fail(&error, None);
                return Err(error);
            }
        };
        let usage = if !status.is_success() {
            Some(Usage::default())
        } else if self.translation.is_some() {
            crate::upstream::usage_of(&bytes) // either dialect's names
        } else {
            S::usage_of(&bytes)
        };
        // A 200 whose body is not JSON at all is not an answer to pass on
        // (usage found means it parsed).
        if status.is_success() && usage.is_none() && !is_json(&bytes) {
            let error = ApiError::bad_gateway(
                "the provider answered 200 with a body that is not valid JSON",
            );
            ledger.fail(&error, None);
            return Err(error);
        }
        ledger.record().response_bytes = bytes.len() as u64;
        if provider_refused_key(status) {
            crate::throttled!(error, status = %status, "the provider refused Warden's API key");
            let error = ApiError::bad_gateway(
                "the provider refused the gateway's credentials; tell the operator",
            );
            ledger.fail(&error, usage);
            return Err(error);
        }
        if status.is_server_error() {
            // Never the provider's page or error as it is: Warden's error,
            // with the provider's message summarised.
            let error = ApiError::bad_gateway(provider_failure(status, &bytes));
            ledger.fail(&error, usage);
            return Err(error);
        }
        ledger.record().status = status.as_u16();
        let bytes = match self.translation {
            Some(translation) => translation.answer(status.is_success(), &bytes),
            None => bytes,
        };
        let bytes = if self.embedded && status.is_success() {
            let (clean, label) = S::strip_label(bytes);
            ledger.record().model_intent = label;
            clean
        } else {
            bytes
        };
        let bytes = match self.screen.filter(|_| status.is_success()) {
            Some((guardrails, context)) => {
                match S::screen_answer(guardrails, context, bytes).await {
                    Ok(bytes) => bytes,
                    Err(e) => {
                        ledger.fail(&e, usage);
                        return Err(e);
                    }
                }
            }
            None => bytes,
        };
        ledger.finish(usage);
        Ok((status, full(bytes)))
    }
}

fn is_json(bytes: &[u8]) -> bool {
    serde_json::from_slice::<serde::de::IgnoredAny>(bytes).is_ok()
}

/// Longest part of a provider's error message passed on.
const PROVIDER_MESSAGE_CHARS: usize = 200;

/// What a client is told of a provider's 5xx: its status and, when it sent
/// an OpenAI-style error, its message, cut short and without addresses.
fn provider_failure(status: StatusCode, body: &[u8]) -> String {
    #[derive(serde::Deserialize)]
    struct Failure {
        error: Option<FailureDetail>,
    }
    #[derive(serde::Deserialize)]
    struct FailureDetail {
        message: Option<String>,
    }
    let message = serde_json::from_slice::<Failure>(body)
        .ok()
        .and_then(|f| f.error?.message)
        .map(|m| {
            let words = m
                .split_whitespace()
                .map(|w| if w.contains("://") { "[address]" } else { w });
            let text = words.collect::<Vec<_>>().join(" ");
            text.chars()
                .take(PROVIDER_MESSAGE_CHARS)
                .collect::<String>()
        });
    match message {
        Some(m) if !m.is_empty() => format!("the provider failed ({status}): {m}"),
        _ => format!("the provider failed ({status}) without an error Warden could read"),
    }
}
