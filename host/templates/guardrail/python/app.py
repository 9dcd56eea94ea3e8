"""{{name}}: a Warden guardrail. Refuses prompts that contain the configured
`deny_word` and passes answers unchanged; change it to your rule.

Module-level work (imports, compiled patterns) runs once, when the component
is built; a call only pays for what the functions do.
"""

from typing import List

from wit_world import exports
from wit_world.exports.guardrail import (
    CallContext,
    Message,
    RequestDecision,
    RequestDecision_Allow,
    RequestDecision_Deny,
    ResponseDecision,
    ResponseDecision_Allow,
)
from wit_world.imports import config


class Guardrail(exports.Guardrail):
    def on_request(self, context: CallContext, messages: List[Message]) -> RequestDecision:
        word = config.get("deny_word")
        if word is None:
            return RequestDecision_Allow()
        word = word.lower()
        if any(m.role == "user" and word in m.content.lower() for m in messages):
            return RequestDecision_Deny(f"prompts may not mention '{word}'")
        return RequestDecision_Allow()

    def on_response(self, context: CallContext, text: str) -> ResponseDecision:
        return ResponseDecision_Allow()
