"""One listener for the whole gateway: it reloads each cache when its kind changes.

Each cache (keys, budgets) is followed with its reload and its fallback period. A message
marks the cache due; its own task reloads it, at once when due, else every `every_s`. Marks
that come during a reload make one more reload after it, so a change committed while the
previous reload was reading is never left out, and a burst of changes costs two reloads,
not one each.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from tokenbrake.changes.channel import EVERYTHING, RETRY_S, Channel

log = logging.getLogger(__name__)


@dataclass
class _Followed:
    kind: str
    reload: Callable[[], Awaitable[None]]
    every_s: float
    due: asyncio.Event = field(default_factory=asyncio.Event)

    async def run(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.due.wait(), self.every_s)
            self.due.clear()
            try:
                await self.reload()
            except Exception:  # keep serving with what was loaded before
                log.exception("reloading %s failed; keeping the previous set", self.kind)


class Refresher:
    """The caches it follows, reloaded as the channel tells (or, with no channel, only every
    period)."""

    def __init__(self, channel: Channel | None) -> None:
        self.channel = channel  # None: only the periodic reloads
        self._followed: dict[str, _Followed] = {}
        self._tasks: list[asyncio.Task] = []

    def follow(self, kind: str, reload: Callable[[], Awaitable[None]], every_s: float) -> None:
        """Calls `reload` when `kind` changes, and every `every_s` in any case."""
        self._followed[kind] = _Followed(kind, reload, every_s)

    async def start(self) -> None:
        self._tasks = [asyncio.create_task(f.run(), name=f"tokenbrake-reload-{f.kind}") for f in self._followed.values()]
        if self.channel is not None:
            self._tasks.append(asyncio.create_task(self._listen(self.channel), name="tokenbrake-changes"))

    async def changed(self, kind: str) -> None:
        """A change this gateway made (its admin API): in force here when this returns, and
        told to every other gateway."""
        if (followed := self._followed.get(kind)) is not None:
            await followed.reload()
        if self.channel is not None:
            await self.channel.publish(kind)

    async def _listen(self, channel: Channel) -> None:
        while True:
            try:
                async for kind in channel.listen():
                    for followed in self._followed.values():
                        if kind in (followed.kind, EVERYTHING):
                            followed.due.set()
            except Exception:  # a bug, not an outage (channels ride those out): the periodic reloads go on
                log.exception("the change channel failed; listening again")
            await asyncio.sleep(RETRY_S)

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self.channel is not None:
            await self.channel.close()
