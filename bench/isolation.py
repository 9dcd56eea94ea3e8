"""Does one tenant's broken plugin move another tenant's latency? Tenant
`noisy` runs an intent plugin that loops until its 10 ms deadline on every
call (each request fails closed, 503); tenants `bench` and `busy` run the
default chain. We measure `bench` at c=1 alone, beside 4 connections
flooding `busy` (the cost of any flood on this box), and beside 4
connections flooding `noisy` (see bench/run.sh: `bash bench/run.sh
isolation`)."""

import os
import shutil
import threading

from harness import DURATION, ROOT, WARDEN, WORK, seed, serve, start, stop_all, wrk

MOCK, PORT = 18081, 18086


def policies():
    """default.toml for everyone; noisy's intent stage is the looping fixture."""
    directory = os.path.join(WORK, "policies-isolation")
    os.makedirs(directory, exist_ok=True)
    shutil.copy(os.path.join(ROOT, "policies", "default.toml"), directory)
    with open(os.path.join(ROOT, "policies", "default.toml")) as f:
        default = f.read()
    noisy = default.replace('[stages.intent]\nplugin = "intent"',
                            '[stages.intent]\nplugin = "test-misbehave"\nconfig = { mode = "spin" }')
    assert noisy != default
    with open(os.path.join(directory, "noisy.toml"), "w") as f:
        f.write(noisy)
    return directory


def main():
    try:
        start([WARDEN, "mock-llm", "--listen", f"127.0.0.1:{MOCK}"])
        state = os.path.join(WORK, "isolation")
        bench_token = seed(state, "bench")
        noisy_token = seed(state, "noisy")
        busy_token = seed(state, "busy")
        serve("isolation", PORT, state, policies(), MOCK)
        wrk(PORT, bench_token, 8, duration=3)  # warm-up
        alone = wrk(PORT, bench_token, 1)

        def beside(token):
            """`bench` at c=1 while `token`'s tenant is flooded; both results."""
            flood = {}
            flooding = threading.Thread(
                target=lambda: flood.update(r=wrk(PORT, token, 4, duration=DURATION + 2, expect_errors=True)))
            flooding.start()
            measured = wrk(PORT, bench_token, 1)
            flooding.join()
            return measured, flood["r"]

        busy, busy_flood = beside(busy_token)
        noisy, noisy_flood = beside(noisy_token)
        print(f"\nwrk {DURATION}s per row, same 2-core box, loopback; tenant `bench` at c=1.\n")
        print("| tenant `bench` | req/s | p50 | p99 | the other tenant |")
        print("|---|---:|---:|---:|---|")
        print(f"| alone | {alone[0]:.0f} | {alone[1]:.0f} µs | {alone[2]:.0f} µs | - |")
        print(f"| beside `busy` flooded at c=4 (healthy plugins) | {busy[0]:.0f} | {busy[1]:.0f} µs "
              f"| {busy[2]:.0f} µs | {busy_flood[0]:.0f} req/s, 200 |")
        print(f"| beside `noisy` flooded at c=4 (looping plugin) | {noisy[0]:.0f} | {noisy[1]:.0f} µs "
              f"| {noisy[2]:.0f} µs | {noisy_flood[0]:.0f} req/s, 503 (p50 {noisy_flood[1]:.0f} µs) |")
    finally:
        stop_all()


main()
