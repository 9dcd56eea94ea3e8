"""What the sentence encoder adds to a call, end to end (`bash bench/run.sh
sentence`): prompts never seen before (the evaluation sets', so every one
is embedded), one at a time, through Warden with the encoder and without,
against the mock LLM answering at once and after 300 ms (a provider's
time to its first token is hundreds of milliseconds). The encoder runs
beside the provider call: with a provider slower than it, the answer
waits for nothing."""

import json
import os
import statistics
import time
import urllib.request

from harness import BODY, ROOT, WARDEN, WORK, seed, serve, start, stop_all

PROMPTS = int(os.environ.get("PROMPTS", "80"))
PORTS = {"mock-0": 18091, "mock-300": 18092}


def prompts():
    out = []
    for name in ("eval", "eval-2"):
        with open(os.path.join(ROOT, "data", "intent", name, "examples.jsonl")) as f:
            out += [json.loads(line)["prompt"] for line in f if line.strip()]
    return out


def call(port, token, prompt):
    body = json.loads(BODY)
    body["messages"][-1]["content"] = prompt
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/v1/chat/completions", data=json.dumps(body).encode(),
        headers={"Authorization": f"Bearer {token}", "X-Task-Id": "invoice-backend",
                 "Content-Type": "application/json"})
    started = time.perf_counter()
    try:
        with urllib.request.urlopen(request) as response:
            response.read()
    except urllib.error.HTTPError as e:
        e.read()  # a block is an answer too
    return (time.perf_counter() - started) * 1000


def shadow_policies():
    """The default policy in shadow mode: the bench's user sends personal
    prompts too, and must not be blocked halfway."""
    directory = os.path.join(WORK, "sentence-policies")
    os.makedirs(directory, exist_ok=True)
    with open(os.path.join(ROOT, "policies", "default.toml")) as f:
        policy = f.read().replace('block_at = "2.0" }', 'block_at = "2.0", shadow = "true" }')
    assert 'shadow = "true"' in policy
    with open(os.path.join(directory, "default.toml"), "w") as f:
        f.write(policy)
    return directory


def main():
    try:
        policies = shadow_policies()
        for name, port in PORTS.items():
            start([WARDEN, "mock-llm", "--listen", f"127.0.0.1:{port}",
                   "--latency-ms", name.split("-")[1]])
        texts = prompts()
        rows = []
        port = 18093
        for mock in PORTS:
            for encoder in ("auto", "off"):
                state = os.path.join(WORK, f"sentence-{mock}-{encoder}")
                token = seed(state)
                serve(f"sentence-{mock}-{encoder}", port, state, policies,
                      PORTS[mock], extra=f'[runtime]\nsentence_model = "{encoder}"\n')
                call(port, token, "warm up the instances")
                times = sorted(call(port, token, p) for p in texts[:PROMPTS])
                rows.append((mock, encoder, statistics.median(times),
                             times[int(len(times) * 0.99) - 1]))
                port += 1
        print(f"\n{PROMPTS} new prompts, one at a time (c=1), latency seen by the client:\n")
        print("| provider answers after | sentence encoder | p50 | p99 |")
        print("|---|---|---:|---:|")
        for mock, encoder, p50, p99 in rows:
            print(f"| {mock.split('-')[1]} ms | {encoder} | {p50:.1f} ms | {p99:.1f} ms |")
    finally:
        stop_all()


if __name__ == "__main__":
    main()
