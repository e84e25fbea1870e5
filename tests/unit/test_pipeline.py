"""The pipeline's contract: before steps in order, after steps in reverse and only for the
stages whose before step ran, once, for plain replies, refusals and streams alike."""

import asyncio

import pytest

from tokenbrake.core import Endpoint, ErrorKind, Format, GatewayError, Reply, RequestContext
from tokenbrake.gateway.pipeline import Pipeline


class Recorder:
    def __init__(self, name: str, log: list[str], refuse: bool = False) -> None:
        self.name, self.log, self.refuse = name, log, refuse

    async def before(self, ctx: RequestContext) -> None:
        self.log.append(f"before {self.name}")
        if self.refuse:
            raise GatewayError(ErrorKind.RATE_LIMIT, f"{self.name} refused")

    async def after(self, ctx: RequestContext) -> None:
        self.log.append(f"after {self.name}")


def context(fmt: Format = Format.OPENAI) -> RequestContext:
    return RequestContext(format=fmt, endpoint=Endpoint.CHAT, body={}, headers={})


async def answer(ctx: RequestContext) -> Reply:
    return Reply(body={"ok": True})


async def test_after_steps_run_in_reverse_order():
    log: list[str] = []
    pipeline = Pipeline([Recorder("a", log), Recorder("b", log)], answer)
    reply = await pipeline.run(context())
    assert reply.body == {"ok": True}
    assert log == ["before a", "before b", "after b", "after a"]


class BeforeOnly:
    def __init__(self, name: str, log: list[str], refuse: bool = False) -> None:
        self.recorder = Recorder(name, log, refuse)

    async def before(self, ctx: RequestContext) -> None:
        await self.recorder.before(ctx)


class AfterOnly:
    def __init__(self, name: str, log: list[str]) -> None:
        self.recorder = Recorder(name, log)

    async def after(self, ctx: RequestContext) -> None:
        await self.recorder.after(ctx)


async def test_a_stage_may_have_only_one_step():
    log: list[str] = []
    pipeline = Pipeline([AfterOnly("metrics", log), BeforeOnly("auth", log), Recorder("limits", log)], answer)
    await pipeline.run(context())
    assert log == ["before auth", "before limits", "after limits", "after metrics"]


async def test_an_after_only_stage_settles_when_reached_and_not_when_refused_before_it():
    log: list[str] = []
    pipeline = Pipeline([AfterOnly("metrics", log), BeforeOnly("auth", log, refuse=True), AfterOnly("ledger", log)],
                        answer)
    reply = await pipeline.run(context())
    assert reply.status == 429
    assert log == ["before auth", "after metrics"]


async def test_a_refusal_answers_in_the_clients_format_and_skips_later_stages():
    log: list[str] = []
    pipeline = Pipeline([Recorder("a", log), Recorder("b", log, refuse=True), Recorder("c", log)], answer)
    ctx = context(Format.ANTHROPIC)
    reply = await pipeline.run(ctx)
    assert reply.status == 429 and reply.body["error"] == {"type": "rate_limit_error", "message": "b refused"}
    assert log == ["before a", "before b", "after a"]
    assert ctx.status == 429


async def test_an_unexpected_exception_is_a_500_and_still_settles():
    log: list[str] = []

    async def broken(ctx: RequestContext) -> Reply:
        raise RuntimeError("bug")

    reply = await Pipeline([Recorder("a", log)], broken).run(context())
    assert reply.status == 500 and "internal gateway error" in reply.body["error"]["message"]
    assert log == ["before a", "after a"]


class FakeStream:
    """A reply stream; what the upstream call returns for streaming requests."""

    def __init__(self) -> None:
        self.closed = 0

    def __aiter__(self):
        return self._chunks()

    async def _chunks(self):
        yield b"one"
        yield b"two"

    async def aclose(self) -> None:
        self.closed += 1


async def test_a_stream_settles_once_after_its_last_chunk():
    log: list[str] = []
    inner = FakeStream()

    async def streaming(ctx: RequestContext) -> Reply:
        return Reply(stream=inner)

    reply = await Pipeline([Recorder("a", log)], streaming).run(context())
    assert log == ["before a"]  # nothing settled before the stream is read
    assert [chunk async for chunk in reply.stream] == [b"one", b"two"]
    await reply.stream.aclose()  # the server closes it too; settlement must not repeat
    assert log == ["before a", "after a"] and inner.closed == 1


async def test_a_stream_never_started_still_settles_when_closed():
    log: list[str] = []

    async def streaming(ctx: RequestContext) -> Reply:
        return Reply(stream=FakeStream())

    reply = await Pipeline([Recorder("a", log)], streaming).run(context())
    await reply.stream.aclose()
    assert log == ["before a", "after a"]


class SlowAfter(Recorder):
    """An after step that takes a while, as a Redis settle or a ledger hand-off can."""

    async def after(self, ctx: RequestContext) -> None:
        await asyncio.sleep(0.05)
        self.log.append(f"after {self.name}")


async def test_a_stream_whose_client_leaves_during_settlement_still_settles_every_stage():
    """The response cancels its task when the client leaves, maybe while the stream is being
    settled; a second cancellation (the server giving up) may follow. Every after step still
    runs to its end: no lost ledger row, no reservation left held."""
    log: list[str] = []

    async def streaming(ctx: RequestContext) -> Reply:
        return Reply(stream=FakeStream())

    reply = await Pipeline([Recorder("ledger", log), SlowAfter("budget", log)], streaming).run(context())
    closing = asyncio.create_task(reply.stream.aclose())
    await asyncio.sleep(0.01)
    closing.cancel()
    await asyncio.sleep(0.01)
    closing.cancel()
    with pytest.raises(asyncio.CancelledError):
        await closing
    assert log == ["before ledger", "before budget", "after budget", "after ledger"]
