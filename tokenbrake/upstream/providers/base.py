"""An upstream reached over pooled HTTP connections (aiohttp's client).

Each subclass knows its wire format's paths and auth headers. Every failure, whatever its
cause, surfaces as `UpstreamFailure`, which says whether trying again may help; deciding to
retry or fall back is the dispatcher's job, not the provider's.

aiohttp rather than httpx: on the gateway's hot path httpx's connection pool cost more CPU
than everything else the gateway does (bench/overhead.py), aiohttp a fraction of it.
"""

from __future__ import annotations

import asyncio
import os
import socket
import ssl
from typing import Any

import aiohttp
import orjson
from yarl import URL

from tokenbrake.config import Config, UpstreamConfig
from tokenbrake.core import Endpoint, Format
from tokenbrake.wire.errors import upstream_error_message

RETRYABLE_STATUS = frozenset({408, 409, 429, 500, 502, 503, 504, 529})
DRAIN_LOOP_TURNS = 3


class UpstreamFailure(Exception):
    """An upstream call that produced no usable answer."""

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        retryable: bool = False,
        timed_out: bool = False,
        retry_after_s: float | None = None,
        shutting_down: bool = False,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.retryable = retryable
        self.timed_out = timed_out
        self.retry_after_s = retry_after_s
        self.shutting_down = shutting_down  # cut by the gateway's shutdown, not the upstream's fault
        self.sent = True


SHUTTING_DOWN = ("the gateway is shutting down and cut this call after server.graceful_shutdown_s; "
                 "what was delivered so far is recorded. Send it again: another replica, or this one "
                 "once restarted, will serve it")


class OpenCalls:
    """The tasks with an upstream call open, so that shutdown can cut them: each is cancelled
    with `CUT`, and the call it is waiting on turns that into `shutting_down()`, an upstream
    failure every path above already records and answers. Closing the connections instead
    would not do: a response half-read does not notice its connection closed."""

    CUT = "tokenbrake: cut by shutdown"

    def __init__(self) -> None:
        self.tasks: set[asyncio.Task] = set()
        self.stopping = False

    def cut(self) -> None:
        self.stopping = True
        for task in list(self.tasks):
            task.cancel(self.CUT)

    def was_cut(self, cancelled: asyncio.CancelledError) -> bool:
        """Whether `cancelled` is the cut's (then the task's cancellation is taken back, since
        the call ends in a failure instead)."""
        if not (self.stopping and cancelled.args and cancelled.args[0] == self.CUT):
            return False
        task = asyncio.current_task()
        if task is not None:
            task.uncancel()
        return True


def shutting_down(*, sent: bool) -> UpstreamFailure:
    """`sent`: the call was under way (the upstream may have spent tokens on it); else it
    never left the gateway."""
    failure = UpstreamFailure(SHUTTING_DOWN, status=503, shutting_down=True)
    failure.sent = sent
    return failure


class UpstreamStream:
    """An open upstream SSE response: `read()` its bytes as they come; always `release()`."""

    def __init__(self, upstream: str, response: aiohttp.ClientResponse, open_calls: OpenCalls | None = None) -> None:
        self._upstream = upstream
        self._response = response
        self._open_calls = open_calls
        self._task = asyncio.current_task()
        if open_calls is not None and self._task is not None:
            open_calls.tasks.add(self._task)

    async def read(self) -> bytes:
        """The bytes of the next read from the socket, as the upstream sent them (a relay that
        passes them on together sends the client one write where the upstream sent one);
        b"" at the end of the stream."""
        try:
            return await self._response.content.readany()
        except (TimeoutError, aiohttp.ServerTimeoutError) as exc:
            raise UpstreamFailure(f"upstream {self._upstream} stalled mid-stream", timed_out=True) from exc
        except aiohttp.ClientError as exc:
            raise UpstreamFailure(f"upstream {self._upstream} broke off the stream ({_describe(exc)})") from exc
        except asyncio.CancelledError as cancelled:
            if self._open_calls is not None and self._open_calls.was_cut(cancelled):
                raise shutting_down(sent=True) from None
            raise

    async def arrived(self) -> bytes:
        """Bytes that have reached us but were not read, without waiting for more.

        When the client leaves mid-stream, what the upstream already sent was produced (and
        will be billed) even though nobody reads it; the relay counts it before closing. A
        few loop turns let bytes already in the socket reach the reader."""
        chunks: list[bytes] = []
        for _ in range(DRAIN_LOOP_TURNS):
            await asyncio.sleep(0)
            try:
                chunks.append(self._response.content.read_nowait())
            except (aiohttp.ClientError, RuntimeError):
                break
        return b"".join(chunks)

    def release(self) -> None:
        """Frees the connection, without waiting: a stream read to its end returns it to the
        pool; one left half-read (the client went away) is closed, since what is left of it
        cannot be reused."""
        self._response.release()
        if self._open_calls is not None:
            self._open_calls.tasks.discard(self._task)


