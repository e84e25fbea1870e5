"""The change channel, the same tests on each technology: Redis pub/sub, PostgreSQL
LISTEN/NOTIFY and SQLite's change count. A change one replica commits and publishes is heard
by every other replica's listener within a second, never by another deployment's, and a
listener that lost its connection comes back and says anything may have changed.

Each "replica" is its own database connection and channel, as a gateway process holds them:
for SQLite, another connection to the same file, as the CLI is.
"""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path

import psycopg
import pytest
import redis.asyncio as aioredis
from limits_backends import REDIS_URL
from storage_backends import PG_URL

from tokenbrake.changes import BUDGETS, EVERYTHING, KEYS, Channel, open_channel
from tokenbrake.changes.channel import reconnecting
from tokenbrake.config import BudgetConfig, Config
from tokenbrake.storage import Database, open_database

HEARD_WITHIN_S = 1.0


@dataclass
class Deployment:
    """Gateways sharing one database (and, for Redis, one state prefix)."""

    kind: str
    database: str
    state: str | None = None
    opened: list[tuple[Database, Channel]] = field(default_factory=list)

    async def replica(self) -> tuple[Database, Channel]:
        config = Config.model_validate({"database": self.database, "state": self.state, "upstreams": {}, "models": {}})
        db = await open_database(self.database)
        channel = open_channel(config, db)
        self.opened.append((db, channel))
        return db, channel

    async def close(self) -> None:
        for db, channel in self.opened:
            await channel.close()
            await db.close()


async def _deployment(kind: str, tmp_path: Path) -> AsyncIterator[Deployment]:
    """A fresh deployment of that kind; dropped afterwards."""
    token = secrets.token_hex(6)
    if kind == "sqlite":
        deployment = Deployment(kind, f"sqlite:///{tmp_path / f'{token}.db'}")
    elif kind == "postgresql":
        deployment = Deployment(kind, f"{PG_URL}?schema=tb_changes_{token}")
    else:
        deployment = Deployment(kind, f"sqlite:///{tmp_path / f'{token}.db'}", state=f"{REDIS_URL}?prefix=tb-test-{token}:")
    yield deployment
    await deployment.close()
    if kind == "postgresql":
        async with await psycopg.AsyncConnection.connect(PG_URL, autocommit=True) as conn:
            await conn.execute(f"DROP SCHEMA IF EXISTS tb_changes_{token} CASCADE")


@pytest.fixture(params=["sqlite", "postgresql", "redis"])
async def deployment(request: pytest.FixtureRequest, tmp_path: Path):
    async for made in _deployment(request.param, tmp_path):
        yield made


@pytest.fixture
async def other_deployment(deployment: Deployment, tmp_path: Path):
    async for made in _deployment(deployment.kind, tmp_path):
        yield made


class Heard:
    """What one listener hears, gathered in the background."""

    def __init__(self, channel: Channel) -> None:
        self.kinds: asyncio.Queue[str] = asyncio.Queue()
        self._task = asyncio.create_task(self._gather(channel))

    async def _gather(self, channel: Channel) -> None:
        async for kind in channel.listen():
            self.kinds.put_nowait(kind)

    async def next(self, within_s: float = HEARD_WITHIN_S) -> str:
        return await asyncio.wait_for(self.kinds.get(), within_s)

    async def nothing_for(self, seconds: float) -> bool:
        try:
            await asyncio.wait_for(self.kinds.get(), seconds)
        except TimeoutError:
            return True
        return False

    async def stop(self) -> None:
        self._task.cancel()
        await asyncio.gather(self._task, return_exceptions=True)


@pytest.fixture
async def listening():
    started: list[Heard] = []

    async def listen(channel: Channel) -> Heard:
        heard = Heard(channel)
        started.append(heard)
        assert await heard.next(5.0) == EVERYTHING  # connected: anything may have changed before
        return heard

    yield listen
    for heard in started:
        await heard.stop()


async def set_budget(db: Database, channel: Channel, amount: str = "5") -> None:
    """What the CLI and the admin API do: commit the change, then publish it."""
    await db.budgets.set(BudgetConfig(scope="team:search", amount_usd=Decimal(amount), period="month"))
    await channel.publish(BUDGETS)


async def test_a_change_committed_on_one_replica_is_heard_by_another_within_a_second(deployment, listening):
    writer_db, writer = await deployment.replica()
    _, reader = await deployment.replica()
    heard = await listening(reader)
    started = time.monotonic()
    await set_budget(writer_db, writer)
    assert await heard.next() in (BUDGETS, EVERYTHING)
    assert time.monotonic() - started < HEARD_WITHIN_S


