//! Estimated cost of a call, from prices per million tokens (USD), matched
//! by the longest prefix of the model name: the server's `[pricing]` table
//! first (an owner's contract prices, a local model at 0), then list prices
//! of well-known models. Estimates only: the provider's invoice is the
//! truth. Unknown models get a middle-of-the-road price, so a report never
//! shows them as free.

use std::collections::{BTreeMap, HashMap};

use serde::{Deserialize, Serialize};

/// (model prefix, USD per 1M input tokens, USD per 1M output tokens).
const PRICES: &[(&str, f64, f64)] = &[
    ("gpt-4o-mini", 0.15, 0.60),
    ("gpt-4o", 2.50, 10.00),
    ("gpt-4.1-nano", 0.10, 0.40),
    ("gpt-4.1-mini", 0.40, 1.60),
    ("gpt-4.1", 2.00, 8.00),
    ("gpt-3.5-turbo", 0.50, 1.50),
    ("o3-mini", 1.10, 4.40),
    ("o4-mini", 1.10, 4.40),
    ("claude-3-haiku", 0.25, 1.25),
    ("claude-3-5-haiku", 0.80, 4.00),
    ("claude-3-5-sonnet", 3.00, 15.00),
    ("claude-3-7-sonnet", 3.00, 15.00),
    ("claude-sonnet-4", 3.00, 15.00),
    ("claude-opus-4", 15.00, 75.00),
];

const UNKNOWN: (f64, f64) = (1.00, 3.00);

/// A price in USD per million tokens; prompt tokens read from the
/// provider's cache cost `cached_input` (the input price when unset).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Price {
    pub input: f64,
    pub output: f64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cached_input: Option<f64>,
}

/// The prices a server estimates with.
#[derive(Debug, Clone, Default)]
pub struct Pricing {
    /// The configuration's prices, by model-name prefix.
    configured: Vec<(String, Price)>,
}

fn longest_match<'a>(prices: impl Iterator<Item = (&'a str, Price)>, model: &str) -> Option<Price> {
    prices
        .filter(|(prefix, _)| model.starts_with(prefix))
        .max_by_key(|(prefix, _)| prefix.len())
        .map(|(_, price)| price)
}

impl Pricing {
    /// `[pricing]` by model prefix (or `provider/model` prefix), and the
    /// server providers' own prices as `provider/model` prefixes (see
    /// `ProviderSpec::qualified_prices`).
    pub fn new(
        configured: &HashMap<String, Price>,
        qualified: impl IntoIterator<Item = (String, Price)>,
    ) -> Self {
        let mut all: Vec<(String, Price)> =
            configured.iter().map(|(k, v)| (k.clone(), *v)).collect();
        all.extend(qualified);
        Self { configured: all }
    }

    /// A logged call's estimated cost: priced as the model that answered
    /// (an alias such as `fast` costs what its target does), a configured
    /// `provider/model` price first (`"azure/gpt4o-prod"`, a contract price
    /// at one provider), then by the model name.
    /// `own` is the answering provider's prices when it is the tenant's.
    pub fn record_cost_micro_usd(
        &self,
        record: &crate::model::RequestRecord,
        own: Option<&BTreeMap<String, Price>>,
    ) -> u64 {
        let (tokens_in, tokens_out) = (record.tokens_in, record.tokens_out);
        let cached = record.tokens_cached.min(tokens_in);
        let own = own.into_iter().flatten().map(|(k, v)| (k.as_str(), *v));
        if let Some(price) = longest_match(own, &record.upstream_model) {
            return price.cost(tokens_in, cached, tokens_out);
        }
        if !record.provider.is_empty() {
            let qualified = format!("{}/{}", record.provider, record.upstream_model);
            let configured = self.configured.iter().map(|(k, v)| (k.as_str(), *v));
            if let Some(price) =
                longest_match(configured.filter(|(k, _)| k.contains('/')), &qualified)
            {
                return price.cost(tokens_in, cached, tokens_out);
            }
        }
        let model = if record.upstream_model.is_empty() {
            &record.model
        } else {
            &record.upstream_model
        };
        self.cost_micro_usd(model, tokens_in, tokens_out)
    }

