"""Changes reach every replica at once: a key revoked or a budget set on one gateway (its admin
API, or the CLI) is in force on the other within a second, two real `tokenbrake serve`
replicas sharing PostgreSQL and Redis (the change told by Redis pub/sub), or sharing
PostgreSQL alone (LISTEN/NOTIFY); with the embedded default (one gateway, SQLite) a change the
CLI makes is in force within a second too. A stream running when its key is revoked ends with
the SDK's APIError, and its ledger row holds the tokens it delivered.

The reload fallback (`refresh_s`) is left at its 5 s default, so only the channel can explain
a change seen within a second. Each test prints the latency it measured.
"""

from __future__ import annotations

import asyncio
import secrets
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

import anthropic
import httpx
import openai
import psycopg
import pytest
from gateway_setup import MASTER_KEY, UPSTREAM_KEYS, create_key, gateway_config, write_config
from services import postgres_url, redis_url

from tokenbrake.storage import LedgerRow, open_database
from tokenbrake.tools.launch import ChildServer
from tokenbrake.wire.tokens import count_text

REDIS_URL = redis_url()
WITHIN_S = 1.0
MARGIN_S = 0.5  # a poll's own round trip, and a loaded test machine


@dataclass
class Deployment:
    kind: str  # how changes are told: "redis" pub/sub, "postgresql" LISTEN/NOTIFY, "sqlite" change count
    config_path: Path
    database: str
    replicas: list[ChildServer]

    def admin(self, replica: int, method: str, path: str, **kwargs) -> httpx.Response:
        return httpx.request(method, self.replicas[replica].url + path,
                             headers={"authorization": f"Bearer {MASTER_KEY}"}, timeout=10, **kwargs)

    def cli(self, *args: str) -> None:
        subprocess.run([sys.executable, "-m", "tokenbrake.cli", *args, "--config", str(self.config_path)],
                       check=True, capture_output=True, text=True, timeout=60)


def _deploy(emulator, folder: Path, kind: str) -> Iterator[Deployment]:
    token = secrets.token_hex(6)
    if kind == "sqlite":
        database = f"sqlite:///{folder / 'ledger.db'}"
    else:
        database = f"{postgres_url()}?schema=tb_e2e_changes_{token}"
    config = gateway_config(emulator.url, database)
    config["ledger"] = {"flush_interval_s": 0.1}
    config["budgets"] = [{"scope": "team:replicas", "amount_usd": 100, "period": "month"}]
    if kind == "redis":
        config["state"] = f"{REDIS_URL}?prefix=tb-e2e-changes-{token}:"
    path = write_config(folder, config)
    env = {**UPSTREAM_KEYS, "TOKENBRAKE_MASTER_KEY": MASTER_KEY}
    replicas: list[ChildServer] = []
    try:
        for _ in range(1 if kind == "sqlite" else 2):
            replicas.append(ChildServer(["serve", "--config", str(path)], quiet=True, env=env))
        yield Deployment(kind, path, database, replicas)
    finally:
        for replica in replicas:
            replica.stop()
        if kind != "sqlite":
            with psycopg.connect(postgres_url(), autocommit=True) as conn:
                conn.execute(f"DROP SCHEMA IF EXISTS tb_e2e_changes_{token} CASCADE")


@pytest.fixture(scope="module")
def shared(emulator, tmp_path_factory) -> Iterator[Deployment]:
    """Two replicas sharing PostgreSQL and Redis."""
    yield from _deploy(emulator, tmp_path_factory.mktemp("replicas"), "redis")


@pytest.fixture(scope="module", params=["redis", "postgresql"])
def either(request, emulator, tmp_path_factory) -> Iterator[Deployment]:
    """Two replicas sharing PostgreSQL and Redis, then two sharing PostgreSQL alone."""
    yield from _deploy(emulator, tmp_path_factory.mktemp(request.param), request.param)


