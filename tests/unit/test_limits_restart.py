"""A restart keeps the period's spend and the open reservations: the in-process store
reloads its snapshot, Redis keeps its keys."""

from __future__ import annotations

import asyncio
import json

from limits_backends import acquire_slot, clock, hit, place, total, usd  # noqa: F401

from tokenbrake.limits import open_limit_store


async def test_restart_keeps_spend_and_open_reservations(place):
    budget = total("team:a", "10")
    first = await place.open()
    await first.reserve("settled", [budget], usd("2"))
    await first.settle("settled", usd("1.5"))
    await first.reserve("in-flight", [budget], usd("3"))
    await first.close()
    place.opened.remove(first)

    again = await place.open()
    [status] = await again.status([budget])
    assert (status.spent, status.reserved) == (usd("1.5"), usd("3"))
    assert await again.settle("in-flight", usd("2.5")) is True
    assert (await again.status([budget]))[0].spent == usd("4")


async def test_restart_keeps_rate_limits_and_slots(place):
    first = await place.open()
    assert (await hit(first, "key:k", 2, 60)).allowed
    assert await acquire_slot(first, "key:k", 1, "r1", ttl_s=30)
    await first.close()
    place.opened.remove(first)

    again = await place.open()
    assert (await hit(again, "key:k", 2, 60)).remaining == 0
    assert not await acquire_slot(again, "key:k", 1, "r2", ttl_s=30)


async def test_reservations_of_a_dead_gateway_expire_after_restart(place, clock):
    budget = total("team:a", "10")
    first = await place.open()
    await first.reserve("orphan", [budget], usd("9"), ttl_s=60)
    await first.close()
    place.opened.remove(first)

    clock.advance(61)
    again = await place.open()
    [status] = await again.status([budget])
    assert (status.spent, status.reserved, status.remaining) == (0, 0, usd("10"))


async def test_snapshot_is_written_periodically_without_close(tmp_path, clock):
    path = tmp_path / "state.json"
    store = await open_limit_store(f"memory:///{path}", clock=clock, save_every_s=0.01)
    try:
        await store.reserve("r1", [total("team:a", "10")], usd("1"))
        for _ in range(200):
            if path.exists():
                break
            await asyncio.sleep(0.01)
        saved = json.loads(path.read_text())
        assert "r1" in saved["reservations"]
        assert [p.name for p in tmp_path.iterdir()] == ["state.json"]  # no temporary file left behind
        assert path.stat().st_mode & 0o777 == 0o600
    finally:
        await store.close()


async def test_memory_url_without_path_keeps_nothing_on_disk(tmp_path, clock, monkeypatch):
    monkeypatch.chdir(tmp_path)
    store = await open_limit_store("memory://", clock=clock)
    await store.reserve("r1", [total("team:a", "10")], usd("1"))
    await store.close()
    assert list(tmp_path.iterdir()) == []


async def test_a_gateway_starting_takes_the_ledgers_spend_and_lets_go_of_the_dead_ones_holds(tmp_path, clock):
    from tokenbrake.limits.windows import place as placement
    from tokenbrake.storage.spend import SettledSpend

    path, budget = tmp_path / "state.json", total("team:a", "10")
    first = await open_limit_store(f"memory:///{path}", clock=clock)
    await first.reserve("settled", [budget], usd("2"))
    await first.settle("settled", usd("1"))  # the snapshot is written at close, before a crash…
    await first.reserve("in-flight", [budget], usd("3"))
    assert await acquire_slot(first, "key:k", 1, "in-flight", ttl_s=900)
    await first.close()

    # …and the ledger holds what settled later (and the journal's unseen calls at their worst case).
    key = placement(budget, clock()).key
    again = await open_limit_store(f"memory:///{path}", clock=clock, settled={key: SettledSpend(usd_nanos("4"), keep_until=None)})
    [status] = await again.status([budget])
    assert (status.spent, status.reserved) == (usd("4"), 0)
    assert await acquire_slot(again, "key:k", 1, "next", ttl_s=900)  # the dead process's slot is free
    assert await again.settle("in-flight", usd("1")) is False  # recorded by the journal, not settled twice
    await again.close()


async def test_the_ledgers_spend_never_lowers_what_the_snapshot_holds(tmp_path, clock):
    from tokenbrake.limits.windows import place as placement
    from tokenbrake.storage.spend import SettledSpend

    path, budget = tmp_path / "state.json", total("team:a", "10")
    first = await open_limit_store(f"memory:///{path}", clock=clock)
    await first.reserve("r", [budget], usd("5"))
    await first.settle("r", usd("5"))
    await first.close()
    key = placement(budget, clock()).key
    again = await open_limit_store(f"memory:///{path}", clock=clock, settled={key: SettledSpend(usd_nanos("2"), keep_until=None)})
    assert (await again.status([budget]))[0].spent == usd("5")
    await again.close()


def usd_nanos(amount: str) -> int:
    from tokenbrake.limits import to_nanos

    return to_nanos(usd(amount))
