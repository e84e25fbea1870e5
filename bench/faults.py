"""The promise under faults: each row of issue 14's table, rerun, with its figure.

Runs the fault suite's scenarios (tests/faults/harness.py: real `tokenbrake serve` and
`tokenbrake emulate` processes, load from threads driving the official OpenAI SDK) and
prints one line each:

- kill -9 three times under mixed streamed load against a hard budget, on each backend:
  spend against the cap, calls that reached the upstream missing from the ledger, calls in
  flight recorded as unseen;
- a crash with every concurrency slot held: how long until the restarted gateway serves;
- a replica killed, never restarted: how long until a live one has recorded its calls;
- Redis paused (SIGSTOP) and restarted empty, on a redis-server of its own;
- SIGTERM with generations longer than graceful_shutdown_s, and with the ledger locked;
- PostgreSQL frozen (SIGSTOP: a partition), killed and started again, and frozen at SIGTERM, on
  a PostgreSQL server of its own: calls answered meanwhile, rows missing or doubled after;
- two tenants' end users of one name under a `user:*` budget, both spending at once;
- a fuzz of both front doors (every field of a rich body swapped for values of other types):
  responses that are 5xx from the gateway's own code;
- a soak: RSS of the gateway after each stretch of load (flat memory), `--soak-s` long.

    .venv/bin/python bench/faults.py [--soak-s 60] [--only kill,slots,replica,redis,sigterm,postgres,tenants,fuzz,soak]

Needs PostgreSQL and Redis on 127.0.0.1 (as the tests do) and redis-server on the PATH.
"""

from __future__ import annotations

import argparse
import signal
import sys
import tempfile
import threading
import time
from decimal import Decimal
from pathlib import Path

TESTS = Path(__file__).resolve().parent.parent / "tests"
sys.path[:0] = [str(TESTS / "faults"), str(TESTS)]  # the fault suite's harness, and its services

import httpx  # noqa: E402
import openai  # noqa: E402
from gateway_setup import MASTER_KEY, UPSTREAM_KEYS, create_key, gateway_config  # noqa: E402
from harness import (  # noqa: E402
    REDIS_URL,
    Load,
    drop_redis_prefix,
    drop_schema,
    fault_config,
    kill,
    ledger_rows,
    locked,
    postgres_schema_url,
    start_gateway,
    total_cost,
    two_replicas,
    upstream_users,
    write_config,
)
from malformed_bodies import ANTHROPIC_BODY, OPENAI_BODY, mutations  # noqa: E402
from services import start_postgres  # noqa: E402
from test_postgres_outage import (  # noqa: E402
    LEDGER,
    gateway_on,
    stop_with_database_frozen,
    through_outage,
    wait_for_ledger,
)
from test_redis_outage import OwnRedis  # noqa: E402

from tokenbrake.tools.launch import ChildServer, free_port  # noqa: E402

CAP = Decimal("0.02")


def row(fault: str, figure: str, kept: bool) -> None:
    print(f"| {fault} | {figure} | {'kept' if kept else 'BROKEN'} |", flush=True)


def kill_9(emulator: ChildServer, folder: Path, backend: str) -> None:
    schema = None
    if backend == "sqlite":
        database, state = f"sqlite:///{folder / 'ledger.db'}", None
    else:
        database, schema = postgres_schema_url()
        state = f"{REDIS_URL}?prefix=tbbench-{schema}:" if backend.endswith("redis") else None
    config = fault_config(emulator.url, database, folder, state=state,
                          budgets=[{"scope": "global", "amount_usd": float(CAP), "period": "month"}])
    path, port = write_config(folder, config), free_port()
    gateway = start_gateway(path, port)
    with Load(gateway.url):
        for _ in range(3):
            time.sleep(1.5)
            kill(gateway)
            gateway = start_gateway(path, port)
        time.sleep(2)
    gateway.stop()
    rows = ledger_rows(database)
    missing = len(upstream_users(emulator) - {r.user for r in rows})
    unseen = sum(r.usage_unseen for r in rows)
    spent = total_cost(rows)
    row(f"kill -9 x3 under load, {backend}, ${CAP} hard cap",
        f"spent ${spent:.4f} ({spent / CAP:.0%} of cap); {missing} upstream calls missing from the ledger; "
        f"{unseen} in flight recorded as unseen", spent <= CAP and missing == 0)
    if schema:
        drop_schema(schema)
        drop_redis_prefix(f"tbbench-{schema}:")


