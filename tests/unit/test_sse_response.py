"""The SSE response: a client that leaves is noticed once the stream has run a moment, and the
reply stream is closed (so settled) however the response ends."""

from __future__ import annotations

import asyncio
import time

from tokenbrake.server.front_doors import WATCH_AFTER_S, SSEResponse


class Ticks:
    """A reply stream of `count` chunks, one every `every_s` seconds."""

    def __init__(self, count: int, every_s: float) -> None:
        self.count, self.every_s = count, every_s
        self.closed = False

    def __aiter__(self) -> Ticks:
        return self

    async def __anext__(self) -> bytes:
        if self.count == 0:
            raise StopAsyncIteration
        self.count -= 1
        await asyncio.sleep(self.every_s)
        return b"data: tick\n\n"

    async def aclose(self) -> None:
        self.closed = True


async def respond(stream: Ticks, receive) -> list[dict]:
    sent: list[dict] = []

    async def send(message: dict) -> None:
        sent.append(message)

    await SSEResponse(stream, headers={"x-request-id": "r1"})({"type": "http"}, receive, send)
    return sent


async def test_a_stream_over_before_the_watch_starts_never_waits_on_the_client():
    asked = []

    async def receive() -> dict:
        asked.append(1)
        return {"type": "http.disconnect"}

    stream = Ticks(3, 0)
    sent = await respond(stream, receive)
    assert asked == [] and stream.closed
    assert sent[0]["headers"][:2] == [(b"content-type", b"text/event-stream; charset=utf-8"), (b"x-request-id", b"r1")]
    assert [m.get("body") for m in sent[1:]] == [b"data: tick\n\n"] * 3 + [b""]


async def test_a_client_that_left_is_noticed_once_the_watch_starts_and_the_stream_is_closed():
    async def receive() -> dict:
        return {"type": "http.disconnect"}  # gone from the start

    stream = Ticks(1000, 0.01)  # ten seconds of stream
    started = time.perf_counter()
    sent = await respond(stream, receive)
    elapsed = time.perf_counter() - started
    assert stream.closed
    assert WATCH_AFTER_S <= elapsed < 5  # not the stream's ten seconds (loose: a loaded machine is slow)
    assert len(sent) < 1000
