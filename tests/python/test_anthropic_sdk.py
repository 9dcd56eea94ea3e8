"""The official `anthropic` Python SDK works against Warden unchanged: the
Messages API plain and streamed (to the demo's "anthropic" provider, and to a
GPT model through translation), with Warden's token as the API key and
typed errors.
"""

import anthropic
import pytest
from anthropic import Anthropic

from conftest import TASK


def claude(demo, **headers):
    base, token = demo
    # The SDK appends /v1/messages to the base URL.
    return Anthropic(
        base_url=base.removesuffix("/v1"), api_key=token, default_headers={"X-Task-Id": TASK, **headers}, max_retries=0
    )


PROMPT = [{"role": "user", "content": "Add tax lines to the invoice PDF"}]


def test_message(demo):
    raw = claude(demo).messages.with_raw_response.create(
        model="claude-3-5-haiku-latest", max_tokens=256, system="You write Rust.", messages=PROMPT
    )
    assert raw.headers["x-warden-intent"] in ("code", "doc", "analysis", "test")
    message = raw.parse()
    assert message.type == "message" and message.role == "assistant"
    assert message.content[0].text.startswith("Mock answer about: Add tax lines")
    assert message.stop_reason == "end_turn"
    assert message.usage.input_tokens > 0 and message.usage.output_tokens > 0


def test_streamed_message(demo):
    with claude(demo).messages.stream(model="claude-3-5-haiku-latest", max_tokens=256, messages=PROMPT) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert text.startswith("Mock answer about: Add tax lines")
    assert final.usage.output_tokens > 0
    assert final.stop_reason == "end_turn"


def test_a_gpt_model_through_translation(demo):
    message = claude(demo).messages.create(model="gpt-4o-mini", max_tokens=256, messages=PROMPT)
    assert message.content[0].text.startswith("Mock answer about: Add tax lines")
    assert message.usage.output_tokens > 0
    with claude(demo).messages.stream(model="gpt-4o-mini", max_tokens=256, messages=PROMPT) as stream:
        assert "".join(stream.text_stream) == message.content[0].text
        assert stream.get_final_message().usage.output_tokens == message.usage.output_tokens


def test_errors_are_typed(demo):
    base, token = demo
    forged = Anthropic(base_url=base.removesuffix("/v1"), api_key="forged", default_headers={"X-Task-Id": TASK}, max_retries=0)
    with pytest.raises(anthropic.AuthenticationError):
        forged.messages.create(model="claude-3-5-haiku-latest", max_tokens=10, messages=PROMPT)
    no_task = Anthropic(base_url=base.removesuffix("/v1"), api_key=token, max_retries=0)
    with pytest.raises(anthropic.BadRequestError) as missing:
        no_task.messages.create(model="claude-3-5-haiku-latest", max_tokens=10, messages=PROMPT)
    assert "task" in str(missing.value)
    with pytest.raises(anthropic.PermissionDeniedError):
        claude(demo).messages.create(model="claude-opus-4", max_tokens=10, messages=PROMPT)
    with pytest.raises(anthropic.NotFoundError):
        claude(demo).messages.create(model="no-such-model", max_tokens=10, messages=PROMPT)