def slots_after_crash(emulator: ChildServer, folder: Path) -> None:
    config = fault_config(emulator.url, f"sqlite:///{folder / 'ledger.db'}", folder,
                          limits=[{"scope": "global", "concurrent": 32}])
    path, port = write_config(folder, config), free_port()
    gateway = start_gateway(path, port)
    with Load(gateway.url, threads=32, body_text="hold [[emulator: tokens=400 tps=40]]"):
        time.sleep(2.5)
        kill(gateway)
        killed = time.monotonic()
    gateway = start_gateway(path, port)
    client = openai.OpenAI(base_url=gateway.url + "/v1", api_key="unused", max_retries=0)
    while True:
        try:
            client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "x"}])
            break
        except openai.RateLimitError:
            time.sleep(0.1)
    took = time.monotonic() - killed
    gateway.stop()
    row("kill -9 with 32 in flight, concurrent: 32", f"served again {took:.1f}s after the kill (restart included)",
        took < 10)


def replica(emulator: ChildServer, folder: Path) -> None:
    url, schema = postgres_schema_url()
    prefix = f"tbbench-{schema}:"
    survivor, doomed = two_replicas(emulator.url, url, f"{REDIS_URL}?prefix={prefix}", folder,
                                    budgets=[{"scope": "global", "amount_usd": 5, "period": "month"}])
    with Load(doomed.url, threads=8, body_text="long [[emulator: tokens=400 tps=40]]"):
        time.sleep(1.0)
        kill(doomed)
        killed = time.monotonic()
    while time.monotonic() - killed < 30:
        recorded = sum(r.usage_unseen for r in ledger_rows(url))
        if recorded >= 8:
            break
        time.sleep(0.25)
    took = time.monotonic() - killed
    survivor.stop()
    row("replica killed mid-stream, PostgreSQL + Redis, never restarted",
        f"{recorded} of 8 calls in flight charged and recorded by the survivor after {took:.1f}s", recorded >= 8)
    drop_schema(schema)
    drop_redis_prefix(prefix)


def redis_faults(emulator: ChildServer, folder: Path) -> None:
    own = OwnRedis(folder)
    url, schema = postgres_schema_url()
    log = folder / "gateway.log"
    config = fault_config(emulator.url, url, folder, state=f"redis://127.0.0.1:{own.port}/0?prefix=tb:",
                          budgets=[{"scope": "global", "amount_usd": 5, "period": "month"}],
                          limits=[{"scope": "global", "concurrent": 8}])
    gateway = start_gateway(write_config(folder, config), log=log)
    try:
        with Load(gateway.url, threads=8, body_text="hi [[emulator: tokens=20 tps=40]]") as load:
            time.sleep(1.0)
            own.process.send_signal(signal.SIGSTOP)
            time.sleep(10.0)
            own.process.send_signal(signal.SIGCONT)
        back = time.monotonic()
        with Load(gateway.url, threads=8, body_text="x [[emulator: tokens=5]]") as after:
            while after.answered < 50 and time.monotonic() - back < 30:
                time.sleep(0.1)
        text = log.read_text()
        refused = load.errors.get("InternalServerError", 0)
        spent, ledger = own.spent("tb:"), total_cost(ledger_rows(url))
        row("Redis paused 10 s under load",
            f"{refused} requests refused with 503 meanwhile; {after.errors.get('RateLimitError', 0)} slot refusals "
            f"after; Redis spend ${spent:.4f} vs ledger ${ledger:.4f}; {text.count('Redis does not answer')} log "
            f"line(s) for the outage, {text.count('Traceback')} tracebacks",
            spent >= ledger and text.count("Traceback") == 0)
        own.stop()
        own.start()
        restarted = time.monotonic()
        while own.spent("tb:") < ledger and time.monotonic() - restarted < 15:
            time.sleep(0.1)
        row("Redis restarted without persistence",
            f"spend rebuilt from the ledger after {time.monotonic() - restarted:.1f}s (${own.spent('tb:'):.4f}); "
            f"warned at start: {'Redis persists nothing' in text}", own.spent("tb:") >= ledger)
    finally:
        gateway.stop()
        own.stop()
        drop_schema(schema)


