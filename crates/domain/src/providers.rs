//! LLM providers and routes, as the server's configuration and a tenant's
//! admins declare them. The proxy builds clients from these
//! (`warden_proxy::providers`); the state keeps tenants' providers with
//! their key sealed (never the key itself).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// What a provider speaks and how it is called.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ProviderKind {
    /// api.openai.com: `Authorization: Bearer`.
    #[serde(rename = "openai")]
    OpenAi,
    /// api.anthropic.com: `x-api-key`, `anthropic-version`, Messages API.
    Anthropic,
    /// Azure OpenAI: `{base}/openai/deployments/{model}/…?api-version=`,
    /// `api-key` header; the upstream model is the deployment name.
    #[serde(rename = "azure_openai")]
    AzureOpenAi,
    /// Any server speaking OpenAI's API (vLLM, Ollama, LM Studio, Together,
    /// Groq…) at its own base URL; a key is optional.
    #[serde(rename = "openai_compatible")]
    OpenAiCompatible,
}

impl ProviderKind {
    pub const ALL: [Self; 4] = [
        Self::OpenAi,
        Self::Anthropic,
        Self::AzureOpenAi,
        Self::OpenAiCompatible,
    ];

    pub const fn as_str(self) -> &'static str {
        match self {
            Self::OpenAi => "openai",
            Self::Anthropic => "anthropic",
            Self::AzureOpenAi => "azure_openai",
            Self::OpenAiCompatible => "openai_compatible",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == text)
    }

    /// The base URL when none is given; `None` when one is required.
    pub const fn default_base_url(self) -> Option<&'static str> {
        match self {
            Self::OpenAi => Some("https://api.openai.com/v1"),
            Self::Anthropic => Some("https://api.anthropic.com/v1"),
            Self::AzureOpenAi | Self::OpenAiCompatible => None,
        }
    }

    /// The API family its requests and answers are in.
    pub const fn dialect(self) -> Dialect {
        match self {
            Self::Anthropic => Dialect::Anthropic,
            _ => Dialect::OpenAi,
        }
    }
}

/// An API family: OpenAI's shapes (chat completions, responses,
/// embeddings, completions) or Anthropic's Messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    OpenAi,
    Anthropic,
}

/// One provider: where it is, how to call it, and which models it serves.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProviderSpec {
    /// Unique within its scope (the server's list, or a tenant's); a
    /// tenant's comes from the API path.
    #[serde(default)]
    pub name: String,
    pub kind: Option<ProviderKind>,
    /// Required for `azure_openai` and `openai_compatible`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base_url: Option<String>,
    /// Server configuration only: the environment variable with the key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_key_env: Option<String>,
    /// Azure's `api-version`; Anthropic's `anthropic-version` header.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_version: Option<String>,
    /// Models it serves: names, or patterns with `*` (`gpt-4o*`, `*`).
    #[serde(default)]
    pub models: Vec<String>,
    /// Extra headers on every call (an organisation id, a project).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub headers: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connect_timeout_secs: Option<u64>,
    /// Until the provider's response headers arrive.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response_timeout_secs: Option<u64>,
    /// Longest silence between two chunks of an answer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idle_timeout_secs: Option<u64>,
    /// What its models cost here, by model-name prefix (a contract price;
    /// 0 for a local server): first in the cost rollups for its calls.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub prices: BTreeMap<String, crate::pricing::Price>,
}

impl ProviderSpec {
    pub fn kind(&self) -> ProviderKind {
        self.kind.unwrap_or(ProviderKind::OpenAiCompatible)
    }

    /// Its prices keyed `name/model-prefix`, as `Pricing` takes them.
    pub fn qualified_prices(&self) -> impl Iterator<Item = (String, crate::pricing::Price)> + '_ {
        let prices = self.prices.iter();
        prices.map(|(model, price)| (format!("{}/{model}", self.name), *price))
    }

    /// Whether it serves `model` (by name or pattern).
    pub fn serves(&self, model: &str) -> bool {
        self.models.iter().any(|p| pattern_matches(p, model))
    }

    /// What is wrong with it, for an admin's form or the server's start.
    pub fn problem(&self) -> Option<String> {
        let name_ok = !self.name.is_empty()
            && self.name.len() <= 64
            && self
                .name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.');
        if !name_ok {
            return Some(format!(
                "provider name '{}' must be 1-64 letters, digits, '-', '_' or '.'",
                self.name
            ));
        }
        let Some(kind) = self.kind else {
            return Some(format!(
                "provider '{}' needs a kind: openai, anthropic, azure_openai or openai_compatible",
                self.name
            ));
        };
        match self.base_url.as_deref() {
            None if kind.default_base_url().is_none() => {
                return Some(format!(
                    "provider '{}' ({}) needs a base_url",
                    self.name,
                    kind.as_str()
                ))
            }
            Some(url) if !(url.starts_with("http://") || url.starts_with("https://")) => {
                return Some(format!(
                    "provider '{}': base_url must start with http:// or https://",
                    self.name
                ))
            }
            _ => {}
        }
        if kind == ProviderKind::AzureOpenAi && self.api_version.is_none() {
            return Some(format!(
                "provider '{}' (azure_openai) needs an api_version, e.g. \"2024-10-21\"",
                self.name
            ));
        }
        if self.models.is_empty() {
            return Some(format!(
                "provider '{}' serves no models: list names or patterns such as \"gpt-4o*\"",
                self.name
            ));
        }
        None
    }
}

