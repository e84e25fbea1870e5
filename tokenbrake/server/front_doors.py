"""The OpenAI- and Anthropic-compatible endpoints: read, check, hand to the pipeline, answer.

A Responses request is checked and turned into the chat completion it amounts to here, so the
stages read it like any other (wire/responses_api); its exchange rides on the context."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import orjson
from starlette.requests import ClientDisconnect, Request
from starlette.types import ASGIApp, Receive, Scope, Send

from tokenbrake.core import Endpoint, ErrorKind, Format, GatewayError, Reply, RequestContext
from tokenbrake.gateway.state import AppState
from tokenbrake.wire import validate
from tokenbrake.wire.errors import error_body
from tokenbrake.wire.responses_api import Exchange
from tokenbrake.wire.responses_api.requests import new_exchange, to_chat

# Checks a request's body; for a Responses request, returns its exchange.
Check = Callable[[dict[str, Any]], Exchange | None]
FrontDoor = Callable[[Request], Awaitable[ASGIApp]]


# A stream's first moments go unwatched for a client that left (see SSEResponse).
WATCH_AFTER_S = 0.05


def raw_headers(content_type: bytes, headers: dict[str, str] | None) -> list[tuple[bytes, bytes]]:
    """A response's headers as ASGI wants them: its content type first, then `headers`."""
    raw = [(b"content-type", content_type)]
    if headers:
        raw += [(name.lower().encode("latin-1"), value.encode("latin-1")) for name, value in headers.items()]
    return raw


class JSONBytes:
    """A JSON response: its start and body as two ASGI messages.

    Starlette's `Response` would do the same with more steps (media type and charset
    lookup, a header list built through several checks, background tasks), which cost
    every request more than all this does."""

    __slots__ = ("status_code", "body", "raw_headers")

    def __init__(self, content: Any, status_code: int = 200, headers: dict[str, str] | None = None) -> None:
        self.status_code = status_code
        self.body = orjson.dumps(content)
        self.raw_headers = raw_headers(b"application/json", headers)
        self.raw_headers.append((b"content-length", str(len(self.body)).encode()))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": self.status_code, "headers": self.raw_headers})
        await send({"type": "http.response.body", "body": self.body})


class SSEResponse:
    """A reply stream as server-sent events, closed (and so settled) however the response
    ends: at its end, when the client leaves, or when the server cancels it. The reply
    stream's `aclose()` shields its own settling from cancellation (`pipeline.SettledStream`).

    A client that leaves is noticed, as in Starlette's StreamingResponse, by waiting on
    `receive` for `http.disconnect`, here in a plain asyncio task that cancels the streaming
    (an anyio task group costs much more per stream). That task starts only once the stream
    has run for WATCH_AFTER_S: a busy gateway relays most streams from a fast upstream in
    less, and never starts it for them; a client that leaves sooner is noticed then, having
    cost at most that much more of the answer."""

    __slots__ = ("stream", "status_code", "raw_headers", "_streaming", "_client_left", "_watcher")

    def __init__(self, stream: Any, status_code: int = 200, headers: dict[str, str] | None = None) -> None:
        self.stream = stream
        self.status_code = status_code
        self.raw_headers = raw_headers(b"text/event-stream; charset=utf-8", headers)
        self._streaming = self._client_left = False
        self._watcher: asyncio.Future | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        task = asyncio.current_task()
        assert task is not None, "an ASGI app runs in a task"
        self._streaming = True
        timer = asyncio.get_running_loop().call_later(WATCH_AFTER_S, self._start_watching, receive, task)
        try:
            await self._send_stream(send)
        except asyncio.CancelledError:
            # Cancelled by the watcher (swallowed), or by the server (propagated).
            if not self._client_left or task.uncancel() > 0:
                raise
        except (ClientDisconnect, OSError):
            pass  # the client left mid-stream; closing the stream settles what was delivered
        finally:
            self._streaming = False
            timer.cancel()
            if self._watcher is not None:
                self._watcher.cancel()
            await self.stream.aclose()

    async def _send_stream(self, send: Send) -> None:
        await send({"type": "http.response.start", "status": self.status_code, "headers": self.raw_headers})
        stream = self.stream
        async for chunk in stream:
            if getattr(stream, "finished", False):  # the last chunk: it ends the response, in the same write
                await send({"type": "http.response.body", "body": chunk, "more_body": False})
                return
            await send({"type": "http.response.body", "body": chunk, "more_body": True})
        await send({"type": "http.response.body", "body": b"", "more_body": False})

    def _start_watching(self, receive: Receive, task: asyncio.Task) -> None:
        if self._streaming:
            self._watcher = asyncio.ensure_future(self._watch(receive, task))

    async def _watch(self, receive: Receive, task: asyncio.Task) -> None:
        while (await receive())["type"] != "http.disconnect":
            pass
        if self._streaming:  # `receive` also says disconnect once the response is complete
            self._client_left = True
            task.cancel()


