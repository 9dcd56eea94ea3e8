//! {{name}}: a Warden guardrail. Refuses prompts that contain the configured
//! `deny_word` and passes answers unchanged; change it to your rule.

wit_bindgen::generate!({ path: "wit", world: "warden:policy/guardrail-plugin@{{wit_version}}" });

use exports::warden::policy::guardrail::{
    CallContext, Guest, Message, RequestDecision, ResponseDecision,
};
use warden::policy::config;

struct Plugin;

impl Guest for Plugin {
    fn on_request(_context: CallContext, messages: Vec<Message>) -> RequestDecision {
        let Some(word) = config::get("deny_word") else {
            return RequestDecision::Allow;
        };
        let word = word.to_lowercase();
        let found = messages
            .iter()
            .any(|m| m.role == "user" && m.content.to_lowercase().contains(&word));
        if found {
            RequestDecision::Deny(format!("prompts may not mention '{word}'"))
        } else {
            RequestDecision::Allow
        }
    }

    fn on_response(_context: CallContext, _text: String) -> ResponseDecision {
        ResponseDecision::Allow
    }
}

export!(Plugin);
