//! The one HTTP client for every provider kind (reqwest over rustls): the
//! kind decides the URL and the auth headers, nothing else. The built-in
//! mock, OpenAI, Anthropic, Azure and any OpenAI-compatible server all go
//! through this code.

use std::time::Duration;

use bytes::Bytes;
use hyper::header::{HeaderMap, HeaderName, HeaderValue, AUTHORIZATION, CONTENT_TYPE};

use super::reach::{PublicOnly, Reach};
use crate::domain::providers::{ProviderKind, ProviderSpec};
use crate::error::ApiError;
use crate::upstream::error_chain;

/// Anthropic's API version header when the provider names none.
const ANTHROPIC_VERSION: &str = "2023-06-01";

pub struct ProviderClient {
    pub name: String,
    pub kind: ProviderKind,
    spec: ProviderSpec,
    settings: ClientSettings,
    /// Parsed once: parsing (IDNA included) per request showed in profiles;
    /// an endpoint's path is appended to a copy.
    base_url: reqwest::Url,
    /// Auth and the provider's extra headers, on every call.
    headers: HeaderMap,
    response_timeout: Duration,
}

impl std::fmt::Debug for ProviderClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProviderClient")
            .field("name", &self.name)
            .field("kind", &self.kind)
            .finish_non_exhaustive()
    }
}

/// What a client is built with; clients are shared per thread by these.
#[derive(Clone, Copy, PartialEq, Eq)]
struct ClientSettings {
    connect_timeout: Duration,
    idle_timeout: Duration,
    reach: Reach,
}

impl ClientSettings {
    fn build(self) -> reqwest::Result<reqwest::Client> {
        let builder = reqwest::Client::builder()
            .use_rustls_tls()
            // A gateway passes a provider's redirect back rather than follow it
            // with the tenant's key attached, and reaches providers directly
            // (no system proxy lookup on every request: it showed in profiles).
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .connect_timeout(self.connect_timeout)
            .read_timeout(self.idle_timeout)
            .pool_max_idle_per_host(256)
            .tcp_nodelay(true);
        let builder = match self.reach {
            Reach::Anywhere => builder,
            Reach::PublicOnly => builder.dns_resolver(std::sync::Arc::new(PublicOnly)),
        };
        builder.build()
    }
}

thread_local! {
    /// One client (and connection pool) per worker thread and settings: a
    /// request and its provider connection then live on the same thread and
    /// runtime, with no cross-thread wake-ups (see server.rs). Keyed by
    /// settings, not by provider, so a tenant's provider edits never grow it.
    static CLIENTS: std::cell::RefCell<Vec<(ClientSettings, reqwest::Client)>> =
        const { std::cell::RefCell::new(Vec::new()) };
}

/// Timeouts when a provider sets none.
#[derive(Debug, Clone, Copy)]
pub struct Timeouts {
    pub connect_secs: u64,
    pub response_secs: u64,
    pub idle_secs: u64,
}

impl ProviderClient {
    /// `key` is the provider's API key, already opened (never stored here
    /// but in a sensitive header value); `reach` is where its calls may go.
    pub fn new(
        spec: &ProviderSpec,
        key: Option<&str>,
        defaults: Timeouts,
        reach: Reach,
    ) -> anyhow::Result<Self> {
        if let Some(problem) = spec.problem() {
            anyhow::bail!(problem);
        }
        let kind = spec.kind();
        let settings = ClientSettings {
            connect_timeout: Duration::from_secs(
                spec.connect_timeout_secs.unwrap_or(defaults.connect_secs),
            ),
            idle_timeout: Duration::from_secs(spec.idle_timeout_secs.unwrap_or(defaults.idle_secs)),
            reach,
        };
        settings.build()?; // fail at start-up, not on the first request
        let base = spec
            .base_url
            .as_deref()
            .or(kind.default_base_url())
            .unwrap_or_default();
        let base_url: reqwest::Url = base
            .trim_end_matches('/')
            .parse()
            .map_err(|e| anyhow::anyhow!("provider '{}': base_url '{base}': {e}", spec.name))?;
        if base_url.cannot_be_a_base() {
            anyhow::bail!("provider '{}': base_url cannot have a path", spec.name);
        }
        if reach == Reach::PublicOnly {
            super::reach::check_url(&base_url).map_err(|e| anyhow::anyhow!(e))?;
        }
        Ok(Self {
            name: spec.name.clone(),
            kind,
            spec: spec.clone(),
            settings,
            base_url,
            headers: headers(spec, kind, key)?,
            response_timeout: Duration::from_secs(
                spec.response_timeout_secs.unwrap_or(defaults.response_secs),
            ),
        })
    }

    pub fn spec(&self) -> &ProviderSpec {
        &self.spec
    }

    /// This thread's client for these settings.
    fn client(&self) -> Result<reqwest::Client, ApiError> {
        CLIENTS.with_borrow_mut(|clients| {
            if let Some((_, client)) = clients.iter().find(|(s, _)| *s == self.settings) {
                return Ok(client.clone());
            }
            let client = self
                .settings
                .build()
                .map_err(|e| ApiError::internal(format!("building the provider client: {e}")))?;
            clients.push((self.settings, client.clone()));
            Ok(client)
        })
    }

    /// The URL of an endpoint (`chat/completions`, `messages`) for `model`:
    /// under the base URL, or under Azure's deployment of that model.
    pub fn url(&self, path: &str, model: &str) -> reqwest::Url {
        let mut url = self.base_url.clone();
        {
            let mut segments = url.path_segments_mut().expect("checked at build");
            segments.pop_if_empty();
            if self.kind == ProviderKind::AzureOpenAi {
                segments.extend(["openai", "deployments", model]);
            }
            segments.extend(path.split('/'));
        }
        if self.kind == ProviderKind::AzureOpenAi {
            let version = self.spec.api_version.as_deref().unwrap_or_default();
            url.query_pairs_mut().append_pair("api-version", version);
        }
        url
    }