@pytest.fixture(scope="module")
def embedded(emulator, tmp_path_factory) -> Iterator[Deployment]:
    """The embedded default: one gateway on a SQLite file."""
    yield from _deploy(emulator, tmp_path_factory.mktemp("embedded"), "sqlite")


def until(check: Callable[[], bool], within_s: float) -> float:
    """Seconds until `check()` held; fails past `within_s`."""
    started = time.monotonic()
    while not check():
        assert time.monotonic() - started < within_s, f"not within {within_s}s"
        time.sleep(0.01)
    return time.monotonic() - started


def refused(url: str, key: str) -> Callable[[], bool]:
    def check() -> bool:
        response = httpx.get(url + "/v1/models", headers={"authorization": f"Bearer {key}"}, timeout=5)
        assert response.status_code in (200, 401), response.text
        return response.status_code == 401 and "has been revoked" in response.text
    return check


def test_a_key_revoked_on_one_replica_is_refused_by_the_other_within_a_second(either):
    name = f"revoke-{secrets.token_hex(3)}"
    key = create_key(either.config_path, name)
    other = either.replicas[1]
    assert not refused(other.url, key)()  # known there before the revocation
    started = time.monotonic()
    assert either.admin(0, "POST", f"/admin/keys/{name}/revoke").status_code == 200
    until(refused(other.url, key), WITHIN_S + MARGIN_S)
    latency = time.monotonic() - started
    print(f"\n{either.kind}: revoked on one replica, refused by the other after {latency * 1000:.0f} ms")
    assert latency < WITHIN_S + MARGIN_S


def test_a_key_revoked_with_the_cli_is_refused_by_every_replica_within_a_second(either):
    name = f"cli-revoke-{secrets.token_hex(3)}"
    key = create_key(either.config_path, name)
    assert not any(refused(replica.url, key)() for replica in either.replicas)
    either.cli("keys", "revoke", name)
    returned = time.monotonic()
    until(lambda: all(refused(replica.url, key)() for replica in either.replicas), WITHIN_S + MARGIN_S)
    print(f"\nCLI revoke: refused by every replica {(time.monotonic() - returned) * 1000:.0f} ms after the CLI returned")


def chat(url: str, key: str) -> Callable[[], bool]:
    """One small call; True once it is refused by a budget."""
    client = openai.OpenAI(base_url=url + "/v1", api_key=key, max_retries=0)

    def check() -> bool:
        try:
            client.chat.completions.create(model="gpt-4o", max_tokens=5, messages=[{"role": "user", "content": "hi"}])
        except openai.RateLimitError as error:
            assert "budget_exceeded" in str(error) or "Budget key:" in str(error)
            return True
        return False
    return check


def test_a_budget_set_with_the_cli_is_enforced_by_the_other_replica_within_a_second(shared):
    name = f"budget-{secrets.token_hex(3)}"
    key = create_key(shared.config_path, name)
    assert not chat(shared.replicas[1].url, key)()
    shared.cli("budgets", "set", "--scope", f"key:{name}", "--amount", "0.0000001", "--period", "month")
    returned = time.monotonic()
    until(chat(shared.replicas[1].url, key), WITHIN_S + MARGIN_S)
    print(f"\nCLI budgets set: enforced by the other replica {(time.monotonic() - returned) * 1000:.0f} ms after the "
          f"CLI returned")
    started = time.monotonic()
    assert shared.admin(0, "DELETE", f"/admin/budgets?scope=key:{name}&period=month").status_code == 200
    until(lambda: not chat(shared.replicas[1].url, key)(), WITHIN_S + MARGIN_S)
    print(f"admin budgets delete: lifted on the other replica after {(time.monotonic() - started) * 1000:.0f} ms")


