//! Estimated cost of a call, from list prices per million tokens (USD) of
//! well-known models, matched by the longest prefix of the model name.
//! Estimates only: the provider's invoice is the truth. Unknown models get a
//! middle-of-the-road price, so a report never shows them as free.

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

/// Estimated cost in millionths of a US dollar (a price per million tokens
/// is a price in micro-dollars per token).
pub fn cost_micro_usd(model: &str, tokens_in: u64, tokens_out: u64) -> u64 {
    let (input, output) = PRICES
        .iter()
        .filter(|(prefix, _, _)| model.starts_with(prefix))
        .max_by_key(|(prefix, _, _)| prefix.len())
        .map_or(UNKNOWN, |&(_, i, o)| (i, o));
    (tokens_in as f64 * input + tokens_out as f64 * output).round() as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_longest_prefix_wins() {
        // gpt-4o-mini, not gpt-4o: 1M in + 1M out = $0.75.
        assert_eq!(
            cost_micro_usd("gpt-4o-mini-2024-07-18", 1_000_000, 1_000_000),
            750_000
        );
        assert_eq!(cost_micro_usd("gpt-4o", 1_000, 0), 2_500);
        assert_eq!(cost_micro_usd("some-local-model", 1_000, 1_000), 4_000);
    }
}