def sigterm(emulator: ChildServer, folder: Path) -> None:
    database = f"sqlite:///{folder / 'ledger.db'}"
    config = fault_config(emulator.url, database, folder,
                          budgets=[{"scope": "global", "amount_usd": 5, "period": "month"}])
    gateway = start_gateway(write_config(folder, config))
    with Load(gateway.url, threads=16, body_text="write on [[emulator: tokens=400 tps=40]]", max_tokens=1000) as load:
        time.sleep(1.5)
        stopping = time.monotonic()
        gateway.process.send_signal(signal.SIGTERM)
        gateway.process.wait()
        took = time.monotonic() - stopping
    rows = ledger_rows(database)
    missing = len(upstream_users(emulator) - {r.user for r in rows})
    told = sum("shutting down" in m for m in load.messages)
    row("SIGTERM, 16 generations longer than graceful_shutdown_s (1 s)",
        f"exit after {took:.1f}s; {missing} calls missing from the ledger; {told} clients told 'shutting down'",
        missing == 0 and took < 10)

    locked_folder = folder / "locked"
    locked_folder.mkdir()
    path = locked_folder / "ledger.db"
    config = fault_config(emulator.url, f"sqlite:///{path}", locked_folder)
    config["ledger"]["shutdown_write_s"] = 5
    config_path = write_config(locked_folder, config)
    gateway = start_gateway(config_path)
    with locked(path):
        with Load(gateway.url, threads=6, body_text="hi [[emulator: tokens=5]]", users=SOAK_USERS) as load:
            time.sleep(3)
        stopping = time.monotonic()
        gateway.process.send_signal(signal.SIGTERM)
        gateway.process.wait()
        took = time.monotonic() - stopping
    start_gateway(config_path).stop()
    written = len(ledger_rows(f"sqlite:///{path}"))
    row("SIGTERM while the ledger database is down (locked)",
        f"exit after {took:.1f}s; {load.answered} calls answered, {written} in the ledger after the next start",
        written >= load.answered and took < 15)


SOAK_USERS = 1_000  # the budget keeps a counter per end user for the month: a steady set, as in production


def soak(emulator: ChildServer, folder: Path, seconds: float) -> None:
    config = fault_config(emulator.url, f"sqlite:///{folder / 'ledger.db'}", folder,
                          budgets=[{"scope": "user:*", "amount_usd": 1, "period": "month"}],
                          limits=[{"scope": "key:*", "concurrent": 64, "requests_per_minute": 10**7}])
    gateway = start_gateway(write_config(folder, config))
    samples = []
    with Load(gateway.url, threads=6, body_text="hi [[emulator: tokens=5]]", users=SOAK_USERS) as load:
        stretch = max(5.0, seconds / 12)
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            time.sleep(stretch)
            samples.append((load.answered, _rss_mb(gateway.process.pid)))
    gateway.stop()
    growth = samples[-1][1] - samples[1][1] if len(samples) > 2 else 0.0
    row(f"soak {seconds:.0f}s, {load.answered} requests, a user:* budget, {SOAK_USERS:,} end users",
        "RSS MB by requests: " + ", ".join(f"{n}: {mb:.0f}" for n, mb in samples) + f" (growth after warm-up {growth:+.0f} MB)",
        growth < 30)


def _rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def postgres_outages(emulator: ChildServer, folder: Path) -> None:
    own = start_postgres(durable=True)  # killed -9 here: what it acknowledged must survive
    try:
        for n, (fault, begin, end) in enumerate([
            ("PostgreSQL frozen 6 s (SIGSTOP) under load", lambda: own.signal_all(signal.SIGSTOP),
             lambda: own.signal_all(signal.SIGCONT)),
            ("PostgreSQL killed -9, started again 6 s later", own.crash, lambda: _postgres_back(own)),
        ]):
            database = f"{own.url}?schema=outage{n}"  # a ledger (and a budget) of its own
            before = upstream_users(emulator)
            gateway = gateway_on(emulator, own, folder / str(n), "gateway.log", database)
            try:
                answered, _ = through_outage(gateway, begin, end)
                rows, upstream = wait_for_ledger(database, emulator, frozenset(before))
            finally:
                gateway.stop()
            missing, doubled = len(upstream - {r.user for r in rows}), len(rows) - len({r.user for r in rows})
            row(fault, f"{answered} calls answered during the outage; {missing} of {len(upstream)} upstream calls "
                f"missing from the ledger after, {doubled} written twice",
                answered > 0 and missing == 0 and doubled == 0)
        _sigterm_frozen(emulator, own, folder)
    finally:
        own.signal_all(signal.SIGCONT)
        own.stop()


def _postgres_back(own) -> None:
    from services import postgres_answers, wait_until

    own.start_again()
    wait_until(own, lambda: postgres_answers(own.url))


def _sigterm_frozen(emulator: ChildServer, own, folder: Path) -> None:
    database, before = f"{own.url}?schema=sigterm", upstream_users(emulator)
    (folder / "sigterm").mkdir()
    took = stop_with_database_frozen(gateway_on(emulator, own, folder / "sigterm", "first.log", database), own)
    unwritten = len(upstream_users(emulator) - before - {r.user for r in ledger_rows(database)})
    second = gateway_on(emulator, own, folder / "sigterm", "second.log", database)
    try:
        rows, upstream = wait_for_ledger(database, emulator, frozenset(before))
    finally:
        second.stop()
    missing = len(upstream - {r.user for r in rows})
    row("SIGTERM with PostgreSQL frozen", f"exited in {took:.1f}s (shutdown_write_s {LEDGER['shutdown_write_s']}); "
        f"{unwritten} rows left in the journal, {missing} missing after the next start",
        took < 6 and unwritten > 0 and missing == 0)


