"""Server-sent events: an incremental parser for upstream streams and an encoder for ours."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import orjson


@dataclass(slots=True)
class SSEEvent:
    event: str | None
    data: str
    # The event's wire bytes when they are exactly what `encode(data, event)` writes, so a
    # relay can forward them as they came; None when the upstream wrote it another way.
    raw: bytes | None = None

    def json(self):
        return orjson.loads(self.data)


class SSEParser:
    """Feeds on raw bytes as they arrive and returns the events completed so far.

    Upstreams nearly always write each event in our own encoder's shape (`data: …`, perhaps
    after `event: …`, `\\n` line ends); such events are cut out of the bytes whole, keeping
    their wire bytes. Anything else (CRLF, comments, several data lines, other fields) goes
    through the general line-by-line parser, from that event on to the end of the chunk."""

    def __init__(self) -> None:
        self._buffer = b""  # bytes not parsed yet; they begin a line
        self._event: str | None = None  # the line parser's event in progress
        self._data: list[str] = []

    def feed(self, chunk: bytes) -> list[SSEEvent]:
        data = self._whole(chunk)
        if data is None:
            return self._feed_lines(chunk)
        parts = data.split(b"\n\n")
        self._buffer = b""
        events: list[SSEEvent] = []
        for at, part in enumerate(parts[:-1]):
            event = _whole_event(part)
            if event is None:  # another shape: the line parser from here on
                return events + self._feed_lines(b"\n\n".join(parts[at:]))
            events.append(event)
        self._buffer = parts[-1]  # the start of an event still arriving (or nothing)
        return events

    def feed_data_payloads(self, chunk: bytes) -> list[bytes] | None:
        """The events `chunk` completes, each as the X of its one line `data: X`, when every
        one is in that shape, as OpenAI and OpenAI-compatible servers write them: no event
        objects, nothing decoded. None, with nothing taken, when any event is not; then
        `feed` reads the chunk.

        Told by counting rather than by looking at each event: the events before the last
        blank line are all single `data: ` lines exactly when that text starts with `data: `
        and has two line ends per `\\n\\ndata: ` between events, and no others."""
        data = self._whole(chunk)
        if data is None:
            return None
        end = data.rfind(b"\n\n")
        if end < 0:
            self._buffer = data
            return []
        events = data[:end]
        between = events.count(b"\n\ndata: ")
        if not events.startswith(b"data: ") or events.count(b"\n") != 2 * between:
            return None
        self._buffer = data[end + 2:]
        return events[6:].split(b"\n\ndata: ")

    def _whole(self, chunk: bytes) -> bytes | None:
        """What is buffered and `chunk`, to be cut at the blank lines between events. None
        while the line parser is inside an event, or when a line ends in CR: then only the
        line parser reads it."""
        if self._data or self._event is not None or b"\r" in chunk or b"\r" in self._buffer:
            return None
        return self._buffer + chunk if self._buffer else chunk

    def _feed_lines(self, chunk: bytes) -> list[SSEEvent]:
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


def _whole_event(part: bytes) -> SSEEvent | None:
    """The event whose lines are `part` (its blank line cut off) if it is `data: X` or
    `event: E\\ndata: X`, in valid UTF-8 (the caller has made sure there is no CR); else None."""
    name, data = None, part
    if part.startswith(b"event: "):
        name, _, data = part.partition(b"\n")
    if not data.startswith(b"data: ") or b"\n" in data:
        return None
    try:
        return SSEEvent(None if name is None else name[7:].decode(), data[6:].decode(), part + b"\n\n")
    except UnicodeDecodeError:
        return None  # the line parser's replacement characters would not match the wire


def _value(line: bytes, start: int) -> str:
    """A field's value: after the colon, less one leading space."""
    if line[start : start + 1] == b" ":
        start += 1
    return line[start:].decode("utf-8", errors="replace")


def encode(data: object, event: str | None = None) -> bytes:
    """One SSE event; `data` is JSON-encoded unless it is already a string."""
    payload = data.encode() if isinstance(data, str) else orjson.dumps(data)
    if event is None:
        return b"data: " + payload + b"\n\n"
    return b"event: " + event.encode() + b"\ndata: " + payload + b"\n\n"


def encode_all(events: Iterable[tuple[str | None, object]]) -> bytes:
    return b"".join(encode(data, event) for event, data in events)
