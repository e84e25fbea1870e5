"""Rate limits and per-request caps through real gateways and the official SDKs, with the
limits kept in memory and in Redis (the same tests), and two gateways sharing Redis.

One gateway per backend serves every test; each test uses its own end user (`user:NAME`
limits), so the tests do not count against each other's limits."""

from __future__ import annotations

import asyncio
import json
import secrets
import time
import uuid

import anthropic
import httpx
import openai
import pytest
import redis
from gateway_setup import MASTER_KEY, create_key, gateway_config, write_config
from services import redis_url

from tokenbrake.tools.launch import ChildServer

REDIS_URL = redis_url()
LIMITS = [
    {"scope": "user:rpm", "requests_per_minute": 2},
    {"scope": "user:headers", "requests_per_minute": 50, "tokens_per_minute": 100_000},
    {"scope": "user:tpm", "tokens_per_minute": 300},
    {"scope": "user:conc", "concurrent": 2},
    {"scope": "user:paster", "max_input_tokens": 100},
    {"scope": "model:capped", "max_output_tokens": 30},
    {"scope": "model:capped-local", "max_output_tokens": 30},
    {"scope": "user:shared", "requests_per_minute": 4},
    {"scope": "user:tenants", "requests_per_minute": 1},
]


class Setup:
    """A running gateway with LIMITS, the key it knows, and its config (to start a second one)."""

    def __init__(self, emulator: ChildServer, folder, state: str) -> None:
        config = gateway_config(emulator.url, f"sqlite:///{folder / 'ledger.db'}")
        config["models"]["capped"] = {"upstream": "emu-openai", "model": "capped-upstream", "free": True}
        config["models"]["capped-local"] = {"upstream": "emu-local", "model": "capped-upstream", "free": True}
        config["state"] = state
        config["limits"] = LIMITS
        self.path = write_config(folder, config)
        self.key = create_key(self.path, "limited", "--team", "rl")
        self.other_key = create_key(self.path, "other-tenant")  # no team: a tenant of its own
        self.gateway = self.start()

    def start(self) -> ChildServer:
        return ChildServer(["serve", "--config", str(self.path)], quiet=True, env={"TOKENBRAKE_MASTER_KEY": MASTER_KEY})

    def openai(self, url: str | None = None) -> openai.OpenAI:
        return openai.OpenAI(base_url=(url or self.gateway.url) + "/v1", api_key=self.key, max_retries=0)

    def anthropic(self) -> anthropic.Anthropic:
        return anthropic.Anthropic(base_url=self.gateway.url, api_key=self.key, max_retries=0)


@pytest.fixture(scope="module", params=["memory", "redis"])
def setup(request, emulator, tmp_path_factory):
    prefix = f"tbe2e-rl-{secrets.token_hex(6)}:"
    state = "memory://" if request.param == "memory" else f"{REDIS_URL}?prefix={prefix}"
    built = Setup(emulator, tmp_path_factory.mktemp(f"rate-limits-{request.param}"), state)
    yield built
    built.gateway.stop()
    if request.param == "redis":
        client = redis.Redis.from_url(REDIS_URL)
        keys = list(client.scan_iter(match=prefix + "*"))
        if keys:
            client.delete(*keys)
        client.close()


def said(text: str) -> list[dict]:
    return [{"role": "user", "content": text}]


def sent_upstream(emulator: ChildServer, marker: str) -> dict:
    [seen] = [r for r in httpx.get(emulator.url + "/_emulator/requests").json() if marker in json.dumps(r["body"])]
    return seen["body"]


def test_requests_over_the_rpm_limit_are_each_sdks_rate_limit_error(setup):
    oa, an = setup.openai(), setup.anthropic()
    oa.chat.completions.create(model="gpt-4o", max_tokens=5, user="rpm", messages=said("one"))
    an.messages.create(model="claude-fast", max_tokens=5, metadata={"user_id": "rpm"}, messages=said("two"))
    with pytest.raises(openai.RateLimitError) as refused:
        oa.chat.completions.create(model="gpt-4o", max_tokens=5, user="rpm", messages=said("three"))
    message, headers = refused.value.message, refused.value.response.headers
    assert "Rate limit reached for user:rpm in team:rl on requests per minute (requests_per_minute): Limit 2, Used 2" in message
    assert "Please try again in" in message
    assert 0 < int(headers["retry-after"]) <= 60
    assert headers["x-ratelimit-limit-requests"] == "2" and headers["x-ratelimit-remaining-requests"] == "0"
    with pytest.raises(anthropic.RateLimitError, match="requests_per_minute") as refused_too:
        an.messages.create(model="claude-fast", max_tokens=5, metadata={"user_id": "rpm"}, messages=said("four"))
    assert int(refused_too.value.response.headers["retry-after"]) > 0


