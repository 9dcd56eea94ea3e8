//! Estimated cost of a call, from prices per million tokens (USD), matched
//! by the longest prefix of the model name: the server's `[pricing]` table
//! first (an owner's contract prices, a local model at 0), then list prices
//! of well-known models. Estimates only: the provider's invoice is the
//! truth. Unknown models get a middle-of-the-road price, so a report never
//! shows them as free.

use std::collections::HashMap;

use serde::Deserialize;

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

/// A price in USD per million tokens.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Price {
    pub input: f64,
    pub output: f64,
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
    pub fn new(configured: &HashMap<String, Price>) -> Self {
        Self {
            configured: configured.iter().map(|(k, v)| (k.clone(), *v)).collect(),
        }
    }

    /// Estimated cost in millionths of a US dollar (a price per million
    /// tokens is a price in micro-dollars per token).
    pub fn cost_micro_usd(&self, model: &str, tokens_in: u64, tokens_out: u64) -> u64 {
        let configured = self.configured.iter().map(|(k, v)| (k.as_str(), *v));
        let listed = PRICES
            .iter()
            .map(|&(prefix, input, output)| (prefix, Price { input, output }));
        let price = longest_match(configured, model)
            .or_else(|| longest_match(listed, model))
            .unwrap_or(Price {
                input: UNKNOWN.0,
                output: UNKNOWN.1,
            });
        (tokens_in as f64 * price.input + tokens_out as f64 * price.output).round() as u64
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
        let own = Pricing::new(&HashMap::from([
            (
                "some-local".to_string(),
                Price {
                    input: 0.0,
                    output: 0.0,
                },
            ),
            (
                "gpt-4o".to_string(),
                Price {
                    input: 2.0,
                    output: 8.0,
                },
            ),
        ]));
        assert_eq!(own.cost_micro_usd("some-local-model", 1_000, 1_000), 0);
        // A configured prefix comes before a longer listed one.
        assert_eq!(own.cost_micro_usd("gpt-4o-mini", 1_000, 0), 2_000);
    }
}
