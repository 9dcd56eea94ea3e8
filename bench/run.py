"""Runs the four measurements and prints a Markdown table (see bench/run.sh)."""

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request

WARDEN = sys.argv[1]
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DURATION = int(os.environ.get("DURATION", "10"))
PORTS = {"mock": 18081, "nginx": 18082, "warden-no-chain": 18083, "warden-chain": 18084,
         "warden-guardrails": 18085}
WORK = tempfile.mkdtemp(prefix="warden-bench-")
BODY = json.dumps({
    "model": "gpt-4o-mini",
    "messages": [{"role": "user", "content": "Write the REST endpoint that creates an invoice with tax lines"}],
})
procs = []


def start(args, **kw):
    p = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, **kw)
    procs.append(p)
    return p


def wait_port(port):
    for _ in range(300):
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1)
            return
        except urllib.error.HTTPError:
            return  # something answers
        except Exception:
            time.sleep(0.05)
    raise SystemExit(f"nothing listens on {port}")


def warden(*args):
    return subprocess.run([WARDEN, *args], check=True, capture_output=True, text=True, cwd=ROOT).stdout.strip()


def seed(state):
    common = ["--state-dir", state]
    warden("tenant", "create", "bench", *common)
    warden("user", "create", "--tenant", "bench", "ali", *common)
    warden("task", "create", "--tenant", "bench", "invoice-backend", "--title", "Invoice backend",
           "--description", "REST API for invoices", "--keyword", "invoice", "--keyword", "rest", *common)
    return warden("token", "issue", "--tenant", "bench", "--user", "ali", "--task", "invoice-backend", *common)


def guardrail_policies():
    """A policy directory where tenant `bench` adds three guardrails to the five stages."""
    directory = os.path.join(WORK, "policies-guardrails")
    os.makedirs(directory, exist_ok=True)
    with open(os.path.join(ROOT, "policies", "default.toml")) as f:
        default = f.read()
    with open(os.path.join(directory, "default.toml"), "w") as f:
        f.write(default)
    with open(os.path.join(directory, "bench.toml"), "w") as f:
        f.write(default + '\n[[guardrails]]\nplugin = "pii-redactor"\nconfig = { blocked_topics = "salary" }\n'
                '\n[[guardrails]]\nplugin = "max-prompt-length"\n'
                '\n[[guardrails]]\nplugin = "pii-redactor"\n')
    return directory


def start_warden(name, chain, policy_dir=None):
    state = os.path.join(WORK, name)
    token = seed(state)
    policy_dir = policy_dir or os.path.join(ROOT, "policies")
    config = os.path.join(WORK, f"{name}.toml")
    with open(config, "w") as f:
        f.write(f'listen = "127.0.0.1:{PORTS[name]}"\nstate_dir = "{state}"\n'
                f'plugin_dir = "{ROOT}/build/plugins"\npolicy_dir = "{policy_dir}"\n'
                f'chain_enabled = {"true" if chain else "false"}\n'
                f'[upstream]\nbase_url = "http://127.0.0.1:{PORTS["mock"]}/v1"\napi_key_env = "BENCH_KEY"\n')
    proc = start([WARDEN, "serve", "--config", config], env={**os.environ, "RUST_LOG": "warn", "BENCH_KEY": "k"})
    wait_port(PORTS[name])
    return proc, token


def nginx():
    conf = os.path.join(WORK, "nginx.conf")
    with open(conf, "w") as f:
        f.write(f"""worker_processes 1; daemon off; pid {WORK}/nginx.pid; error_log /dev/null;
events {{ worker_connections 1024; }}
http {{ access_log off;
  upstream mock {{ server 127.0.0.1:{PORTS['mock']}; keepalive 128; }}
  server {{ listen 127.0.0.1:{PORTS['nginx']};
    location / {{ proxy_pass http://mock; proxy_http_version 1.1; proxy_set_header Connection ""; }} }} }}
""")
    start(["nginx", "-c", conf, "-p", WORK])
    wait_port(PORTS["nginx"])


def to_us(value):
    m = re.match(r"([\d.]+)(us|ms|s)", value)
    n, unit = float(m.group(1)), m.group(2)
    return n * {"us": 1, "ms": 1000, "s": 1_000_000}[unit]


def wrk(port, token, connections):
    script = os.path.join(WORK, "post.lua")
    with open(script, "w") as f:
        f.write(f"""wrk.method = "POST"
wrk.body = {json.dumps(BODY)}
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer {token}"
wrk.headers["X-Task-Id"] = "invoice-backend"
""")
    out = subprocess.run(["wrk", "-t", "1" if connections == 1 else "2", "-c", str(connections), "-d", f"{DURATION}s",
                          "--latency", "-s", script, f"http://127.0.0.1:{port}/v1/chat/completions"],
                         check=True, capture_output=True, text=True).stdout
    if "Non-2xx" in out:
        raise SystemExit(f"errors during the run on port {port}:\n{out}")
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    p50 = to_us(re.search(r"^\s*50%\s+(\S+)", out, re.M).group(1))
    p99 = to_us(re.search(r"^\s*99%\s+(\S+)", out, re.M).group(1))
    return rps, p50, p99


