//! A provider's answer on its way back (the client that sends calls is
//! `providers::client`): whole answers read up to a cap, streams passed
//! through chunk by chunk while a small scanner reads the `usage` block on
//! the way without buffering the response.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use futures_util::Stream;
use http_body::Frame;
use serde::Deserialize;

use crate::error::ApiError;
use crate::http::BoxError;
use crate::sse::{EventRewrite, SseRewriter};

/// Why a whole answer could not be read.
pub enum ReadFailure {
    /// Silent past the idle timeout.
    Stalled,
    /// Still coming when the call's total time ran out.
    PastDeadline,
    /// Larger than `upstream.max_response_mib`.
    TooLarge(usize),
    Broken(String),
}

impl ReadFailure {
    pub fn into_error(self) -> ApiError {
        match self {
            Self::Stalled => {
                ApiError::gateway_timeout("the provider's answer stalled past the idle timeout")
            }
            Self::PastDeadline => ApiError::gateway_timeout(
                "the provider's answer was still coming when the call ran past request_timeout_secs",
            ),
            Self::TooLarge(cap) => ApiError::bad_gateway(format!(
                "the provider's answer is larger than the gateway's limit of {cap} bytes"
            )),
            Self::Broken(e) => ApiError::bad_gateway(format!("the provider's response failed: {e}")),
        }
    }
}

/// A whole answer, read chunk by chunk up to `cap` bytes: a provider (or
/// something posing as one) cannot make the gateway buffer without bound.
pub async fn read_capped(
    mut response: reqwest::Response,
    cap: usize,
) -> Result<Bytes, ReadFailure> {
    if response.content_length().is_some_and(|n| n > cap as u64) {
        return Err(ReadFailure::TooLarge(cap));
    }
    let mut first: Option<Bytes> = None;
    let mut joined: Vec<u8> = Vec::new();
    loop {
        let chunk = match response.chunk().await {
            Ok(Some(chunk)) => chunk,
            Ok(None) => break,
            Err(e) if e.is_timeout() => return Err(ReadFailure::Stalled),
            Err(e) => return Err(ReadFailure::Broken(error_chain(&e))),
        };
        let held = first.as_ref().map_or(0, Bytes::len) + joined.len();
        if held + chunk.len() > cap {
            return Err(ReadFailure::TooLarge(cap));
        }
        // Most answers come in one chunk: keep it without a copy.
        match first.take() {
            None if joined.is_empty() => first = Some(chunk),
            None => joined.extend_from_slice(&chunk),
            Some(earlier) => {
                joined.extend_from_slice(&earlier);
                joined.extend_from_slice(&chunk);
            }
        }
    }
    Ok(first.unwrap_or_else(|| Bytes::from(joined)))
}

pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

/// Token counts reported by the provider, in OpenAI's chat names or the
/// Responses and Anthropic names (`input_tokens`, `output_tokens`).
#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
#[serde(from = "ReportedUsage")]
pub struct Usage {
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
    /// Of the prompt tokens, those read from the provider's prompt cache
    /// (priced at `cached_input`).
    pub cached_tokens: u64,
}

impl Usage {
    pub fn new(prompt_tokens: u64, completion_tokens: u64) -> Self {
        Self {
            prompt_tokens,
            completion_tokens,
            cached_tokens: 0,
        }
    }
}

/// Usage as OpenAI's shapes report it (`prompt_tokens_details` in chat,
/// `input_tokens_details` in Responses).
#[derive(Deserialize)]
struct ReportedUsage {
    #[serde(default, alias = "input_tokens")]
    prompt_tokens: u64,
    #[serde(default, alias = "output_tokens")]
    completion_tokens: u64,
    #[serde(default, alias = "input_tokens_details")]
    prompt_tokens_details: Option<TokenDetails>,
}

#[derive(Deserialize)]
struct TokenDetails {
    #[serde(default)]
    cached_tokens: Option<u64>,
}

