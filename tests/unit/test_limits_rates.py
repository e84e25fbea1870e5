"""Sliding-window rate limits and concurrency slots, the same on both backends."""

from __future__ import annotations

import math

import pytest
from limits_backends import acquire_slot, clock, hit, place, store  # noqa: F401


async def test_allows_the_limit_then_refuses_with_when_to_retry(store, clock):
    decisions = []
    for _ in range(3):
        decisions.append(await hit(store, "key:k", 3, 60))
        clock.advance(10)
    assert [d.allowed for d in decisions] == [True, True, True]
    assert [d.remaining for d in decisions] == [2, 1, 0]
    refused = await hit(store, "key:k", 3, 60)  # at t=30: the first hit leaves the window at t=60
    assert not refused.allowed
    assert (refused.remaining, refused.retry_after_s) == (0, pytest.approx(30))
    assert refused.reset_s == pytest.approx(50)  # the last hit (t=20) leaves at t=80


async def test_window_slides_one_hit_at_a_time(store, clock):
    for _ in range(2):
        await hit(store, "key:k", 2, 60)
        clock.advance(20)
    clock.advance(19)  # t=59
    assert not (await hit(store, "key:k", 2, 60)).allowed
    clock.advance(1)  # t=60: the first hit has left
    decision = await hit(store, "key:k", 2, 60)
    assert (decision.allowed, decision.remaining) == (True, 0)
    assert not (await hit(store, "key:k", 2, 60)).allowed


async def test_refused_hits_consume_nothing(store, clock):
    await hit(store, "key:k", 1, 60)
    for _ in range(5):
        assert not (await hit(store, "key:k", 1, 60)).allowed
    clock.advance(60)
    assert (await hit(store, "key:k", 1, 60)).allowed


async def test_token_limit_counts_amounts_and_says_when_enough_frees_up(store, clock):
    assert (await hit(store, "tpm:k", 1000, 60, amount=600)).allowed
    clock.advance(10)
    assert (await hit(store, "tpm:k", 1000, 60, amount=300)).remaining == 100
    clock.advance(10)
    refused = await hit(store, "tpm:k", 1000, 60, amount=500)  # needs the 600 to leave, at t=60
    assert not refused.allowed and refused.retry_after_s == pytest.approx(40)
    small = await hit(store, "tpm:k", 1000, 60, amount=100)
    assert (small.allowed, small.remaining) == (True, 0)


async def test_an_amount_above_the_limit_never_fits(store):
    decision = await hit(store, "tpm:k", 1000, 60, amount=1001)
    assert not decision.allowed and decision.retry_after_s == math.inf
    assert decision.remaining == 1000


async def test_keys_are_limited_separately(store):
    assert (await hit(store, "key:a", 1, 60)).allowed
    assert (await hit(store, "key:b", 1, 60)).allowed


async def test_slots_admit_up_to_the_limit_and_free_on_release(store):
    assert await acquire_slot(store, "key:k", 2, "r1", ttl_s=30)
    assert await acquire_slot(store, "key:k", 2, "r2", ttl_s=30)
    assert not await acquire_slot(store, "key:k", 2, "r3", ttl_s=30)
    await store.release_slot("key:k", "r1")
    assert await acquire_slot(store, "key:k", 2, "r3", ttl_s=30)


async def test_acquiring_a_held_slot_again_takes_no_second_slot(store):
    assert await acquire_slot(store, "key:k", 2, "r1", ttl_s=30)
    assert await acquire_slot(store, "key:k", 2, "r1", ttl_s=30)
    assert await acquire_slot(store, "key:k", 2, "r2", ttl_s=30)


async def test_slots_of_a_dead_gateway_expire(store, clock):
    # A ttl below the shared state's lease (redis_leases.LEASE_S), which ends them sooner still.
    assert await acquire_slot(store, "key:k", 1, "orphan", ttl_s=5)
    clock.advance(4)
    assert not await acquire_slot(store, "key:k", 1, "r2", ttl_s=5)
    clock.advance(1)
    assert await acquire_slot(store, "key:k", 1, "r2", ttl_s=5)
