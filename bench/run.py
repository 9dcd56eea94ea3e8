"""Runs the five measurements and prints a Markdown table (see bench/run.sh)."""

import os
import time

from harness import (CHAT, DURATION, MESSAGES, ROOT, WARDEN, WORK, chat_body, chain_metrics, messages_body, rss_mib,
                     seed, serve, start, stop_all, wait_port, wrk)

PORTS = {"mock": 18081, "nginx": 18082, "warden-no-chain": 18083, "warden-chain": 18084,
         "warden-guardrails": 18085, "warden-baseline": 18086, "warden-baseline-bin": 18087, "warden-providers": 18088,
         "warden-no-encoder": 18089}


def providers_config(mock_port):
    """Two providers on the one mock, an OpenAI and an Anthropic (issue 16)."""
    base = f"http://127.0.0.1:{mock_port}/v1"
    return (f'[[providers]]\nname = "openai"\nkind = "openai"\nbase_url = "{base}"\napi_key_env = "BENCH_KEY"\n'
            f'models = ["gpt-*"]\n'
            f'[[providers]]\nname = "anthropic"\nkind = "anthropic"\nbase_url = "{base}"\napi_key_env = "BENCH_KEY"\n'
            f'models = ["claude-*"]\n')
# BASELINE_PLUGINS=DIR adds a row: the full chain with DIR's .wasm files in
# place of the built ones (an A/B of plugins in one run, e.g. the intent and
# deviation stages of an older commit).
BASELINE = os.environ.get("BASELINE_PLUGINS")
# BASELINE_BIN=FILE adds a row: the full chain served by another build of
# Warden (an A/B of the host in one run, e.g. an older commit's binary), with
# BASELINE_BIN_PLUGINS and BASELINE_BIN_POLICIES its plugin and policy
# directories (default: this checkout's).
BASELINE_BIN = os.environ.get("BASELINE_BIN")


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


def start_warden(name, chain, policy_dir=None, plugin_dir=None, binary=None, extra=""):
    state = os.path.join(WORK, name)
    token = seed(state, binary=binary)
    proc = serve(name, PORTS[name], state, policy_dir or os.path.join(ROOT, "policies"), PORTS["mock"], chain,
                 plugin_dir=plugin_dir, binary=binary, extra=extra)
    return proc, token