impl From<ReportedUsage> for Usage {
    fn from(reported: ReportedUsage) -> Self {
        let cached = reported.prompt_tokens_details.and_then(|d| d.cached_tokens);
        Self {
            prompt_tokens: reported.prompt_tokens,
            completion_tokens: reported.completion_tokens,
            cached_tokens: cached.unwrap_or(0).min(reported.prompt_tokens),
        }
    }
}

/// The `usage` of a body, the rest skipped.
#[derive(Deserialize)]
pub struct UsageOnly {
    pub usage: Option<Usage>,
}

/// The `usage` block of a complete (non-streamed) response body.
pub fn usage_of(body: &[u8]) -> Option<Usage> {
    serde_json::from_slice::<UsageOnly>(body).ok()?.usage
}

/// The OpenAI shape's stream usage: the chunk Warden asked for carries
/// `usage` in OpenAI's names.
pub fn read_openai_usage(data: &[u8], usage: &mut Option<Usage>) {
    if data.windows(7).any(|w| w == b"\"usage\"") {
        if let Some(found) = usage_of(data.trim_ascii()) {
            *usage = Some(found);
        }
    }
}

/// Reads usage from one event's `data:` into the usage found so far (an API
/// shape's own format; see `api::shape::ApiShape::stream_usage`).
pub type ReadUsage = fn(&[u8], &mut Option<Usage>);

/// Finds usage in SSE `data:` lines as they stream past. Only an
/// incomplete trailing line is buffered between chunks.
pub struct SseUsageScanner {
    partial: Vec<u8>,
    read: ReadUsage,
    pub usage: Option<Usage>,
    /// `data:` events seen: about one token each, what a stream that broke
    /// without usage is charged for.
    pub events: u64,
}

impl SseUsageScanner {
    pub fn new(read: ReadUsage) -> Self {
        Self {
            partial: Vec::new(),
            read,
            usage: None,
            events: 0,
        }
    }

    pub fn feed(&mut self, chunk: &[u8]) {
        let mut rest = chunk;
        while let Some(end) = rest.iter().position(|&b| b == b'\n') {
            let (line, tail) = rest.split_at(end);
            rest = &tail[1..];
            if self.partial.is_empty() {
                self.line(line);
            } else {
                self.partial.extend_from_slice(line);
                let joined = std::mem::take(&mut self.partial);
                self.line(&joined);
            }
        }
        if !rest.is_empty() && self.partial.len() < 1 << 20 {
            self.partial.extend_from_slice(rest);
        }
    }

    fn line(&mut self, line: &[u8]) {
        if let Some(data) = line.strip_prefix(b"data:") {
            self.events += 1;
            (self.read)(data, &mut self.usage);
        }
    }
}

/// How a streamed response ended.
pub struct StreamSummary {
    pub bytes: u64,
    pub usage: Option<Usage>,
    /// `data:` events passed on.
    pub events: u64,
    pub end: StreamEnd,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StreamEnd {
    Complete,
    /// The provider's stream broke (reset, stall past the idle timeout).
    ProviderFailed(String),
    /// The client went away before the end.
    ClientClosed,
}

type Completion = Box<dyn FnOnce(StreamSummary) + Send>;

/// A response body that forwards the provider's stream chunk by chunk and
/// calls `on_complete` exactly once: at the end, on an error, or when the
/// client goes away (drop).
pub struct MeteredStream {
    inner: Pin<Box<dyn Stream<Item = reqwest::Result<Bytes>> + Send>>,
    scanner: SseUsageScanner,
    /// Event rewrites (hiding the usage chunk Warden asked for, stripping an
    /// embedded intent label); `None` passes chunks through untouched.
    rewriter: Option<SseRewriter>,
    bytes: u64,
    on_complete: Option<Completion>,
    /// The call's total time (`request_timeout_secs`) runs out here.
    deadline: Pin<Box<tokio::time::Sleep>>,
}

impl MeteredStream {
    pub fn new(
        response: reqwest::Response,
        rewrites: Vec<Box<dyn EventRewrite>>,
        read_usage: ReadUsage,
        on_complete: Completion,
        deadline: tokio::time::Instant,
    ) -> Self {
        Self {
            inner: Box::pin(response.bytes_stream()),
            scanner: SseUsageScanner::new(read_usage),
            rewriter: (!rewrites.is_empty()).then(|| SseRewriter::new(rewrites)),
            bytes: 0,
            on_complete: Some(on_complete),
            deadline: Box::pin(tokio::time::sleep_until(deadline)),
        }
    }

