"""A stream's way back: upstream SSE events in, the client's SSE bytes out.

Events are passed through when both sides speak the same format and translated when not.
Whatever happens (the upstream breaks off or sends garbage, the client goes away) the client
is told in its own format and `ctx.usage` ends up holding what was consumed: the upstream's
own report when it got that far, otherwise an exact-tokenizer count of what was delivered.
"""

from __future__ import annotations

from typing import Any

import orjson

from tokenbrake.core import ErrorKind, Format, GatewayError, KeyStanding, RequestContext, Target, Usage
from tokenbrake.uncancellable import finish
from tokenbrake.upstream.dispatch import gateway_error
from tokenbrake.upstream.providers import UpstreamFailure, UpstreamStream
from tokenbrake.wire import request_size, sse
from tokenbrake.wire.errors import stream_error_event
from tokenbrake.wire.openai_chunks import Chunk, decode_chunks
from tokenbrake.wire.responses_api.answers import thinking_chunks, usage_from_responses
from tokenbrake.wire.responses_api.events import ChatToResponsesStream, Event
from tokenbrake.wire.tokens import count_request_input, count_text
from tokenbrake.wire.translate.streams import AnthropicToOpenAIStream, OpenAIToAnthropicStream
from tokenbrake.wire.translate.usage import usage_from_anthropic, usage_from_openai

DONE = b"data: [DONE]\n\n"
DONE_EVENT = sse.SSEEvent(None, "[DONE]", DONE)
EVENT_END = b"\n\n"  # the blank line after an event's last line
CLIENT_CLOSED = 499
# The events that end a Responses stream: the last one an upstream that speaks it sends.
RESPONSES_ENDS = frozenset({"response.completed", "response.incomplete", "response.failed", "error"})
RESPONSES_DELTAS = frozenset({"response.output_text.delta", "response.function_call_arguments.delta",
                              "response.reasoning_text.delta", "response.refusal.delta"})


class StreamMeter:
    """Reads usage and delivered text off upstream events, whatever the client's format."""

    def __init__(self, kind: Format, upstream_body: dict[str, Any], counted_input: int | None = None) -> None:
        self.kind = kind
        self.upstream_body = upstream_body
        # A Responses upstream's stream: its request's input as the stages counted it
        self.counted_input = counted_input
        self.native = counted_input is not None
        self.reported: Usage | None = None
        self.complete = False  # the upstream's final usage report arrived
        self.parts: list[str] = []
        self.sequence = -1  # a Responses stream's last sequence_number

    def observe(self, event: str | None, data: dict[str, Any]) -> None:
        if self.native:
            self._observe_responses(data)
        elif self.kind is Format.OPENAI:
            self.observe_openai(data)
        else:
            self._observe_anthropic(event or data.get("type"), data)

    def observe_openai(self, data: dict[str, Any]) -> None:
        choices = data.get("choices")
        if choices:
            for choice in choices:
                delta = choice.get("delta")
                if delta:
                    if content := delta.get("content"):
                        self.parts.append(content)
                    for call in delta.get("tool_calls") or ():
                        self.parts.append((call.get("function") or {}).get("arguments") or "")
        usage = data.get("usage")
        if isinstance(usage, dict):
            self.reported = usage_from_openai(usage)
            self.complete = True

    def observe_chunks(self, chunks: list[Chunk]) -> None:
        """`observe_openai` for events decoded into their `Chunk` fields."""
        parts = self.parts
        for chunk in chunks:
            if chunk.choices:
                for choice in chunk.choices:
                    delta = choice.delta
                    if delta is not None:
                        if delta.content:
                            parts.append(delta.content)
                        for call in delta.tool_calls or ():
                            parts.append(call.function and call.function.arguments or "")
            if chunk.usage is not None:
                self.reported = usage_from_openai(chunk.usage)
                self.complete = True

    def _observe_responses(self, data: dict[str, Any]) -> None:
        kind = data.get("type")
        self.sequence = data.get("sequence_number", self.sequence + 1)
        if kind in RESPONSES_DELTAS:
            self.parts.append(data.get("delta") or "")
        elif kind in RESPONSES_ENDS and isinstance(usage := (data.get("response") or {}).get("usage"), dict):
            self.reported = usage_from_responses(usage)
            self.complete = True

    def _observe_anthropic(self, event: str | None, data: dict[str, Any]) -> None:
        if event == "content_block_delta":
            delta = data.get("delta") or {}
            self.parts.append(delta.get("text") or delta.get("partial_json") or delta.get("thinking") or "")
        elif event == "message_start":
            self.reported = usage_from_anthropic((data.get("message") or {}).get("usage"))
        elif event == "message_delta" and isinstance(data.get("usage"), dict):
            final = usage_from_anthropic(data["usage"])
            start = self.reported or Usage()
            # message_delta carries the final output count; input counts come from message_start
            # unless the upstream repeats them here.
            self.reported = Usage(
                input_tokens=final.input_tokens or start.input_tokens,
                output_tokens=final.output_tokens,
                cached_input_tokens=final.cached_input_tokens or start.cached_input_tokens,
                cache_write_tokens=final.cache_write_tokens or start.cache_write_tokens,
                reasoning_tokens=final.reasoning_tokens,
            )
            self.complete = True

    def usage(self) -> Usage:
        if self.complete and self.reported is not None:
            return self.reported
        delivered = count_text("".join(self.parts))
        if self.reported is not None:  # input known from the start of the stream
            self.reported.output_tokens = max(self.reported.output_tokens, delivered)
            return self.reported
        counted = self.counted_input
        if counted is None:
            counted = count_request_input(self.kind.value, self.upstream_body)
        return Usage(input_tokens=counted, output_tokens=delivered)


