"""The change channel over Redis pub/sub, for gateways sharing Redis state.

The channel is named after the state's key prefix (`tokenbrake:changes`), so gateways that
share a prefix share changes, and others on the same Redis do not hear them. Pub/sub keeps
nothing: a gateway that is not subscribed when a change is told misses it, which is why a
listener yields `EVERYTHING` on each (re)subscription.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import redis.asyncio as aioredis

from tokenbrake.changes.channel import EVERYTHING, reconnecting, told_nobody
from tokenbrake.limits import split_prefix
from tokenbrake.limits.redis_store import DEFAULT_PREFIX, REDIS_FAILURES

TIMEOUT_S = 2.0
WAIT_S = 1.0  # one wait for a message; the loop around it notices a closed channel


class RedisChannel:
    def __init__(self, client: aioredis.Redis, name: str) -> None:
        self._client = client
        self.name = name

    @classmethod
    def from_store_url(cls, state_url: str) -> RedisChannel:
        url, prefix = split_prefix(state_url)
        name = (prefix or DEFAULT_PREFIX) + "changes"
        # Named so that an operator's CLIENT LIST shows what the connection is for.
        client = aioredis.Redis.from_url(url, socket_timeout=TIMEOUT_S, socket_connect_timeout=TIMEOUT_S,
                                         client_name=name)
        return cls(client, name)

    async def publish(self, kind: str) -> None:
        try:
            await self._client.publish(self.name, kind)
        except REDIS_FAILURES as exc:
            told_nobody(kind, "Redis", exc)

    def listen(self) -> AsyncIterator[str]:
        return reconnecting("Redis", self._session, REDIS_FAILURES)

    async def _session(self) -> AsyncIterator[str]:
        async with self._client.pubsub(ignore_subscribe_messages=True) as pubsub:
            await pubsub.subscribe(self.name)
            yield EVERYTHING
            while True:
                message = await pubsub.get_message(timeout=WAIT_S)
                if message is not None and message["type"] == "message":
                    yield message["data"].decode()

    async def close(self) -> None:
        await self._client.aclose()
