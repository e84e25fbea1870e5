"""Streaming a reply as SSE with the requested pacing, and breaking it on purpose.

A reply is a list of frames, each one SSE event tagged with its role: the preamble goes out
at once; the time to first token is spent before the first content frame and the gap between
tokens before each later one. Frames that need no wait between them are written together,
so an unpaced stream costs one write. `cut=N` stops after N content frames and returns
without finishing the response, which makes uvicorn close the connection mid-body (the
client sees an incomplete chunked read); `garbage=N` sends a line that is not JSON instead
and ends the body there. A paced stream whose client goes away stops there too.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from typing import NamedTuple

from starlette.types import Receive, Scope, Send

PREAMBLE, BODY, CONTENT = 0, 1, 2
GARBAGE = b"data: {this is not json\n\n"
NAMED_GARBAGE = b"event: content_block_delta\n" + GARBAGE  # clients skip unnamed Anthropic events
_HEADERS = [
    (b"content-type", b"text/event-stream; charset=utf-8"),
    (b"cache-control", b"no-cache"),
]


class Frame(NamedTuple):
    data: bytes
    kind: int = BODY
    text: str = ""  # the output text a content frame carries (for counting what was sent)


@dataclass(slots=True)
class Pacing:
    ttft_s: float = 0.0
    gap_s: float = 0.0
    cut: int | None = None
    garbage: int | None = None
    garbage_line: bytes = GARBAGE


class SSEResponse:
    """An ASGI response that plays `frames`, then reports `(outcome, text_sent)` to `done`."""

    def __init__(
        self,
        frames: list[Frame],
        pacing: Pacing,
        done: Callable[[str, str], None],
        headers: dict[str, str] | None = None,
    ) -> None:
        self.frames = frames
        self.pacing = pacing
        self.done = done
        self.headers = _HEADERS + [(k.encode(), v.encode()) for k, v in (headers or {}).items()]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": self.headers})
        paced = self.pacing.ttft_s > 0 or self.pacing.gap_s > 0
        # Only a paced stream can outlive its client; an unpaced one is written at once.
        watcher = asyncio.ensure_future(_disconnect(receive)) if paced else None
        try:
            outcome, sent = await self._play(send, watcher)
        finally:
            if watcher is not None:
                watcher.cancel()
        self.done(outcome, sent)

    async def _play(self, send: Send, watcher: asyncio.Future | None) -> tuple[str, str]:
        pending: list[bytes] = []
        sent: list[str] = []
        pacing, contents, started = self.pacing, 0, False
        for frame in self.frames:
            if frame.kind != PREAMBLE:
                if pacing.cut is not None and contents >= pacing.cut:
                    await _flush(send, pending, more=True)
                    return "cut", "".join(sent)  # unfinished: the server drops the connection
                if pacing.garbage is not None and contents >= pacing.garbage:
                    pending.append(pacing.garbage_line)
                    await _flush(send, pending, more=False)
                    return "garbage", "".join(sent)
                delay = pacing.gap_s if started and frame.kind == CONTENT else 0.0
                if not started:
                    delay, started = pacing.ttft_s, True
                if delay > 0 and watcher is not None:
                    await _flush(send, pending, more=True)
                    await asyncio.wait((watcher,), timeout=delay)
                    if watcher.done():
                        return "disconnected", "".join(sent)
            if frame.kind == CONTENT:
                contents += 1
                sent.append(frame.text)
            pending.append(frame.data)
        await _flush(send, pending, more=False)
        return "complete", "".join(sent)


async def _disconnect(receive: Receive) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass


async def _flush(send: Send, pending: list[bytes], more: bool) -> None:
    if pending or not more:
        await send({"type": "http.response.body", "body": b"".join(pending), "more_body": more})
        pending.clear()
