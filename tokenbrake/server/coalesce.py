"""One send() per turn of the event loop for each client connection.

uvicorn writes a response's status line and headers as soon as the app starts the response,
and each body message as it comes: two writes, two TCP segments, two wake-ups of the
client, for a JSON response whose start and body are sent in the same step. On loopback and
in a busy gateway those writes are a large part of what a request costs. The transport
below keeps what is written during one turn of the loop and hands it to the real transport
in one write at the end of the turn, so nothing waits longer than it did, and a response's
start and body (or a stream's last events and its end) leave together.
"""

from __future__ import annotations

import asyncio
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol


class CoalescingTransport:
    """A transport whose writes within one loop turn are joined into one."""

    __slots__ = ("_transport", "_loop", "_pending")

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop) -> None:
        self._transport = transport
        self._loop = loop
        self._pending: list[bytes] | None = None

    def write(self, data: bytes) -> None:
        if self._pending is None:
            self._pending = [data]
            self._loop.call_soon(self.flush)
        else:
            self._pending.append(data)

    def flush(self) -> None:
        pending, self._pending = self._pending, None
        if pending and not self._transport.is_closing():
            self._transport.write(pending[0] if len(pending) == 1 else b"".join(pending))

    def close(self) -> None:
        self.flush()  # what was written before close still leaves, in order
        self._transport.close()

    def write_eof(self) -> None:
        self.flush()  # as for close: what was written first leaves first
        self._transport.write_eof()

    def __getattr__(self, name: str) -> Any:  # everything else is the real transport's
        return getattr(self._transport, name)


class CoalescingHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol, writing through a CoalescingTransport."""

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(CoalescingTransport(transport, self.loop))  # type: ignore[arg-type]
