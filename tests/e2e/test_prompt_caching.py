"""Provider prompt caching on autopilot, through a real gateway, the official SDKs and the
emulator: an agent on an Anthropic model pays cached prices from its second turn without
changing a line, through either front door and streamed; its ledger rows carry the cached
and written tokens and cost less than the same turns with the autopilot off; a client's own
breakpoints go upstream as set; an OpenAI upstream gets a prompt_cache_key."""

from __future__ import annotations

import asyncio
import time
import uuid
from decimal import Decimal

import anthropic
import httpx
import openai
import pytest
from gateway_setup import MASTER_KEY, UPSTREAM_KEYS, create_key, gateway_config, write_config

from tokenbrake.storage import open_database
from tokenbrake.tools.launch import ChildServer

MANUAL = " ".join(f"Rule {i}: keep answers short and cite the file you read." for i in range(220))  # ~2,600 tokens
READ_FILE = {"name": "read_file", "description": "Read a file of the repository.",
             "input_schema": {"type": "object", "properties": {"path": {"type": "string"}}, "required": ["path"]}}


@pytest.fixture(scope="module")
def cached(emulator, tmp_path_factory):
    """A gateway with a Sonnet served with the autopilot (the default) and without it."""
    folder = tmp_path_factory.mktemp("prompt-caching")
    database = f"sqlite:///{folder / 'ledger.db'}"
    config = gateway_config(emulator.url, database)
    config["ledger"] = {"flush_interval_s": 0.05}
    config["upstreams"]["emu-anthropic-plain"] = {**config["upstreams"]["emu-anthropic"], "prompt_caching": "off"}
    config["models"]["sonnet"] = {"upstream": "emu-anthropic", "model": "claude-sonnet-4-5"}
    config["models"]["sonnet-plain"] = {"upstream": "emu-anthropic-plain", "model": "claude-sonnet-4-5"}
    path = write_config(folder, config)
    key = create_key(path, "agent-app", "--team", "agents")
    with ChildServer(["serve", "--config", str(path)], quiet=True,
                     env={**UPSTREAM_KEYS, "TOKENBRAKE_MASTER_KEY": MASTER_KEY}) as gateway:
        yield gateway, database, key


@pytest.fixture
def an(cached):
    gateway, _, key = cached
    with anthropic.Anthropic(base_url=gateway.url, api_key=key, max_retries=0) as client:
        yield client


@pytest.fixture
def oa(cached):
    gateway, _, key = cached
    with openai.OpenAI(base_url=gateway.url + "/v1", api_key=key, max_retries=0) as client:
        yield client


def system() -> str:
    """A long system prompt no other test shares (the emulator's cache lives for the session)."""
    return f"Session {uuid.uuid4()}. {MANUAL}"


def agent_turns(client: anthropic.Anthropic, model: str, prompt: str, turns: int) -> list[tuple[anthropic.types.Message, str]]:
    """An agent loop as an SDK user writes it: no cache_control anywhere. The model asks for a
    file and gets its contents back, or answers, and is asked to go on."""
    messages: list[dict] = [{"role": "user", "content": "Find why the test fails."}]
    replies = []
    for n in range(turns):
        raw = client.messages.with_raw_response.create(model=model, max_tokens=200, system=prompt, tools=[READ_FILE],
                                                       messages=messages)
        reply = raw.parse()
        replies.append((reply, raw.headers["x-request-id"]))
        messages.append({"role": "assistant", "content": [block.model_dump(exclude_none=True) for block in reply.content]})
        call = next((block for block in reply.content if block.type == "tool_use"), None)
        if call is None:
            messages.append({"role": "user", "content": f"Go on with file {n + 1}."})
        else:
            messages.append({"role": "user", "content": [{"type": "tool_result", "tool_use_id": call.id,
                                                          "content": f"contents of file {n}: " + "x = 1\n" * 40}]})
    return replies


def rows(database: str, request_ids: list[str]) -> list:
    """The ledger rows of these requests, in their order, once the writer has them all."""
    async def read():
        db = await open_database(database)
        try:
            return {r.request_id: r for r in await db.ledger.rows(limit=1000)}
        finally:
            await db.close()

    deadline = time.monotonic() + 5
    while not set(request_ids) <= set(found := asyncio.run(read())) and time.monotonic() < deadline:
        time.sleep(0.05)
    return [found[i] for i in request_ids]


