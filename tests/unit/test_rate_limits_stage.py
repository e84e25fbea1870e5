"""The RateLimits stage on the in-process store with a fake clock: what it counts, the
headers it sets, its refusals, and the concurrency slots it takes and gives back."""

from __future__ import annotations

import pytest
from limits_backends import FakeClock, acquire_slot

from tokenbrake.config import parse_config
from tokenbrake.core import Attribution, Endpoint, ErrorKind, Format, GatewayError, RequestContext, Target
from tokenbrake.limits import open_limit_store
from tokenbrake.stages.rate_limits import RateLimits
from tokenbrake.wire.retry_after import duration, retry_headers

RAW = {
    "upstreams": {"u": {"kind": "openai", "base_url": "http://127.0.0.1:9/v1"}},
    "models": {"big": {"upstream": "u", "free": True, "default_max_tokens": 100}},
}


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
async def store(clock):
    store = await open_limit_store("memory://", clock=clock)
    yield store
    await store.close()


def stage(store, *limits: dict) -> RateLimits:
    return RateLimits(parse_config({**RAW, "limits": list(limits)}), store)


def request(max_tokens: int | None = 10, endpoint: Endpoint = Endpoint.CHAT, **who) -> RequestContext:
    body = {"model": "big", "messages": [{"role": "user", "content": "hello"}]}
    if max_tokens is not None:
        body["max_tokens"] = max_tokens
    ctx = RequestContext(format=Format.OPENAI, endpoint=endpoint, body=body, headers={},
                         who=Attribution(**({"key_name": "k1", "team": "search"} | who)))
    ctx.requested_model, ctx.targets = "big", [Target("big", "u", Format.OPENAI, "big")]
    return ctx


async def admit(limits: RateLimits, ctx: RequestContext | None = None) -> RequestContext:
    ctx = ctx or request()
    await limits.before(ctx)
    return ctx


async def test_requests_per_minute_refuses_the_one_over_naming_the_limit_and_when_to_retry(store, clock):
    limits = stage(store, {"scope": "key:*", "requests_per_minute": 2})
    await admit(limits)
    clock.advance(15)
    await admit(limits)
    with pytest.raises(GatewayError) as refused:
        await admit(limits)
    error = refused.value
    assert (error.kind, error.status, error.code, error.limit) == (
        ErrorKind.RATE_LIMIT, 429, "rate_limit_exceeded", "key:* requests_per_minute")
    assert error.message == ("Rate limit reached for key:k1 (limit key:*) on requests per minute "
                             "(requests_per_minute): Limit 2, Used 2, Requested 1. Please try again in 45s.")
    assert error.headers == {"retry-after": "45", "retry-after-ms": "45000"}


async def test_success_headers_show_the_tightest_limit_of_each_kind(store, clock):
    limits = stage(store, {"scope": "team:search", "requests_per_minute": 100, "tokens_per_minute": 1000},
                   {"scope": "key:k1", "requests_per_minute": 3})
    first = await admit(limits)
    clock.advance(0.25)
    second = await admit(limits)
    assert first.response_headers["x-ratelimit-limit-requests"] == "3"
    assert second.response_headers == {
        "x-ratelimit-limit-requests": "3", "x-ratelimit-remaining-requests": "1", "x-ratelimit-reset-requests": "1m0s",
        "x-ratelimit-limit-tokens": "1000", "x-ratelimit-remaining-tokens": str(1000 - 2 * (second.input_tokens + 10)),
        "x-ratelimit-reset-tokens": "1m0s",  # until the last hit leaves
    }


async def test_a_refusal_carries_the_rate_limit_headers_too(store):
    limits = stage(store, {"scope": "global", "requests_per_minute": 1})
    await admit(limits)
    ctx = request()
    with pytest.raises(GatewayError):
        await limits.before(ctx)
    assert ctx.response_headers["x-ratelimit-remaining-requests"] == "0"
    assert ctx.response_headers["x-ratelimit-reset-requests"] == "1m0s"


async def test_tokens_per_minute_counts_input_plus_output_cap_at_admission(store):
    limits = stage(store, {"scope": "global", "tokens_per_minute": 300})
    first = await admit(limits, request(max_tokens=100))
    input_tokens = first.input_tokens
    second = await admit(limits, request(max_tokens=None))  # the model's default_max_tokens: 100
    assert second.response_headers["x-ratelimit-remaining-tokens"] == str(300 - 2 * (input_tokens + 100))
    with pytest.raises(GatewayError, match=rf"Requested {input_tokens + 100} \(counted input {input_tokens} "
                                           rf"\+ output cap 100\)\. Please try again in 1m0s"):
        await admit(limits, request(max_tokens=100))


