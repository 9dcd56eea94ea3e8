//! An example tenant guardrail in Rust: e-mail addresses and runs of nine or
//! more digits (phone, card and account numbers) are replaced by `[redacted]`
//! in prompts and answers, and a prompt naming one of the tenant's blocked
//! topics (config `blocked_topics`, comma-separated) is refused.
//!
//! Build: `cargo build --target wasm32-wasip2 --profile plugin -p warden-example-pii-redactor`
//! (scripts/build-plugins.sh does it), then list it in the tenant's policy:
//!
//! ```toml
//! [[guardrails]]
//! plugin = "pii-redactor"
//! config = { blocked_topics = "salary,medical" }
//! ```

wit_bindgen::generate!({ path: "../../../wit", world: "warden:policy/guardrail-plugin@0.1.0" });

use exports::warden::policy::guardrail::{
    CallContext, Guest, Message, RequestDecision, ResponseDecision,
};
use warden::policy::config;

const REDACTED: &str = "[redacted]";

fn is_email(word: &str) -> bool {
    let word = word.trim_matches(|c: char| !c.is_alphanumeric());
    match word.split_once('@') {
        Some((user, domain)) => {
            !user.is_empty() && domain.contains('.') && !domain.starts_with('.')
        }
        None => false,
    }
}

/// Nine or more digits, allowing the separators people type in numbers.
fn is_long_number(word: &str) -> bool {
    let digits = word.chars().filter(char::is_ascii_digit).count();
    digits >= 9
        && word
            .chars()
            .all(|c| c.is_ascii_digit() || "+-() .".contains(c))
}

/// The text with every sensitive word replaced; `None` if nothing was.
fn redact(text: &str) -> Option<String> {
    let mut changed = false;
    let words: Vec<&str> = text
        .split(' ')
        .map(|word| {
            if is_email(word) || is_long_number(word) {
                changed = true;
                REDACTED
            } else {
                word
            }
        })
        .collect();
    changed.then(|| words.join(" "))
}

fn blocked_topic(messages: &[Message]) -> Option<String> {
    let topics = config::get("blocked_topics")?;
    messages.iter().filter(|m| m.role == "user").find_map(|m| {
        let text = m.content.to_lowercase();
        topics
            .split(',')
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .find(|t| text.contains(&t.to_lowercase()))
            .map(str::to_string)
    })
}

struct PiiRedactor;

impl Guest for PiiRedactor {
    fn on_request(_context: CallContext, messages: Vec<Message>) -> RequestDecision {
        if let Some(topic) = blocked_topic(&messages) {
            return RequestDecision::Deny(format!(
                "prompts about '{topic}' are not allowed by this organisation's policy"
            ));
        }
        let mut changed = false;
        let messages = messages
            .into_iter()
            .map(|m| match redact(&m.content) {
                Some(content) => {
                    changed = true;
                    Message { content, ..m }
                }
                None => m,
            })
            .collect();
        if changed {
            RequestDecision::Rewrite(messages)
        } else {
            RequestDecision::Allow
        }
    }

    fn on_response(_context: CallContext, text: String) -> ResponseDecision {
        match redact(&text) {
            Some(clean) => ResponseDecision::Redact(clean),
            None => ResponseDecision::Allow,
        }
    }
}

export!(PiiRedactor);
