"""Time from a plugin file landing in a tenant's plugin directory to the
new version answering requests (hot reload: notify, debounce, compile,
chain swap). Tenant `bench`'s policy names guardrail `guard`; we swap the
file between the Rust PII redactor and the Rust length limiter (their
answers differ), then drop in the Python secret scanner, first uncached
and then with its compiled artifact cached (`bash bench/run.sh reload`)."""

import os
import shutil
import time
import urllib.error
import urllib.request

from harness import BODY, ROOT, WARDEN, WORK, rss_mib, seed, serve, start, stop_all

MOCK, PORT = 18081, 18087
ROUNDS = 10
# Swaps for the memory check: old versions must be freed, not piled up.
MANY = int(os.environ.get("RELOADS", "1000"))
PROMPT = "invoice api for ali@example.com with key sk-proj-abcdefghijklmnopqrstuvwx1234"


def answer(token):
    body = BODY.replace("Write the REST endpoint that creates an invoice with tax lines", PROMPT)
    request = urllib.request.Request(
        f"http://127.0.0.1:{PORT}/v1/chat/completions", data=body.encode(),
        headers={"Authorization": f"Bearer {token}", "X-Task-Id": "invoice-backend",
                 "Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request) as response:
            return response.read().decode()
    except urllib.error.HTTPError as e:
        return e.read().decode()


def which(text):
    """Which version answered."""
    if "guardrail_denied" in text:
        return "max-prompt-length"
    if "[secret removed]" in text:
        return "secret-scanner"
    if "[redacted]" in text:
        return "pii-redactor"
    return "none"


def swap_in(source, target, token, expect, timeout=120):
    """Renames `source` over `target`; ms until a request sees `expect`."""
    shutil.copy(source, target + ".tmp")
    started = time.monotonic()
    os.rename(target + ".tmp", target)
    while time.monotonic() - started < timeout:
        if which(answer(token)) == expect:
            return (time.monotonic() - started) * 1000
    raise SystemExit(f"{expect} never served")


def main():
    try:
        start([WARDEN, "mock-llm", "--listen", f"127.0.0.1:{MOCK}"])
        state = os.path.join(WORK, "reload")
        token = seed(state, "bench")
        plugins = os.path.join(WORK, "plugins")
        shutil.copytree(os.path.join(ROOT, "build", "plugins"), plugins)
        tenant_dir = os.path.join(plugins, "tenants", "bench")
        os.makedirs(tenant_dir)
        guard = os.path.join(tenant_dir, "guard.wasm")
        shutil.copy(os.path.join(plugins, "pii-redactor.wasm"), guard)
        policies = os.path.join(WORK, "policies")
        os.makedirs(policies)
        with open(os.path.join(ROOT, "policies", "default.toml")) as f:
            default = f.read()
        with open(os.path.join(policies, "bench.toml"), "w") as f:
            f.write(default + '\n[[guardrails]]\nplugin = "guard"\nconfig = { max_chars = "40" }\n'
                    'sandbox = { deadline_ms = 50 }\n')
        server = serve("reload", PORT, state, policies, MOCK, plugin_dir=plugins)
        assert which(answer(token)) == "pii-redactor"

        rust = []
        for n in range(ROUNDS):
            name = "max-prompt-length" if n % 2 == 0 else "pii-redactor"
            rust.append(swap_in(os.path.join(plugins, f"{name}.wasm"), guard, token, name))
        python = os.path.join(ROOT, "build", "examples", "secret-scanner.wasm")
        cold = swap_in(python, guard, token, "secret-scanner")
        swap_in(os.path.join(plugins, "pii-redactor.wasm"), guard, token, "pii-redactor")
        cached = swap_in(python, guard, token, "secret-scanner")
        # Memory across many reloads, alternating two Rust versions.
        rss = [(0, rss_mib(server.pid))]
        for n in range(1, MANY + 1):
            name = "max-prompt-length" if n % 2 else "pii-redactor"
            swap_in(os.path.join(plugins, f"{name}.wasm"), guard, token, name)
            if n in (10, 100, MANY):
                rss.append((n, rss_mib(server.pid)))
        rust.sort()
        print("\n| plugin file renamed into a tenant's directory → new version serving | ms |")
        print("|---|---:|")
        print(f"| Rust guardrail, median of {ROUNDS} (min {rust[0]:.0f}, max {rust[-1]:.0f}) "
              f"| {rust[len(rust) // 2]:.0f} |")
        print(f"| Python guardrail, first time (compiled) | {cold:.0f} |")
        print(f"| Python guardrail again (compiled artifact cached) | {cached:.0f} |")
        print("\n| reloads of tenant `bench`'s guardrail | server RSS (MiB) |")
        print("|---:|---:|")
        for n, mib in rss:
            print(f"| {n} | {mib:.0f} |")
    finally:
        stop_all()


main()