def test_with_the_embedded_default_a_change_the_cli_makes_is_in_force_within_a_second(embedded):
    name = f"embedded-{secrets.token_hex(3)}"
    key = create_key(embedded.config_path, name)
    gateway = embedded.replicas[0]
    assert not refused(gateway.url, key)()
    embedded.cli("budgets", "set", "--scope", f"key:{name}", "--amount", "0.0000001", "--period", "month")
    returned = time.monotonic()
    until(chat(gateway.url, key), WITHIN_S + MARGIN_S)
    budget_s = time.monotonic() - returned
    embedded.cli("keys", "revoke", name)
    returned = time.monotonic()
    until(refused(gateway.url, key), WITHIN_S + MARGIN_S)
    print(f"\nSQLite: CLI budget in force after {budget_s * 1000:.0f} ms, CLI revocation after "
          f"{(time.monotonic() - returned) * 1000:.0f} ms")


async def ledger_row(database: str, request_id: str) -> LedgerRow:
    db = await open_database(database)
    try:
        deadline = time.monotonic() + 5
        while True:
            found = [row for row in await db.ledger.rows(limit=200) if row.request_id == request_id]
            if found or time.monotonic() > deadline:
                assert found, f"no ledger row for {request_id}"
                return found[0]
            await asyncio.sleep(0.05)
    finally:
        await db.close()


LONG = "[[emulator: tokens=400 tps=40]]"  # ten seconds of stream


def stream_openai(url: str, key: str, revoke: Callable[[], None]) -> tuple[str, str, str]:
    client = openai.OpenAI(base_url=url + "/v1", api_key=key, max_retries=0)
    response = client.chat.completions.with_raw_response.create(
        model="gpt-4o", stream=True, messages=[{"role": "user", "content": LONG}])
    received = []
    with pytest.raises(openai.APIError) as raised:
        for n, chunk in enumerate(response.parse()):
            received.append((chunk.choices[0].delta.content or "") if chunk.choices else "")
            if n == 5:
                revoke()
    return response.headers["x-request-id"], "".join(received), str(raised.value)


def stream_anthropic(url: str, key: str, revoke: Callable[[], None]) -> tuple[str, str, str]:
    client = anthropic.Anthropic(base_url=url, api_key=key, max_retries=0)
    received = []
    with pytest.raises(anthropic.APIError) as raised, client.messages.stream(model="claude-fast", max_tokens=1000,
                                messages=[{"role": "user", "content": LONG}]) as stream:
        request_id = stream.response.headers["x-request-id"]
        for n, text in enumerate(stream.text_stream):
            received.append(text)
            if n == 5:
                revoke()
    return request_id, "".join(received), str(raised.value)


@pytest.mark.parametrize("front_door", [stream_openai, stream_anthropic], ids=["openai", "anthropic"])
def test_a_stream_running_when_its_key_is_revoked_ends_with_an_api_error_and_is_in_the_ledger(shared, front_door):
    name = f"streaming-{secrets.token_hex(3)}"
    key = create_key(shared.config_path, name, "--team", "replicas")
    revoked_at: list[float] = []

    def revoke() -> None:
        assert shared.admin(0, "POST", f"/admin/keys/{name}/revoke").status_code == 200
        revoked_at.append(time.monotonic())

    request_id, received, error = front_door(shared.replicas[1].url, key, revoke)
    ended_s = time.monotonic() - revoked_at[0]
    print(f"\n{front_door.__name__}: the stream on the other replica ended {ended_s * 1000:.0f} ms after the revocation")
    assert f"API key '{name}' was revoked while this stream ran" in error
    assert ended_s < WITHIN_S + MARGIN_S
    row = asyncio.run(ledger_row(shared.database, request_id))
    assert row.key_name == name and row.status == 401 and "revoked" in (row.error or "")
    assert row.output_tokens == count_text(received) and 0 < row.output_tokens < 400
    budget = next(b for b in shared.admin(1, "GET", "/admin/budgets").json()["data"] if b["scope"] == "team:replicas")
    assert budget["counters"][0]["reserved_usd"] == "0"  # its reservation settled
    assert Decimal(budget["counters"][0]["spent_usd"]) > 0