    /// Estimated cost in millionths of a US dollar (a price per million
    /// tokens is a price in micro-dollars per token).
    pub fn cost_micro_usd(&self, model: &str, tokens_in: u64, tokens_out: u64) -> u64 {
        self.price(model).cost(tokens_in, 0, tokens_out)
    }

    /// The price of a model: configured, else listed, else middling.
    fn price(&self, model: &str) -> Price {
        let configured = self.configured.iter().map(|(k, v)| (k.as_str(), *v));
        let listed = PRICES.iter().map(|&(prefix, input, output)| {
            let price = Price {
                input,
                output,
                cached_input: None,
            };
            (prefix, price)
        });
        longest_match(configured, model)
            .or_else(|| longest_match(listed, model))
            .unwrap_or(Price {
                input: UNKNOWN.0,
                output: UNKNOWN.1,
                cached_input: None,
            })
    }
}

impl Price {
    /// Micro-dollars for `tokens_in` prompt tokens (`cached` of them from
    /// the cache) and `tokens_out` answer tokens.
    fn cost(self, tokens_in: u64, cached: u64, tokens_out: u64) -> u64 {
        let fresh = (tokens_in - cached) as f64 * self.input;
        let cached = cached as f64 * self.cached_input.unwrap_or(self.input);
        (fresh + cached + tokens_out as f64 * self.output).round() as u64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_longest_prefix_wins_and_the_configuration_first() {
        let listed = Pricing::default();
        // gpt-4o-mini, not gpt-4o: 1M in + 1M out = $0.75.
        assert_eq!(
            listed.cost_micro_usd("gpt-4o-mini-2024-07-18", 1_000_000, 1_000_000),
            750_000
        );
        assert_eq!(listed.cost_micro_usd("gpt-4o", 1_000, 0), 2_500);
        assert_eq!(
            listed.cost_micro_usd("some-local-model", 1_000, 1_000),
            4_000
        );
        let own = Pricing::new(
            &HashMap::from([
                ("some-local".to_string(), price(0.0, 0.0)),
                ("gpt-4o".to_string(), price(2.0, 8.0)),
            ]),
            [],
        );
        assert_eq!(own.cost_micro_usd("some-local-model", 1_000, 1_000), 0);
        // A configured prefix comes before a longer listed one.
        assert_eq!(own.cost_micro_usd("gpt-4o-mini", 1_000, 0), 2_000);
    }

    #[test]
    fn a_call_is_priced_as_what_answered_it_and_where() {
        let own = Pricing::new(
            &HashMap::new(),
            [("azure/gpt4o".to_string(), price(1.0, 1.0))],
        );
        let mut record = crate::model::RequestRecord {
            model: "fast".into(),
            tokens_in: 1_000,
            tokens_out: 1_000,
            ..Default::default()
        };
        // No provider recorded (an old record): by the name called.
        assert_eq!(own.record_cost_micro_usd(&record, None), 4_000);
        record.provider = "openai".into();
        record.upstream_model = "gpt-4o-mini".into();
        assert_eq!(own.record_cost_micro_usd(&record, None), 750);
        record.provider = "azure".into();
        record.upstream_model = "gpt4o-prod".into();
        assert_eq!(own.record_cost_micro_usd(&record, None), 2_000);
        // A tenant's own provider's prices come first.
        let tenants = BTreeMap::from([("gpt4o".to_string(), price(0.5, 0.5))]);
        assert_eq!(own.record_cost_micro_usd(&record, Some(&tenants)), 1_000);
        // Cached prompt tokens at their own price.
        let cheap_cache = Price {
            cached_input: Some(0.1),
            ..price(1.0, 1.0)
        };
        record.tokens_cached = 1_000;
        let tenants = BTreeMap::from([("gpt4o".to_string(), cheap_cache)]);
        assert_eq!(own.record_cost_micro_usd(&record, Some(&tenants)), 1_100);
    }

    fn price(input: f64, output: f64) -> Price {
        Price {
            input,
            output,
            cached_input: None,
        }
    }
}
