"""A chat completion stream as the Responses event sequence, in OpenAI's order.

`response.created` and `response.in_progress` open it; each output item (reasoning, the
message, each function call) is added, filled and done before the next is added (a message's
text through `content_part.added`, `output_text.delta`s, `output_text.done`,
`content_part.done`); `response.completed` (or `.incomplete`, when the output cap cut it)
closes it with the whole response and its usage. Every event carries the next
`sequence_number`. A stream that fails after it began ends with `response.failed`.
"""

from __future__ import annotations

from typing import Any

from tokenbrake.core import GatewayError, Usage
from tokenbrake.wire.responses_api import Exchange
from tokenbrake.wire.responses_api.answers import (
    call_item,
    message_item,
    reasoning_item,
    response_object,
    text_part,
    token_logprobs,
)

Event = tuple[str, dict[str, Any]]  # (event name, data)
FAILURE_CODES = {429: "rate_limit_exceeded"}


class _Item:
    """The output item being streamed: its index, its object, and the text it has so far."""

    def __init__(self, index: int, item: dict[str, Any]) -> None:
        self.index = index
        self.item = item
        self.text: list[str] = []
        self.logprobs: list[dict[str, Any]] = []


class ChatToResponsesStream:
    """Feed it chat.completion.chunk dicts; `finish` at the chat stream's end."""

    def __init__(self, ex: Exchange) -> None:
        self.ex = ex
        self.sequence = 0
        self.started = False
        self.output: list[dict[str, Any]] = []
        self.open: _Item | None = None
        self.calls: dict[int, _Item] = {}  # chat tool-call index → its function_call item
        self.finish_reason: str | None = None

    def feed(self, chunk: dict[str, Any]) -> list[Event]:
        out: list[Event] = []
        self._start(out)
        for choice in chunk.get("choices") or ():
            if choice.get("index", 0) != 0:
                continue  # a Response has one answer
            delta = choice.get("delta") or {}
            thought = delta.get("reasoning_content") or delta.get("reasoning")
            if isinstance(thought, str) and thought:
                self._reasoning(thought, out)
            if delta.get("content"):
                self._text(delta["content"], token_logprobs(choice), out)
            for call in delta.get("tool_calls") or ():
                self._call(call, out)
            if choice.get("finish_reason"):
                self.finish_reason = choice["finish_reason"]
        return out

    def finish(self, usage: Usage) -> list[Event]:
        """The events that close the response: the open item done, then `response.completed`."""
        out: list[Event] = []
        self._start(out)
        self._close(out)
        final = response_object(self.ex, "completed", self.output, usage, self.finish_reason)
        self.ex.final = final
        self._emit(out, f"response.{final['status']}", {"response": final})
        return out

    def fail(self, error: GatewayError, usage: Usage | None = None) -> list[Event]:
        out: list[Event] = []
        self._start(out)
        code = FAILURE_CODES.get(error.status, "server_error")
        failed = response_object(self.ex, "failed", self.output, usage, error={"code": code, "message": error.message})
        self._emit(out, "response.failed", {"response": failed})
        return out

    def _start(self, out: list[Event]) -> None:
        if not self.started:
            self.started = True
            shell = response_object(self.ex, "in_progress", [], None)
            self._emit(out, "response.created", {"response": shell})
            self._emit(out, "response.in_progress", {"response": shell})

    def _emit(self, out: list[Event], kind: str, data: dict[str, Any]) -> None:
        out.append((kind, {"type": kind, "sequence_number": self.sequence, **data}))
        self.sequence += 1

    def _add(self, item: dict[str, Any], out: list[Event]) -> _Item:
        self._close(out)
        self.open = _Item(len(self.output), item)
        self.output.append(item)
        self._emit(out, "response.output_item.added", {"output_index": self.open.index, "item": dict(item)})
        return self.open

    def _reasoning(self, text: str, out: list[Event]) -> None:
        open_ = self.open
        if open_ is None or open_.item["type"] != "reasoning":
            item = reasoning_item("")
            item["content"] = []
            open_ = self._add(item, out)
            self._emit(out, "response.content_part.added", {**self._at(open_), "content_index": 0,
                                                            "part": {"type": "reasoning_text", "text": ""}})
        open_.text.append(text)
        self._emit(out, "response.reasoning_text.delta", {**self._at(open_), "content_index": 0, "delta": text})

    def _text(self, text: str, logprobs: list[dict[str, Any]], out: list[Event]) -> None:
        open_ = self.open
        if open_ is None or open_.item["type"] != "message":
            open_ = self._add(message_item("", status="in_progress"), out)
            self._emit(out, "response.content_part.added", {**self._at(open_), "content_index": 0, "part": text_part("")})
        open_.text.append(text)
        open_.logprobs += logprobs
        self._emit(out, "response.output_text.delta",
                   {**self._at(open_), "content_index": 0, "delta": text, "logprobs": logprobs})

    def _call(self, call: dict[str, Any], out: list[Event]) -> None:
        number = call.get("index", len(self.calls))
        function = call.get("function") or {}
        current = self.calls.get(number)
        if current is None:
            item = call_item(call.get("id") or f"call_{number}", function.get("name") or "", "", status="in_progress")
            current = self.calls[number] = self._add(item, out)
        fragment = function.get("arguments") or ""
        if fragment:
            current.text.append(fragment)
            self._emit(out, "response.function_call_arguments.delta", {**self._at(current), "delta": fragment})

    def _close(self, out: list[Event]) -> None:
        """Done events for the item being streamed, if any."""
        open_, self.open = self.open, None
        if open_ is None:
            return
        item, text, at = open_.item, "".join(open_.text), self._at(open_)
        if item["type"] == "message":
            logprobs = open_.logprobs
            self._emit(out, "response.output_text.done", {**at, "content_index": 0, "text": text, "logprobs": logprobs})
            self._emit(out, "response.content_part.done", {**at, "content_index": 0, "part": text_part(text, logprobs)})
            item["content"] = [text_part(text, logprobs)]
        elif item["type"] == "reasoning":
            part = {"type": "reasoning_text", "text": text}
            self._emit(out, "response.reasoning_text.done", {**at, "content_index": 0, "text": text})
            self._emit(out, "response.content_part.done", {**at, "content_index": 0, "part": part})
            item["content"] = [part]
        else:
            item["arguments"] = text
            self._emit(out, "response.function_call_arguments.done", {**at, "arguments": text})
        item["status"] = "completed"
        self._emit(out, "response.output_item.done", {"output_index": open_.index, "item": dict(item)})

    @staticmethod
    def _at(open_: _Item) -> dict[str, Any]:
        return {"item_id": open_.item["id"], "output_index": open_.index}