    /// Sends a call for `model` to the endpoint at `path`; returns once the
    /// provider's headers arrive.
    pub async fn send(
        &self,
        path: &str,
        model: &str,
        body: Bytes,
    ) -> Result<reqwest::Response, ApiError> {
        let request = self
            .client()?
            .post(self.url(path, model))
            .headers(self.headers.clone())
            .header(CONTENT_TYPE, HeaderValue::from_static("application/json"))
            .body(body);
        let name = &self.name;
        match tokio::time::timeout(self.response_timeout, request.send()).await {
            Err(_) => Err(ApiError::gateway_timeout(format!(
                "provider '{name}' did not answer within {}s",
                self.response_timeout.as_secs()
            ))),
            Ok(Err(e)) if e.is_timeout() => Err(ApiError::gateway_timeout(format!(
                "provider '{name}' timed out: {e}"
            ))),
            Ok(Err(e)) => Err(ApiError::bad_gateway(format!(
                "provider '{name}' could not be reached: {}",
                error_chain(&e)
            ))),
            Ok(Ok(response)) => Ok(response),
        }
    }
}

/// The auth header for the kind, the version header, and the extras.
fn headers(
    spec: &ProviderSpec,
    kind: ProviderKind,
    key: Option<&str>,
) -> anyhow::Result<HeaderMap> {
    let mut map = HeaderMap::new();
    for (name, value) in &spec.headers {
        let name: HeaderName = name
            .parse()
            .map_err(|_| anyhow::anyhow!("provider '{}': bad header name '{name}'", spec.name))?;
        let value = HeaderValue::from_str(value).map_err(|_| {
            anyhow::anyhow!("provider '{}': bad value for header {name}", spec.name)
        })?;
        map.insert(name, value);
    }
    if kind == ProviderKind::Anthropic {
        let version = spec.api_version.as_deref().unwrap_or(ANTHROPIC_VERSION);
        map.insert("anthropic-version", HeaderValue::from_str(version)?);
    }
    if let Some(key) = key.filter(|k| !k.is_empty()) {
        let (name, text) = match kind {
            ProviderKind::Anthropic => (HeaderName::from_static("x-api-key"), key.to_string()),
            ProviderKind::AzureOpenAi => (HeaderName::from_static("api-key"), key.to_string()),
            _ => (AUTHORIZATION, format!("Bearer {key}")),
        };
        let mut value = HeaderValue::from_str(&text).map_err(|_| {
            anyhow::anyhow!(
                "provider '{}': the key is not a valid header value",
                spec.name
            )
        })?;
        value.set_sensitive(true);
        map.insert(name, value);
    }
    Ok(map)
}

#[cfg(test)]
mod tests {
    use super::*;

    const ANY: Reach = Reach::Anywhere;

    const DEFAULTS: Timeouts = Timeouts {
        connect_secs: 1,
        response_secs: 1,
        idle_secs: 1,
    };

    fn spec(kind: ProviderKind, base: &str) -> ProviderSpec {
        ProviderSpec {
            name: "p".into(),
            kind: Some(kind),
            base_url: Some(base.into()),
            api_version: Some("2024-10-21".into()),
            models: vec!["*".into()],
            ..ProviderSpec::default()
        }
    }

    #[test]
    fn an_endpoint_path_is_appended_to_the_base_url() {
        for base in ["http://127.0.0.1:9/v1", "http://127.0.0.1:9/v1/"] {
            let client = ProviderClient::new(
                &spec(ProviderKind::OpenAiCompatible, base),
                None,
                DEFAULTS,
                ANY,
            )
            .unwrap();
            let url = client.url("chat/completions", "m");
            assert_eq!(url.as_str(), "http://127.0.0.1:9/v1/chat/completions");
        }
    }

    #[test]
    fn azure_calls_the_models_deployment_with_its_api_version() {
        let azure = spec(ProviderKind::AzureOpenAi, "https://res.openai.azure.com");
        let client = ProviderClient::new(&azure, Some("k"), DEFAULTS, ANY).unwrap();
        assert_eq!(
            client.url("chat/completions", "gpt4o-prod").as_str(),
            "https://res.openai.azure.com/openai/deployments/gpt4o-prod/chat/completions?api-version=2024-10-21"
        );
        assert_eq!(client.headers["api-key"], "k");
        assert!(client.headers["api-key"].is_sensitive());
    }

    #[test]
    fn each_kind_sends_its_own_auth_header() {
        let anthropic = ProviderClient::new(
            &spec(ProviderKind::Anthropic, "http://127.0.0.1:9/v1"),
            Some("ak"),
            DEFAULTS,
            ANY,
        )
        .unwrap();
        assert_eq!(anthropic.headers["x-api-key"], "ak");
        assert_eq!(anthropic.headers["anthropic-version"], "2024-10-21");
        assert!(anthropic.headers.get(AUTHORIZATION).is_none());
        let openai = ProviderClient::new(
            &spec(ProviderKind::OpenAi, "http://h/v1"),
            Some("ok"),
            DEFAULTS,
            ANY,
        )
        .unwrap();
        assert_eq!(openai.headers[AUTHORIZATION], "Bearer ok");
        let local = ProviderClient::new(
            &spec(ProviderKind::OpenAiCompatible, "http://h/v1"),
            None,
            DEFAULTS,
            ANY,
        )
        .unwrap();
        assert!(local.headers.is_empty());
    }
}