async def test_a_request_alone_over_the_token_limit_is_told_it_never_fits(store):
    limits = stage(store, {"scope": "global", "tokens_per_minute": 50})
    with pytest.raises(GatewayError, match="will never fit: lower max_tokens") as refused:
        await admit(limits, request(max_tokens=100))
    assert refused.value.status == 429 and "retry-after" not in refused.value.headers


async def test_concurrency_refuses_beyond_the_limit_until_a_request_finishes(store):
    limits = stage(store, {"scope": "user:*", "concurrent": 2})
    held = [await admit(limits, request(user="ana")) for _ in range(2)]
    await admit(limits, request(user="bob"))  # another user has slots of their own
    with pytest.raises(GatewayError, match=r"at most 2 requests in flight") as refused:
        await admit(limits, request(user="ana"))
    assert refused.value.headers["retry-after"] == "1"
    await limits.after(held[0])
    await admit(limits, request(user="ana"))


async def test_the_slots_a_request_holds_are_on_its_context_until_its_after_step(store):
    limits = stage(store, {"scope": "user:*", "concurrent": 1}, {"scope": "global", "concurrent": 5})
    ctx = await admit(limits, request(user="ana"))
    assert ctx.concurrency_slots == ("team:search/user:ana", "global")
    await limits.after(ctx)
    assert ctx.concurrency_slots == ()
    await limits.after(ctx)  # a second after step gives nothing back twice
    assert await acquire_slot(store, "conc:team:search/user:ana", 1, "probe", ttl_s=10)


async def test_another_tenants_user_of_the_same_name_has_a_rate_of_their_own(store):
    limits = stage(store, {"scope": "user:*", "requests_per_minute": 1})
    await admit(limits, request(user="ana"))
    await admit(limits, request(user="ana", team=None))  # key k1 with no team: a tenant apart from team search
    with pytest.raises(GatewayError, match=r"for user:ana in team:search \(limit user:\*\) on requests per minute"):
        await admit(limits, request(user="ana"))


async def test_a_limit_across_tenants_counts_every_tenants_user_together(store):
    limits = stage(store, {"scope": "user:*", "requests_per_minute": 1, "across_tenants": True})
    await admit(limits, request(user="ana"))
    with pytest.raises(GatewayError, match=r"for user:ana \(limit user:\*\) on requests per minute"):
        await admit(limits, request(user="ana", team="ads"))


async def test_a_request_refused_by_a_rate_limit_gives_its_slot_back(store):
    limits = stage(store, {"scope": "global", "concurrent": 1, "requests_per_minute": 1})
    await limits.after(await admit(limits))
    with pytest.raises(GatewayError, match="requests per minute"):
        await admit(limits)
    assert await acquire_slot(store, "conc:global", 1, "probe", ttl_s=10)  # the refused one holds none


class NoCalls:
    def __getattr__(self, name):
        raise AssertionError(f"store.{name} called")


async def test_no_store_call_when_no_limit_applies():
    for limits in (stage(NoCalls()), stage(NoCalls(), {"scope": "team:ads", "requests_per_minute": 1},
                                           {"scope": "global", "max_input_tokens": 10})):
        ctx = await admit(limits)
        await limits.after(ctx)
        assert ctx.response_headers == {}


async def test_counting_tokens_is_not_rate_limited():
    limits = stage(NoCalls(), {"scope": "global", "requests_per_minute": 1})
    await admit(limits, request(endpoint=Endpoint.COUNT_TOKENS))


async def test_embeddings_count_their_input_tokens(store):
    limits = stage(store, {"scope": "global", "tokens_per_minute": 100})
    ctx = RequestContext(format=Format.OPENAI, endpoint=Endpoint.EMBEDDINGS, headers={},
                         body={"model": "big", "input": ["one two three", [1, 2, 3, 4]]})
    ctx.targets = [Target("big", "u", Format.OPENAI, "big")]
    await admit(limits, ctx)
    assert ctx.response_headers["x-ratelimit-remaining-tokens"] == str(100 - 7)


@pytest.mark.parametrize(("seconds", "text"), [(0, "0s"), (0.0201, "21ms"), (1, "1s"), (1.5, "1.5s"),
                                               (60, "1m0s"), (360.25, "6m0.25s"), (3723, "1h2m3s")])
def test_durations_are_written_like_openais(seconds, text):
    assert duration(seconds) == text


def test_retry_after_is_whole_seconds_rounded_up_and_never_zero():
    assert retry_headers(0.2) == {"retry-after": "1", "retry-after-ms": "200"}
    assert retry_headers(12.3) == {"retry-after": "13", "retry-after-ms": "12300"}
