"""Redis failing under a running gateway, on a Redis server the test starts itself: paused
(SIGSTOP) for seconds, then back — no slot leaks, no settled spend lost, one log line for the
outage and one for its end; killed and restarted empty — the period's spend is rebuilt from
the ledger, and a Redis that persists nothing is warned of at start."""

from __future__ import annotations

import shutil
import signal
import subprocess
import time
from decimal import Decimal

import openai
import pytest
import redis
from harness import (
    Load,
    drop_schema,
    fault_config,
    ledger_rows,
    postgres_schema_url,
    start_gateway,
    total_cost,
    write_config,
)

from tokenbrake.limits import BudgetCounter, Window
from tokenbrake.limits.redis_leases import LEASE_S, RENEW_S
from tokenbrake.limits.windows import place
from tokenbrake.tools.launch import free_port

CAP = Decimal("5")


class OwnRedis:
    """A redis-server of the test's own, on a free port, persisting nothing."""

    def __init__(self, folder) -> None:
        binary = shutil.which("redis-server")
        assert binary, "redis-server not found: install the Debian package redis-server"
        self.port, self.folder, self.binary = free_port(), folder, binary
        self.start()

    def start(self) -> None:
        self.process = subprocess.Popen([self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
                                         "--appendonly", "no", "--dir", str(self.folder)], stdout=subprocess.DEVNULL)
        client = redis.Redis(port=self.port)
        for _ in range(100):
            try:
                client.ping()
                return
            except redis.ConnectionError:
                time.sleep(0.05)
        raise RuntimeError("the test's redis-server did not start")

    def spent(self, prefix: str) -> Decimal:
        counter = BudgetCounter("global", CAP, Window("month"))
        raw = redis.Redis(port=self.port).hget(prefix + place(counter, time.time()).key, "spent")
        return Decimal(int(raw or 0)) / 10**9

    def stop(self) -> None:
        self.process.kill()
        self.process.wait()


@pytest.fixture
def own_redis(tmp_path):
    server = OwnRedis(tmp_path)
    yield server
    server.stop()


@pytest.fixture
def postgres():
    url, schema = postgres_schema_url()
    yield url
    drop_schema(schema)


def shared_config(emulator, postgres, own_redis, tmp_path, **extra) -> dict:
    return fault_config(emulator.url, postgres, tmp_path, state=f"redis://127.0.0.1:{own_redis.port}/0?prefix=tb:",
                        budgets=[{"scope": "global", "amount_usd": float(CAP), "period": "month"}], **extra)


def test_a_paused_redis_leaks_no_slot_loses_no_spend_and_is_logged_once(emulator, postgres, own_redis, tmp_path):
    log = tmp_path / "gateway.log"
    config = shared_config(emulator, postgres, own_redis, tmp_path, limits=[{"scope": "global", "concurrent": 8}])
    gateway = start_gateway(write_config(tmp_path, config), log=log)
    with Load(gateway.url, threads=8, body_text="hi [[emulator: tokens=20 tps=40]]") as load:
        time.sleep(1.0)
        own_redis.process.send_signal(signal.SIGSTOP)  # each call to it now times out after 2 s
        time.sleep(9.0)
        own_redis.process.send_signal(signal.SIGCONT)
        time.sleep(1.0)
    assert load.errors.get("InternalServerError", 0) > 0, "no request met the outage: the test proves nothing"
    # Releases and settlements that failed are retried at the next tick; a slot that an admission
    # Redis ran only after its caller gave up (sent during the pause) lapses with its lease.
    time.sleep(LEASE_S + RENEW_S)
    client = openai.OpenAI(base_url=gateway.url + "/v1", api_key="unused", max_retries=0)
    with Load(gateway.url, threads=8, body_text="again [[emulator: tokens=40 tps=40]]") as after:
        time.sleep(2.0)
    assert after.errors.get("RateLimitError", 0) == 0, "slots leaked: the 8 concurrent slots are not all free"
    assert client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "x"}])
    gateway.stop()
    assert own_redis.spent("tb:") >= total_cost(ledger_rows(postgres)), "the budget under-counts what was spent"
    text = log.read_text()
    assert text.count("Redis does not answer") == 1 and text.count("Redis answers again") == 1, text[-3000:]
    assert "Traceback" not in text


def test_a_redis_restarted_empty_gets_the_periods_spend_back_from_the_ledger(emulator, postgres, own_redis, tmp_path):
    log = tmp_path / "gateway.log"
    gateway = start_gateway(write_config(tmp_path, shared_config(emulator, postgres, own_redis, tmp_path)), log=log)
    with Load(gateway.url, threads=4, body_text="hi [[emulator: tokens=20]]"):
        time.sleep(2.0)
    time.sleep(0.5)  # the ledger's last rows written
    spent = own_redis.spent("tb:")
    assert spent > 0
    own_redis.stop()
    own_redis.start()  # nothing persisted: it comes back empty
    assert own_redis.spent("tb:") == 0
    deadline = time.monotonic() + 10
    while own_redis.spent("tb:") < spent and time.monotonic() < deadline:
        time.sleep(0.2)
    assert own_redis.spent("tb:") == total_cost(ledger_rows(postgres)) >= spent
    gateway.stop()
    text = log.read_text()
    assert "Redis persists nothing" in text and "rebuilding every budget's spend from the ledger" in text