def baseline_plugins():
    """The built plugins with BASELINE's files laid over them."""
    directory = os.path.join(WORK, "plugins-baseline")
    os.makedirs(directory, exist_ok=True)
    for source in (os.path.join(ROOT, "build", "plugins"), BASELINE):
        for name in os.listdir(source):
            if name.endswith(".wasm"):
                with open(os.path.join(source, name), "rb") as f, open(os.path.join(directory, name), "wb") as out:
                    out.write(f.read())
    return directory


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
        # The same chain without the sentence encoder: what its import and head cost a repeated prompt.
        words, token_words = start_warden("warden-no-encoder", chain=True, extra='[runtime]\nsentence_model = "off"')
        targets.append(("Warden, 5-stage chain, sentence encoder off", PORTS["warden-no-encoder"], token_words, words))
        shaped, token_shaped = start_warden("warden-providers", chain=True, extra=providers_config(PORTS["mock"]))
        # The API shapes and translations (each on the full chain): path and body per row.
        shapes = {"mock LLM, direct, /v1/messages": (MESSAGES, messages_body("claude-3-5-haiku-latest")),
                  "Warden, chat → openai provider": (CHAT, chat_body("gpt-4o-mini")),
                  "Warden, /v1/messages → anthropic (native)": (MESSAGES, messages_body("claude-3-5-haiku-latest")),
                  "Warden, chat → Claude (translated)": (CHAT, chat_body("claude-3-5-haiku-latest")),
                  "Warden, /v1/messages → GPT (translated)": (MESSAGES, messages_body("gpt-4o-mini"))}
        shape_targets = [(name, PORTS["mock"] if "direct" in name else PORTS["warden-providers"],
                          "x" if "direct" in name else token_shaped, None if "direct" in name else shaped)
                         for name in shapes]
        if BASELINE:
            base, token_base = start_warden("warden-baseline", chain=True, plugin_dir=baseline_plugins())
            targets.append(("Warden, 5-stage chain, baseline plugins", PORTS["warden-baseline"], token_base, base))
        if BASELINE_BIN:
            other, token_other = start_warden("warden-baseline-bin", chain=True, binary=BASELINE_BIN,
                                              plugin_dir=os.environ.get("BASELINE_BIN_PLUGINS"),
                                              policy_dir=os.environ.get("BASELINE_BIN_POLICIES"))
            targets.append(("Warden baseline build, 5-stage chain", PORTS["warden-baseline-bin"], token_other, other))
        results = {}
        for name, port, token, proc in targets + shape_targets:
            path, body = shapes.get(name, (CHAT, None))
            shape = {"path": path, "body": body} if body else {}
            wrk(port, token, 8, **shape)  # warm-up: connections, warm plugin instances, caches
            for c in (1, 64):
                before = chain_metrics(port)
                results[(name, c)] = wrk(port, token, c, **shape)
                after = chain_metrics(port)
                if before and after[0] > before[0]:
                    results[(name, "chain", c)] = 1e6 * (after[1] - before[1]) / (after[0] - before[0])
            results[(name, "rss")] = rss_mib(proc.pid) if proc else None
        print(f"\nwrk {DURATION}s per row, same 2-core box, loopback.\n")
        print("| target | c=1 req/s | c=1 p50 | c=1 p99 | c=64 req/s | c=64 p50 | c=64 p99 | RSS after |")
        print("|---|---:|---:|---:|---:|---:|---:|---:|")
        for name, *_ in targets + shape_targets:
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
        words_name = "Warden, 5-stage chain, sentence encoder off"
        words1 = results[(words_name, 1)]
        print(f"- the sentence encoder's import and head on a repeated prompt (vectors cached): chain "
              f"{results[(chain_name, 'chain', 1)]:.1f} µs with, {results[(words_name, 'chain', 1)]:.1f} µs without "
              f"(c=1); p50 {on1[1] - words1[1]:+.0f} µs")
        if BASELINE:
            name = "Warden, 5-stage chain, baseline plugins"
            base1 = results[(name, 1)]
            print(f"- against the baseline plugins: full chain {on1[1] - base1[1]:+.0f} µs at p50 (c=1); chain in-process "
                  f"{results[(chain_name, 'chain', 1)]:.1f} vs {results[(name, 'chain', 1)]:.1f} µs (c=1), "
                  f"{results[(chain_name, 'chain', 64)]:.1f} vs {results[(name, 'chain', 64)]:.1f} µs (c=64)")
        if BASELINE_BIN:
            name = targets[-1][0]
            other1, other64 = results[(name, 1)], results[(name, 64)]
            print(f"- against the baseline build: full chain {on1[1] - other1[1]:+.0f} µs at p50 (c=1), "
                  f"{on64[0] - other64[0]:+.0f} req/s at c=64; chain in-process "
                  f"{results[(chain_name, 'chain', 1)]:.1f} vs {results.get((name, 'chain', 1), float('nan')):.1f} µs (c=1)")
        print(f"- chain-disabled throughput is {100 * off64[0] / ngx[0]:.0f}% of nginx's (c=64; goal ≥ 50%)")
        native = results[("Warden, chat → openai provider", 1)]
        for name in list(shapes)[2:]:
            r = results[(name, 1)]
            print(f"- {name}: {r[1] - native[1]:+.0f} µs at p50 over chat to the openai provider (c=1), "
                  f"{100 * results[(name, 64)][0] / results[('Warden, chat → openai provider', 64)][0]:.0f}% of its "
                  f"throughput (c=64)")
    finally:
        stop_all()


main()
