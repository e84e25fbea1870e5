"""A complete answer sent as a stream: a cascade's accepted answer to a client that asked to
stream.

The cheaper tier was called without streaming so its answer could be checked before the
first byte left; the client still gets a proper stream in its own format, the events its
SDK expects, in the order it expects them: OpenAI chunks (role, content, tool-call arguments,
finish reason, usage when asked, `[DONE]`), Anthropic's message_start … message_stop, or the
Responses API's numbered events (those chunks, translated as a chat stream would be).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import orjson

from tokenbrake.core import Format, Usage
from tokenbrake.wire import sse
from tokenbrake.wire.responses_api import Exchange
from tokenbrake.wire.responses_api.events import ChatToResponsesStream

_PIECE = re.compile(r"\s*\S+\s*|\s+")  # words, so the client sees text arrive in pieces
PIECES_PER_CHUNK = 8


class ReplayedStream:
    """The reply stream: its whole content is known, so it is sent as one chunk."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.finished = False

    def __aiter__(self) -> ReplayedStream:
        return self

    async def __anext__(self) -> bytes:
        if self.finished:
            raise StopAsyncIteration
        self.finished = True
        return self.data

    async def aclose(self) -> None:
        self.finished = True


def replay(fmt: Format, body: dict[str, Any], include_usage: bool = False) -> ReplayedStream:
    if fmt is Format.ANTHROPIC:
        return ReplayedStream(sse.encode_all(anthropic_events(body)))
    return ReplayedStream(sse.encode_all((None, chunk) for chunk in openai_chunks(body, include_usage)) + b"data: [DONE]\n\n")


def replay_responses(ex: Exchange, completion: dict[str, Any], usage: Usage) -> ReplayedStream:
    """A chat completion as the Responses events of the request `ex` (which then holds the response)."""
    stream = ChatToResponsesStream(ex)
    events = [event for chunk in openai_chunks(completion, False) for event in stream.feed(chunk)]
    return ReplayedStream(sse.encode_all(events + stream.finish(usage)))


def _pieces(text: str) -> list[str]:
    words = _PIECE.findall(text)
    return ["".join(words[i:i + PIECES_PER_CHUNK]) for i in range(0, len(words), PIECES_PER_CHUNK)]


def openai_chunks(completion: dict[str, Any], include_usage: bool) -> Iterator[dict[str, Any]]:
    head = {key: completion.get(key) for key in ("id", "created", "model", "system_fingerprint")}
    head["object"] = "chat.completion.chunk"

    def chunk(index: int, delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
        return {**head, "choices": [{"index": index, "delta": delta, "logprobs": None, "finish_reason": finish}]}

    for choice in completion.get("choices") or []:
        index, message = choice.get("index", 0), choice.get("message") or {}
        yield chunk(index, {"role": "assistant", "content": ""})
        for piece in _pieces(message.get("content") or ""):
            yield chunk(index, {"content": piece})
        for n, call in enumerate(message.get("tool_calls") or []):
            function = call.get("function") or {}
            opening = {"index": n, "id": call.get("id"), "type": "function",
                       "function": {"name": function.get("name"), "arguments": ""}}
            yield chunk(index, {"tool_calls": [opening]})
            yield chunk(index, {"tool_calls": [{"index": n, "function": {"arguments": function.get("arguments") or ""}}]})
        yield chunk(index, {}, choice.get("finish_reason") or "stop")
    if include_usage:
        yield {**head, "choices": [], "usage": completion.get("usage")}


def anthropic_events(message: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    usage = dict(message.get("usage") or {})
    start = {**message, "content": [], "stop_reason": None, "stop_sequence": None, "usage": {**usage, "output_tokens": 1}}
    yield "message_start", {"type": "message_start", "message": start}
    for index, block in enumerate(message.get("content") or []):
        yield from _block_events(index, block)
    delta = {"stop_reason": message.get("stop_reason"), "stop_sequence": message.get("stop_sequence")}
    yield "message_delta", {"type": "message_delta", "delta": delta, "usage": {"output_tokens": usage.get("output_tokens", 0)}}
    yield "message_stop", {"type": "message_stop"}


def _block_events(index: int, block: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    kind = block.get("type")
    if kind == "tool_use":
        opening = {**block, "input": {}}
        deltas = [{"type": "input_json_delta", "partial_json": orjson.dumps(block.get("input") or {}).decode()}]
    elif kind == "text":
        opening = {"type": "text", "text": ""}
        deltas = [{"type": "text_delta", "text": piece} for piece in _pieces(block.get("text") or "")]
    else:  # thinking and the like: sent whole, as their start event carries them
        opening, deltas = block, []
    yield "content_block_start", {"type": "content_block_start", "index": index, "content_block": opening}
    for delta in deltas:
        yield "content_block_delta", {"type": "content_block_delta", "index": index, "delta": delta}
    yield "content_block_stop", {"type": "content_block_stop", "index": index}

