//! An example tenant guardrail in Rust: refuses a call whose user messages
//! together exceed `max_chars` characters (config; default 2,000), so a
//! tenant can keep pasted documents and data dumps away from the provider.
//! Answers pass unchanged.

wit_bindgen::generate!({ path: "../../../wit", world: "warden:policy/guardrail-plugin@0.1.0" });

use exports::warden::policy::guardrail::{
    CallContext, Guest, Message, RequestDecision, ResponseDecision,
};
use warden::policy::config;

const DEFAULT_MAX_CHARS: usize = 2_000;

struct MaxPromptLength;

impl Guest for MaxPromptLength {
    fn on_request(_context: CallContext, messages: Vec<Message>) -> RequestDecision {
        let max = config::get("max_chars")
            .and_then(|v| v.parse().ok())
            .unwrap_or(DEFAULT_MAX_CHARS);
        let chars: usize = messages
            .iter()
            .filter(|m| m.role == "user")
            .map(|m| m.content.chars().count())
            .sum();
        if chars > max {
            RequestDecision::Deny(format!(
                "the prompt has {chars} characters; this organisation allows {max}"
            ))
        } else {
            RequestDecision::Allow
        }
    }

    fn on_response(_context: CallContext, _text: String) -> ResponseDecision {
        ResponseDecision::Allow
    }
}

export!(MaxPromptLength);
