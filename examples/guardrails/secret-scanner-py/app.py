"""An example tenant guardrail in Python (componentize-py): keeps credentials
out of prompts sent to the provider and out of answers sent to the user.

API keys (OpenAI, Anthropic, GitHub, Slack, AWS access key ids), private key
blocks, JWTs and `password=...` style assignments are replaced by
`[secret removed]`. With config `mode = "deny"` a prompt holding a secret is
refused instead of rewritten.

Build (scripts/build-plugins.sh does it):
    componentize-py -d ../../../wit -w guardrail-plugin componentize app -o secret-scanner.wasm

Policy:
    [[guardrails]]
    plugin = "secret-scanner"
    config = { mode = "redact" }
"""

import re
from typing import List, Optional

from wit_world import exports
from wit_world.exports.guardrail import (
    CallContext,
    Message,
    RequestDecision,
    RequestDecision_Allow,
    RequestDecision_Deny,
    RequestDecision_Rewrite,
    ResponseDecision,
    ResponseDecision_Allow,
    ResponseDecision_Redact,
)
from wit_world.imports import config, log, types

REPLACEMENT = "[secret removed]"

# Compiled once, when componentize-py pre-initialises the module: calls on a
# warm instance pay only for the matching.
SECRET = re.compile(
    "|".join(
        [
            r"-----BEGIN [A-Z ]*PRIVATE KEY-----[\s\S]*?-----END [A-Z ]*PRIVATE KEY-----",
            r"\bsk-(?:ant-|proj-)?[A-Za-z0-9_\-]{20,}",
            r"\bgh[pousr]_[A-Za-z0-9]{36,}",
            r"\bxox[abpr]-[A-Za-z0-9\-]{10,}",
            r"\b(?:AKIA|ASIA)[A-Z0-9]{16}\b",
            r"\beyJ[A-Za-z0-9_\-]{8,}\.[A-Za-z0-9_\-]{8,}\.[A-Za-z0-9_\-]{8,}",
            r"(?i:\b(?:password|passwd|pwd|secret|api[_-]?key)\s*[:=]\s*[\"']?[^\s\"',;)]+[\"']?)",
        ]
    )
)


def scrub(text: str) -> Optional[str]:
    """The text with every secret replaced; None if it held none."""
    cleaned, count = SECRET.subn(REPLACEMENT, text)
    return cleaned if count else None


class Guardrail(exports.Guardrail):
    def on_request(self, context: CallContext, messages: List[Message]) -> RequestDecision:
        cleaned = [scrub(m.content) for m in messages]
        if all(c is None for c in cleaned):
            return RequestDecision_Allow()
        log.emit(
            types.LogLevel.WARN,
            "secret in prompt",
            [("user", context.identity.user_id), ("task", context.task_id)],
        )
        if (config.get("mode") or "redact") == "deny":
            return RequestDecision_Deny(
                "the prompt contains a credential (API key, private key or password); "
                "remove it and try again"
            )
        return RequestDecision_Rewrite(
            [
                Message(m.role, c if c is not None else m.content)
                for m, c in zip(messages, cleaned)
            ]
        )

    def on_response(self, context: CallContext, text: str) -> ResponseDecision:
        cleaned = scrub(text)
        return ResponseDecision_Allow() if cleaned is None else ResponseDecision_Redact(cleaned)