def test_agents_second_turn_reads_the_cache_without_changing_a_line(an):
    replies = [reply for reply, _ in agent_turns(an, "sonnet", system(), 4)]
    first = replies[0].usage
    assert first.cache_creation_input_tokens > 2000 and first.cache_read_input_tokens == 0
    for previous, reply in zip(replies, replies[1:], strict=False):
        # each turn reads all the previous turn had, and writes only what was added since
        assert reply.usage.cache_read_input_tokens == previous.usage.cache_read_input_tokens + previous.usage.cache_creation_input_tokens
        assert 0 < reply.usage.cache_creation_input_tokens < 300


def test_ledger_rows_show_cached_tokens_and_a_lower_cost(cached, an):
    _, database, _ = cached
    prompt = system()
    on = rows(database, [request for _, request in agent_turns(an, "sonnet", prompt, 4)])
    off = rows(database, [request for _, request in agent_turns(an, "sonnet-plain", prompt, 4)])
    assert [r.cached_input_tokens > 0 for r in on] == [False, True, True, True]
    assert on[0].cache_write_tokens > 2000
    assert all(r.cached_input_tokens == 0 and r.cache_write_tokens == 0 for r in off)
    cost_on, cost_off = sum((r.cost_usd for r in on), Decimal(0)), sum((r.cost_usd for r in off), Decimal(0))
    assert cost_on < cost_off * Decimal("0.6")
    total = [r.input_tokens + r.cached_input_tokens + r.cache_write_tokens for r in on]
    assert total == [r.input_tokens for r in off]  # the same input, billed differently


def test_openai_sdk_to_an_anthropic_model_gets_cached_tokens(oa):
    messages: list[dict] = [{"role": "system", "content": system()}]
    cached = []
    for n in range(3):
        messages.append({"role": "user", "content": f"Question {n}: what does rule {n} say?"})
        reply = oa.chat.completions.create(model="sonnet", messages=messages, max_tokens=100)
        cached.append(reply.usage.prompt_tokens_details.cached_tokens)
        messages.append({"role": "assistant", "content": reply.choices[0].message.content})
    assert cached[0] == 0 and cached[1] > 2000 and cached[2] > cached[1]


def test_streamed_turn_reports_the_cache_read(an):
    prompt = system()
    agent_turns(an, "sonnet", prompt, 1)
    messages = [{"role": "user", "content": "Find why the test fails."}]
    with an.messages.stream(model="sonnet", max_tokens=100, system=prompt, tools=[READ_FILE], messages=messages) as stream:
        final = stream.get_final_message()
    assert final.usage.cache_read_input_tokens > 2000


def test_clients_own_breakpoints_reach_the_upstream_as_set(an, emulator):
    marker = str(uuid.uuid4())
    block = {"type": "text", "text": f"{marker} {MANUAL}", "cache_control": {"type": "ephemeral", "ttl": "1h"}}
    an.messages.create(model="sonnet", max_tokens=50, system=[block], tools=[READ_FILE],
                       messages=[{"role": "user", "content": [{"type": "text", "text": "hi"}]}])
    sent = [r for r in httpx.get(emulator.url + "/_emulator/requests").json() if marker in str(r["body"])][-1]["body"]
    assert sent["system"] == [block] and "cache_control" not in sent["tools"][0]
    assert "cache_control" not in sent["messages"][0]["content"][0]


def test_openai_upstream_is_sent_a_prompt_cache_key_and_caches(cached, oa, emulator):
    _, database, _ = cached
    messages = [{"role": "system", "content": system()}, {"role": "user", "content": "first"}]
    first = oa.chat.completions.with_raw_response.create(model="gpt-4o", messages=messages)
    second = oa.chat.completions.with_raw_response.create(model="gpt-4o", messages=[*messages, {"role": "assistant", "content": "ok"},
                                                                                    {"role": "user", "content": "second"}])
    sent = [r for r in httpx.get(emulator.url + "/_emulator/requests").json() if "second" in str(r["body"])][-1]["body"]
    assert sent["prompt_cache_key"].startswith("tb-")
    assert second.parse().usage.prompt_tokens_details.cached_tokens >= 1024
    one, two = rows(database, [first.headers["x-request-id"], second.headers["x-request-id"]])
    assert one.cached_input_tokens == 0 and two.cached_input_tokens >= 1024


def test_openai_sdk_stream_to_an_anthropic_model_reports_cached_tokens(oa):
    messages = [{"role": "system", "content": system()}, {"role": "user", "content": "first"}]
    oa.chat.completions.create(model="sonnet", messages=messages, max_tokens=50)
    stream = oa.chat.completions.create(model="sonnet", messages=[*messages, {"role": "assistant", "content": "ok"},
                                                                  {"role": "user", "content": "second"}],
                                        max_tokens=50, stream=True, stream_options={"include_usage": True})
    usage = [chunk.usage for chunk in stream if chunk.usage is not None][-1]
    assert usage.prompt_tokens_details.cached_tokens > 2000
