"""Agent sessions in the limits store: the same tests on the in-process store and on Redis."""

from __future__ import annotations

import asyncio
from decimal import Decimal

from limits_backends import clock, place, store  # noqa: F401  (fixtures)

from tokenbrake.limits import to_nanos
from tokenbrake.limits.types import SessionCaps

TTL = 3600.0
NONE = SessionCaps()


async def test_first_call_creates_the_session_and_counts_it(store, clock):
    admitted = await store.session_admit("k1", "s1", NONE, TTL)
    assert admitted.refused is None
    record = admitted.record
    assert (record.key_name, record.session, record.calls, record.status) == ("k1", "s1", 1, "active")
    assert record.first_seen == clock.now == record.last_seen
    assert record.calls_last_minute == 1


async def test_sessions_of_two_keys_with_one_id_are_apart(store):
    await store.session_admit("tenant-a", "shared", NONE, TTL)
    await store.session_admit("tenant-a", "shared", NONE, TTL)
    other = await store.session_admit("tenant-b", "shared", NONE, TTL)
    assert other.record.calls == 1
    assert (await store.session_get("tenant-a", "shared")).calls == 2
    assert [r.key_name for r in await store.session_list("tenant-b")] == ["tenant-b"]


async def test_max_calls_refuses_the_call_after_the_last_allowed_without_counting_it(store):
    caps = SessionCaps(max_calls=2)
    assert [(await store.session_admit("k", "s", caps, TTL)).refused for _ in range(3)] == [None, None, "max_calls"]
    assert (await store.session_get("k", "s")).calls == 2


async def test_tokens_and_cost_settle_after_the_call_and_then_refuse(store):
    caps = SessionCaps(max_tokens=1000, max_cost_nanos=to_nanos(Decimal("0.01")))
    await store.session_admit("k", "s", caps, TTL)
    await store.session_settle("k", "s", 600, Decimal("0.004"))
    assert (await store.session_admit("k", "s", caps, TTL)).refused is None
    await store.session_settle("k", "s", 600, Decimal("0.004"))
    refused = await store.session_admit("k", "s", caps, TTL)
    assert refused.refused == "max_tokens"
    assert (refused.record.tokens, refused.record.cost) == (1200, Decimal("0.008"))
    cost_only = SessionCaps(max_cost_nanos=to_nanos(Decimal("0.008")))
    assert (await store.session_admit("k", "s", cost_only, TTL)).refused == "max_cost_usd"


async def test_a_call_that_never_reached_an_upstream_is_taken_back_out(store):
    caps = SessionCaps(calls_per_minute=2)
    for _ in range(3):  # each refused later in the pipeline: none counts, per minute neither
        assert (await store.session_admit("k", "s", caps, TTL)).refused is None
        await store.session_settle("k", "s", 0, Decimal(0), uncount=True)
    record = await store.session_get("k", "s")
    assert (record.calls, record.calls_last_minute) == (0, 0)


async def test_duration_counts_from_the_first_call(store, clock):
    caps = SessionCaps(max_duration_s=600)
    await store.session_admit("k", "s", caps, TTL)
    clock.advance(599)
    assert (await store.session_admit("k", "s", caps, TTL)).refused is None
    clock.advance(1)
    assert (await store.session_admit("k", "s", caps, TTL)).refused == "max_duration_s"


async def test_calls_per_minute_slide_and_say_when_to_retry(store, clock):
    caps = SessionCaps(calls_per_minute=2)
    await store.session_admit("k", "s", caps, TTL)
    clock.advance(10)
    await store.session_admit("k", "s", caps, TTL)
    clock.advance(5)
    refused = await store.session_admit("k", "s", caps, TTL)
    assert refused.refused == "calls_per_minute"
    assert refused.retry_after_s == 45.0
    clock.advance(45)
    assert (await store.session_admit("k", "s", caps, TTL)).refused is None


async def test_a_stopped_session_is_refused_until_resumed_and_resume_replaces_the_trace(store):
    admitted = await store.session_admit("k", "s", NONE, TTL)
    record = admitted.record
    record.trace = {"seen": [1, 2, 3]}
    assert (await store.session_observe(record, TTL))[0]
    stopped = await store.session_set_status("k", "s", stop=True, reason="operator", evidence="by hand")
    assert (stopped.status, stopped.reason, stopped.evidence) == ("stopped", "operator", "by hand")
    assert stopped.trace == {"seen": [1, 2, 3]}
    refused = await store.session_admit("k", "s", NONE, TTL)
    assert refused.refused == "stopped"
    assert refused.record.calls == 1
    resumed = await store.session_set_status("k", "s", stop=False, trace={"seen": [1, 2, 3], "forgiven": True})
    assert (resumed.status, resumed.reason, resumed.trace) == ("active", None, {"seen": [1, 2, 3], "forgiven": True})
    assert resumed.version == stopped.version + 1
    assert (await store.session_admit("k", "s", NONE, TTL)).refused is None