def tenants(emulator: ChildServer, folder: Path) -> None:
    """Two teams' keys, each with an end user `alice`, spend at once against `user:*` $0.05."""
    cap = Decimal("0.05")
    config = fault_config(emulator.url, f"sqlite:///{folder / 'ledger.db'}", folder, auth={"require_keys": True},
                          budgets=[{"scope": "user:*", "amount_usd": float(cap), "period": "month"}])
    path = write_config(folder, config)
    keys = {team: create_key(path, f"{team}-app", "--team", team) for team in ("red", "blue")}
    gateway = start_gateway(path)
    try:
        refused = {team: 0 for team in keys}

        def spend(team: str) -> None:
            client = openai.OpenAI(base_url=gateway.url + "/v1", api_key=keys[team], max_retries=0,
                                   default_headers={"X-Tokenbrake-User": "alice"})
            while refused[team] < 3:
                try:
                    client.chat.completions.create(model="gpt-4o", max_tokens=40,
                                                   messages=[{"role": "user", "content": "hi [[emulator: tokens=40]]"}])
                except openai.APIStatusError:
                    refused[team] += 1

        workers = [threading.Thread(target=spend, args=(team,)) for team in keys for _ in range(3)]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join(timeout=120)
    finally:
        gateway.stop()
    rows = ledger_rows(config["database"])
    spent = {team: total_cost([r for r in rows if r.key_name == f"{team}-app"]) for team in keys}
    row("two tenants' `alice` under user:* $0.05, at once",
        f"red's alice spent ${spent['red']:.4f}, blue's ${spent['blue']:.4f} (each its own budget)",
        all(cap * Decimal("0.8") < s <= cap for s in spent.values()))


def fuzz(emulator: ChildServer, folder: Path) -> None:
    """Every field of a rich body of each format swapped for values of other types, and 300
    bodies with two or three swaps, sent to each front door."""
    config = gateway_config(emulator.url, f"sqlite:///{folder / 'ledger.db'}")
    path = write_config(folder, config)
    key = create_key(path, "fuzz")
    server = ChildServer(["serve", "--config", str(path)], quiet=True, env={**UPSTREAM_KEYS, "TOKENBRAKE_MASTER_KEY": MASTER_KEY})
    statuses: dict[int, int] = {}
    ours = sent = 0
    try:
        for door, body, headers in [("/v1/chat/completions", OPENAI_BODY | {"model": "gpt-4o"}, {}),
                                    ("/v1/messages", ANTHROPIC_BODY | {"model": "claude-fast"},
                                     {"anthropic-version": "2023-06-01"})]:
            with httpx.Client(base_url=server.url, headers={"authorization": f"Bearer {key}", **headers}, timeout=30) as client:
                for mutated in mutations(body, seed=11, extra=300):
                    response = client.post(door, json=mutated)
                    sent += 1
                    statuses[response.status_code] = statuses.get(response.status_code, 0) + 1
                    ours += response.status_code == 500 or "internal gateway error" in response.text
    finally:
        server.stop()
    shown = ", ".join(f"{n}× {status}" for status, n in sorted(statuses.items()))
    row("fuzz of both front doors", f"{sent} bodies: {shown}; {ours} 5xx from the gateway's own code", ours == 0)


def kill_each_backend(emulator: ChildServer, folder: Path) -> None:
    for backend in ("sqlite", "postgresql", "postgresql+redis"):
        (folder / backend).mkdir()
        own = ChildServer(["emulate"], quiet=True)
        try:
            kill_9(own, folder / backend, backend)
        finally:
            own.stop()


SCENARIOS = {"kill": kill_each_backend, "slots": slots_after_crash, "replica": replica, "redis": redis_faults,
             "sigterm": sigterm, "postgres": postgres_outages, "tenants": tenants, "fuzz": fuzz}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--soak-s", type=float, default=60.0)
    parser.add_argument("--only", default=",".join([*SCENARIOS, "soak"]))
    args = parser.parse_args()
    only = args.only.split(",")
    print(f"bench/faults.py at {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}\n")
    print("| fault | what happened | promise |\n| --- | --- | --- |")
    for name in only:
        emulator = ChildServer(["emulate"], quiet=True)  # its own: its journal is matched against one ledger
        try:
            with tempfile.TemporaryDirectory() as folder:
                if name == "soak":
                    soak(emulator, Path(folder), args.soak_s)
                else:
                    SCENARIOS[name](emulator, Path(folder))
        finally:
            emulator.stop()


if __name__ == "__main__":
    main()
