"""kill -9 under streamed and plain load, again and again, against a hard budget: the cap is
never exceeded, every call that reached the upstream is in the ledger (those in flight at a
kill charged at their reserved worst case, flagged as unseen), and a crashed gateway's
concurrency slots do not lock its clients out after the restart. On the embedded default
(SQLite and its snapshot) and on PostgreSQL with no `state:`."""

from __future__ import annotations

import time
from decimal import Decimal

import openai
import pytest
from harness import (
    REDIS_URL,
    Load,
    drop_redis_prefix,
    drop_schema,
    fault_config,
    kill,
    ledger_rows,
    postgres_schema_url,
    start_gateway,
    total_cost,
    two_replicas,
    upstream_users,
    write_config,
)

from tokenbrake.tools.launch import ChildServer, free_port

CAP = Decimal("0.02")
KILLS = 3


@pytest.fixture(params=["sqlite", "postgresql", "postgresql+redis"])
def backend(request, tmp_path):
    """(database URL, state URL): the embedded default, PostgreSQL with no state, both shared."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'ledger.db'}", None
        return
    url, schema = postgres_schema_url()
    yield url, (f"{REDIS_URL}?prefix=tbfault-{schema}:" if request.param.endswith("redis") else None)
    drop_schema(schema)
    if request.param.endswith("redis"):
        drop_redis_prefix(f"tbfault-{schema}:")


def kill_and_restart(gateway: ChildServer, config_path, port: int) -> ChildServer:
    kill(gateway)
    return start_gateway(config_path, port)


def test_repeated_kill_9_never_overspends_a_hard_budget_nor_loses_a_call(emulator, backend, tmp_path):
    database, state = backend
    config = fault_config(emulator.url, database, tmp_path, state=state,
                          budgets=[{"scope": "global", "amount_usd": float(CAP), "period": "month"}])
    config_path, port = write_config(tmp_path, config), free_port()
    gateway = start_gateway(config_path, port)
    with Load(gateway.url) as load:
        for _ in range(KILLS):
            time.sleep(1.5)
            gateway = kill_and_restart(gateway, config_path, port)
        time.sleep(2.0)
    gateway.stop()

    rows = ledger_rows(database)
    assert total_cost(rows) <= CAP, f"spent {total_cost(rows)} against a hard cap of {CAP}"
    assert load.errors.get("RateLimitError", 0) > 0, "the load never reached the cap: the test proves nothing"
    unseen = [row for row in rows if row.usage_unseen]
    assert unseen, "no call was in flight at any kill: the test proves nothing"
    assert all(row.status == 0 and row.cost_usd > 0 for row in unseen)
    missing = upstream_users(emulator) - {row.user for row in rows}
    assert not missing, f"{len(missing)} calls reached the upstream and are not in the ledger"


def test_a_crashed_gateways_slots_are_free_after_the_restart(emulator, tmp_path):
    config = fault_config(emulator.url, f"sqlite:///{tmp_path / 'ledger.db'}", tmp_path,
                          limits=[{"scope": "global", "concurrent": 4}])
    config_path, port = write_config(tmp_path, config), free_port()
    gateway = start_gateway(config_path, port)
    with Load(gateway.url, threads=4, body_text="hold [[emulator: tokens=200 tps=20]]"):
        time.sleep(2.5)  # four long calls hold the four slots, and the snapshot has them
        gateway = kill_and_restart(gateway, config_path, port)
    client = openai.OpenAI(base_url=gateway.url + "/v1", api_key="unused", max_retries=0)
    started = time.monotonic()
    reply = client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "hi"}])
    assert reply.choices[0].message.content and time.monotonic() - started < 5
    gateway.stop()


def test_a_live_replica_charges_and_records_a_dead_ones_calls_in_flight_within_seconds(emulator, tmp_path):
    url, schema = postgres_schema_url()
    prefix = f"tbfault-{schema}:"
    try:
        survivor, doomed = two_replicas(emulator.url, url, f"{REDIS_URL}?prefix={prefix}", tmp_path,
                                        budgets=[{"scope": "global", "amount_usd": 5, "period": "month"}])
        with Load(doomed.url, threads=4, body_text="long [[emulator: tokens=400 tps=40]]"):
            time.sleep(1.0)
            kill(doomed)
            killed = time.monotonic()
        while time.monotonic() - killed < 20:  # never restarted: the survivor must do it
            unseen = [row for row in ledger_rows(url) if row.usage_unseen]
            if len(unseen) >= 4:
                break
            time.sleep(0.5)
        took = time.monotonic() - killed
        assert len(unseen) >= 4 and took < 16, f"{len(unseen)} unseen rows after {took:.1f}s"
        assert all(row.cost_usd > 0 and row.status == 0 for row in unseen)
        assert upstream_users(emulator) <= {row.user for row in ledger_rows(url)}
        survivor.stop()
    finally:
        drop_schema(schema)
        drop_redis_prefix(prefix)