/// `*` matches any run of characters; anything else itself.
pub fn pattern_matches(pattern: &str, name: &str) -> bool {
    let Some((head, rest)) = pattern.split_once('*') else {
        return pattern == name;
    };
    let Some(mut tail) = name.strip_prefix(head) else {
        return false;
    };
    let parts: Vec<&str> = rest.split('*').collect();
    let (last, middle) = parts.split_last().expect("split yields one part");
    for part in middle {
        match tail.find(part) {
            Some(at) => tail = &tail[at + part.len()..],
            None => return false,
        }
    }
    tail.len() >= last.len() && tail.ends_with(last)
}

/// A model name and where it goes: the first target, then its fallbacks in
/// order. A target is `provider` (same model name) or `provider/model`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteSpec {
    /// The name clients call (`fast`, `gpt-4o`).
    pub model: String,
    pub targets: Vec<String>,
}

impl RouteSpec {
    /// Each target as (provider, upstream model).
    pub fn targets(&self) -> impl Iterator<Item = (&str, &str)> {
        self.targets.iter().map(|t| match t.split_once('/') {
            Some((provider, model)) => (provider, model),
            None => (t.as_str(), self.model.as_str()),
        })
    }
}

/// A provider key sealed with the server's master key (AES-256-GCM).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SealedKey {
    /// Base64 of the 12-byte nonce.
    pub nonce: String,
    /// Base64 of the ciphertext and its tag.
    pub ciphertext: String,
    /// The key's last four characters, to tell keys apart.
    pub hint: String,
}

/// A tenant's provider as stored: its spec and its sealed key.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoredProvider {
    pub tenant_id: String,
    #[serde(flatten)]
    pub spec: ProviderSpec,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<SealedKey>,
    pub updated_at: u64,
}

/// A tenant's route as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredRoute {
    pub tenant_id: String,
    #[serde(flatten)]
    pub route: RouteSpec,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns() {
        assert!(pattern_matches("*", "anything"));
        assert!(pattern_matches("gpt-4o*", "gpt-4o-mini"));
        assert!(!pattern_matches("gpt-4o*", "gpt-4"));
        assert!(pattern_matches(
            "claude-*-latest",
            "claude-3-5-haiku-latest"
        ));
        assert!(!pattern_matches("claude-*-latest", "claude-3-5-haiku"));
        assert!(pattern_matches("a*b*c", "aXbYc"));
        assert!(!pattern_matches("a*b*c", "aXcYb"));
        assert!(pattern_matches("exact", "exact"));
        assert!(!pattern_matches("exact", "exactly"));
    }

    #[test]
    fn route_targets_name_a_provider_and_maybe_a_model() {
        let route = RouteSpec {
            model: "fast".into(),
            targets: vec![
                "openai/gpt-4o-mini".into(),
                "local".into(),
                "hf/meta/llama".into(),
            ],
        };
        let targets: Vec<_> = route.targets().collect();
        assert_eq!(
            targets,
            [
                ("openai", "gpt-4o-mini"),
                ("local", "fast"),
                ("hf", "meta/llama")
            ]
        );
    }

    #[test]
    fn a_spec_says_what_is_missing() {
        let mut spec = ProviderSpec {
            name: "azure".into(),
            kind: Some(ProviderKind::AzureOpenAi),
            models: vec!["gpt-4o".into()],
            ..ProviderSpec::default()
        };
        assert!(spec.problem().unwrap().contains("base_url"));
        spec.base_url = Some("https://x.openai.azure.com".into());
        assert!(spec.problem().unwrap().contains("api_version"));
        spec.api_version = Some("2024-10-21".into());
        assert_eq!(spec.problem(), None);
        spec.name = "bad name".into();
        assert!(spec.problem().is_some());
    }
}