async def no_answer(scope: Scope, receive: Receive, send: Send) -> None:
    """The response to a client that has gone: nothing (the server sees it has disconnected)."""


async def read_body(receive: Receive, headers: dict[str, str], limit: int, setting: str = "server.max_body_bytes") -> bytes:
    """The whole request body, refusing one over `limit` bytes (the config's `setting`)
    before reading past it.

    Read straight from the ASGI messages, as `Request.stream()` would, without its async
    generator's per-request cost."""
    declared = headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise _too_large(int(declared), limit, setting)
    chunks, size = [], 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ClientDisconnect()
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise _too_large(size, limit, setting)
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


def header_dict(scope: Scope) -> dict[str, str]:
    """The request's headers by lower-case name, the first one winning, as `Request.headers`
    answers them; built in one pass (`dict(request.headers)` looks each name up again)."""
    return {name.decode("latin-1"): value.decode("latin-1") for name, value in reversed(scope["headers"])}


def _too_large(size: int, limit: int, setting: str) -> GatewayError:
    return GatewayError(
        ErrorKind.REQUEST_TOO_LARGE, limit=setting,
        message=f"request body of {size} bytes is over this gateway's limit of {limit} bytes ({setting})",
    )


async def handle(request: Request, fmt: Format, endpoint: Endpoint, check: Check) -> ASGIApp:
    state: AppState = request.app.state.tokenbrake
    headers = header_dict(request.scope)
    try:
        body = validate.parse_json_object(await read_body(request.receive, headers, state.config.server.max_body_bytes))
        exchange = check(body)
        stream = bool(body.get("stream")) and endpoint is Endpoint.CHAT
        if exchange is not None:
            body = to_chat(exchange)  # what the stages read
    except GatewayError as error:
        return error_response(fmt, error)
    except ClientDisconnect:
        return no_answer  # gone before its body was in (or cut off by server.body_timeout_s)
    ctx = RequestContext(
        format=fmt,
        endpoint=endpoint,
        body=body,
        headers=headers,
        stream=stream,
        responses=exchange,
    )
    assert state.pipeline is not None, "AppState.open builds the pipeline"
    reply = await state.pipeline.run(ctx)
    return to_response(ctx, reply)


def to_response(ctx: RequestContext, reply: Reply) -> ASGIApp:
    headers = {**ctx.response_headers, **reply.headers, "x-request-id": ctx.request_id, "request-id": ctx.request_id}
    if ctx.served is not None:
        headers["x-tokenbrake-served-by"] = ctx.served.name
    if reply.stream is not None:
        headers["cache-control"] = "no-cache"
        return SSEResponse(reply.stream, status_code=reply.status, headers=headers)
    return JSONBytes(reply.body, status_code=reply.status, headers=headers)


def error_response(fmt: Format, error: GatewayError) -> ASGIApp:
    return JSONBytes(error_body(fmt, error), status_code=error.status, headers=error.headers)


async def chat_completions(request: Request) -> ASGIApp:
    return await handle(request, Format.OPENAI, Endpoint.CHAT, validate.check_openai_chat)


async def responses(request: Request) -> ASGIApp:
    return await handle(request, Format.OPENAI, Endpoint.CHAT, new_exchange)


async def embeddings(request: Request) -> ASGIApp:
    return await handle(request, Format.OPENAI, Endpoint.EMBEDDINGS, validate.check_openai_embeddings)


async def messages(request: Request) -> ASGIApp:
    return await handle(request, Format.ANTHROPIC, Endpoint.CHAT, validate.check_anthropic_messages)


async def count_tokens(request: Request) -> ASGIApp:
    return await handle(request, Format.ANTHROPIC, Endpoint.COUNT_TOKENS, validate.check_anthropic_count_tokens)
