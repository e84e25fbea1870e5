"""When Redis goes away under a running gateway, requests that need budgets or limits are
refused with a 503 in the client's format (fail closed), not a 500, and nothing hangs."""

from __future__ import annotations

import asyncio

import pytest
from limits_backends import REDIS_URL
from test_rate_limits_stage import request

from tokenbrake.config import parse_config
from tokenbrake.core import Format, Reply
from tokenbrake.gateway.pipeline import Pipeline
from tokenbrake.limits import SlotAsk, open_limit_store
from tokenbrake.stages.rate_limits import RateLimits

RAW = {
    "upstreams": {"u": {"kind": "openai", "base_url": "http://127.0.0.1:9/v1"}},
    "models": {"big": {"upstream": "u", "free": True}},
    "limits": [{"scope": "key:*", "requests_per_minute": 100, "concurrent": 5}],
}


class Proxy:
    """A TCP relay to Redis that can be cut, as a network partition or a Redis crash would."""

    def __init__(self, host: str, port: int) -> None:
        self.target = (host, port)
        self.writers: list[asyncio.StreamWriter] = []
        self.server: asyncio.Server | None = None

    async def start(self) -> int:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        return self.server.sockets[0].getsockname()[1]

    async def _serve(self, reader, writer) -> None:
        up_reader, up_writer = await asyncio.open_connection(*self.target)
        self.writers += [writer, up_writer]

        async def pipe(src, dst):
            try:
                while data := await src.read(65536):
                    dst.write(data)
                    await dst.drain()
            except (ConnectionError, OSError):
                pass
            finally:
                dst.close()

        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))

    async def restart(self, port: int) -> None:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", port)

    async def cut(self) -> None:
        self.server.close()
        for writer in self.writers:
            writer.close()
        await asyncio.sleep(0.05)


@pytest.fixture
async def proxy():
    host, port = REDIS_URL.split("//")[1].split("/")[0].split(":")
    proxy = Proxy(host, int(port))
    yield proxy, await proxy.start()
    await proxy.cut()


async def test_redis_gone_is_a_503_in_the_clients_format_not_a_500(proxy):
    relay, port = proxy
    store = await open_limit_store(f"redis://127.0.0.1:{port}/0", prefix="tb-test-unavailable:")
    try:
        served = []

        async def call(ctx) -> Reply:
            served.append(ctx.request_id)
            return Reply(body={"ok": True})

        pipeline = Pipeline([RateLimits(parse_config(RAW), store)], call)
        assert (await pipeline.run(request())).status == 200
        await relay.cut()
        for fmt in (Format.OPENAI, Format.ANTHROPIC):
            ctx = request()
            ctx.format = fmt
            reply = await asyncio.wait_for(pipeline.run(ctx), timeout=10)
            assert reply.status == 503 and reply.headers["retry-after"] == "1"
            message = reply.body["error"]["message"]
            assert "cannot reach its shared state" in message
        assert reply.body["type"] == "error" and reply.body["error"]["type"] == "overloaded_error"
        assert len(served) == 1  # nothing went upstream unchecked
        waiting = store.leases.waiting
        await store.release_slot("conc:key:k1", "x")  # no error: kept to retry once Redis answers
        assert store.leases.waiting == waiting + 1
    finally:
        await store.close()


async def test_settlements_and_releases_that_failed_land_once_redis_answers_again(proxy):
    from limits_backends import total, usd

    relay, port = proxy
    store = await open_limit_store(f"redis://127.0.0.1:{port}/0", prefix=f"tb-test-retry-{port}:")
    budget = total("team:a", "10")
    try:
        await store.reserve("r1", [budget], usd("2"))
        assert (await store.admit("r1", [SlotAsk("key:k", 1)], [], 900)).allowed
        await relay.cut()
        await store.settle("r1", usd("0.5"))  # Redis gone: queued, not lost
        await store.release_slot("key:k", "r1")
        assert store.leases.waiting == 2
        await relay.restart(port)
        await store.leases.tick(lambda: _nothing(), lambda lapsed: None)
        assert store.leases.waiting == 0
        [status] = await store.status([budget])
        assert (status.spent, status.reserved) == (usd("0.5"), 0)  # the actual cost, not the worst case
        assert (await store.admit("r2", [SlotAsk("key:k", 1)], [], 900)).allowed
    finally:
        await store.close()


async def _nothing() -> dict:
    return {}
