"""The Sessions stage on the in-process store with a fake clock and the real loop detector:
what it counts, its refusals, and the loop actions."""

from __future__ import annotations

import asyncio
import logging
from decimal import Decimal

import pytest
from agent_turns import body, looping, progressing
from limits_backends import clock, place  # noqa: F401  (fixtures)

from tokenbrake.admission import session_rules
from tokenbrake.config import AlertsConfig, parse_config
from tokenbrake.core import (
    Attempt,
    Attribution,
    Endpoint,
    ErrorKind,
    Format,
    GatewayError,
    PriorCall,
    RequestContext,
    Target,
    Usage,
)
from tokenbrake.limits import open_limit_store
from tokenbrake.settlement.alerts import Alerts
from tokenbrake.stages.identify import Identify
from tokenbrake.stages.watch_session import Sessions

RAW = {
    "upstreams": {"u": {"kind": "openai", "base_url": "http://127.0.0.1:9/v1"}},
    "models": {"gpt-4o": {"upstream": "u", "free": True}},
}
TARGET = Target("gpt-4o", "u", Format.OPENAI, "gpt-4o")


@pytest.fixture
async def store(clock):
    """The in-process store (the stage is the same on Redis: test_sessions_state.py runs the
    store's operations on both)."""
    store = await open_limit_store("memory://", clock=clock)
    yield store
    await store.close()


class Harness:
    def __init__(self, store, *rules: dict, **settings) -> None:
        self.config = parse_config({**RAW, "sessions": {"rules": list(rules), **settings}})
        self.store = store
        self.alerts = Alerts(AlertsConfig(), store)
        self.slept: list[float] = []
        self.stage = Sessions(self.config, store, self.alerts, sleep=self._sleep)

    async def _sleep(self, seconds: float) -> None:
        self.slept.append(seconds)

    async def call(self, steps=(), session: str | None = "s1", key: str = "k1", team: str = "t1",
                   cost: str = "0", tokens: int = 0, reached_upstream: bool = True,
                   prior: PriorCall | None = None) -> RequestContext:
        """One call through the stage: before, the upstream (pretended: usage and cost), after."""
        ctx = RequestContext(format=Format.OPENAI, endpoint=Endpoint.CHAT, body=body(Format.OPENAI, list(steps)),
                             headers={}, who=Attribution(key_name=key, team=team, session=session))
        ctx.targets = [TARGET]
        await self.stage.before(ctx)
        if reached_upstream:
            ctx.attempts.append(Attempt(TARGET, status=200))
            ctx.usage, ctx.cost = Usage(input_tokens=tokens), Decimal(cost)
            ctx.prior_calls = (prior,) if prior is not None else ()
        await self.stage.after(ctx)
        return ctx

    async def agent(self, steps, **kwargs) -> list[RequestContext | GatewayError]:
        """An agent's calls, one per prefix of its steps; a refusal ends it."""
        done: list[RequestContext | GatewayError] = []
        for n in range(len(steps) + 1):
            try:
                done.append(await self.call(steps[:n], **kwargs))
            except GatewayError as refused:
                done.append(refused)
                break
        return done


async def test_nothing_is_stored_without_rules_or_without_a_session(store):
    await Harness(store).call()
    await Harness(store, {"scope": "global", "max_calls": 5}).call(session=None)
    assert await store.session_list() == []


async def test_a_session_over_its_call_limit_is_refused_naming_the_limit_session_value_and_cap(store):
    h = Harness(store, {"scope": "team:t1", "max_calls": 3})
    for _ in range(3):
        await h.call()
    with pytest.raises(GatewayError) as refused:
        await h.call()
    error = refused.value
    assert (error.kind, error.status, error.code, error.limit) == (
        ErrorKind.RATE_LIMIT, 429, "session_limit_exceeded", "team:t1 session max_calls")
    assert error.message.startswith("Session 's1' of key 'k1' reached its max_calls limit (sessions rule team:t1): "
                                    "3 calls made, limit 3.")
    assert error.headers == {"x-should-retry": "false"}
    await h.call(session="s2")  # another session of the same key is not affected


async def test_cost_is_settled_after_each_call_and_the_smallest_cap_of_all_rules_wins(store):
    h = Harness(store, {"scope": "global", "max_cost_usd": "1"}, {"scope": "key:k1", "max_cost_usd": "0.05"})
    await h.call(cost="0.03")
    await h.call(cost="0.03")
    with pytest.raises(GatewayError, match=r"max_cost_usd limit \(sessions rule key:k1\): \$0.06 spent, "
                                           r"limit \$0.05\."):
        await h.call()
    await h.call(key="k2", cost="0.5")  # k2 only has the global $1
    assert (await store.session_get("k2", "s1")).cost == Decimal("0.5")


async def test_calls_per_minute_refusal_says_when_to_retry(store, clock):
    h = Harness(store, {"scope": "global", "calls_per_minute": 2})
    await h.call()
    clock.advance(20)
    await h.call()
    with pytest.raises(GatewayError) as refused:
        await h.call()
    assert "2 calls in the last minute, limit 2. Please try again in 40s." in refused.value.message
    assert refused.value.headers["retry-after"] == "40"


