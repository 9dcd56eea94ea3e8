"""Scale-out benchmark (`bash bench/run.sh replicas`): one run, same mock,
same box. Warden on sled against Warden on PostgreSQL + Redis (added
latency at c=1 and c=64), one replica against two behind nginx
(throughput), and Redis round trips per request. PostgreSQL and Redis are
Debian's packages, started here on loopback with throw-away directories
(PostgreSQL as the `postgres` user when run as root)."""

import glob
import os
import re
import shutil
import subprocess
import time

from harness import DURATION, ROOT, WARDEN, WORK, seed, serve, start, stop_all, wait_port, wrk

PORTS = {"mock": 18181, "sled": 18182, "shared-a": 18183, "shared-b": 18184, "nginx-one": 18185,
         "nginx-two": 18186, "postgres": 18187, "redis": 18188}
POLICIES = os.path.join(ROOT, "policies")


def as_postgres(args):
    root = os.geteuid() == 0
    return subprocess.run((["runuser", "-u", "postgres", "--"] if root else []) + args, check=True,
                          capture_output=True, text=True)


def postgres():
    """A throw-away PostgreSQL on PORTS["postgres"]; returns its URL."""
    binaries = sorted(glob.glob("/usr/lib/postgresql/*/bin"))
    if not binaries:
        subprocess.run(["apt-get", "install", "-y", "-qq", "postgresql"], check=True, capture_output=True)
        binaries = sorted(glob.glob("/usr/lib/postgresql/*/bin"))
    bin_dir = binaries[-1]
    data = os.path.join(WORK, "pg")
    os.makedirs(data)
    if os.geteuid() == 0:
        shutil.chown(WORK, "postgres")
        shutil.chown(data, "postgres")
    as_postgres([f"{bin_dir}/initdb", "-D", data, "-U", "warden", "--auth=trust", "--no-sync"])
    as_postgres([f"{bin_dir}/pg_ctl", "-D", data, "-l", os.path.join(data, "log"), "-w", "-o",
                 f"-p {PORTS['postgres']} -k {data} -c listen_addresses=127.0.0.1", "start"])
    return f"postgres://warden@127.0.0.1:{PORTS['postgres']}/postgres", (bin_dir, data)


def stop_postgres(where):
    bin_dir, data = where
    as_postgres([f"{bin_dir}/pg_ctl", "-D", data, "-m", "immediate", "stop"])