async def test_the_trace_is_written_by_compare_and_set(store):
    first = (await store.session_admit("k", "s", NONE, TTL)).record
    second = (await store.session_admit("k", "s", NONE, TTL)).record  # a concurrent call read the same version
    first.trace, second.trace = {"by": "first"}, {"by": "second"}
    written, now = await store.session_observe(first, TTL)
    assert written and now.version == second.version + 1
    written, current = await store.session_observe(second, TTL)
    assert not written
    assert current.trace == {"by": "first"} and current.version == now.version
    current.trace = {"by": "second, after first"}
    assert (await store.session_observe(current, TTL))[0]
    assert (await store.session_get("k", "s")).trace == {"by": "second, after first"}


async def test_an_observation_can_stop_the_session_with_its_evidence(store, clock):
    record = (await store.session_admit("k", "s", NONE, TTL)).record
    record.verdicts = [{"kind": "repeated_tool_call", "repetitions": 5, "evidence": "search(x) 5 times"}]
    record.loop_calls = 1
    record.status, record.reason, record.evidence, record.stopped_at = "stopped", "loop", "search(x) 5 times", clock.now
    assert (await store.session_observe(record, TTL))[0]
    held = await store.session_get("k", "s")
    assert (held.status, held.reason, held.evidence, held.loop_calls) == ("stopped", "loop", "search(x) 5 times", 1)
    assert held.verdicts == record.verdicts
    assert (await store.session_admit("k", "s", NONE, TTL)).refused == "stopped"


async def test_idle_sessions_expire(store, clock):
    await store.session_admit("k", "old", NONE, 100)
    clock.advance(50)
    await store.session_admit("k", "new", NONE, 100)
    clock.advance(60)
    assert await store.session_get("k", "old") is None
    assert [r.session for r in await store.session_list()] == ["new"]
    assert (await store.session_admit("k", "old", NONE, 100)).record.calls == 1  # a fresh session


async def test_concurrent_calls_count_exactly_on_two_replicas(place):
    one, two = await place.open(), await place.open()
    if place.kind == "memory":
        two = one  # one process: replicas do not share an in-process store
    caps = SessionCaps(max_calls=30)
    results = await asyncio.gather(*(s.session_admit("k", "s", caps, TTL) for s in [one, two] * 25))
    assert sum(r.refused is None for r in results) == 30
    await asyncio.gather(*(s.session_settle("k", "s", 10, Decimal("0.001")) for s in [one, two] * 15))
    record = await one.session_get("k", "s")
    assert (record.calls, record.tokens, record.cost) == (30, 300, Decimal("0.030"))


async def test_sessions_survive_a_restart(place, clock):
    first = await place.open()
    record = (await first.session_admit("k", "s", NONE, TTL)).record
    record.trace = {"steps": ["a", "b"]}
    await first.session_observe(record, TTL)
    await first.session_settle("k", "s", 42, Decimal("0.5"))
    await first.session_set_status("k", "s", stop=True, reason="loop", evidence="a→b→a→b")
    await first.close()
    place.opened.remove(first)
    again = await (await place.open()).session_get("k", "s")
    assert (again.calls, again.tokens, again.cost, again.status, again.evidence) == (1, 42, Decimal("0.5"), "stopped", "a→b→a→b")
    assert again.trace == {"steps": ["a", "b"]}


async def test_an_in_process_store_keeps_a_bounded_number_of_sessions_dropping_the_idlest(clock, monkeypatch):
    from tokenbrake.limits import memory_sessions, open_limit_store

    monkeypatch.setattr(memory_sessions, "MAX_SESSIONS", 20)
    store = await open_limit_store("memory://", clock=clock)
    try:
        for n in range(20):
            await store.session_admit("k", f"s{n}", SessionCaps(), 3600)
            clock.advance(1)
        await store.session_admit("k", "s0", SessionCaps(), 3600)  # s0 is busy again: s1 is now the idlest
        await store.session_admit("k", "new", SessionCaps(), 3600)  # the 21st: the idlest two (a tenth) go
        kept = {record.session for record in await store.session_list(None)}
        assert len(kept) == 19 and {"s0", "new"} <= kept and not {"s1", "s2"} & kept
    finally:
        await store.close()