async def test_duration_is_wall_clock_time_since_the_first_call(store, clock):
    h = Harness(store, {"scope": "global", "max_duration_s": 3600})
    await h.call()
    clock.advance(3600)
    with pytest.raises(GatewayError, match="3600 s since its first call, limit 3600 s"):
        await h.call()


async def test_a_call_that_never_reached_an_upstream_does_not_count(store):
    h = Harness(store, {"scope": "global", "max_calls": 1})
    await h.call(reached_upstream=False)  # refused by a later stage, e.g. a budget
    await h.call()
    assert (await store.session_get("k1", "s1")).calls == 1


async def test_the_session_a_call_counts_on_is_on_its_context_until_its_after_step(store):
    h = Harness(store, {"scope": "global", "max_calls": 5})
    ctx = RequestContext(format=Format.OPENAI, endpoint=Endpoint.CHAT, body=body(Format.OPENAI, []), headers={},
                         who=Attribution(key_name="k1", session="s1"))
    await h.stage.before(ctx)
    assert ctx.session_counted == ("k1", "s1")
    await h.stage.after(ctx)  # never reached an upstream: taken back out
    assert ctx.session_counted is None and (await store.session_get("k1", "s1")).calls == 0


async def test_a_cascades_earlier_calls_count_toward_the_session(store):
    h = Harness(store, {"scope": "global", "max_cost_usd": "1"})
    rejected = PriorCall(TARGET, Usage(input_tokens=30, output_tokens=10), Decimal("0.25"), 200, 0.1)
    await h.call(cost="0.5", tokens=100, prior=rejected)
    record = await store.session_get("k1", "s1")
    assert (record.tokens, record.cost) == (140, Decimal("0.75"))


async def test_tokens_count_input_and_output(store):
    h = Harness(store, {"scope": "global", "max_tokens": 1000})
    await h.call(tokens=999)
    await h.call(tokens=1)
    with pytest.raises(GatewayError, match="1000 tokens used, limit 1000"):
        await h.call()


async def test_warn_sets_the_header_flags_the_call_and_alerts_once(store, caplog):
    h = Harness(store, {"scope": "global", "on_loop": "warn"})
    with caplog.at_level(logging.WARNING, logger="tokenbrake.settlement.alerts"):
        calls = await h.agent(looping(8))
        await h.alerts.aclose()
    assert all(isinstance(c, RequestContext) for c in calls)  # warn never refuses
    flagged = [c for c in calls if c.loop_suspected]
    assert flagged and flagged[0].loop_suspected == "repeated_tool_call"
    header = flagged[0].response_headers[session_rules.LOOP_HEADER]
    assert header.startswith("suspected; kind=repeated_tool_call; repetitions=")
    assert len([r for r in caplog.records if "loop suspected" in r.getMessage()]) == 1
    record = await store.session_get("k1", "s1")
    assert record.loop_calls == len(flagged) and record.verdicts[-1]["action"] == "warn"


async def test_throttle_sleeps_longer_with_each_repetition_up_to_the_bound(store):
    h = Harness(store, {"scope": "global", "on_loop": "throttle"}, throttle_initial_s=1, throttle_max_s=4)
    calls = await h.agent(looping(12))
    assert all(isinstance(c, RequestContext) for c in calls)
    assert h.slept[:4] == [1, 2, 4, 4] and set(h.slept[3:]) == {4}


async def test_stop_refuses_the_looping_call_with_its_evidence_and_every_later_one(store):
    h = Harness(store, {"scope": "global", "on_loop": "stop"})
    calls = await h.agent(looping(20))
    refused = calls[-1]
    assert isinstance(refused, GatewayError) and len(calls) <= 11  # stopped within 10 repetitions
    assert (refused.status, refused.code) == (429, "session_stopped")
    assert "is stopped: stopped by loop detection (repeated_tool_call" in refused.message
    assert "Evidence: search_files(query=…)" in refused.message
    with pytest.raises(GatewayError, match="is stopped"):
        await h.call(progressing(1))  # whatever it sends now
    record = await store.session_get("k1", "s1")
    assert record.status == "stopped" and record.calls == len(calls) - 1  # refused calls do not count


async def test_resume_lets_calls_flow_and_only_a_new_loop_stops_the_session_again(store):
    h = Harness(store, {"scope": "global", "on_loop": "stop"})
    steps = looping(20)
    calls = await h.agent(steps)
    made = len(calls) - 1
    resumed = await session_rules.set_status(store, h.config.sessions, "s1", None, stop=False)
    assert resumed.status == "active"
    unstuck = steps[:made] + progressing(1)
    await h.call(unstuck)  # the agent, unstuck, reads a file
    assert (await store.session_get("k1", "s1")).status == "active"
    again = unstuck + looping(20)  # then loops anew: stopped again, at the repetitions a new loop needs
    refused = None
    for n in range(len(unstuck) + 1, len(again) + 1):
        try:
            await h.call(again[:n])
        except GatewayError as error:
            refused = error
            break
    assert refused is not None and n - len(unstuck) <= h.config.sessions.loops.repetitions + 1
    assert (await store.session_get("k1", "s1")).status == "stopped"