def test_another_tenants_end_user_of_the_same_name_is_not_held_to_this_ones_rate(setup):
    mine = setup.openai()
    theirs = openai.OpenAI(base_url=setup.gateway.url + "/v1", api_key=setup.other_key, max_retries=0)
    mine.chat.completions.create(model="gpt-4o", max_tokens=5, user="tenants", messages=said("one"))
    with pytest.raises(openai.RateLimitError, match=r"for user:tenants in team:rl on requests per minute"):
        mine.chat.completions.create(model="gpt-4o", max_tokens=5, user="tenants", messages=said("two"))
    assert theirs.chat.completions.create(model="gpt-4o", max_tokens=5, user="tenants", messages=said("one")).choices
    with pytest.raises(openai.RateLimitError, match=r"for user:tenants in key:other-tenant on requests") as refused:
        theirs.chat.completions.create(model="gpt-4o", max_tokens=5, user="tenants", messages=said("two"))
    assert "Used 1" in refused.value.message  # its own request only, not the other tenant's too


def test_every_response_carries_openai_style_rate_limit_headers(setup):
    raw = setup.openai().chat.completions.with_raw_response.create(
        model="gpt-4o", max_tokens=20, user="headers", messages=said("hello"))
    assert raw.parse().choices[0].message.content
    assert raw.headers["x-ratelimit-limit-requests"] == "50"
    assert raw.headers["x-ratelimit-remaining-requests"] == "49"
    assert raw.headers["x-ratelimit-reset-requests"] == "1m0s"
    assert raw.headers["x-ratelimit-limit-tokens"] == "100000"
    assert 100_000 - 40 < int(raw.headers["x-ratelimit-remaining-tokens"]) < 100_000 - 20  # input + 20
    streamed = setup.anthropic().messages.with_raw_response.create(
        model="claude-fast", max_tokens=20, stream=True, metadata={"user_id": "headers"}, messages=said("hi"))
    assert streamed.headers["x-ratelimit-remaining-requests"] == "48"
    for _ in streamed.parse():
        pass


def test_tokens_per_minute_count_input_and_output_cap_at_admission(setup):
    oa = setup.openai()
    for _ in range(2):  # ~10 input + 100 output cap each: 220 of 300
        oa.chat.completions.create(model="gpt-4o", max_tokens=100, user="tpm", messages=said("[[emulator: tokens=3]]"))
    with pytest.raises(openai.RateLimitError) as refused:
        oa.chat.completions.create(model="gpt-4o", max_tokens=100, user="tpm", messages=said("[[emulator: tokens=3]]"))
    assert "on tokens per minute (tokens_per_minute): Limit 300" in refused.value.message
    assert "+ output cap 100)" in refused.value.message
    assert int(refused.value.response.headers["retry-after"]) > 0
    oa.chat.completions.create(model="gpt-4o", max_tokens=20, user="tpm", messages=said("a smaller one fits"))


async def test_concurrent_requests_beyond_the_limit_are_refused_until_one_finishes(setup):
    async with openai.AsyncOpenAI(base_url=setup.gateway.url + "/v1", api_key=setup.key, max_retries=0) as oa:
        async def slow_stream():
            return await oa.chat.completions.create(model="gpt-4o", max_tokens=100, user="conc", stream=True,
                                                    messages=said("[[emulator: tokens=20 tps=20]]"))

        held = [await slow_stream(), await slow_stream()]  # both admitted: their headers have arrived
        with pytest.raises(openai.RateLimitError, match=r"Concurrency limit reached for user:conc in team:rl: at most 2"):
            await slow_stream()
        await asyncio.gather(*(drain(stream) for stream in held))
        await oa.chat.completions.create(model="gpt-4o", max_tokens=5, user="conc", messages=said("admitted again"))