class Translation:
    """Per-format handling of one event: what to send the client, and whether it ends the stream."""

    def __init__(self, ctx: RequestContext, target: Target, native: bool = False) -> None:
        self.client = ctx.format
        self.upstream = target.kind
        self.native = native  # Responses events both sides, passed through
        self.continues = ctx.responses.continues if native else None
        options = ctx.body.get("stream_options") or {}
        self.client_wants_usage = bool(options.get("include_usage"))
        # A Responses client served by a chat stream (an Anthropic one translated to chat first)
        self.responses = ChatToResponsesStream(ctx.responses) if ctx.responses is not None and not native else None
        self.translator: Any
        if self.responses is not None and self.upstream is Format.ANTHROPIC:
            self.translator = AnthropicToOpenAIStream(target.upstream_model, True)
        elif self.responses is not None:
            self.translator = None
        elif self.client is Format.OPENAI and self.upstream is Format.ANTHROPIC:
            self.translator = AnthropicToOpenAIStream(target.upstream_model, self.client_wants_usage)
        elif self.client is Format.ANTHROPIC and self.upstream is Format.OPENAI:
            # message_start comes before the upstream's usage: it shows our own count.
            estimate = count_request_input(Format.ANTHROPIC.value, ctx.body)
            self.translator = OpenAIToAnthropicStream(target.upstream_model, input_tokens=estimate)
        else:
            self.translator = None

    def convert(self, event: sse.SSEEvent, data: dict[str, Any]) -> bytes:
        if self.responses is not None:
            if self.translator is None:
                chunks = [data]
            else:  # an Anthropic stream: its thinking too, which the chat translation drops
                chunks = [*thinking_chunks(event.event, data), *self.translator.feed(event.event or "", data)]
            return _encode_events([e for chunk in chunks for e in self.responses.feed(chunk)])
        if self.native and self.continues is not None and isinstance(response := data.get("response"), dict):
            response["previous_response_id"] = self.continues  # the upstream was sent the conversation, not the id
            return sse.encode(data, event.event)
        if self.translator is None:
            if self.client is Format.OPENAI and not self.client_wants_usage and _is_usage_only(data):
                return b""  # we asked for usage on the client's behalf; it did not
            return event.raw or sse.encode(event.data, event.event)
        if self.client is Format.OPENAI:
            return sse.encode_all((None, chunk) for chunk in self.translator.feed(event.event or "", data))
        return sse.encode_all(self.translator.feed(data))

    def ends(self, data: dict[str, Any], ctx: RequestContext) -> bool:
        """Whether a Responses upstream's event passed on ends the stream (and is the response);
        one that says the response failed is the call's error, as the ledger records it."""
        kind = data.get("type")
        if not self.native or kind not in RESPONSES_ENDS:
            return False
        response = data.get("response")
        if isinstance(response, dict):
            ctx.responses.final = response
        if kind in ("response.failed", "error"):
            reported = (response or {}).get("error") if isinstance(response, dict) else data
            message = str((reported or {}).get("message") or "the response failed")
            ctx.error = GatewayError(ErrorKind.UPSTREAM, f"upstream reported: {message}")
            ctx.status = ctx.error.status
        return True

    def end(self, event: sse.SSEEvent, meter: StreamMeter) -> bytes:
        """The bytes that close the client's stream, on the upstream's own end of stream."""
        if self.responses is not None:
            chunks = [] if self.translator is None else self.translator.finish()
            events = [e for chunk in chunks for e in self.responses.feed(chunk)]
            return _encode_events(events + self.responses.finish(meter.usage()))
        if self.translator is None:
            return DONE if self.client is Format.OPENAI else sse.encode(event.data, event.event)
        if self.client is Format.OPENAI:
            return sse.encode_all((None, chunk) for chunk in self.translator.finish()) + DONE
        return sse.encode_all(self.translator.finish())

    def fail(self, error: GatewayError, meter: StreamMeter) -> bytes | None:
        """The Responses event that ends a Responses client's stream with `error`; None for others."""
        if self.responses is not None:
            return _encode_events(self.responses.fail(error))
        if self.native:
            failure = {"type": "error", "sequence_number": meter.sequence + 1, "code": error.code or "server_error",
                       "message": error.message, "param": error.param}
            return sse.encode(failure, "error")
        return None