def redis():
    if not shutil.which("redis-server"):
        subprocess.run(["apt-get", "install", "-y", "-qq", "redis-server"], check=True, capture_output=True)
    start(["redis-server", "--port", str(PORTS["redis"]), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
    time.sleep(0.3)
    return f"redis://127.0.0.1:{PORTS['redis']}/"


def redis_stats():
    """(scripts, reads, transactions): reservations and deviation updates
    (EVALSHA), deviation reads (HMGET, one per pipeline), settlement
    batches (EXEC)."""
    out = subprocess.run(["redis-cli", "-p", str(PORTS["redis"]), "INFO", "commandstats"], check=True,
                         capture_output=True, text=True).stdout
    calls = lambda name: int((re.search(rf"cmdstat_{name}:calls=(\d+)", out) or [0, 0])[1])
    return calls("evalsha") + calls("eval"), calls("hmget"), calls("exec")


def cpu_seconds(pattern):
    """CPU time (user + system) of every process whose command line matches."""
    total = 0.0
    tick = os.sysconf("SC_CLK_TCK")
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                cmdline = f.read().replace(b"\0", b" ").decode(errors="replace")
            if not re.search(pattern, cmdline):
                continue
            with open(f"/proc/{pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / tick
        except (FileNotFoundError, ProcessLookupError, IndexError):
            continue
    return total


CPU = {"sled": r"warden serve --config .*sled\.toml", "replica a": r"warden serve --config .*shared-a\.toml", "replica b (following)": r"warden serve --config .*shared-b\.toml",
       "PostgreSQL": r"^(postgres:|/usr/lib/postgresql/.*/postgres )", "Redis": r"redis-server"}


def nginx(name, upstreams):
    conf = os.path.join(WORK, f"{name}.conf")
    servers = "".join(f"server 127.0.0.1:{port}; " for port in upstreams)
    with open(conf, "w") as f:
        f.write(f"""worker_processes 1; daemon off; pid {WORK}/{name}.pid; error_log /dev/null;
events {{ worker_connections 1024; }}
http {{ access_log off;
  upstream warden {{ {servers} keepalive 128; }}
  server {{ listen 127.0.0.1:{PORTS[name]};
    location / {{ proxy_pass http://warden; proxy_http_version 1.1; proxy_set_header Connection ""; }} }} }}
""")
    start(["nginx", "-c", conf, "-p", WORK])
    wait_port(PORTS[name])


def main():
    pg_where = None
    try:
        start([WARDEN, "mock-llm", "--listen", f"127.0.0.1:{PORTS['mock']}"])
        time.sleep(0.3)
        sled_state = os.path.join(WORK, "sled")
        token_sled = seed(sled_state)
        serve("sled", PORTS["sled"], sled_state, POLICIES, PORTS["mock"])

        pg_url, pg_where = postgres()
        redis_url = redis()
        shared_seed = os.path.join(WORK, "shared-a")
        token_shared = seed(shared_seed)
        subprocess.run([WARDEN, "migrate", "--to", pg_url, "--state-dir", shared_seed], check=True,
                       capture_output=True)
        shared = lambda name: f'[shared]\nstate = "{pg_url}"\ncounters = "{redis_url}"\nreplica = "{name}"\n'
        serve("shared-a", PORTS["shared-a"], shared_seed, POLICIES, PORTS["mock"], extra=shared("a"))
        serve("shared-b", PORTS["shared-b"], os.path.join(WORK, "shared-b"), POLICIES, PORTS["mock"],
              extra=shared("b"))
        nginx("nginx-one", [PORTS["shared-a"]])
        nginx("nginx-two", [PORTS["shared-a"], PORTS["shared-b"]])

        rows = [("Warden on sled (one process)", PORTS["sled"], token_sled),
                ("Warden on PostgreSQL + Redis (one replica)", PORTS["shared-a"], token_shared),
                ("nginx → one replica (PostgreSQL + Redis)", PORTS["nginx-one"], token_shared),
                ("nginx → two replicas (PostgreSQL + Redis)", PORTS["nginx-two"], token_shared)]
        results = {}
        for name, port, token in rows:
            wrk(port, token, 8, duration=2)  # warm-up
            for c in (1, 64):
                before, cpu_before = redis_stats(), {k: cpu_seconds(v) for k, v in CPU.items()}
                results[(name, c)] = wrk(port, token, c)
                after, cpu_after = redis_stats(), {k: cpu_seconds(v) for k, v in CPU.items()}
                results[(name, "redis", c)] = tuple(a - b for a, b in zip(after, before))
                results[(name, "cpu", c)] = {k: cpu_after[k] - cpu_before[k] for k in CPU}
        print(f"\nwrk {DURATION}s per row, same 2-core box (load generator, mock, nginx, PostgreSQL, Redis and "
              f"every replica share its two cores), loopback.\n")
        print("| target | c=1 req/s | c=1 p50 | c=1 p99 | c=64 req/s | c=64 p50 | c=64 p99 |")
        print("|---|---:|---:|---:|---:|---:|---:|")
        for name, *_ in rows:
            r1, r64 = results[(name, 1)], results[(name, 64)]
            print(f"| {name} | {r1[0]:.0f} | {r1[1]:.0f} µs | {r1[2]:.0f} µs | {r64[0]:.0f} | {r64[1]:.0f} µs | "
                  f"{r64[2]:.0f} µs |")
        sled, shared1 = rows[0][0], rows[1][0]
        for c in (1, 64):
            print(f"- PostgreSQL + Redis add {results[(shared1, c)][1] - results[(sled, c)][1]:+.0f} µs at p50, "
                  f"{results[(shared1, c)][2] - results[(sled, c)][2]:+.0f} µs at p99 over sled (c={c})")
        one, two = results[(rows[2][0], 64)], results[(rows[3][0], 64)]
        print(f"- two replicas behind nginx: {two[0]:.0f} req/s against one's {one[0]:.0f} ({100 * two[0] / one[0]:.0f}%, "
              f"c=64, one 2-core box)")
        alone = 1e6 * results[(sled, "cpu", 64)]["sled"] / (results[(sled, 64)][0] * DURATION)
        requests = results[(shared1, 64)][0] * DURATION
        spent = ", ".join(f"{k} {1e6 * v / requests:.0f} µs" for k, v in results[(shared1, "cpu", 64)].items()
                          if k != "sled")
        print(f"- CPU per request (c=64): Warden on sled {alone:.0f} µs; one replica on PostgreSQL + Redis: {spent}")
        for c in (1, 64):
            requests = results[(shared1, c)][0] * DURATION
            evals, reads, execs = results[(shared1, "redis", c)]
            print(f"- Redis per request (c={c}): {evals / requests:.2f} scripts (the reservation, awaited; an on-task "
                  f"call's deviation update, not awaited), {reads / requests:.2f} deviation reads (awaited), "
                  f"{execs / requests:.3f} settlement transactions (queued)")
    finally:
        if pg_where:  # before stop_all, which removes its directory
            stop_postgres(pg_where)
        stop_all()


main()
