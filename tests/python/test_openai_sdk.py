"""The official `openai` Python SDK works against Warden unchanged: chat
completions (plain, streamed, typed errors), a Claude model reached through
translation, the Responses API and embeddings.

Starts the real `warden demo` binary (see conftest.py) and calls it through
the SDK.
"""

import os
import tempfile

import openai
import pytest
from openai import OpenAI

from conftest import ROOT, TASK, start_demo


@pytest.fixture(scope="module")
def embedded_demo():
    """The demo tenant with embedded classification on (`embedded_intent = true`)."""
    policies = tempfile.mkdtemp(prefix="warden-sdk-policies-")
    with open(os.path.join(ROOT, "policies", "default.toml")) as f:
        default = f.read()
    with open(os.path.join(policies, "default.toml"), "w") as f:
        f.write("embedded_intent = true\n" + default)
    proc, base, token = start_demo("--policy-dir", policies)
    yield base, token
    proc.terminate()
    proc.wait(timeout=10)


def client(demo, **headers):
    base, token = demo
    return OpenAI(base_url=base, api_key=token, default_headers={"X-Task-Id": TASK, **headers}, max_retries=0)


def test_chat_completion(demo):
    raw = client(demo).chat.completions.with_raw_response.create(
        model="gpt-4o-mini",
        messages=[{"role": "user", "content": "Add tax lines to the invoice PDF"}],
    )
    assert raw.headers["x-warden-intent"] in ("code", "doc", "analysis", "test")
    reply = raw.parse()
    assert reply.choices[0].message.content.startswith("Mock answer about: Add tax lines")
    assert reply.usage.prompt_tokens > 0 and reply.usage.completion_tokens > 0


def test_streamed_chat_completion(demo):
    stream = client(demo).chat.completions.create(
        model="gpt-4o-mini",
        messages=[{"role": "user", "content": "Add tax lines to the invoice PDF"}],
        stream=True,
    )
    pieces = [c.choices[0].delta.content or "" for c in stream if c.choices]
    assert len(pieces) > 5
    assert "".join(pieces).startswith("Mock answer about: Add tax lines")


def test_errors_surface_as_sdk_exceptions(demo):
    base, token = demo
    no_task = OpenAI(base_url=base, api_key=token, max_retries=0)
    with pytest.raises(openai.BadRequestError) as missing:
        no_task.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "invoice api"}])
    assert missing.value.code == "missing_task_id"
    bad_key = OpenAI(base_url=base, api_key="forged", default_headers={"X-Task-Id": TASK}, max_retries=0)
    with pytest.raises(openai.AuthenticationError):
        bad_key.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "invoice api"}])
    models = client(demo).models.list()
    assert [m.id for m in models.data] == ["gpt-4o-mini", "claude-3-5-haiku-latest", "text-embedding-3-small", "fast"]
    assert client(demo).models.retrieve("claude-3-5-haiku-latest").owned_by == "anthropic"
    with pytest.raises(openai.NotFoundError):
        client(demo).models.retrieve("gpt-5-unknown")


def test_a_claude_model_through_translation(demo):
    """An OpenAI client calls a Claude model: Warden translates to Anthropic's
    Messages API and back, plain and streamed, usage included."""
    prompt = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Add tax lines to the invoice PDF"}]
    reply = client(demo).chat.completions.create(model="claude-3-5-haiku-latest", messages=prompt, max_tokens=200)
    assert reply.choices[0].message.content.startswith("Mock answer about: Add tax lines")
    assert reply.choices[0].finish_reason == "stop"
    assert reply.usage.prompt_tokens > 0 and reply.usage.completion_tokens > 0
    stream = client(demo).chat.completions.create(
        model="claude-3-5-haiku-latest", messages=prompt, stream=True, stream_options={"include_usage": True}
    )
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == reply.choices[0].message.content
    assert chunks[-1].usage.completion_tokens == reply.usage.completion_tokens


def test_responses_api(demo):
    response = client(demo).responses.create(model="gpt-4o-mini", input="Add tax lines to the invoice PDF")
    assert response.output_text.startswith("Mock answer about: Add tax lines")
    assert response.usage.output_tokens > 0
    stream = client(demo).responses.create(model="gpt-4o-mini", input="Add tax lines to the invoice PDF", stream=True)
    events = list(stream)
    deltas = "".join(e.delta for e in events if e.type == "response.output_text.delta")
    assert deltas == response.output_text
    assert events[-1].type == "response.completed"


def test_embeddings(demo):
    result = client(demo).embeddings.create(model="text-embedding-3-small", input=["invoice tax lines", "pdf"])
    assert len(result.data) == 2 and len(result.data[0].embedding) == 8
    assert result.usage.prompt_tokens == 4


def test_embedded_classification_is_invisible_to_the_sdk(demo, embedded_demo):
    """The model is asked for its own label; the SDK sees only the answer."""
    prompt = [{"role": "user", "content": "Add tax lines to the invoice PDF"}]
    plain = client(demo).chat.completions.create(model="gpt-4o-mini", messages=prompt)
    expected = plain.choices[0].message.content
    labelled = client(embedded_demo).chat.completions.create(model="gpt-4o-mini", messages=prompt)
    assert labelled.choices[0].message.content == expected
    # The instruction reached the model and it answered with the label line
    # (the provider counts both); only the label line was taken out.
    assert labelled.usage.prompt_tokens > plain.usage.prompt_tokens
    assert labelled.usage.completion_tokens == plain.usage.completion_tokens + 2
    stream = client(embedded_demo).chat.completions.create(model="gpt-4o-mini", messages=prompt, stream=True)
    streamed = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
    assert streamed == expected
    assert "warden-intent" not in streamed


def test_terse_on_task_session_earns_no_warning():
    """A developer's real session on the demo's task: 18 terse, code-heavy
    prompts without the task's words (tests/data/terse-on-task.jsonl, from
    the walkthrough; never training data). None may earn a warning, and the
    developer must never be blocked."""
    import json

    with open(os.path.join(ROOT, "tests", "data", "terse-on-task.jsonl")) as f:
        lines = [json.loads(line) for line in f if line.strip()]
    prompts = [line["prompt"] for line in lines if line["kind"] == "prompt"]
    assert len(prompts) == 18
    proc, base, token = start_demo()
    try:
        sdk = client((base, token))
        for prompt in prompts:
            raw = sdk.chat.completions.with_raw_response.create(
                model="gpt-4o-mini", messages=[{"role": "user", "content": prompt}]
            )
            assert raw.http_response.status_code == 200, prompt
            assert raw.headers.get("x-warden-warning") is None, (prompt, raw.headers.get("x-warden-warning"))
    finally:
        proc.terminate()
        proc.wait(timeout=10)
