//! Fault injection for tests: a prompt that makes the request path panic
//! between the chain and the provider call, so a test can prove what
//! survives a panic (the answer is a 500, the call is logged and its
//! reservation given back). Disarmed, the default, it costs one atomic load.

use std::sync::OnceLock;

static PANIC_PROMPT: OnceLock<String> = OnceLock::new();

/// Makes every call whose prompt is exactly `prompt` panic. Once per
/// process (tests share one); `false` if another prompt is armed already.
pub fn arm_panic_on_prompt(prompt: &str) -> bool {
    PANIC_PROMPT.get_or_init(|| prompt.to_string()) == prompt
}

pub(crate) fn panic_point(prompt: &str) {
    if PANIC_PROMPT.get().is_some_and(|armed| armed == prompt) {
        panic!("failpoint: a test armed a panic for this prompt");
    }
}
