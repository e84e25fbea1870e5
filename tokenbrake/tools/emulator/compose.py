"""What to answer, decided once for both wire formats.

A wire module reads its request into an `Ask`; `compose` turns it and the request's
directives into an `Answer` (text pieces or tool calls, the finish reason, exact output
tokens); the wire module renders that in its own format.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import orjson

from tokenbrake.tools.emulator.directives import Directives
from tokenbrake.tools.emulator.errors import invalid
from tokenbrake.tools.emulator.generate import cut_at_stop, split_text, truncate, words
from tokenbrake.tools.emulator.tools import arguments
from tokenbrake.wire.tokens import count_text

# Neutral finish reasons; each wire module maps them to its own names.
END, LENGTH, STOP_SEQUENCE, TOOL = "end", "length", "stop_sequence", "tool"


def output_schema(kind: Any, schema: Any) -> Any:
    """The schema a structured-output request's answer must be valid against: its own for
    `json_schema`, any object for `json_object`, none for plain text."""
    if kind == "json_schema":
        return schema or {}
    return {"type": "object", "properties": {"answer": {"type": "string"}}} if kind == "json_object" else None


@dataclass(slots=True)
class Ask:
    """What a chat request asks for, whichever wire format it came in."""

    model: str
    stream: bool
    seed: int
    max_tokens: int | None = None
    stops: list[str] = field(default_factory=list)
    tools: list[tuple[str, Any]] = field(default_factory=list)  # (name, parameters schema)
    forced_tool: str | None = None
    wants_tools: bool = False  # tools are allowed and the turn calls for them
    n: int = 1
    logprobs: bool = False  # OpenAI `logprobs: true`: each token's log-probability in the reply
    confidence: float = 0.95  # every token's probability (directive confidence=P), so the mean logprob is ln P
    json_schema: Any = None  # structured output asked for: the answer is JSON valid against this schema
    cached_tokens: int = 0  # input tokens read from the prompt cache (emulated, or directive cached=N)
    cache_write_tokens: int = 0  # input tokens written to it (Anthropic reports them)


@dataclass(slots=True)
class ToolCall:
    name: str
    input: dict[str, Any]
    arguments: str  # `input` as JSON text


@dataclass(slots=True)
class Answer:
    pieces: list[str] | tuple[str, ...]  # the text, as streamed
    text: str
    finish: str
    output_tokens: int
    stop_sequence: str | None = None
    tool_calls: list[ToolCall] = field(default_factory=list)
    thinking: str = ""  # the reasoning before the answer (directive thinking=N)
    reasoning_tokens: int = 0  # its tokens, counted in output_tokens too


def compose(ask: Ask, directives: Directives, default_tokens: int, index: int = 0) -> Answer:
    if ask.wants_tools and directives.tools != 0:
        answer = _tool_answer(ask, directives.tools or 1)
    else:
        answer = _text_answer(ask, directives, default_tokens, ask.seed + index)
    if directives.thinking:
        answer.thinking = "".join(words(ask.seed + 1, directives.thinking))
        answer.reasoning_tokens = directives.thinking
        answer.output_tokens += directives.thinking
    return answer


def _text_answer(ask: Ask, directives: Directives, default_tokens: int, seed: int) -> Answer:
    finish, limit = END, ask.max_tokens
    if directives.text is not None:
        text, tokens = directives.text, count_text(directives.text)
        if limit is not None and tokens > limit:
            text, finish = truncate(text, limit), LENGTH
            tokens = count_text(text)
        pieces: list[str] | tuple[str, ...] = split_text(text)
    elif ask.json_schema is not None:
        text = orjson.dumps(arguments(ask.json_schema)).decode()
        tokens, pieces = count_text(text), split_text(text)
    else:
        tokens = default_tokens if directives.tokens is None else directives.tokens
        if limit is not None and tokens > limit:
            tokens, finish = limit, LENGTH
        pieces = words(seed, tokens)
        text = "".join(pieces)
    if ask.stops:
        kept, matched = cut_at_stop(text, ask.stops)
        if matched is not None:
            return Answer(_prefix_pieces(pieces, len(kept)), kept, STOP_SEQUENCE, count_text(kept), matched)
    return Answer(pieces, text, finish, tokens)


def _prefix_pieces(pieces: list[str] | tuple[str, ...], length: int) -> list[str]:
    kept, used = [], 0
    for piece in pieces:
        if used >= length:
            break
        kept.append(piece[: length - used])
        used += len(piece)
    return kept


def _tool_answer(ask: Ask, count: int) -> Answer:
    if ask.forced_tool is not None:
        chosen = [tool for tool in ask.tools if tool[0] == ask.forced_tool][:1]
        if not chosen:
            message = f"Tool choice names {ask.forced_tool!r}, which is not among the tools."
            raise invalid(message, "tool_choice")
    else:
        chosen = ask.tools
    calls = []
    for i in range(count):
        name, schema = chosen[i % len(chosen)]
        value = arguments(schema)
        calls.append(ToolCall(name, value, orjson.dumps(value).decode()))
    tokens = sum(count_text(call.name + call.arguments) for call in calls)
    return Answer((), "", TOOL, tokens, tool_calls=calls)