def chain_metrics(port):
    """(chain runs, chain seconds) from Warden's /metrics; None elsewhere."""
    try:
        text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2).read().decode()
    except Exception:
        return None
    runs = float(re.search(r"^warden_chain_runs_total (\S+)", text, re.M).group(1))
    secs = float(re.search(r"^warden_chain_seconds_total (\S+)", text, re.M).group(1))
    return runs, secs


def rss_mib(pid):
    with open(f"/proc/{pid}/status") as f:
        return int(re.search(r"VmRSS:\s+(\d+)", f.read()).group(1)) / 1024


def main():
    try:
        mock = start([WARDEN, "mock-llm", "--listen", f"127.0.0.1:{PORTS['mock']}"])
        time.sleep(0.3)
        nginx()
        plain, token_plain = start_warden("warden-no-chain", chain=False)
        full, token_full = start_warden("warden-chain", chain=True)
        guarded, token_guarded = start_warden("warden-guardrails", chain=True, policy_dir=guardrail_policies())
        targets = [("mock LLM, direct", PORTS["mock"], "x", mock), ("nginx proxy_pass", PORTS["nginx"], "x", None),
                   ("Warden, chain disabled", PORTS["warden-no-chain"], token_plain, plain),
                   ("Warden, 5-stage chain + logging", PORTS["warden-chain"], token_full, full),
                   ("Warden, chain + 3 tenant guardrails", PORTS["warden-guardrails"], token_guarded, guarded)]
        results = {}
        for name, port, token, proc in targets:
            wrk(port, token, 8)  # warm-up: connections, warm plugin instances, caches
            for c in (1, 64):
                before = chain_metrics(port)
                results[(name, c)] = wrk(port, token, c)
                after = chain_metrics(port)
                if before and after[0] > before[0]:
                    results[(name, "chain", c)] = 1e6 * (after[1] - before[1]) / (after[0] - before[0])
            results[(name, "rss")] = rss_mib(proc.pid) if proc else None
        print(f"\nwrk {DURATION}s per row, same 2-core box, loopback.\n")
        print("| target | c=1 req/s | c=1 p50 | c=1 p99 | c=64 req/s | c=64 p50 | c=64 p99 | RSS after |")
        print("|---|---:|---:|---:|---:|---:|---:|---:|")
        for name, *_ in targets:
            r1, r64, rss = results[(name, 1)], results[(name, 64)], results[(name, "rss")]
            rss_text = f"{rss:.0f} MiB" if rss else "-"
            print(f"| {name} | {r1[0]:.0f} | {r1[1]:.0f} µs | {r1[2]:.0f} µs | {r64[0]:.0f} | {r64[1]:.0f} µs | "
                  f"{r64[2]:.0f} µs | {rss_text} |")
        direct, ngx = results[(targets[0][0], 1)], results[(targets[1][0], 64)]
        off1, on1 = results[(targets[2][0], 1)], results[(targets[3][0], 1)]
        off64, on64 = results[(targets[2][0], 64)], results[(targets[3][0], 64)]
        print(f"\n- full chain adds {on1[1] - direct[1]:.0f} µs at p50 over the direct mock (c=1; goal ≤ 100 µs)")
        print(f"- nginx adds {results[(targets[1][0], 1)][1] - direct[1]:.0f} µs at p50 over the direct mock (c=1)")
        chain_name = targets[3][0]
        print(f"- the chain itself, timed inside Warden: {results[(chain_name, 'chain', 1)]:.1f} µs per request at c=1, "
              f"{results[(chain_name, 'chain', 64)]:.1f} µs at c=64 (five plugin calls, quota and score bookkeeping)")
        print(f"- full chain minus chain disabled at p50 (c=1): {on1[1] - off1[1]:.0f} µs")
        guarded1 = results[(targets[4][0], 1)]
        print(f"- three tenant guardrails add {guarded1[1] - on1[1]:.0f} µs at p50 over the full chain (c=1)")
        print(f"- full-chain throughput is {100 * on64[0] / off64[0]:.0f}% of chain-disabled (c=64; goal ≥ 60%)")
        print(f"- chain-disabled throughput is {100 * off64[0] / ngx[0]:.0f}% of nginx's (c=64; goal ≥ 50%)")
    finally:
        for p in procs:
            p.send_signal(signal.SIGINT)
        for p in procs:
            try:
                p.wait(timeout=5)
            except subprocess.TimeoutExpired:
                p.kill()
        shutil.rmtree(WORK, ignore_errors=True)


main()