async def test_every_replica_hears_a_change(deployment, listening):
    writer_db, writer = await deployment.replica()
    listeners = [await listening((await deployment.replica())[1]) for _ in range(3)]
    await set_budget(writer_db, writer)
    assert [await heard.next() in (BUDGETS, EVERYTHING) for heard in listeners] == [True, True, True]


async def test_each_change_is_heard_not_only_the_first(deployment, listening):
    writer_db, writer = await deployment.replica()
    _, reader = await deployment.replica()
    heard = await listening(reader)
    for amount in ("1", "2", "3"):
        await set_budget(writer_db, writer, amount)
        assert await heard.next() in (BUDGETS, EVERYTHING)
        assert await heard.nothing_for(0.3)  # one change, told once


async def test_a_listener_hears_nothing_while_nothing_changes(deployment, listening):
    _, reader = await deployment.replica()
    heard = await listening(reader)
    assert await heard.nothing_for(1.0)


async def test_another_deployments_changes_are_not_heard(deployment, other_deployment, listening):
    _, reader = await deployment.replica()
    heard = await listening(reader)
    elsewhere_db, elsewhere = await other_deployment.replica()
    await set_budget(elsewhere_db, elsewhere)
    assert await heard.nothing_for(1.0)


async def test_the_kind_that_changed_is_told_where_the_technology_carries_it(deployment, listening):
    writer_db, writer = await deployment.replica()
    _, reader = await deployment.replica()
    heard = await listening(reader)
    _, key = await writer_db.keys.create("k")
    await writer.publish(KEYS)
    # Redis and PostgreSQL carry the kind; SQLite only knows that another connection wrote.
    assert await heard.next() == (EVERYTHING if deployment.kind == "sqlite" else KEYS)


async def _cut_listener(deployment: Deployment) -> None:
    """Kills the listening connection from the server's side, as a restart or a network cut would."""
    if deployment.kind == "postgresql":
        schema = deployment.database.rsplit("schema=", 1)[1]
        async with await psycopg.AsyncConnection.connect(PG_URL, autocommit=True) as conn:
            cursor = await conn.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                                        "WHERE application_name = %s", (f"tokenbrake_changes {schema}",))
            assert len(await cursor.fetchall()) == 1
    else:
        prefix = deployment.state.rsplit("prefix=", 1)[1]
        client = aioredis.Redis.from_url(REDIS_URL)
        try:
            killed = [await client.client_kill_filter(_id=c["id"]) for c in await client.client_list()
                      if c["name"] == prefix + "changes"]
            assert killed
        finally:
            await client.aclose()


@pytest.mark.parametrize("kind", ["postgresql", "redis"])
async def test_a_listener_whose_connection_was_cut_reconnects_and_says_anything_may_have_changed(
        kind, tmp_path, listening):
    async for deployment in _deployment(kind, tmp_path):
        writer_db, writer = await deployment.replica()
        _, reader = await deployment.replica()
        heard = await listening(reader)
        await _cut_listener(deployment)
        assert await heard.next(5.0) == EVERYTHING  # back, and changes made meanwhile may have been missed
        await set_budget(writer_db, writer)
        assert await heard.next() == BUDGETS


async def test_a_change_that_cannot_be_told_does_not_fail_the_change(tmp_path, caplog):
    config = Config.model_validate({"database": f"sqlite:///{tmp_path / 'x.db'}", "upstreams": {}, "models": {},
                                    "state": "redis://127.0.0.1:9/0"})  # nothing listens there
    db = await open_database(config.database)
    channel = open_channel(config, db)
    try:
        await set_budget(db, channel)
    finally:
        await channel.close()
        await db.close()
    assert "could not tell the other gateways that budgets changed" in caplog.text


async def test_a_listener_cancelled_while_its_client_turns_the_cancel_into_a_timeout_still_stops():
    """redis-py's read answers a cancellation with its own TimeoutError; the reconnecting loop
    took that for a lost channel and went on, so the listener never stopped (a shutdown, or a
    test's teardown, waited for ever)."""
    async def session():
        yield EVERYTHING
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            raise TimeoutError("Timeout reading from socket") from None
        yield "never"

    async def listen(kinds: list[str]) -> None:
        async for kind in reconnecting("test", session, (TimeoutError,)):
            kinds.append(kind)

    kinds: list[str] = []
    task = asyncio.create_task(listen(kinds))
    await asyncio.sleep(0.05)
    task.cancel()
    done, _ = await asyncio.wait({task}, timeout=2)
    assert done, "the listener did not stop when cancelled"
    assert task.cancelled() and kinds == [EVERYTHING]
