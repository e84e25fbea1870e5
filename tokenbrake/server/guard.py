"""What one client connection may hold of the gateway, and for how long.

A client that needs no key can still open connections and send bytes. uvicorn's httptools
protocol, as it comes, waits for a request's headers and body without end, keeps a
connection that never sends a request open for good, and lets its parser buffer a header of
any size: 20,000 idle sockets used up the process's file descriptors, and a 64 MiB header
took a gigabyte. The protocol below bounds each of these (the `server:` settings):

- the request line and headers: `max_header_bytes` in all and `max_headers` of them (431);
- time: a connection's first request must have its headers within `header_timeout_s` of
  the connection opening, a later one within `header_timeout_s` of its first byte, and a
  body must arrive within `body_timeout_s` of its headers (408); an idle keep-alive
  connection is closed after `idle_timeout_s` (uvicorn's own keep-alive timer);
- connections: past `max_connections` open, a new one is answered 503, and past twice that
  it is closed at once, so the process always keeps file descriptors for its own work.

A refusal is a JSON error in the caller's format (told by its headers so far, see
`door_format`) with `connection: close`; the gateway then reads and drops what the client
still sends for `LINGER_S`, so a client busy sending its request is not reset before it can
read why. Timers are armed only when a request's head or body is still outstanding after
the bytes at hand are parsed: a request that arrives whole sets none.
"""

from __future__ import annotations

import asyncio
import enum
import http
import resource
from typing import Any

import httptools
import orjson

from tokenbrake.config import ServerConfig
from tokenbrake.core import ErrorKind, Format, GatewayError
from tokenbrake.server.coalesce import CoalescingHttpToolsProtocol
from tokenbrake.wire.errors import error_body

# How long a connection past `max_connections` may take to send its request's headers, so its
# 503 can be in its own format; a short wait, since such connections hold descriptors too.
OVER_CAP_WAIT_S = 1.0
# How long a refused client may go on sending (dropped) before the socket is closed: closing
# with its bytes unread would reset the connection and could lose the error it is owed.
LINGER_S = 1.0
# File descriptors the cap leaves for everything else: twice the cap for the connections a
# burst may open before they are refused, the rest for upstreams, databases and files.
OPEN_FILES_PER_CONNECTION = 4


class Phase(enum.Enum):
    WAITING = "waiting"  # connection open, no byte of its first request yet
    HEAD = "head"  # a request's line and headers are arriving
    BODY = "body"  # its headers are in, its body is not
    IDLE = "idle"  # the request is read (its answer may still be on its way)
    LINGERING = "lingering"  # refused: dropping what still comes until the close


class Refused(Exception):
    """Stops the parser: the request is answered `error`, whatever else it holds."""

    def __init__(self, error: GatewayError) -> None:
        super().__init__(error.message)
        self.error = error


def door_format(headers: list[tuple[bytes, bytes]]) -> Format:
    """Anthropic's SDK always sends `anthropic-version`; OpenAI's never does."""
    return Format.ANTHROPIC if any(name == b"anthropic-version" for name, _ in headers) else Format.OPENAI


def error_response_bytes(fmt: Format, error: GatewayError) -> bytes:
    """A whole HTTP/1.1 error response that ends the connection."""
    body = orjson.dumps(error_body(fmt, error))
    head = (f"HTTP/1.1 {error.status} {http.HTTPStatus(error.status).phrase}\r\ncontent-type: application/json\r\n"
            f"content-length: {len(body)}\r\nconnection: close\r\n\r\n")
    return head.encode("latin-1") + body


def head_size(url: bytes, headers: list[tuple[bytes, bytes]]) -> int:
    """The request line and headers' size, as sent at the least (": " and CRLF each)."""
    return len(url) + sum(len(name) + len(value) + 4 for name, value in headers)