def _encode_events(events: list[Event]) -> bytes:
    return sse.encode_all((name, data) for name, data in events)


def _is_usage_only(data: dict[str, Any]) -> bool:
    return not data.get("choices") and data.get("usage") is not None


def _is_end(fmt: Format, event: sse.SSEEvent) -> bool:
    return event.data == "[DONE]" if fmt is Format.OPENAI else event.event == "message_stop"


class StreamRelay:
    """Iterate for the client's bytes; `aclose()` (idempotent) settles usage and frees the
    upstream connection, also for a stream the client left before it began.

    One chunk for the client per read from the upstream that completes events (see
    `UpstreamStream.read`). What a read produced before an error is still sent, ahead of the
    error event that ends the stream. An iterator rather than an async generator: it is one
    layer fewer on every chunk."""

    def __init__(self, ctx: RequestContext, target: Target, upstream: UpstreamStream, upstream_body: dict[str, Any],
                 native: bool = False) -> None:
        self.ctx = ctx
        self.target = target
        self.upstream = upstream
        self.meter = StreamMeter(target.kind, upstream_body, request_size.input_tokens(ctx) if native else None)
        self.translation = Translation(ctx, target, native)
        self.parser = sse.SSEParser()  # one for the stream: `arrived` goes on where `read` stopped
        self.finished = False  # the client got a complete stream, or an error event ending it
        self.closed = False
        self.passthrough = self.translation.translator is None and target.kind is Format.OPENAI and ctx.responses is None
        self.standing = ctx.key_standing or KeyStanding()  # no key: nothing to revoke

    def __aiter__(self) -> StreamRelay:
        return self

    async def __anext__(self) -> bytes:
        if self.finished or self.closed:
            raise StopAsyncIteration
        if self.standing.revoked:
            return self._fail(revoked(self.ctx))
        out: list[bytes] = []
        try:
            while not out:
                chunk = await self.upstream.read()
                if not chunk:
                    message = f"upstream {self.target.upstream} ended the stream before it was complete"
                    raise GatewayError(ErrorKind.UPSTREAM, message)
                payloads = self.parser.feed_data_payloads(chunk) if self.passthrough else None
                if payloads is not None:
                    self._pass_openai(payloads, out)
                else:
                    self._convert(self.parser.feed(chunk), out)
        except UpstreamFailure as failure:
            kind = ErrorKind.TIMEOUT if failure.timed_out else ErrorKind.UPSTREAM
            out.append(self._fail(gateway_error(failure) if failure.shutting_down else GatewayError(kind, failure.message)))
        except GatewayError as error:
            out.append(self._fail(error))
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            message = f"upstream {self.target.upstream} sent a stream event of an unexpected shape ({exc!r})"
            out.append(self._fail(GatewayError(ErrorKind.UPSTREAM, message)))
        return b"".join(out)

    def _convert(self, events: list[sse.SSEEvent], out: list[bytes]) -> None:
        """Appends the client's bytes for `events` to `out`, up to the stream's end."""
        target = self.target
        for event in events:
            if _is_end(target.kind, event):
                self._end(event, out)
                return
            data = _event_data(target, event.data)
            if _is_error(target.kind, event, data):
                raise _reported_error(target, data)
            self.meter.observe(event.event, data)
            chunk = self.translation.convert(event, data)
            if chunk:
                out.append(chunk)
            if self.translation.ends(data, self.ctx):
                self.finished = True
                return

    def _pass_openai(self, payloads: list[bytes], out: list[bytes]) -> None:
        """`_convert` for an OpenAI stream to an OpenAI client whose events are each one line
        `data: X` (as they nearly always are), from their payloads: every event is still
        checked and metered, and forwarded as it came unless the client did not ask for the
        usage we asked for on its behalf. The events before one that fails still go out.

        The events of a read are decoded together (`decode_chunks`) and handled as a batch;
        when one of them is not a plain chunk, or reports an error, they are read one by one
        as dicts, as any event is, up to that one."""
        try:
            end = payloads.index(b"[DONE]")
        except ValueError:
            end = len(payloads)
        events = payloads[:end]
        chunks = decode_chunks(events)
        if chunks is not None and not any(chunk.error is not None for chunk in chunks):
            self.meter.observe_chunks(chunks)
            if not self.translation.client_wants_usage:
                events = [payload for payload, chunk in zip(events, chunks) if chunk.choices or chunk.usage is None]
            if events:
                out.append(b"data: " + b"\n\ndata: ".join(events) + EVENT_END)
        else:
            for payload in events:
                data = _event_data(self.target, payload)
                if isinstance(data.get("error"), dict):
                    raise _reported_error(self.target, data)
                self.meter.observe_openai(data)
                if self.translation.client_wants_usage or not _is_usage_only(data):
                    out += (b"data: ", payload, EVENT_END)
        if end < len(payloads):
            self._end(DONE_EVENT, out)

    def _end(self, event: sse.SSEEvent, out: list[bytes]) -> None:
        self.finished = True
        out.append(self.translation.end(event, self.meter))

    def _fail(self, error: GatewayError) -> bytes:
        self.finished = True
        self.ctx.error, self.ctx.status = error, error.status
        if (failed := self.translation.fail(error, self.meter)) is not None:
            return failed
        event, data = stream_error_event(self.ctx.format, error)
        return sse.encode(data, event)

    async def aclose(self) -> None:
        if self.closed:
            return
        self.closed = True
        if not self.finished:
            self.ctx.status = CLIENT_CLOSED  # the client went away before the stream ended
            self._count_unread(self.parser.feed(await finish(self.upstream.arrived())))
        self.ctx.usage = self.meter.usage()
        self.upstream.release()

    def _count_unread(self, events: list[sse.SSEEvent]) -> None:
        """Meters what the upstream produced that the client will never see."""
        for event in events:
            if _is_end(self.target.kind, event):
                return
            try:
                data = orjson.loads(event.data)
            except orjson.JSONDecodeError:
                return
            if isinstance(data, dict):
                self.meter.observe(event.event, data)


