"""A hard budget holds under 500 concurrent requests, in one process and across two replicas
sharing Redis, and is not refused early: settled spend reaches at least 95% of it."""

from __future__ import annotations

import asyncio
import random
from decimal import Decimal

from limits_backends import clock, place, total  # noqa: F401

from tokenbrake.limits import LimitStore

LIMIT = Decimal("20")
FLOOR = Decimal("0.01")


async def _request(store: LimitStore, n: int, rng: random.Random, peak: list[Decimal]) -> Decimal:
    """One call: reserve its worst case, run, settle to what it cost (or cancel). Its cost."""
    budget = total("team:shared", str(LIMIT))
    await asyncio.sleep(rng.uniform(0, 0.5))  # arrivals spread out, as traffic is
    want = Decimal(rng.randint(5_000, 200_000)) / 1_000_000  # $0.005 .. $0.2 worst case
    grant = await store.reserve(f"req-{n}", [budget], want, floor=FLOOR, ttl_s=60)
    peak.append(sum((s.spent + s.reserved for s in grant.counters), Decimal(0)))
    if grant.amount is None:
        return Decimal(0)
    await asyncio.sleep(rng.uniform(0, 0.01))
    if rng.random() < 0.1:  # cancelled before the upstream charged anything
        await store.release(f"req-{n}")
        return Decimal(0)
    # Output was capped to what the grant pays for: the cost is at most the grant.
    cost = (grant.amount * Decimal(rng.randint(900, 1000)) / 1000).quantize(Decimal("1e-9"))
    await store.settle(f"req-{n}", cost)
    return cost


async def _run(stores: list[LimitStore], seed: int) -> None:
    rng, peak = random.Random(seed), []
    costs = await asyncio.gather(*(_request(stores[n % len(stores)], n, rng, peak) for n in range(500)))
    [status] = await stores[0].status([total("team:shared", str(LIMIT))])
    assert status.reserved == 0
    assert status.spent == sum(costs)
    assert max(peak) <= LIMIT
    assert status.spent <= LIMIT
    assert status.spent >= LIMIT * Decimal("0.95"), f"refused early: spent {status.spent} of {LIMIT}"


async def test_500_concurrent_requests_never_exceed_a_hard_budget(place):
    await _run([await place.open()], seed=1)


async def test_two_replicas_sharing_state_never_exceed_a_hard_budget(place):
    if place.kind == "memory":  # the in-process store is one replica by definition
        await _run([await place.open()], seed=2)
        return
    await _run([await place.open(), await place.open()], seed=2)
