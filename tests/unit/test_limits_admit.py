"""`admit`: a request's concurrency slots and rate windows in one atomic step, the same on
both backends."""

from __future__ import annotations

import math

from limits_backends import acquire_slot, clock, hit, place, store  # noqa: F401

from tokenbrake.limits import HitAsk, SlotAsk

SLOTS = [SlotAsk("conc:key:a", 2), SlotAsk("conc:team:t", 3)]


async def test_admits_taking_every_slot_and_counting_every_window(store):
    admission = await store.admit("r1", SLOTS, [HitAsk("rpm:key:a", 5, 60), HitAsk("tpm:key:a", 100, 60, 40)], 30)
    assert admission.allowed and admission.full_slot is None
    assert [(d.allowed, d.remaining) for d in admission.decisions] == [(True, 4), (True, 60)]
    # the slots are held: a second request fits key:a once more, a third does not
    assert (await store.admit("r2", SLOTS, [], 30)).allowed
    full = await store.admit("r3", SLOTS, [], 30)
    assert full.full_slot == 0 and not full.allowed
    # and the refused one took nothing: the team slot (3) still has room for one
    assert await acquire_slot(store, "conc:team:t", 3, "other", 30)
    assert not await acquire_slot(store, "conc:team:t", 3, "another", 30)


async def test_a_full_later_slot_gives_back_the_earlier_ones(store):
    await acquire_slot(store, "conc:team:t", 1, "holder", 30)
    refused = await store.admit("r1", [SlotAsk("conc:key:a", 1), SlotAsk("conc:team:t", 1)], [HitAsk("rpm:key:a", 5, 60)], 30)
    assert refused.full_slot == 1 and refused.decisions == []
    assert await acquire_slot(store, "conc:key:a", 1, "next", 30)  # key:a's slot was given back
    assert (await hit(store, "rpm:key:a", 5, 60)).remaining == 4  # the window was never hit


async def test_a_refusing_window_frees_the_slots_and_keeps_earlier_windows_counted(store, clock):
    assert (await store.admit("r1", SLOTS, [HitAsk("rpm:key:a", 5, 60), HitAsk("tpm:key:a", 100, 60, 90)], 30)).allowed
    await store.release_slot("conc:key:a", "r1")
    await store.release_slot("conc:team:t", "r1")
    clock.advance(10)
    refused = await store.admit("r2", SLOTS, [HitAsk("rpm:key:a", 5, 60), HitAsk("tpm:key:a", 100, 60, 20)], 30)
    assert not refused.allowed and refused.full_slot is None
    assert [d.allowed for d in refused.decisions] == [True, False]
    assert refused.decisions[1].retry_after_s == 50  # the 90 tokens leave at t=60
    assert (await hit(store, "rpm:key:a", 5, 60)).remaining == 2  # r1, r2, this one
    for n in range(2):  # both slots free again
        assert await acquire_slot(store, "conc:key:a", 2, f"x{n}", 30)


async def test_a_window_the_request_can_never_fit_says_so(store):
    refused = await store.admit("r1", [], [HitAsk("tpm:key:a", 100, 60, 101)], 30)
    assert not refused.allowed and math.isinf(refused.decisions[0].retry_after_s)


async def test_slots_expire_after_their_ttl(store, clock):
    assert (await store.admit("r1", [SlotAsk("conc:key:a", 1)], [], 30)).allowed
    assert (await store.admit("r2", [SlotAsk("conc:key:a", 1)], [], 30)).full_slot == 0
    clock.advance(31)
    assert (await store.admit("r2", [SlotAsk("conc:key:a", 1)], [], 30)).allowed