async def test_a_progressing_agent_of_80_calls_is_never_flagged(store):
    h = Harness(store, {"scope": "global", "on_loop": "stop"})
    calls = await h.agent(progressing(80))
    assert len(calls) == 81 and not any(isinstance(c, GatewayError) or c.loop_suspected for c in calls)


async def test_the_most_specific_rule_chooses_the_loop_action(store):
    h = Harness(store, {"scope": "global", "on_loop": "stop"}, {"scope": "team:t1", "on_loop": "throttle"},
                {"scope": "key:k1", "on_loop": "warn"})
    calls = await h.agent(looping(10))
    assert all(isinstance(c, RequestContext) for c in calls) and not h.slept  # key:k1 says warn
    calls = await h.agent(looping(10), key="k2")  # team t1: throttle
    assert all(isinstance(c, RequestContext) for c in calls) and h.slept
    calls = await h.agent(looping(10), key="k3", team="t3")  # global: stop
    assert isinstance(calls[-1], GatewayError)


async def test_one_session_id_under_two_keys_is_two_sessions(store):
    h = Harness(store, {"scope": "global", "on_loop": "stop"})
    await h.agent(looping(20), key="tenant-a")
    calls = await h.agent(progressing(5), key="tenant-b")
    assert all(isinstance(c, RequestContext) for c in calls)
    assert {(r.key_name, r.status) for r in await store.session_list()} == {("tenant-a", "stopped"),
                                                                          ("tenant-b", "active")}


async def test_operators_name_the_key_when_one_session_id_is_under_two(store):
    h = Harness(store, {"scope": "global", "max_calls": 100})
    await h.call(key="a")
    await h.call(key="b")
    with pytest.raises(session_rules.SessionNotFound, match=r"several keys \(a, b\): name one with --key"):
        await session_rules.set_status(store, h.config.sessions, "s1", None, stop=True)
    stopped = await session_rules.set_status(store, h.config.sessions, "s1", "b", stop=True)
    assert (stopped.key_name, stopped.status) == ("b", "stopped")
    with pytest.raises(GatewayError, match="stopped by an operator"):
        await h.call(key="b")


async def test_anthropic_metadata_session_id_names_the_session_and_is_not_sent_upstream():
    ctx = RequestContext(format=Format.ANTHROPIC, endpoint=Endpoint.CHAT, headers={},
                         body={"model": "m", "max_tokens": 5, "messages": [], "metadata": {"session_id": "run-7"}})
    await Identify(None).before(ctx)
    assert ctx.who.session == "run-7" and "metadata" not in ctx.body
    ctx = RequestContext(format=Format.ANTHROPIC, endpoint=Endpoint.CHAT, headers={"x-tokenbrake-session": "run-8"},
                         body={"model": "m", "max_tokens": 5, "messages": [],
                               "metadata": {"session_id": "run-7", "user_id": "u1"}})
    await Identify(None).before(ctx)  # the header wins; the field still goes
    assert ctx.who.session == "run-8" and ctx.body["metadata"] == {"user_id": "u1"}


async def test_a_loop_spread_over_two_replicas_is_stopped_and_the_stop_holds_on_both(place):
    """Calls of one looping session alternate between two gateways sharing the state: each
    observes the trace the other wrote, so the repetitions add up as on one gateway."""
    first = await place.open()
    second = first if place.kind == "memory" else await place.open()  # memory: one process, one store
    replicas = [Harness(first, {"scope": "global", "on_loop": "stop"}),
                Harness(second, {"scope": "global", "on_loop": "stop"})]
    steps, outcome = looping(20), []
    for n in range(len(steps) + 1):
        try:
            outcome.append(await replicas[n % 2].call(steps[:n]))
        except GatewayError as refused:
            outcome.append(refused)
            break
    assert isinstance(outcome[-1], GatewayError) and len(outcome) <= 6  # as on one gateway: 5 calls, the 6th stopped
    for h in replicas:
        with pytest.raises(GatewayError, match="is stopped"):
            await h.call(progressing(1))
    record = await first.session_get("k1", "s1")
    assert record.trace["calls"] == len(outcome)  # every call observed exactly once


async def test_concurrent_calls_of_one_session_are_each_observed_once(place):
    """On Redis the calls interleave between reading the trace and writing it back: those
    that lose the compare-and-set observe again on the trace that won."""
    first = await place.open()
    stores = [first, first if place.kind == "memory" else await place.open()]  # memory: one process, one store
    replicas = [Harness(s, {"scope": "global", "on_loop": "warn"}) for s in stores]
    steps = progressing(12)
    await asyncio.gather(*(replicas[n % 2].call(steps[:n]) for n in range(12)))
    record = await stores[0].session_get("k1", "s1")
    assert record.calls == 12 and record.trace["calls"] == 12
