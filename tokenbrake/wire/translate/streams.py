"""Incremental stream translators: one upstream event in, the client's events out.

Both keep, for accounting, `usage` (what the upstream reported so far, as `core.Usage`),
`usage_reported` (whether the upstream sent its own count, so `usage` is final rather than
partial) and `output_text_parts` (the text and tool-argument fragments delivered, for counting
output tokens when the upstream never reported them). `finish()` is called at the upstream's
end of stream, emits whatever closing events are still due, and is idempotent.

OpenAI -> Anthropic is the harder way. Anthropic streams one content block at a time, so a tool
call's block must close before the next opens, while OpenAI may interleave parallel calls by
`index`. A call's fragments are streamed live while it has the open block; a call that starts
while the open one's arguments are not yet complete JSON is buffered and sent whole when that
one completes or at the end. OpenAI reports usage in a chunk after the one with
`finish_reason`, so `message_delta` waits for that chunk (or `finish()`) to carry real counts.
"""

from __future__ import annotations

import time
from typing import Any

import orjson

from tokenbrake.core import ErrorKind, GatewayError, Usage
from tokenbrake.wire.translate.messages import dump_json
from tokenbrake.wire.translate.responses import anthropic_stop_reason, completion_id, openai_finish_reason, tool_use_id
from tokenbrake.wire.translate.responses import message_id as derived_message_id
from tokenbrake.wire.translate.usage import anthropic_usage, openai_usage, usage_from_anthropic, usage_from_openai

Event = tuple[str, dict[str, Any]]


class _ToolCall:
    __slots__ = ("upstream_id", "id", "name", "args", "block")

    def __init__(self, call_id: str | None, name: str | None) -> None:
        self.upstream_id = call_id
        self.id = tool_use_id(call_id)
        self.name = name or ""
        self.args: list[str] = []
        self.block: int | None = None  # its Anthropic block index, once opened

    def complete(self) -> bool:
        try:
            return isinstance(orjson.loads("".join(self.args) or "-"), dict)
        except orjson.JSONDecodeError:
            return False


