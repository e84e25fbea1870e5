"""The emulator's prompt caches: Anthropic's breakpoints (write on the first request, read on a
repeat within the TTL, the model's minimum, at most 4) and OpenAI's automatic prefix cache
(from 1,024 tokens, in 128-token steps, by prompt_cache_key), in process and over HTTP."""

from __future__ import annotations

import httpx
import pytest

from tokenbrake.tools.emulator import EmulatorSettings, build_app
from tokenbrake.tools.emulator.errors import EmulatorError
from tokenbrake.tools.emulator.prompt_cache import PromptCache, prefix_tokens
from tokenbrake.wire.tokens import count_request_input

MARK = {"type": "ephemeral"}
LONG = " ".join(f"rule {i}: answer plainly." for i in range(400))  # about 2,400 tokens


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def anthropic(system_mark: bool = True, question: str = "hi", model: str = "claude-sonnet-4-5", **extra) -> dict:
    system = [{"type": "text", "text": LONG, **({"cache_control": MARK} if system_mark else {})}]
    return {"model": model, "max_tokens": 100, "system": system,
            "messages": [{"role": "user", "content": question}], **extra}


def split(cache: PromptCache, body: dict) -> tuple[int, int, int]:
    total = count_request_input("anthropic", body)
    read, written = cache.anthropic(body, total)
    return total - read - written, read, written


def test_first_request_writes_the_prefix_up_to_the_breakpoint():
    body = anthropic()
    rest, read, written = split(PromptCache(), body)
    assert (read, written) == (0, prefix_tokens(body, ("system", 0, 0)))
    assert rest > 0


def test_repeat_within_ttl_reads_what_the_first_wrote():
    cache = PromptCache()
    _, _, written = split(cache, anthropic())
    rest, read, again = split(cache, anthropic(question="another question"))
    assert (read, again) == (written, 0)


def test_entry_expires_after_five_minutes_unless_read():
    clock = Clock()
    cache = PromptCache(clock)
    split(cache, anthropic())
    clock.now += 299
    assert split(cache, anthropic())[1] > 0  # read, which refreshes it
    clock.now += 299
    assert split(cache, anthropic())[1] > 0
    clock.now += 301
    assert split(cache, anthropic())[1:] == (0, prefix_tokens(anthropic(), ("system", 0, 0)))


def test_one_hour_ttl_outlives_five_minutes():
    clock = Clock()
    cache = PromptCache(clock)
    body = anthropic()
    body["system"][0]["cache_control"] = {"type": "ephemeral", "ttl": "1h"}
    split(cache, body)
    clock.now += 3000
    assert split(cache, body)[1] > 0


def test_without_breakpoints_nothing_is_cached():
    cache = PromptCache()
    assert split(cache, anthropic(system_mark=False))[1:] == (0, 0)
    assert split(cache, anthropic(system_mark=False))[1:] == (0, 0)


def test_prefix_below_the_models_minimum_is_not_cached():
    body = anthropic()
    body["system"][0]["text"] = " ".join(["word"] * 1500)  # over 1,024, under Haiku 3.5's 2,048
    cache = PromptCache()
    assert split(cache, {**body, "model": "claude-3-5-haiku-latest"})[1:] == (0, 0)
    assert split(cache, body)[2] > 0  # a Sonnet caches it


def test_more_than_four_breakpoints_is_refused_as_the_api_does():
    tools = [{"name": f"t{i}", "input_schema": {"type": "object"}, "cache_control": MARK} for i in range(4)]
    with pytest.raises(EmulatorError) as raised:
        PromptCache().anthropic(anthropic(tools=tools), 5000)
    assert raised.value.status == 400
    assert "maximum of 4 blocks with cache_control" in raised.value.message


def test_breakpoint_on_the_last_message_reads_the_previous_turns_entry():
    """An agent marking its last message each turn: turn 2 reads turn 1's prefix through the
    lookback from its own, later breakpoint, and writes only what turn 1 added."""
    cache = PromptCache()
    turn1 = anthropic(system_mark=False)
    turn1["messages"] = [{"role": "user", "content": [{"type": "text", "text": LONG, "cache_control": MARK}]}]
    _, _, written1 = split(cache, turn1)
    first = {"role": "user", "content": [{"type": "text", "text": LONG}]}
    turn2 = {**turn1, "messages": [first, {"role": "assistant", "content": "done"},
                                   {"role": "user", "content": [{"type": "text", "text": "next", "cache_control": MARK}]}]}
    _, read2, written2 = split(cache, turn2)
    assert read2 == written1
    assert written2 == prefix_tokens(turn2, ("messages", 2, 0)) - read2


