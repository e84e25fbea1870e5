"""The Refresher: one listener reloads each cache when its kind changes, every cache when
anything may have, and each every `every_s` whatever the channel says; a burst of changes
costs a reload or two, not one each; a failing reload is retried at the next change.

Driven by the real Redis channel (a random prefix per test)."""

from __future__ import annotations

import asyncio
import secrets
from pathlib import Path

import pytest
from limits_backends import REDIS_URL

from tokenbrake.changes import BUDGETS, KEYS, Refresher, open_channel
from tokenbrake.changes.redis_channel import RedisChannel
from tokenbrake.config import Config
from tokenbrake.storage import open_database


class Counted:
    """A reload that counts its calls (and can be made to fail)."""

    def __init__(self, takes_s: float = 0.0) -> None:
        self.calls = 0
        self.takes_s = takes_s
        self.failing = False

    async def __call__(self) -> None:
        self.calls += 1
        await asyncio.sleep(self.takes_s)
        if self.failing:
            raise RuntimeError("the database is away")


@pytest.fixture
def state_url() -> str:
    return f"{REDIS_URL}?prefix=tb-test-{secrets.token_hex(6)}:"


@pytest.fixture
async def publisher(state_url: str):
    channel = RedisChannel.from_store_url(state_url)
    yield channel
    await channel.close()


async def started(state_url: str, **follow: Counted) -> Refresher:
    refresher = Refresher(RedisChannel.from_store_url(state_url))
    for kind, reload in follow.items():
        refresher.follow(kind, reload, every_s=60)
    await refresher.start()
    await eventually(lambda: all(reload.calls == 1 for reload in follow.values()))  # connected: reload everything
    return refresher


async def eventually(check, within_s: float = 1.0) -> None:
    deadline = asyncio.get_running_loop().time() + within_s
    while not check():
        assert asyncio.get_running_loop().time() < deadline, "not within the time"
        await asyncio.sleep(0.01)


async def test_a_change_reloads_the_cache_of_its_kind_only(state_url, publisher):
    keys, budgets = Counted(), Counted()
    refresher = await started(state_url, keys=keys, budgets=budgets)
    try:
        await publisher.publish(BUDGETS)
        await eventually(lambda: budgets.calls == 2)
        await asyncio.sleep(0.2)
        assert keys.calls == 1
    finally:
        await refresher.stop()


async def test_a_burst_of_changes_costs_a_reload_or_two(state_url, publisher):
    keys = Counted(takes_s=0.1)
    refresher = await started(state_url, keys=keys)
    try:
        for _ in range(20):
            await publisher.publish(KEYS)
        await asyncio.sleep(0.5)
        assert 2 <= keys.calls <= 3  # the first change's reload, then one for all that came during it
    finally:
        await refresher.stop()


async def test_without_a_channel_each_cache_is_reloaded_every_period():
    keys, budgets = Counted(), Counted()
    refresher = Refresher(None)
    refresher.follow(KEYS, keys, every_s=0.1)
    refresher.follow(BUDGETS, budgets, every_s=0.25)
    await refresher.start()
    await asyncio.sleep(0.55)
    await refresher.stop()
    assert 3 <= keys.calls <= 6 and 2 <= budgets.calls <= 3  # about 5 and 2; a loaded machine sleeps longer


async def test_a_failing_reload_is_logged_and_tried_again_at_the_next_change(state_url, publisher, caplog):
    budgets = Counted()
    refresher = await started(state_url, budgets=budgets)
    try:
        budgets.failing = True
        await publisher.publish(BUDGETS)
        await eventually(lambda: budgets.calls == 2)
        budgets.failing = False
        await publisher.publish(BUDGETS)
        await eventually(lambda: budgets.calls == 3)
    finally:
        await refresher.stop()
    assert "reloading budgets failed; keeping the previous set" in caplog.text


async def test_a_change_made_here_is_in_force_here_on_return_and_told_to_the_others(state_url, tmp_path: Path):
    here_keys, there_keys = Counted(), Counted()
    there = await started(state_url, keys=there_keys)
    config = Config.model_validate({"database": f"sqlite:///{tmp_path / 'x.db'}", "state": state_url,
                                    "upstreams": {}, "models": {}})
    db = await open_database(config.database)
    here = Refresher(open_channel(config, db))
    here.follow(KEYS, here_keys, every_s=60)
    try:
        await here.changed(KEYS)
        assert here_keys.calls == 1  # before it returned
        await eventually(lambda: there_keys.calls == 2)
    finally:
        await here.stop()
        await there.stop()
        await db.close()
