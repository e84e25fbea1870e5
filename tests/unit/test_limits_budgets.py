"""Reserve-then-settle on budget counters, the same on the in-process store and Redis."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest
from limits_backends import clock, monthly, place, store, total, usd  # noqa: F401

from tokenbrake.limits import BudgetCounter, Window


async def test_reserve_grants_the_whole_want_when_it_fits(store):
    grant = await store.reserve("r1", [total("team:a", "10")], usd("3"), floor=usd("1"))
    assert grant.amount == usd("3") and not grant.clamped
    [status] = grant.counters
    assert (status.spent, status.reserved, status.remaining) == (0, usd("3"), usd("7"))


async def test_reserve_is_all_or_none_across_counters(store):
    roomy, tight = total("team:a", "10"), total("key:k", "1")
    grant = await store.reserve("r1", [roomy, tight], usd("2"), floor=usd("1.5"))
    assert grant.amount is None
    assert grant.tightest.key == "key:k"
    assert [s.reserved for s in await store.status([roomy, tight])] == [0, 0]


async def test_reserve_clamps_to_the_tightest_headroom_above_the_floor(store):
    counters = [total("team:a", "10"), total("key:k", "4"), total("user:u", "6")]
    grant = await store.reserve("r1", counters, usd("5"), floor=usd("1"))
    assert grant.amount == usd("4") and grant.clamped
    assert grant.tightest.key == "key:k"
    assert [s.reserved for s in grant.counters] == [usd("4")] * 3


async def test_reserve_refuses_below_the_floor_and_names_the_budget(store):
    budget = monthly("team:a", "1")
    await store.reserve("r1", [budget], usd("0.8"))
    grant = await store.reserve("r2", [budget], usd("0.5"), floor=usd("0.25"))
    assert grant.amount is None
    assert grant.tightest.key == "team:a"
    assert grant.tightest.remaining == usd("0.2")
    assert grant.tightest.resets_at == datetime(2026, 11, 1, tzinfo=UTC)


async def test_soft_counters_never_refuse_but_are_charged(store):
    soft = total("tag:feature=search", "1", hard=False)
    grant = await store.reserve("r1", [soft], usd("5"))
    assert grant.amount == usd("5") and grant.tightest is None
    await store.settle("r1", usd("4"))
    [status] = await store.status([soft])
    assert (status.spent, status.remaining) == (usd("4"), 0)


async def test_settle_moves_the_reservation_to_actual_spend(store):
    budget = total("team:a", "10")
    await store.reserve("r1", [budget], usd("3"))
    assert await store.settle("r1", usd("1.25")) is True
    [status] = await store.status([budget])
    assert (status.spent, status.reserved, status.remaining) == (usd("1.25"), 0, usd("8.75"))


async def test_settle_twice_counts_once(store):
    budget = total("team:a", "10")
    await store.reserve("r1", [budget], usd("3"))
    await store.settle("r1", usd("2"))
    assert await store.settle("r1", usd("2")) is False
    assert (await store.status([budget]))[0].spent == usd("2")


async def test_settle_above_the_reservation_counts_the_actual_cost(store):
    budget = total("team:a", "10")
    await store.reserve("r1", [budget], usd("1"))
    await store.settle("r1", usd("1.5"))
    assert (await store.status([budget]))[0].spent == usd("1.5")


async def test_release_frees_the_reservation_without_spending(store):
    budget = total("team:a", "10")
    await store.reserve("r1", [budget], usd("3"))
    assert await store.release("r1") is True
    [status] = await store.status([budget])
    assert (status.spent, status.reserved) == (0, 0)


async def test_reserving_the_same_request_twice_holds_once(store):
    budget = total("team:a", "10")
    first = await store.reserve("r1", [budget], usd("3"))
    again = await store.reserve("r1", [budget], usd("9"))
    assert first.amount == again.amount == usd("3")
    assert again.counters[0].reserved == usd("3")


async def test_expired_reservations_are_released_not_spent(store, clock):
    budget = total("team:a", "10")
    await store.reserve("dead-gateway", [budget], usd("8"), ttl_s=30)
    clock.advance(29)
    assert (await store.reserve("r2", [budget], usd("5"), floor=usd("3"))).amount is None
    clock.advance(1)
    grant = await store.reserve("r2", [budget], usd("5"))
    assert grant.amount == usd("5")
    assert (grant.counters[0].spent, grant.counters[0].reserved) == (0, usd("5"))


async def test_a_late_settle_after_expiry_still_counts_the_cost(store, clock):
    budget = total("team:a", "10")
    await store.reserve("slow", [budget], usd("2"), ttl_s=30)
    clock.advance(60)
    assert (await store.status([budget]))[0].reserved == 0
    assert await store.settle("slow", usd("1.5")) is True
    [status] = await store.status([budget])
    assert (status.spent, status.reserved) == (usd("1.5"), 0)


async def test_money_is_exact_to_the_nano_dollar(store):
    budget = total("team:a", "1")
    for n in range(10):
        await store.reserve(f"r{n}", [budget], usd("0.1"))
        await store.settle(f"r{n}", usd("0.1"))
    [status] = await store.status([budget])
    assert status.spent == Decimal("1") and status.remaining == 0
    assert (await store.reserve("one-more", [budget], usd("0.000000001"))).amount is None


async def test_a_limit_below_a_whole_nano_dollar_is_rounded_down(store):
    budget = total("team:a", "0.0000000019")  # 1.9 nano-USD: 1 of them may be spent, not 2
    two = usd("0.000000002")
    assert (await store.reserve("two", [budget], two, floor=two)).amount is None
    assert (await store.reserve("one", [budget], usd("0.000000001"))).amount == usd("0.000000001")
    [status] = await store.status([budget])
    assert (status.limit, status.remaining) == (Decimal("0.0000000019"), 0)


async def test_period_rolls_over_at_local_month_start(store, clock):
    paris = monthly("team:a", "10", tz="Europe/Paris")
    clock.set(datetime(2026, 10, 31, 22, 59, 59, tzinfo=UTC))  # 23:59:59 in Paris (CET)
    await store.reserve("october", [paris], usd("6"))
    await store.settle("october", usd("6"))
    [status] = await store.status([paris])
    assert status.spent == usd("6")
    assert status.resets_at == datetime(2026, 10, 31, 23, 0, tzinfo=UTC)
    clock.advance(1)  # midnight, November 1st, in Paris
    [status] = await store.status([paris])
    assert (status.spent, status.remaining) == (0, usd("10"))
    assert status.resets_at == datetime(2026, 11, 30, 23, 0, tzinfo=UTC)
    assert (await store.reserve("november", [paris], usd("10"))).amount == usd("10")


async def test_a_request_settles_in_the_period_it_reserved_in(store, clock):
    daily = BudgetCounter("team:a", usd("10"), Window("day", tz="America/New_York"))
    clock.set(datetime(2026, 10, 16, 3, 59, tzinfo=UTC))  # 23:59 in New York
    await store.reserve("straddles", [daily], usd("4"))
    clock.advance(120)
    await store.settle("straddles", usd("3"))
    [today] = await store.status([daily])
    assert (today.spent, today.reserved) == (0, 0)
    clock.advance(-120)
    assert (await store.status([daily]))[0].spent == usd("3")


async def test_rolling_window_forgets_spend_older_than_its_length(store, clock):
    hourly = BudgetCounter("user:u", usd("5"), Window.rolling(3600))
    await store.reserve("early", [hourly], usd("3"))
    await store.settle("early", usd("3"))
    clock.advance(1800)
    await store.reserve("later", [hourly], usd("2"))
    await store.settle("later", usd("2"))
    [status] = await store.status([hourly])
    assert (status.spent, status.remaining) == (usd("5"), 0)
    assert status.resets_at == datetime.fromtimestamp(clock.now - 1800 + 3600, UTC)
    clock.advance(1800)  # the first spend is now an hour old
    [status] = await store.status([hourly])
    assert status.spent == usd("2")
    assert (await store.reserve("next", [hourly], usd("3"))).amount == usd("3")


async def test_rolling_window_counts_open_reservations(store, clock):
    hourly = BudgetCounter("user:u", usd("5"), Window.rolling(60))
    await store.reserve("open", [hourly], usd("4"), ttl_s=600)
    clock.advance(120)
    assert (await store.reserve("next", [hourly], usd("2"), floor=usd("1.5"))).amount is None


async def test_duplicate_counters_are_rejected(store):
    with pytest.raises(ValueError, match="once per request"):
        await store.reserve("r1", [total("team:a", "1"), total("team:a", "1")], usd("1"))


async def test_negative_costs_are_rejected(store):
    await store.reserve("r1", [total("team:a", "1")], usd("1"))
    with pytest.raises(ValueError, match="never negative"):
        await store.settle("r1", usd("-1"))


async def test_settled_reservations_leave_nothing_behind_in_process(tmp_path):
    """Memory follows what is in flight: 10,000 settled reservations keep no trace."""
    from tokenbrake.limits import open_limit_store

    store = await open_limit_store("memory://")
    budget = BudgetCounter("team:a", Decimal("1000"), Window("total"))
    for n in range(10_000):
        await store.reserve(f"r{n}", [budget], Decimal("0.01"), ttl_s=900)
        await store.settle(f"r{n}", Decimal("0.001"))
    [counter] = store._counters.values()
    assert len(counter.holds) == 0 and len(counter.expiries) <= 8 and not store._reservations
    await store.close()