class OpenAIToAnthropicStream:
    """`chat.completion.chunk` dicts in, Anthropic `(event, data)` pairs out.

    `input_tokens` is an optional estimate for `message_start`, which comes before OpenAI
    reports anything; the upstream's real counts go in `message_delta`.
    """

    def __init__(self, model: str, message_id: str | None = None, input_tokens: int = 0) -> None:
        self.model = model
        self.message_id = message_id
        self.input_tokens = input_tokens
        self.usage = Usage()
        self.usage_reported = False
        self.output_text_parts: list[str] = []
        self._started = False
        self._stopped = False
        self._finish_reason: str | None = None
        self._refused = False
        self._tools: dict[int, _ToolCall] = {}  # numbered in order of appearance
        self._by_index: dict[int, int] = {}  # OpenAI tool call index -> its latest call's number
        self._open: str | int | None = None  # "text", the number of a tool call, or None
        self._open_block = -1
        self._next_block = 0

    def feed(self, chunk: dict[str, Any]) -> list[Event]:
        if isinstance(chunk.get("error"), dict):
            raise GatewayError(ErrorKind.UPSTREAM, str(chunk["error"].get("message") or "the upstream reported an error"))
        usage = chunk.get("usage")
        if isinstance(usage, dict):
            self.usage, self.usage_reported = usage_from_openai(usage), True
        out: list[Event] = []
        if self._stopped:
            return out
        if not self._started:
            self._start(chunk.get("id"), out)
        for choice in chunk.get("choices") or ():
            if choice.get("index", 0) != 0:
                continue  # only one choice is requested
            delta = choice.get("delta") or {}
            if delta.get("content"):
                self._text(delta["content"], out)
            if delta.get("refusal"):  # said in words, as the non-streaming translation does
                self._refused = True
                self._text(delta["refusal"], out)
            for position, call in enumerate(delta.get("tool_calls") or ()):
                self._tool_fragment(call, position, out)
            if choice.get("finish_reason"):
                self._finish_reason = choice["finish_reason"]
                self._close_all(out)
        if self._finish_reason and isinstance(usage, dict):
            self._stop(out)
        return out

    def finish(self) -> list[Event]:
        out: list[Event] = []
        if self._stopped:
            return out
        if not self._started:
            self._start(None, out)
        self._close_all(out)
        self._stop(out)
        return out

    def _start(self, openai_id: str | None, out: list[Event]) -> None:
        self._started = True
        message: dict[str, Any] = {
            "id": self.message_id or derived_message_id(openai_id),
            "type": "message",
            "role": "assistant",
            "model": self.model,
            "content": [],
            "stop_reason": None,
            "stop_sequence": None,
            "usage": {"input_tokens": self.input_tokens, "output_tokens": 0},
        }
        out.append(("message_start", {"type": "message_start", "message": message}))
        out.append(("ping", {"type": "ping"}))

    def _text(self, text: str, out: list[Event]) -> None:
        if self._open != "text":
            self._close_open(out)
            self._open_new("text", {"type": "text", "text": ""}, out)
        self.output_text_parts.append(text)
        out.append(_delta(self._open_block, {"type": "text_delta", "text": text}))

    def _tool_fragment(self, call: dict[str, Any], position: int, out: list[Event]) -> None:
        function = call.get("function") or {}
        number, tool = self._tool_for(call, position)
        if function.get("name") and not tool.name:
            tool.name = function["name"]
        fragment = function.get("arguments") or ""
        if fragment:
            tool.args.append(fragment)
            self.output_text_parts.append(fragment)
        if self._open == number:
            if fragment:
                out.append(_delta(tool.block, {"type": "input_json_delta", "partial_json": fragment}))
        elif tool.block is None and self._may_switch():
            self._close_open(out)
            self._open_tool(number, tool, out)
        # else: buffered until the open call completes or the stream ends

    def _tool_for(self, call: dict[str, Any], position: int) -> tuple[int, _ToolCall]:
        index = call.get("index")
        if not isinstance(index, int):
            index = position  # servers that send whole calls at once sometimes leave it out
        number = self._by_index.get(index)
        tool = self._tools.get(number) if number is not None else None
        call_id = call.get("id")
        # A new id at a known index is a new call: some servers number every call 0.
        if number is None or tool is None or (call_id and tool.upstream_id and call_id != tool.upstream_id):
            number = self._by_index[index] = len(self._tools)
            tool = self._tools[number] = _ToolCall(call_id, (call.get("function") or {}).get("name"))
        return number, tool

    def _may_switch(self) -> bool:
        return not isinstance(self._open, int) or self._tools[self._open].complete()

    def _open_tool(self, number: int, tool: _ToolCall, out: list[Event]) -> None:
        tool.block = self._next_block
        self._open_new(number, {"type": "tool_use", "id": tool.id, "name": tool.name, "input": {}}, out)
        if tool.args:
            out.append(_delta(tool.block, {"type": "input_json_delta", "partial_json": "".join(tool.args)}))

    def _open_new(self, what: str | int, block: dict[str, Any], out: list[Event]) -> None:
        self._open, self._open_block = what, self._next_block
        self._next_block += 1
        out.append(("content_block_start", {"type": "content_block_start", "index": self._open_block, "content_block": block}))

    def _close_open(self, out: list[Event]) -> None:
        if self._open is not None:
            out.append(("content_block_stop", {"type": "content_block_stop", "index": self._open_block}))
            self._open = None

    def _close_all(self, out: list[Event]) -> None:
        self._close_open(out)
        for number, tool in self._tools.items():
            if tool.block is None:
                self._open_tool(number, tool, out)
                self._close_open(out)

    def _stop(self, out: list[Event]) -> None:
        self._stopped = True
        stop_reason = "refusal" if self._refused else anthropic_stop_reason(self._finish_reason, bool(self._tools))
        usage = anthropic_usage(self.usage) if self.usage_reported else {"input_tokens": self.input_tokens, "output_tokens": 0}
        delta = {"stop_reason": stop_reason, "stop_sequence": None}
        out.append(("message_delta", {"type": "message_delta", "delta": delta, "usage": usage}))
        out.append(("message_stop", {"type": "message_stop"}))


def _delta(index: int | None, delta: dict[str, Any]) -> Event:
    return ("content_block_delta", {"type": "content_block_delta", "index": index, "delta": delta})