class Provider:
    kind: Format
    paths: dict[Endpoint, str]
    responses_api = False  # serves OpenAI's Responses API itself

    def __init__(self, name: str, config: UpstreamConfig) -> None:
        self.name = name
        self.config = config
        api_key = os.environ.get(config.api_key_env) if config.api_key_env else None
        # Said with the provider's refusal, which is otherwise hard to tell from a wrong key.
        self.missing_key = (f" (the gateway sent no key: {config.api_key_env} is not set)"
                            if config.api_key_env and not api_key else "")
        self.headers = {**self.auth_headers(api_key), **config.headers, "content-type": "application/json"}
        base = config.base_url.rstrip("/")
        self.urls = {endpoint: URL(base + path) for endpoint, path in self.paths.items()}
        # `connect` bounds the wait for a pooled connection plus connecting; `sock_connect` the
        # connecting alone; `sock_read` the first byte of a response and each gap in a stream.
        self.timeout = aiohttp.ClientTimeout(
            total=None, connect=config.timeout_s, sock_connect=config.connect_timeout_s, sock_read=config.timeout_s
        )
        self._session: aiohttp.ClientSession | None = None
        self.open_calls = OpenCalls()

    @property
    def session(self) -> aiohttp.ClientSession:
        """Opened on first use, inside the event loop that will use it."""
        if self._session is None or self._session.closed:
            connector = aiohttp.TCPConnector(limit=self.config.max_connections, limit_per_host=0)
            self._session = aiohttp.ClientSession(
                connector=connector, headers=self.headers, timeout=self.timeout, cookie_jar=aiohttp.DummyCookieJar()
            )
        return self._session

    def auth_headers(self, api_key: str | None) -> dict[str, str]:
        raise NotImplementedError

    def supports(self, endpoint: Endpoint) -> bool:
        return endpoint in self.paths

    def wire_body(self, endpoint: Endpoint, body: dict[str, Any]) -> dict[str, Any]:
        """`body` as this upstream's server reads it: its wire format's fields are the same
        everywhere, but a server may read a field under another name."""
        return body

    async def request_json(
        self, endpoint: Endpoint, body: dict[str, Any], headers: dict[str, str] | None = None
    ) -> dict[str, Any]:
        """The upstream's JSON answer; `headers` go with the request, beside the upstream's own."""
        payload = orjson.dumps(self.wire_body(endpoint, body))
        content = await self._call(endpoint, payload, stream=False, headers=headers)
        try:
            data = orjson.loads(content)
        except orjson.JSONDecodeError:
            raise UpstreamFailure(f"upstream {self.name} answered with a body that is not JSON") from None
        if not isinstance(data, dict):
            raise UpstreamFailure(f"upstream {self.name} answered with JSON that is not an object")
        return data

    async def open_stream(
        self, endpoint: Endpoint, body: dict[str, Any], headers: dict[str, str] | None = None
    ) -> UpstreamStream:
        payload = orjson.dumps(self.wire_body(endpoint, body))
        response = await self._call(endpoint, payload, stream=True, headers=headers)
        return UpstreamStream(self.name, response, self.open_calls)

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()

    def cut(self) -> None:
        """At shutdown, once the grace period is over: every call in flight is cut (its
        request records what it got and answers with an error), and none starts."""
        self.open_calls.cut()

    async def _call(
        self, endpoint: Endpoint, data: bytes, *, stream: bool, headers: dict[str, str] | None = None
    ) -> Any:
        """The open response when `stream`, else the whole body; either only for a 200."""
        open_calls = self.open_calls
        if open_calls.stopping:
            raise shutting_down(sent=False)
        task = asyncio.current_task()
        open_calls.tasks.add(task)  # type: ignore[arg-type]
        try:
            response = await self.session.post(self.urls[endpoint], data=data, headers=headers)
            if response.status != 200:
                refused_key = self.missing_key if response.status in (401, 403) else ""
                raise _status_failure(self.name, response, await _read_quietly(response), refused_key)
            if stream:
                return response
            async with response:
                return await response.read()
        except aiohttp.ConnectionTimeoutError as exc:
            raise UpstreamFailure(f"could not connect to upstream {self.name}: timed out", retryable=True) from exc
        except (TimeoutError, aiohttp.ServerTimeoutError) as exc:
            raise UpstreamFailure(f"upstream {self.name} did not answer in time", timed_out=True) from exc
        except aiohttp.ClientConnectorError as exc:
            raise UpstreamFailure(
                f"could not connect to upstream {self.name} ({_connect_failure(exc)})", retryable=True
            ) from exc
        except aiohttp.ClientError as exc:
            raise UpstreamFailure(f"upstream {self.name} failed ({_describe(exc)})", retryable=True) from exc
        except asyncio.CancelledError as cancelled:
            if open_calls.was_cut(cancelled):
                raise shutting_down(sent=True) from None
            raise
        finally:
            open_calls.tasks.discard(task)  # a stream's is added again by its UpstreamStream


