"""Retries and fallbacks, against upstreams answered by httpx.MockTransport (no network)."""

import httpx
import pytest

from tokenbrake.config import RetryConfig, UpstreamConfig
from tokenbrake.core import Endpoint, ErrorKind, Format, GatewayError, RequestContext, Target
from tokenbrake.dispatch import Dispatcher
from tokenbrake.providers.openai import OpenAIProvider

OK = {"id": "chatcmpl-1", "choices": []}


def provider(name: str, answers: list) -> OpenAIProvider:
    """An upstream that answers each call with the next item: a response, or an exception to raise."""
    calls = iter(answers)

    def handle(request: httpx.Request) -> httpx.Response:
        answer = next(calls)
        if isinstance(answer, Exception):
            raise answer
        return answer

    config = UpstreamConfig(kind="openai", base_url=f"http://{name}/v1")
    return OpenAIProvider(name, config, transport=httpx.MockTransport(handle))


def context(*upstreams: str) -> RequestContext:
    ctx = RequestContext(format=Format.OPENAI, endpoint=Endpoint.CHAT, body={}, headers={})
    ctx.targets = [Target(f"m-{u}", u, Format.OPENAI, "m") for u in upstreams]
    return ctx


class Sleeps(list):
    async def __call__(self, seconds: float) -> None:
        self.append(seconds)


def dispatcher(providers: dict, sleeps: Sleeps, attempts: int = 2) -> Dispatcher:
    policy = RetryConfig(attempts=attempts, backoff_initial_s=0.1, backoff_max_s=1.0)
    return Dispatcher(providers, lambda name: policy, sleep=sleeps)


async def call(d: Dispatcher, ctx: RequestContext) -> dict:
    return await d.first_answer(ctx, lambda p, t: p.request_json(Endpoint.CHAT, {"model": "m"}))


async def test_a_503_is_retried_and_then_succeeds():
    sleeps = Sleeps()
    d = dispatcher({"a": provider("a", [httpx.Response(503, json={}), httpx.Response(200, json=OK)])}, sleeps)
    ctx = context("a")
    assert await call(d, ctx) == OK
    assert [a.status for a in ctx.attempts] == [503, 200]
    assert len(sleeps) == 1 and 0.05 <= sleeps[0] <= 0.1


async def test_retry_after_from_the_upstream_sets_the_wait():
    sleeps = Sleeps()
    answers = [httpx.Response(429, headers={"retry-after": "0.5"}, json={}), httpx.Response(200, json=OK)]
    await call(dispatcher({"a": provider("a", answers)}, sleeps), context("a"))
    assert sleeps == [0.5]


async def test_a_400_is_not_retried_and_keeps_its_status_and_message():
    body = {"error": {"message": "messages[0].content is required", "type": "invalid_request_error"}}
    d = dispatcher({"a": provider("a", [httpx.Response(400, json=body)])}, Sleeps())
    with pytest.raises(GatewayError) as raised:
        await call(d, context("a"))
    assert raised.value.status == 400 and "messages[0].content is required" in raised.value.message


async def test_exhausted_retries_move_on_to_the_fallback():
    refused = httpx.ConnectError("connection refused")
    d = dispatcher({"a": provider("a", [refused, refused, refused]), "b": provider("b", [httpx.Response(200, json=OK)])}, Sleeps())
    ctx = context("a", "b")
    assert await call(d, ctx) == OK
    assert ctx.served.upstream == "b" and len(ctx.attempts) == 4


async def test_a_timeout_goes_to_the_fallback_without_retrying():
    d = dispatcher({"a": provider("a", [httpx.ReadTimeout("slow")]), "b": provider("b", [httpx.Response(200, json=OK)])}, Sleeps())
    ctx = context("a", "b")
    await call(d, ctx)
    assert [a.target.upstream for a in ctx.attempts] == ["a", "b"]


async def test_a_timeout_with_no_fallback_is_a_504():
    d = dispatcher({"a": provider("a", [httpx.ReadTimeout("slow")])}, Sleeps())
    with pytest.raises(GatewayError) as raised:
        await call(d, context("a"))
    assert raised.value.kind is ErrorKind.TIMEOUT and raised.value.status == 504


async def test_upstream_5xx_after_retries_is_a_502_naming_the_upstream():
    d = dispatcher({"a": provider("a", [httpx.Response(500, json={"error": {"message": "boom"}})] * 3)}, Sleeps())
    with pytest.raises(GatewayError) as raised:
        await call(d, context("a"))
    assert raised.value.status == 502 and "upstream a answered 500: boom" in raised.value.message


async def test_upstream_rejecting_the_gateways_key_is_not_blamed_on_the_client():
    d = dispatcher({"a": provider("a", [httpx.Response(401, json={"error": {"message": "bad key"}})])}, Sleeps())
    with pytest.raises(GatewayError) as raised:
        await call(d, context("a"))
    assert raised.value.status == 502


async def test_a_non_json_body_is_an_upstream_error():
    d = dispatcher({"a": provider("a", [httpx.Response(200, content=b"<html>oops")])}, Sleeps())
    with pytest.raises(GatewayError) as raised:
        await call(d, context("a"))
    assert raised.value.status == 502 and "not JSON" in raised.value.message