class AnthropicToOpenAIStream:
    """Anthropic `(event, data)` in, `chat.completion.chunk` dicts out.

    Like OpenAI, chunks carry `"usage": null` only when the client asked for usage
    (`include_usage`), and then a last chunk with `choices: []` carries the counts.
    """

    def __init__(self, model: str, include_usage: bool) -> None:
        self.model = model
        self.include_usage = include_usage
        self.usage = Usage()
        self.usage_reported = False
        self.output_text_parts: list[str] = []
        self.id = completion_id(None)
        self.created = int(time.time())
        self._started = False
        self._finished = False  # the chunk with finish_reason went out
        self._usage_sent = False
        self._tool_index: dict[int, int] = {}  # Anthropic block index -> OpenAI tool call index

    def feed(self, event: str, data: dict[str, Any]) -> list[dict[str, Any]]:
        kind = event or data.get("type")
        if kind == "error":
            raise _stream_error(data)
        if kind == "message_stop":
            return self.finish()
        if kind == "ping":
            return []
        out: list[dict[str, Any]] = []
        if kind == "message_start":
            message = data.get("message") or {}
            if not self._started:
                self.id = completion_id(message.get("id"))
            self.usage = usage_from_anthropic(message.get("usage"))
        if not self._started:
            self._start(out)
        if kind == "content_block_start":
            self._block_start(data, out)
        elif kind == "content_block_delta":
            self._block_delta(data, out)
        elif kind == "message_delta":
            self._merge_usage(data.get("usage"))
            if not self._finished:
                self._finished = True
                out.append(self._chunk({}, openai_finish_reason((data.get("delta") or {}).get("stop_reason"))))
        return out

    def finish(self) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        if not self._started:
            self._start(out)
        if not self._finished:
            self._finished = True
            out.append(self._chunk({}, "tool_calls" if self._tool_index else "stop"))
        if self.include_usage and not self._usage_sent:
            self._usage_sent = True
            out.append({**self._chunk({}), "choices": [], "usage": openai_usage(self.usage)})
        return out

    def _start(self, out: list[dict[str, Any]]) -> None:
        self._started = True
        out.append(self._chunk({"role": "assistant", "content": ""}))

    def _block_start(self, data: dict[str, Any], out: list[dict[str, Any]]) -> None:
        block = data.get("content_block") or {}
        if block.get("type") == "text" and block.get("text"):
            self.output_text_parts.append(block["text"])
            out.append(self._chunk({"content": block["text"]}))
        elif block.get("type") == "tool_use":
            n = self._tool_index[data.get("index", -1)] = len(self._tool_index)
            arguments = dump_json(block["input"]) if block.get("input") else ""
            function = {"name": block.get("name") or "", "arguments": arguments}
            call = {"index": n, "id": block.get("id"), "type": "function", "function": function}
            out.append(self._chunk({"tool_calls": [call]}))

    def _block_delta(self, data: dict[str, Any], out: list[dict[str, Any]]) -> None:
        delta = data.get("delta") or {}
        kind = delta.get("type")
        if kind == "text_delta" and delta.get("text"):
            self.output_text_parts.append(delta["text"])
            out.append(self._chunk({"content": delta["text"]}))
        elif kind == "input_json_delta" and delta.get("partial_json"):
            n = self._tool_index.get(data.get("index", -1))
            if n is not None:
                self.output_text_parts.append(delta["partial_json"])
                out.append(self._chunk({"tool_calls": [{"index": n, "function": {"arguments": delta["partial_json"]}}]}))
        # thinking, signature and citation deltas have no place in a chat.completion.chunk

    def _merge_usage(self, reported: Any) -> None:
        if not isinstance(reported, dict):
            return
        # Counts on message_delta are cumulative; input counts are often only on message_start.
        final, u = usage_from_anthropic(reported), self.usage
        u.output_tokens = final.output_tokens
        if reported.get("input_tokens") is not None:
            u.input_tokens = final.input_tokens
        if reported.get("cache_read_input_tokens") is not None:
            u.cached_input_tokens = final.cached_input_tokens
        if reported.get("cache_creation_input_tokens") is not None:
            u.cache_write_tokens = final.cache_write_tokens
        if reported.get("output_tokens_details") is not None:
            u.reasoning_tokens = final.reasoning_tokens
        self.usage_reported = True

    def _chunk(self, delta: dict[str, Any], finish_reason: str | None = None) -> dict[str, Any]:
        chunk: dict[str, Any] = {
            "id": self.id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.model,
            "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}],
        }
        if self.include_usage:
            chunk["usage"] = None
        return chunk


def _stream_error(data: dict[str, Any]) -> GatewayError:
    error = sent if isinstance(sent := data.get("error"), dict) else {}
    message = str(error.get("message") or error.get("type") or "the upstream reported an error")
    kind = ErrorKind.OVERLOADED if error.get("type") == "overloaded_error" else ErrorKind.UPSTREAM
    return GatewayError(kind, message)