def revoked(ctx: RequestContext) -> GatewayError:
    message = (f"API key '{ctx.who.key_name}' was revoked while this stream ran, so the gateway ended it: "
               f"send further requests with a key that is not revoked.")
    return GatewayError(ErrorKind.AUTHENTICATION, message, code="revoked_api_key")


def _is_error(kind: Format, event: sse.SSEEvent, data: dict[str, Any]) -> bool:
    if kind is Format.ANTHROPIC:
        return event.event == "error"
    return isinstance(data.get("error"), dict)


def _event_data(target: Target, payload: str | bytes) -> dict[str, Any]:
    try:
        data = orjson.loads(payload)
    except orjson.JSONDecodeError:  # also bytes that are not UTF-8
        data = None
    if not isinstance(data, dict):
        raise GatewayError(ErrorKind.UPSTREAM, f"upstream {target.upstream} sent a malformed stream event")
    return data


def _reported_error(target: Target, data: dict[str, Any]) -> GatewayError:
    """An error the upstream sent inside its stream."""
    inner = sent if isinstance(sent := data.get("error"), dict) else {}
    message = str(inner.get("message") or inner.get("type") or "an error")
    kind = ErrorKind.OVERLOADED if inner.get("type") == "overloaded_error" else ErrorKind.UPSTREAM
    return GatewayError(kind, f"upstream {target.upstream} reported: {message}")
