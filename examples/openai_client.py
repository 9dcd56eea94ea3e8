"""Calling Warden with the official openai SDK, unchanged.

    WARDEN_URL=http://127.0.0.1:8080/v1 WARDEN_TOKEN=<token> python3 examples/openai_client.py

The token comes from `warden token issue` (or the `warden demo` banner); the
task id travels as a default header on every call.
"""

import os

from openai import OpenAI

client = OpenAI(
    base_url=os.environ.get("WARDEN_URL", "http://127.0.0.1:8080/v1"),
    api_key=os.environ["WARDEN_TOKEN"],
    default_headers={"X-Task-Id": os.environ.get("WARDEN_TASK", "invoice-backend")},
)

raw = client.chat.completions.with_raw_response.create(
    model="gpt-4o-mini",
    messages=[{"role": "user", "content": "Write the REST endpoint that creates an invoice"}],
)
print("intent:", raw.headers.get("x-warden-intent"), "score:", raw.headers.get("x-warden-deviation-score"))
if raw.headers.get("x-warden-warning"):
    print("warning:", raw.headers["x-warden-warning"])
print(raw.parse().choices[0].message.content)

print("streamed: ", end="")
for chunk in client.chat.completions.create(
    model="gpt-4o-mini",
    messages=[{"role": "user", "content": "Add tax lines to the invoice PDF"}],
    stream=True,
):
    if chunk.choices:
        print(chunk.choices[0].delta.content or "", end="", flush=True)
print()