class GuardedHttpToolsProtocol(CoalescingHttpToolsProtocol):
    """uvicorn's httptools protocol (with coalesced writes), bounded as the module says."""

    def __init__(self, *args: Any, bounds: ServerConfig, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.bounds = bounds
        self.phase = Phase.WAITING
        self.deadline: asyncio.TimerHandle | None = None
        self.over_cap = False
        self.head_bytes = 0  # bytes read since the last request's headers ended

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        open_now = len(self.connections)
        if open_now > 2 * self.bounds.max_connections:
            self.transport.abort()
            return
        self.over_cap = open_now > self.bounds.max_connections
        self._arm(OVER_CAP_WAIT_S if self.over_cap else self.bounds.header_timeout_s, self._head_timed_out)

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self.phase is Phase.LINGERING:
            return
        self._unset_keepalive_if_required()
        if self.phase is not Phase.BODY:  # bytes that are (or begin) a request's head
            self.head_bytes += len(data)
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            # No upgrade is served: the request goes on as plain HTTP, but the parser takes
            # nothing after it, so its answer ends the connection (else bytes sent after it
            # would keep the connection open, unread, for good).
            if self.cycle is None or self.cycle.response_complete:
                self.transport.close()
            else:
                self.cycle.keep_alive = False
            return
        except httptools.HttpParserError as exc:
            refused = exc.__context__
            self.refuse(refused.error if isinstance(refused, Refused) else GatewayError(
                ErrorKind.INVALID_REQUEST, f"malformed HTTP/1.1 request ({exc}): send a well-formed request"))
            return
        self._watch_what_is_outstanding()

    def _watch_what_is_outstanding(self) -> None:
        """After the bytes at hand: a head still arriving must be within its limits so far,
        and a head or body still to come is put on the clock."""
        if self.phase is Phase.HEAD or self.phase is Phase.WAITING:
            if self.head_bytes > self.bounds.max_header_bytes:
                self.refuse(self._head_too_large())
            elif self.headers is not None and len(self.headers) > self.bounds.max_headers:
                self.refuse(self._too_many_headers())
            elif self.deadline is None:
                self._arm(self.bounds.header_timeout_s, self._head_timed_out)
        elif self.phase is Phase.BODY and self.deadline is None:
            self._arm(self.bounds.body_timeout_s, self._body_timed_out)

    # Parser callbacks. The head's limits are checked once it is complete, not header by
    # header (a Python call per header would cost each request more than all of this): a
    # head still incomplete is checked after each read, so none holds more than one read's
    # worth past a limit.
    def on_message_begin(self) -> None:
        super().on_message_begin()
        self.phase = Phase.HEAD

    def on_headers_complete(self) -> None:
        self._disarm()
        if len(self.headers) > self.bounds.max_headers:
            raise Refused(self._too_many_headers())
        # What was read holds the whole head: when that is within the limit, so is the head.
        if self.head_bytes > self.bounds.max_header_bytes and head_size(self.url, self.headers) > self.bounds.max_header_bytes:
            raise Refused(self._head_too_large())
        if self.over_cap:
            if len(self.connections) > self.bounds.max_connections:
                raise Refused(self._over_cap_error())
            self.over_cap = False  # others have closed since it opened: it may stay
        self.phase, self.head_bytes = Phase.BODY, 0
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        self._disarm()
        self.phase = Phase.IDLE
        super().on_message_complete()

    def refuse(self, error: GatewayError) -> None:
        """Answers `error` in the caller's format, then drops what it still sends, and closes."""
        refusing_its_body = self.phase is Phase.BODY  # else a head, which has no cycle yet
        self._disarm()
        self.phase = Phase.LINGERING
        cycle = self.cycle
        unanswered = cycle is not None and not cycle.response_complete
        if unanswered:
            cycle.disconnected = True  # the app's own answer, if one comes, goes nowhere
            cycle.message_event.set()
        if self.transport.is_closing():
            return
        # A request answered already (or being answered) gets no second answer; nor does a
        # head while an earlier request's answer is still due, as the client would read it as that.
        if cycle.response_started if refusing_its_body else unanswered:
            self.transport.close()
            return
        self.transport.write(error_response_bytes(door_format(self.headers or []), error))
        if not refusing_its_body:
            self.headers = []  # nothing will read them: do not keep them while lingering
        self.transport.write_eof()
        self._arm(LINGER_S, self.transport.close)

    def eof_received(self) -> None:
        if self.phase is Phase.LINGERING:
            self.transport.close()  # the client has sent all it will: nothing more to wait for
        return None

    def _head_timed_out(self) -> None:
        self.deadline = None
        if self.over_cap:
            self.refuse(self._over_cap_error())
        elif self.phase is Phase.WAITING:
            self.transport.close()  # never sent a byte: there is nobody to answer
        else:
            self.refuse(GatewayError(
                ErrorKind.TIMEOUT, status=408, limit="server.header_timeout_s",
                message=f"the request's headers did not arrive within server.header_timeout_s "
                        f"({self.bounds.header_timeout_s:g} s): send each request whole, without pauses"))

    def _body_timed_out(self) -> None:
        self.deadline = None
        if self.pipeline:  # the body waits for an earlier request's answer: not the client's delay
            self._arm(self.bounds.body_timeout_s, self._body_timed_out)
        else:
            self.refuse(GatewayError(
                ErrorKind.TIMEOUT, status=408, limit="server.body_timeout_s",
                message=f"the request body did not arrive within server.body_timeout_s "
                        f"({self.bounds.body_timeout_s:g} s) of its headers: send it without pauses, "
                        "or raise server.body_timeout_s for slow links"))

    def _head_too_large(self) -> GatewayError:
        return GatewayError(
            ErrorKind.REQUEST_TOO_LARGE, status=431, limit="server.max_header_bytes",
            message=f"request line and headers over {self.bounds.max_header_bytes} bytes: this gateway takes "
                    "at most server.max_header_bytes; send large data in the body, not in headers")

    def _too_many_headers(self) -> GatewayError:
        return GatewayError(
            ErrorKind.REQUEST_TOO_LARGE, status=431, limit="server.max_headers",
            message=f"more than {self.bounds.max_headers} request headers: this gateway takes at most "
                    "server.max_headers; send fewer headers")

    def _over_cap_error(self) -> GatewayError:
        return GatewayError(
            ErrorKind.OVERLOADED, status=503, limit="server.max_connections",
            message=f"this gateway already has server.max_connections ({self.bounds.max_connections}) client "
                    "connections open: retry shortly, reuse connections (keep-alive), or raise server.max_connections")

    def _arm(self, delay: float, callback: Any) -> None:
        self._disarm()
        self.deadline = self.loop.call_later(delay, callback)

    def _disarm(self) -> None:
        if self.deadline is not None:
            self.deadline.cancel()
            self.deadline = None


def fit_to_open_files(bounds: ServerConfig) -> tuple[ServerConfig, str | None]:
    """Raises this process's soft limit on open files to its hard limit, and lowers
    `max_connections` to what that limit allows (with a warning saying so)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != hard:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
            soft = hard
        except (ValueError, OSError):
            pass  # some systems cap the soft limit below an unlimited hard one: keep what is set
    allowed = max(1, soft // OPEN_FILES_PER_CONNECTION)
    if soft == resource.RLIM_INFINITY or bounds.max_connections <= allowed:
        return bounds, None
    warning = (f"server.max_connections {bounds.max_connections} is more than this process's limit of {soft} "
               f"open files allows: capped at {allowed}; raise the limit (ulimit -n) to allow more")
    return bounds.model_copy(update={"max_connections": allowed}), warning