def _status_failure(name: str, response: aiohttp.ClientResponse, content: bytes, hint: str = "") -> UpstreamFailure:
    try:
        message = upstream_error_message(orjson.loads(content))
    except orjson.JSONDecodeError:
        message = None
    text = message or response.reason or "no message"
    return UpstreamFailure(
        f"upstream {name} answered {response.status}: {text}{hint}",
        status=response.status,
        retryable=response.status in RETRYABLE_STATUS,
        retry_after_s=_retry_after(response.headers.get("retry-after")),
    )


async def _read_quietly(response: aiohttp.ClientResponse) -> bytes:
    try:
        return await response.read()
    except (TimeoutError, aiohttp.ClientError):
        return b""
    finally:
        response.release()


def _retry_after(value: str | None) -> float | None:
    try:
        return max(0.0, float(value)) if value else None
    except ValueError:
        return None


def _describe(exc: Exception) -> str:
    return str(exc) or type(exc).__name__


def _connect_failure(exc: aiohttp.ClientConnectorError) -> str:
    """`127.0.0.1:9: connection refused`, without aiohttp's `Cannot connect to host ... ssl:default
    [...]` around it (a certificate's failure keeps aiohttp's words: they are the reason)."""
    cause = exc.os_error
    if isinstance(cause, ConnectionRefusedError):
        reason = "connection refused: nothing listens there"
    elif isinstance(cause, socket.gaierror):
        reason = f"unknown host ({cause.strerror})"
    elif isinstance(cause, OSError) and cause.strerror and not isinstance(cause, ssl.SSLError):
        reason = cause.strerror
    else:
        return _describe(exc)
    return f"{exc.host}:{exc.port}: {reason}"


def build_providers(config: Config) -> dict[str, Provider]:
    from tokenbrake.upstream.providers.anthropic import AnthropicProvider
    from tokenbrake.upstream.providers.openai import OpenAIProvider

    classes = {"openai": OpenAIProvider, "anthropic": AnthropicProvider}
    return {name: classes[up.kind](name, up) for name, up in config.upstreams.items()}
