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
        lines = (self._buffer + chunk if self._buffer else chunk).split(b"\n")
        self._buffer = lines.pop()  # an incomplete last line waits for the rest
        events: list[SSEEvent] = []
        for line in lines:
            if line.endswith(b"\r"):
                line = line[:-1]
            if not line:  # a blank line ends the event
                if self._data or self._event is not None:
                    events.append(SSEEvent(self._event, "\n".join(self._data)))
                    self._event, self._data = None, []
            elif line.startswith(b"data:"):
                self._data.append(_value(line, 5))
            elif line.startswith(b"event:"):
                self._event = _value(line, 6)
            elif line == b"data":  # a field with no colon has an empty value
                self._data.append("")
            elif line == b"event":
                self._event = ""
            # anything else: a comment (":", used as keep-alive) or a field we do not use
        return events


def _value(line: bytes, start: int) -> str:
    """A field's value: after the colon, less one leading space."""
    if line[start : start + 1] == b" ":
        start += 1
    return line[start:].decode("utf-8", errors="replace")


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
