"""Shared by the SDK tests: the real `warden demo` binary (mock LLM with an
"openai" and an "anthropic" provider, the proxy, a seeded tenant), started
once per session; its token and base URL read from what it prints."""

import os
import re
import subprocess
import tempfile
import time

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TARGET = os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target"))
BINARY = os.path.join(TARGET, "release", "warden")
TASK = "invoice-backend"


def start_demo(*extra):
    state = tempfile.mkdtemp(prefix="warden-sdk-")
    log = tempfile.TemporaryFile(mode="w+")
    proc = subprocess.Popen(
        [BINARY, "demo", "--listen", "127.0.0.1:0", "--state-dir", state, *extra],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=log,
        text=True,
    )
    base, token = None, None
    deadline = time.time() + 60
    while time.time() < deadline and not (base and token):
        line = proc.stdout.readline()
        if not line:
            break
        m = re.search(r'base_url="([^"]+)", api_key="([^"]+)"', line)
        if m:
            base, token = m.group(1), m.group(2)
    if not (base and token):
        proc.kill()
        log.seek(0)
        raise AssertionError(f"warden demo did not print the SDK snippet; exit {proc.wait()}; log:\n{log.read()}")
    return proc, base, token


@pytest.fixture(scope="session")
def demo():
    proc, base, token = start_demo()
    yield base, token
    proc.terminate()
    proc.wait(timeout=10)
