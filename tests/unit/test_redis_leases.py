"""Shared state and dead gateways: a gateway that stops renewing its leases (killed) has its
reservations charged at their reserved worst case — never released — and handed to a live
gateway to record, and its concurrency slots freed, within the lease; a live gateway's are
renewed. And a Redis that lost its data is raised back to the ledger's spend."""

from __future__ import annotations

import asyncio

import pytest
from limits_backends import acquire_slot, clock, place, total, usd  # noqa: F401
from test_journal import start

from tokenbrake.journal.records import start_line
from tokenbrake.journal.recover import lapsed_row
from tokenbrake.limits import LimitStoreUnavailable, to_nanos
from tokenbrake.limits.redis_leases import LEASE_S
from tokenbrake.limits.redis_store import RedisStore
from tokenbrake.limits.windows import place as placement
from tokenbrake.storage.spend import SettledSpend

pytestmark = pytest.mark.parametrize("place", ["redis"], indirect=True)  # leases are the shared state's


async def nothing_settled() -> dict:
    return {}


async def test_a_dead_gateways_reservation_is_charged_at_its_worst_case_and_recorded(place, clock):
    budget = total("team:a", "10")
    dead, live = await place.open(), await place.open()
    note = start_line(start("orphan", user="alice")).decode()
    await dead.reserve("orphan", [budget], usd("3"), ttl_s=900, note=note)
    await live.reserve("mine", [budget], usd("1"), ttl_s=900)
    recorded = []
    clock.advance(LEASE_S - 1)
    await live.leases.tick(nothing_settled, recorded.extend)  # renews "mine"; "orphan" not yet lapsed
    assert recorded == []
    clock.advance(2)  # the dead gateway's lease on "orphan" lapsed; "mine" was renewed
    await live.leases.tick(nothing_settled, recorded.extend)
    [status] = await live.status([budget])
    assert (status.spent, status.reserved) == (usd("3"), usd("1"))
    [lapsed] = recorded
    assert (lapsed.request_id, lapsed.nanos) == ("orphan", to_nanos(usd("3")))
    row = lapsed_row(lapsed.request_id, lapsed.nanos, lapsed.note, lapsed.counters, clock())
    assert row.usage_unseen and row.user == "alice" and row.cost_usd == usd("3")
    assert [c.counter_key for c in row.charges] == [placement(budget, clock()).key]
    assert await dead.settle("orphan", usd("0.1")) is False  # charged once, not again


async def test_a_dead_gateways_slot_is_free_within_the_lease_and_a_live_ones_is_kept(place, clock):
    dead, live = await place.open(), await place.open()
    assert await acquire_slot(dead, "key:k", 2, "orphan", ttl_s=900)
    assert await acquire_slot(live, "key:k", 2, "mine", ttl_s=900)
    for _ in range(3):
        clock.advance(LEASE_S / 2)
        await live.leases.tick(nothing_settled, lambda lapsed: None)
    assert await acquire_slot(live, "key:k", 2, "next", ttl_s=900)  # the orphan's slot lapsed
    assert not await acquire_slot(live, "key:k", 2, "one-too-many", ttl_s=900)  # "mine" is still held


async def test_a_redis_that_lost_its_data_is_raised_to_the_ledgers_spend(place, clock):
    budget = total("team:a", "10")
    store = await place.open()
    key = placement(budget, clock()).key
    spend = {key: SettledSpend(to_nanos(usd("4")), keep_until=None)}

    async def ledger() -> dict:
        return spend

    await store.keep_in_step(ledger, lambda lapsed: None)
    assert (await store.status([budget]))[0].spent == usd("4")
    lost = [k async for k in store._client.scan_iter(match=place.prefix + "*")]  # Redis restarted empty
    await store._client.delete(*lost)
    spend[key] = SettledSpend(to_nanos(usd("5")), keep_until=None)
    await store.leases.tick(ledger, lambda lapsed: None)
    assert (await store.status([budget]))[0].spent == usd("5")


async def test_a_reserve_whose_answer_never_came_is_undone_when_redis_runs_it_late(place, clock):
    """Redis paused past the gateway's timeout runs the reserve it was sent once it resumes; the
    gateway refused that request (503) and will never settle it. The undo it queued lands (or
    lands first, and refuses the late reserve), so no reservation is left to lapse into a
    worst-case charge."""
    budget = total("team:a", "10")
    store = await RedisStore.open(place.url, prefix=place.prefix, clock=clock, timeout_s=0.3)
    watcher = await place.open()
    try:
        await watcher._client.execute_command("CLIENT", "PAUSE", 1000, "WRITE")  # writes wait, then run
        with pytest.raises(LimitStoreUnavailable):
            await store.reserve("late", [budget], usd("3"), ttl_s=900)
        assert store.leases.waiting == 1
        await asyncio.sleep(1.2)  # the paused reserve has run now
        await store.leases.tick(nothing_settled, lambda lapsed: None)
        assert store.leases.waiting == 0
        [status] = await watcher.status([budget])
        assert (status.spent, status.reserved) == (usd("0"), usd("0"))
        clock.advance(LEASE_S + 1)
        lapsed: list = []
        await watcher.leases.tick(nothing_settled, lapsed.extend)
        assert lapsed == [] and (await watcher.status([budget]))[0].spent == usd("0")
    finally:
        await store.close()


async def test_the_undo_landing_first_refuses_the_late_reserve(place, clock):
    budget = total("team:a", "10")
    store = await place.open()
    assert await store._settle_now("late", usd("0"), tombstone_ms=60_000) is False  # the undo, first
    grant = await store.reserve("late", [budget], usd("3"), ttl_s=900)  # the late reserve, after
    [status] = await store.status([budget])
    assert status.reserved == usd("0") and grant.amount in (None, usd("0"))
