"""Server-sent events: an incremental parser for upstream streams and an encoder for ours."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass

import orjson


@dataclass(slots=True)
class SSEEvent:
    event: str | None
    data: str

    def json(self):
        return orjson.loads(self.data)


class SSEParser:
    """Feeds on raw bytes as they arrive and returns the events completed so far."""

    def __init__(self) -> None:
        self._buffer = b""
        self._event: str | None = None
        self._data: list[str] = []

    def feed(self, chunk: bytes) -> list[SSEEvent]:
        self._buffer += chunk
        events: list[SSEEvent] = []
        while True:
            cut = self._buffer.find(b"\n")
            if cut < 0:
                return events
            line = self._buffer[:cut].rstrip(b"\r").decode("utf-8", errors="replace")
            self._buffer = self._buffer[cut + 1 :]
            event = self._line(line)
            if event is not None:
                events.append(event)

    def _line(self, line: str) -> SSEEvent | None:
        if not line:
            if not self._data and self._event is None:
                return None
            event = SSEEvent(self._event, "\n".join(self._data))
            self._event, self._data = None, []
            return event
        if line.startswith(":"):
            return None  # a comment, used as keep-alive
        name, _, value = line.partition(":")
        value = value[1:] if value.startswith(" ") else value
        if name == "event":
            self._event = value
        elif name == "data":
            self._data.append(value)
        return None


async def parse_stream(chunks: AsyncIterator[bytes]) -> AsyncIterator[SSEEvent]:
    parser = SSEParser()
    async for chunk in chunks:
        for event in parser.feed(chunk):
            yield event


def encode(data: object, event: str | None = None) -> bytes:
    """One SSE event; `data` is JSON-encoded unless it is already a string."""
    payload = data.encode() if isinstance(data, str) else orjson.dumps(data)
    if event is None:
        return b"data: " + payload + b"\n\n"
    return b"event: " + event.encode() + b"\ndata: " + payload + b"\n\n"


def encode_all(events: Iterable[tuple[str | None, object]]) -> bytes:
    return b"".join(encode(data, event) for event, data in events)