async def drain(stream) -> None:
    async for _ in stream:
        pass


async def test_a_stream_the_client_leaves_gives_its_slot_back(setup):
    async with openai.AsyncOpenAI(base_url=setup.gateway.url + "/v1", api_key=setup.key, max_retries=0) as oa:
        async def slow_stream():
            return await oa.chat.completions.create(model="gpt-4o", max_tokens=100, user="conc", stream=True,
                                                    messages=said("[[emulator: tokens=100 tps=20]]"))

        held = [await slow_stream(), await slow_stream()]
        await held[0].close()
        deadline = time.monotonic() + 5
        while True:  # the gateway notices the client left within moments
            try:
                await oa.chat.completions.create(model="gpt-4o", max_tokens=5, user="conc", messages=said("quick"))
                break
            except openai.RateLimitError:
                assert time.monotonic() < deadline, "the slot of the stream the client left was never released"
                await asyncio.sleep(0.05)
        await held[1].close()


def test_input_over_the_cap_is_refused_stating_the_count_and_the_cap(setup):
    document = "lorem ipsum dolor sit amet " * 40
    with pytest.raises(openai.BadRequestError) as refused:
        setup.openai().chat.completions.create(model="gpt-4o", max_tokens=5, user="paster", messages=said(document))
    assert refused.value.code == "context_length_exceeded"
    assert "more than the 100 allowed per request for user:paster in team:rl (max_input_tokens)" in refused.value.message
    assert int(refused.value.message.split(" has ")[1].split()[0]) > 100
    with pytest.raises(anthropic.BadRequestError, match=r"This request has \d+ input tokens, more than the 100"):
        setup.anthropic().messages.create(model="claude-fast", max_tokens=5, metadata={"user_id": "paster"},
                                          messages=said(document))
    setup.openai().chat.completions.create(model="gpt-4o", max_tokens=5, user="paster", messages=said("short"))


@pytest.mark.parametrize("model, field", [("capped", "max_completion_tokens"), ("capped-local", "max_tokens")])
def test_an_output_cap_clamps_max_tokens_before_the_upstream_sees_it(setup, emulator, model, field):
    """Clamped, and sent in the field the upstream reads: OpenAI's API (the emulator posing as
    it) reads max_completion_tokens, a local server max_tokens."""
    marker = uuid.uuid4().hex[:8]
    reply = setup.openai().chat.completions.create(model=model, max_tokens=500,
                                                   messages=said(f"[[emulator: id={marker} tokens=200]]"))
    sent = sent_upstream(emulator, marker)
    # OpenAI's own API also gets the prompt-cache key (upstream/prompt_caching.py); a local server not
    assert ("prompt_cache_key" in sent) == (field == "max_completion_tokens")
    sent.pop("prompt_cache_key", None)
    assert sent | {"messages": None} == {"model": "capped-upstream", "messages": None, field: 30}
    assert reply.usage.completion_tokens == 30 and reply.choices[0].finish_reason == "length"
    marker = uuid.uuid4().hex[:8]
    setup.openai().chat.completions.create(model=model, messages=said(f"[[emulator: id={marker} tokens=5]]"))
    assert sent_upstream(emulator, marker)[field] == 30  # a request with no cap of its own gets the cap
    marker = uuid.uuid4().hex[:8]
    setup.anthropic().messages.create(model=model, max_tokens=10,
                                      messages=said(f"[[emulator: id={marker} tokens=5]]"))
    sent = sent_upstream(emulator, marker)
    assert sent[field] == 10 and len({"max_tokens", "max_completion_tokens"} & sent.keys()) == 1  # below the cap


@pytest.mark.parametrize("setup", ["redis"], indirect=True)
def test_two_gateways_sharing_redis_enforce_one_rpm_limit_together(setup):
    with setup.start() as second:
        clients = [setup.openai(), setup.openai(second.url)]
        outcomes = []
        for i in range(8):
            try:
                clients[i % 2].chat.completions.create(model="gpt-4o", max_tokens=5, user="shared", messages=said("hi"))
                outcomes.append("ok")
            except openai.RateLimitError:
                outcomes.append("refused")
    assert outcomes == ["ok"] * 4 + ["refused"] * 4
