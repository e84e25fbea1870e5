"""Fixtures that run one limits test against both backends: the in-process store with a
snapshot in a temporary directory, and the real Redis with a random key prefix whose keys
are deleted afterwards. Both are driven by a fake clock.

Redis is the one `services.py` provides (TEST_REDIS_URL): the local server when it
answers, else a throwaway one.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest
import redis.asyncio as aioredis
from services import redis_url

from tokenbrake.limits import BudgetCounter, HitAsk, LimitStore, RateDecision, SlotAsk, Window, open_limit_store

REDIS_URL = redis_url()


class FakeClock:
    """Epoch seconds that move only when a test says so."""

    def __init__(self, start: datetime = datetime(2026, 10, 15, 12, 0, tzinfo=UTC)) -> None:
        self.now = start.timestamp()

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds

    def set(self, moment: datetime) -> None:
        self.now = moment.timestamp()


@dataclass
class Place:
    """Where one test's limits state lives; `open()` may be called more than once (a restart,
    or a second replica)."""

    kind: str  # "memory" or "redis"
    url: str
    clock: FakeClock
    prefix: str | None = None
    opened: list[LimitStore] = field(default_factory=list)

    async def open(self) -> LimitStore:
        store = await open_limit_store(self.url, clock=self.clock, prefix=self.prefix)
        self.opened.append(store)
        return store


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture(params=["memory", "redis"])
async def place(request: pytest.FixtureRequest, tmp_path: Path, clock: FakeClock):
    if request.param == "memory":
        spot = Place("memory", f"memory:///{tmp_path / 'limits.json'}", clock)
    else:
        spot = Place("redis", REDIS_URL, clock, prefix=f"tbtest-{secrets.token_hex(6)}:")
    yield spot
    for store in spot.opened:
        await store.close()
    if spot.prefix is not None:
        client = aioredis.from_url(REDIS_URL)
        keys = [key async for key in client.scan_iter(match=spot.prefix + "*")]
        if keys:
            await client.delete(*keys)
        await client.aclose()


@pytest.fixture
async def store(place: Place) -> LimitStore:
    return await place.open()


def usd(value: str | int) -> Decimal:
    return Decimal(value)


def monthly(key: str, limit: str, tz: str = "UTC", hard: bool = True) -> BudgetCounter:
    return BudgetCounter(key, Decimal(limit), Window("month", tz=tz), hard=hard)


def total(key: str, limit: str, hard: bool = True) -> BudgetCounter:
    return BudgetCounter(key, Decimal(limit), Window("total"), hard=hard)


async def hit(store: LimitStore, key: str, limit: int, window_s: float, amount: int = 1) -> RateDecision:
    """One window hit on its own, through `admit` (what the RateLimits stage asks of a store)."""
    return (await store.admit("", [], [HitAsk(key, limit, window_s, amount)], 0)).decisions[0]


async def acquire_slot(store: LimitStore, key: str, limit: int, request_id: str, ttl_s: float) -> bool:
    """One concurrency slot on its own, through `admit`."""
    return (await store.admit(request_id, [SlotAsk(key, limit)], [], ttl_s)).allowed