def test_changed_prefix_misses():
    cache = PromptCache()
    split(cache, anthropic())
    changed = anthropic()
    changed["system"][0]["text"] = "Today is Tuesday. " + LONG
    assert split(cache, changed)[1] == 0


def openai(question: str = "hi", key: str | None = None) -> dict:
    body = {"model": "gpt-4o", "messages": [{"role": "system", "content": LONG}, {"role": "user", "content": question}]}
    return body if key is None else {**body, "prompt_cache_key": key}


def test_openai_repeated_prefix_is_cached_in_128_token_steps():
    cache = PromptCache()
    first = openai()
    assert cache.openai_chat(first, count_request_input("openai", first)) == 0
    second = openai("a different question")
    cached = cache.openai_chat(second, count_request_input("openai", second))
    assert cached >= 1024 and (cached - 1024) % 128 == 0
    assert cached <= count_request_input("openai", {"messages": second["messages"][:1]})


def test_openai_prompt_under_1024_tokens_is_never_cached():
    cache = PromptCache()
    body = {"model": "gpt-4o", "messages": [{"role": "user", "content": "short " * 100}]}
    for _ in range(2):
        assert cache.openai_chat(body, count_request_input("openai", body)) == 0


def test_openai_prompt_cache_key_separates_entries():
    cache = PromptCache()
    cache.openai_chat(openai(key="team-a"), 3000)
    assert cache.openai_chat(openai("q", key="team-b"), 3000) == 0
    assert cache.openai_chat(openai("q", key="team-a"), 3000) > 0


async def post(settings: EmulatorSettings, path: str, bodies: list[dict]) -> list[dict]:
    transport = httpx.ASGITransport(app=build_app(settings))
    async with httpx.AsyncClient(transport=transport, base_url="http://emulator") as c:
        return [(await c.post(path, json=body)).json() for body in bodies]


async def test_anthropic_usage_over_http_reports_creation_then_read():
    first, second = await post(EmulatorSettings(), "/v1/messages", [anthropic(), anthropic("again")])
    assert first["usage"]["cache_creation_input_tokens"] > 0 and first["usage"]["cache_read_input_tokens"] == 0
    assert second["usage"]["cache_read_input_tokens"] == first["usage"]["cache_creation_input_tokens"]
    assert second["usage"]["cache_creation_input_tokens"] == 0


async def test_five_breakpoints_over_http_are_a_400_in_anthropics_format():
    tools = [{"name": f"t{i}", "input_schema": {"type": "object"}, "cache_control": MARK} for i in range(4)]
    (reply,) = await post(EmulatorSettings(), "/v1/messages", [anthropic(tools=tools)])
    assert reply["type"] == "error" and reply["error"]["type"] == "invalid_request_error"


async def test_openai_chat_and_responses_report_cached_tokens_over_http():
    chats = await post(EmulatorSettings(), "/v1/chat/completions", [openai(), openai("b")])
    assert chats[0]["usage"]["prompt_tokens_details"]["cached_tokens"] == 0
    assert chats[1]["usage"]["prompt_tokens_details"]["cached_tokens"] >= 1024
    items = [{"role": "user", "content": LONG}]
    bodies = [{"model": "gpt-4o", "input": items}, {"model": "gpt-4o", "input": [*items, {"role": "user", "content": "b"}]}]
    responses = await post(EmulatorSettings(), "/v1/responses", bodies)
    assert responses[1]["usage"]["input_tokens_details"]["cached_tokens"] >= 1024


async def test_prompt_caching_off_reports_no_cached_input():
    first, second = await post(EmulatorSettings(prompt_caching=False), "/v1/messages", [anthropic(), anthropic()])
    assert second["usage"]["cache_read_input_tokens"] == 0 and first["usage"]["cache_creation_input_tokens"] == 0


def test_string_content_and_its_text_block_are_the_same_prefix():
    cache = PromptCache()
    as_block = anthropic(system_mark=False)
    as_block["messages"] = [{"role": "user", "content": [{"type": "text", "text": LONG, "cache_control": MARK}]}]
    split(cache, as_block)
    as_string = {**as_block, "messages": [{"role": "user", "content": LONG},
                                          {"role": "user", "content": [{"type": "text", "text": "q", "cache_control": MARK}]}]}
    assert split(cache, as_string)[1] > 2000
