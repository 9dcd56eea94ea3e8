//! The one client for every LLM provider: OpenAI itself, any OpenAI-compatible
//! base URL, and the built-in mock all go through this code (reqwest over
//! rustls). Streams are passed through chunk by chunk; a small scanner reads
//! the `usage` block on the way without buffering the response.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use futures_util::Stream;
use http_body::Frame;
use hyper::header::{HeaderValue, AUTHORIZATION, CONTENT_TYPE};
use serde::Deserialize;

use crate::config::UpstreamConfig;
use crate::error::ApiError;
use crate::http::BoxError;
use crate::sse::{EventRewrite, SseRewriter};

pub struct Upstream {
    /// Identifies this upstream's clients in each thread's client cache.
    id: u64,
    settings: ClientSettings,
    /// The provider's base URL, parsed once: parsing (IDNA included) per
    /// request showed in profiles; an endpoint's path is appended to a copy.
    base_url: reqwest::Url,
    authorization: Option<HeaderValue>,
    response_timeout: Duration,
    /// Largest whole answer read (a stream passes without buffering).
    pub max_response_bytes: usize,
}

#[derive(Clone, Copy)]
struct ClientSettings {
    connect_timeout: Duration,
    idle_timeout: Duration,
}

impl ClientSettings {
    fn build(self) -> reqwest::Result<reqwest::Client> {
        reqwest::Client::builder()
            .use_rustls_tls()
            // A gateway passes a provider's redirect back rather than follow it
            // with the tenant's key attached, and reaches providers directly
            // (no system proxy lookup on every request: it showed in profiles).
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .connect_timeout(self.connect_timeout)
            .read_timeout(self.idle_timeout)
            .pool_max_idle_per_host(256)
            .tcp_nodelay(true)
            .build()
    }
}

thread_local! {
    /// One client (and connection pool) per worker thread: a request and its
    /// upstream connection then live on the same thread and runtime, with no
    /// cross-thread wake-ups (see server.rs).
    static CLIENTS: std::cell::RefCell<Vec<(u64, reqwest::Client)>> = const { std::cell::RefCell::new(Vec::new()) };
}

static NEXT_UPSTREAM_ID: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

impl Upstream {
    /// `api_key` comes from the environment variable the config names.
    pub fn new(config: &UpstreamConfig, api_key: Option<String>) -> anyhow::Result<Self> {
        let settings = ClientSettings {
            connect_timeout: Duration::from_secs(config.connect_timeout_secs),
            idle_timeout: Duration::from_secs(config.idle_timeout_secs),
        };
        settings.build()?; // fail at start-up, not on the first request
        let authorization = match api_key.filter(|k| !k.is_empty()) {
            Some(key) => {
                let mut value = HeaderValue::from_str(&format!("Bearer {key}"))?;
                value.set_sensitive(true);
                Some(value)
            }
            None => None,
        };
        Ok(Self {
            id: NEXT_UPSTREAM_ID.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
            settings,
            base_url: config.base_url.trim_end_matches('/').parse()?,
            authorization,
            response_timeout: Duration::from_secs(config.response_timeout_secs),
            max_response_bytes: config.max_response_mib << 20,
        })
    }

    /// This thread's client for this upstream.
    fn client(&self) -> Result<reqwest::Client, ApiError> {
        CLIENTS.with_borrow_mut(|clients| {
            if let Some((_, client)) = clients.iter().find(|(id, _)| *id == self.id) {
                return Ok(client.clone());
            }
            let client = self
                .settings
                .build()
                .map_err(|e| ApiError::internal(format!("building the provider client: {e}")))?;
            clients.push((self.id, client.clone()));
            Ok(client)
        })
    }

    /// The URL of an endpoint under the base URL, e.g. `chat/completions`.
    fn url(&self, path: &str) -> Result<reqwest::Url, ApiError> {
        let mut url = self.base_url.clone();
        url.path_segments_mut()
            .map_err(|()| ApiError::internal("the provider's base URL cannot have a path"))?
            .pop_if_empty()
            .extend(path.split('/'));
        Ok(url)
    }

    /// Sends a call to the endpoint at `path`; returns once the provider's
    /// headers arrive.
    pub async fn send(&self, path: &str, body: Bytes) -> Result<reqwest::Response, ApiError> {
        let mut request = self
            .client()?
            .post(self.url(path)?)
            .header(CONTENT_TYPE, HeaderValue::from_static("application/json"))
            .body(body);
        if let Some(auth) = &self.authorization {
            request = request.header(AUTHORIZATION, auth.clone());
        }
        match tokio::time::timeout(self.response_timeout, request.send()).await {
            Err(_) => Err(ApiError::gateway_timeout(format!(
                "the provider did not answer within {}s",
                self.response_timeout.as_secs()
            ))),
            Ok(Err(e)) if e.is_timeout() => Err(ApiError::gateway_timeout(format!(
                "the provider timed out: {e}"
            ))),
            Ok(Err(e)) => Err(ApiError::bad_gateway(format!(
                "the provider could not be reached: {}",
                error_chain(&e)
            ))),
            Ok(Ok(response)) => Ok(response),
        }
    }
}

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

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

/// Token counts reported by the provider.
#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
pub struct Usage {
    #[serde(default)]
    pub prompt_tokens: u64,
    #[serde(default)]
    pub completion_tokens: u64,
}

#[derive(Deserialize)]
struct UsageOnly {
    usage: Option<Usage>,
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
    fn an_endpoint_path_is_appended_to_the_base_url() {
        for base in ["http://127.0.0.1:9/v1", "http://127.0.0.1:9/v1/"] {
            let config = UpstreamConfig {
                base_url: base.into(),
                ..UpstreamConfig::default()
            };
            let upstream = Upstream::new(&config, None).unwrap();
            let url = upstream.url("chat/completions").unwrap();
            assert_eq!(url.as_str(), "http://127.0.0.1:9/v1/chat/completions");
        }
    }

    #[test]
    fn scanner_finds_usage_split_across_chunks() {
        let mut s = SseUsageScanner::new(read_openai_usage);
        s.feed(b"data: {\"choices\":[],\"usage\":null}\n\ndata: {\"choices\":[],\"us");
        assert_eq!(s.usage, None);
        s.feed(b"age\":{\"prompt_tokens\":7,\"completion_tokens\":3}}\n\ndata: [DONE]\n\n");
        assert_eq!(
            s.usage,
            Some(Usage {
                prompt_tokens: 7,
                completion_tokens: 3
            })
        );
    }

    #[test]
    fn usage_of_a_plain_body() {
        let body =
            br#"{"id":"x","usage":{"prompt_tokens":5,"completion_tokens":9,"total_tokens":14}}"#;
        assert_eq!(
            usage_of(body),
            Some(Usage {
                prompt_tokens: 5,
                completion_tokens: 9
            })
        );
    }
}
