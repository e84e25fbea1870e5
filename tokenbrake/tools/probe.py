"""`tokenbrake probe`: a running gateway, checked with the official SDKs as an application
would use them, for each model named — the check to run once a config points at real
providers (OpenAI, Anthropic, a local server), which the test suite cannot reach.

For every model, through both front doors: a reply, a stream (with usage), a forced tool
call, and a forced tool call streamed; through the Responses door the same and more
(probe_responses.py); once, the errors each SDK must raise for an unknown
model and a bad key. Each check spends a few dozen tokens (a reasoning model, a few
hundred). The answer's wording is the model's business: a check looks at the shape (text,
usage, a tool call whose arguments are JSON with the required field), not at what was said.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

import anthropic
import openai

from tokenbrake.tools.probe_expect import ProbeFailed, _expect, _expect_weather
from tokenbrake.tools.probe_responses import responses_checks

if TYPE_CHECKING:
    from anthropic.types import MessageParam, ToolChoiceToolParam, ToolParam
    from openai.types.chat import (
        ChatCompletionMessageParam,
        ChatCompletionNamedToolChoiceParam,
        ChatCompletionToolParam,
    )

# Generous: a reasoning model spends tokens thinking before it answers, and a cap it hits first
# leaves no text. A model stops when it is done, so the cap is not what a check spends.
MAX_TOKENS = 1024
HELLO = "Say hello in five words."
WEATHER_QUESTION = "What is the weather in Paris?"
# The same asks, as each SDK's types spell them.
OPENAI_ASK: list[ChatCompletionMessageParam] = [{"role": "user", "content": HELLO}]
OPENAI_ASK_TOOL: list[ChatCompletionMessageParam] = [{"role": "user", "content": WEATHER_QUESTION}]
ANTHROPIC_ASK: list[MessageParam] = [{"role": "user", "content": HELLO}]
ANTHROPIC_ASK_TOOL: list[MessageParam] = [{"role": "user", "content": WEATHER_QUESTION}]
WEATHER: dict[str, object] = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}
OPENAI_TOOL: ChatCompletionToolParam = {"type": "function", "function": {
    "name": "get_weather", "description": "The weather in a city.", "parameters": WEATHER}}
OPENAI_FORCE: ChatCompletionNamedToolChoiceParam = {"type": "function", "function": {"name": "get_weather"}}
ANTHROPIC_TOOL: ToolParam = {"name": "get_weather", "description": "The weather in a city.", "input_schema": WEATHER}
ANTHROPIC_FORCE: ToolChoiceToolParam = {"type": "tool", "name": "get_weather"}


@dataclass(frozen=True, slots=True)
class Outcome:
    model: str
    check: str
    failure: str | None  # None: passed


def unreachable(url: str) -> str | None:
    """Why no gateway answers at `url` (so that a probe of nothing is one line, not a failed
    check per model and front door), or None when its /healthz does."""
    import httpx

    try:
        httpx.get(url.rstrip("/") + "/healthz", timeout=10).raise_for_status()
    except httpx.HTTPError as exc:
        reason = "connection refused" if isinstance(exc, httpx.ConnectError) else (str(exc) or type(exc).__name__)
        return f"no gateway answers at {url} ({reason}): start one with `tokenbrake serve`, or give its address with --url"
    return None


def run_probe(url: str, key: str, models: list[str]) -> list[Outcome]:
    url = url.rstrip("/")
    oa = openai.OpenAI(base_url=url + "/v1", api_key=key, max_retries=0, timeout=120)
    an = anthropic.Anthropic(base_url=url, api_key=key, max_retries=0, timeout=120)
    checks: list[tuple[str, str, Callable[[], None]]] = []
    for model in models:
        checks += [(model, name, check) for name, check in _model_checks(oa, an, model)]
    checks += [("-", name, check) for name, check in _error_checks(url, oa, an)]
    return [Outcome(model, name, _failure(check)) for model, name, check in checks]


def _failure(check: Callable[[], None]) -> str | None:
    try:
        check()
    except Exception as exc:  # the outcome is the report: any exception is this check's failure
        return f"{type(exc).__name__}: {exc}"
    return None


def _model_checks(oa: openai.OpenAI, an: anthropic.Anthropic, model: str) -> Iterator[tuple[str, Callable[[], None]]]:
    yield "openai reply", lambda: _openai_reply(oa, model)
    yield "openai stream", lambda: _openai_stream(oa, model)
    yield "openai tool call", lambda: _openai_tool(oa, model)
    yield "openai tool call, streamed", lambda: _openai_tool_streamed(oa, model)
    yield "anthropic reply", lambda: _anthropic_reply(an, model)
    yield "anthropic stream", lambda: _anthropic_stream(an, model)
    yield "anthropic tool use", lambda: _anthropic_tool(an, model)
    yield "anthropic tool use, streamed", lambda: _anthropic_tool_streamed(an, model)
    yield from responses_checks(oa, model)


def _error_checks(url: str, oa: openai.OpenAI, an: anthropic.Anthropic) -> Iterator[tuple[str, Callable[[], None]]]:
    unknown = "tokenbrake-probe-no-such-model"
    yield "openai unknown model", lambda: _raises(openai.NotFoundError, lambda: oa.chat.completions.create(
        model=unknown, messages=OPENAI_ASK, max_tokens=5))
    yield "responses unknown model", lambda: _raises(openai.NotFoundError, lambda: oa.responses.create(
        model=unknown, input=HELLO, max_output_tokens=16))
    yield "anthropic unknown model", lambda: _raises(anthropic.NotFoundError, lambda: an.messages.create(
        model=unknown, messages=ANTHROPIC_ASK, max_tokens=5))
    bad = "tb-probe-not-a-key"
    yield "openai bad key", lambda: _raises(openai.AuthenticationError, lambda: openai.OpenAI(
        base_url=url + "/v1", api_key=bad, max_retries=0).models.list())
    yield "anthropic bad key", lambda: _raises(anthropic.AuthenticationError, lambda: anthropic.Anthropic(
        base_url=url, api_key=bad, max_retries=0).models.list())


def _openai_reply(oa: openai.OpenAI, model: str) -> None:
    reply = oa.chat.completions.create(model=model, messages=OPENAI_ASK, max_tokens=MAX_TOKENS)
    _expect(bool(reply.choices and reply.choices[0].message.content), "no text in the reply")
    _expect(reply.choices[0].finish_reason in ("stop", "length"), f"finish_reason {reply.choices[0].finish_reason!r}")
    _expect(reply.usage is not None and reply.usage.completion_tokens > 0, "no output tokens in usage")


def _openai_stream(oa: openai.OpenAI, model: str) -> None:
    chunks = list(oa.chat.completions.create(model=model, messages=OPENAI_ASK, max_tokens=MAX_TOKENS, stream=True,
                                             stream_options={"include_usage": True}))
    _expect("".join(c.choices[0].delta.content or "" for c in chunks if c.choices) != "", "no text in the stream")
    _expect(chunks[-1].usage is not None and chunks[-1].usage.completion_tokens > 0, "no usage chunk at the end")


def _openai_tool(oa: openai.OpenAI, model: str) -> None:
    reply = oa.chat.completions.create(model=model, messages=OPENAI_ASK_TOOL, max_tokens=MAX_TOKENS,
                                       tools=[OPENAI_TOOL], tool_choice=OPENAI_FORCE)
    calls = reply.choices[0].message.tool_calls or []
    _expect(bool(calls), f"no tool call (finish_reason {reply.choices[0].finish_reason!r})")
    if calls[0].type != "function":
        raise ProbeFailed(f"a {calls[0].type} tool call, not a function call")
    _expect_weather(calls[0].function.name, calls[0].function.arguments)


def _openai_tool_streamed(oa: openai.OpenAI, model: str) -> None:
    name, arguments = "", ""
    for chunk in oa.chat.completions.create(model=model, messages=OPENAI_ASK_TOOL, max_tokens=MAX_TOKENS, stream=True,
                                            tools=[OPENAI_TOOL], tool_choice=OPENAI_FORCE):
        for call in (chunk.choices[0].delta.tool_calls or []) if chunk.choices else []:
            if call.index == 0 and call.function is not None:
                name += call.function.name or ""
                arguments += call.function.arguments or ""
    _expect_weather(name, arguments)


def _anthropic_reply(an: anthropic.Anthropic, model: str) -> None:
    message = an.messages.create(model=model, messages=ANTHROPIC_ASK, max_tokens=MAX_TOKENS)
    _expect_text(message, "message")
    _expect(message.stop_reason in ("end_turn", "max_tokens"), f"stop_reason {message.stop_reason!r}")


def _anthropic_stream(an: anthropic.Anthropic, model: str) -> None:
    with an.messages.stream(model=model, messages=ANTHROPIC_ASK, max_tokens=MAX_TOKENS) as stream:
        kinds = [event.type for event in stream]
        message = stream.get_final_message()
    _expect(kinds[:1] == ["message_start"] and kinds[-1:] == ["message_stop"], f"events {kinds[:1]}…{kinds[-1:]}")
    _expect_text(message, "stream")


def _anthropic_tool(an: anthropic.Anthropic, model: str) -> None:
    message = an.messages.create(model=model, messages=ANTHROPIC_ASK_TOOL, max_tokens=MAX_TOKENS,
                                 tools=[ANTHROPIC_TOOL], tool_choice=ANTHROPIC_FORCE)
    _expect_tool_use(message)


def _anthropic_tool_streamed(an: anthropic.Anthropic, model: str) -> None:
    with an.messages.stream(model=model, messages=ANTHROPIC_ASK_TOOL, max_tokens=MAX_TOKENS,
                            tools=[ANTHROPIC_TOOL], tool_choice=ANTHROPIC_FORCE) as stream:
        message = stream.get_final_message()  # the SDK joins the streamed input_json deltas
    _expect_tool_use(message)


def _expect_text(message: anthropic.types.Message, where: str) -> None:
    _expect(any(block.type == "text" and block.text for block in message.content), f"no text in the {where}")
    _expect(message.usage.output_tokens > 0, "no output tokens in usage")


def _expect_tool_use(message: anthropic.types.Message) -> None:
    uses = [block for block in message.content if block.type == "tool_use"]
    _expect(bool(uses), f"no tool_use block (stop_reason {message.stop_reason!r})")
    _expect_weather(uses[0].name, json.dumps(uses[0].input))


def _raises(expected: type[Exception], call: Callable[[], object]) -> None:
    try:
        call()
    except expected:
        return
    raise ProbeFailed(f"expected {expected.__module__}.{expected.__name__}, but the call succeeded")