    fn finish(&mut self, end: StreamEnd) {
        if let Some(done) = self.on_complete.take() {
            done(StreamSummary {
                bytes: self.bytes,
                usage: self.scanner.usage,
                events: self.scanner.events,
                end,
            });
        }
    }
}

impl http_body::Body for MeteredStream {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        loop {
            if self.on_complete.is_none() {
                return Poll::Ready(None);
            }
            if self.deadline.as_mut().poll(cx).is_ready() {
                let why = "the call ran past request_timeout_secs";
                self.finish(StreamEnd::ProviderFailed(why.into()));
                return Poll::Ready(Some(Err(why.into())));
            }
            match self.inner.as_mut().poll_next(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Some(Ok(chunk))) => {
                    self.scanner.feed(&chunk);
                    let chunk = match &mut self.rewriter {
                        Some(rewriter) => rewriter.feed(&chunk),
                        None => chunk,
                    };
                    if chunk.is_empty() {
                        continue; // held back (an incomplete event) or removed
                    }
                    self.bytes += chunk.len() as u64;
                    return Poll::Ready(Some(Ok(Frame::data(chunk))));
                }
                Poll::Ready(Some(Err(e))) => {
                    let message = if e.is_timeout() {
                        "it stalled past the idle timeout".to_string()
                    } else {
                        error_chain(&e)
                    };
                    self.finish(StreamEnd::ProviderFailed(message));
                    return Poll::Ready(Some(Err(Box::new(e))));
                }
                Poll::Ready(None) => {
                    let rest = self
                        .rewriter
                        .as_mut()
                        .map(SseRewriter::finish)
                        .unwrap_or_default();
                    self.bytes += rest.len() as u64;
                    self.finish(StreamEnd::Complete);
                    if rest.is_empty() {
                        return Poll::Ready(None);
                    }
                    return Poll::Ready(Some(Ok(Frame::data(rest))));
                }
            }
        }
    }
}

impl Drop for MeteredStream {
    fn drop(&mut self) {
        self.finish(StreamEnd::ClientClosed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scanner_finds_usage_split_across_chunks() {
        let mut s = SseUsageScanner::new(read_openai_usage);
        s.feed(b"data: {\"choices\":[],\"usage\":null}\n\ndata: {\"choices\":[],\"us");
        assert_eq!(s.usage, None);
        s.feed(b"age\":{\"prompt_tokens\":7,\"completion_tokens\":3}}\n\ndata: [DONE]\n\n");
        assert_eq!(s.usage, Some(Usage::new(7, 3)));
    }

    #[test]
    fn usage_of_a_plain_body() {
        let body =
            br#"{"id":"x","usage":{"prompt_tokens":5,"completion_tokens":9,"total_tokens":14}}"#;
        assert_eq!(usage_of(body), Some(Usage::new(5, 9)));
        let cached = br#"{"usage":{"prompt_tokens":50,"completion_tokens":9,"prompt_tokens_details":{"cached_tokens":32}}}"#;
        assert_eq!(usage_of(cached).unwrap().cached_tokens, 32);
        let responses = br#"{"usage":{"input_tokens":50,"output_tokens":9,"input_tokens_details":{"cached_tokens":8}}}"#;
        assert_eq!(
            usage_of(responses),
            Some(Usage {
                cached_tokens: 8,
                ..Usage::new(50, 9)
            })
        );
    }
}
