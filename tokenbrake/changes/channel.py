"""What every change channel is, and the reconnecting loop the networked ones share."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from typing import Protocol

log = logging.getLogger(__name__)

KEYS = "keys"
BUDGETS = "budgets"
EVERYTHING = "*"  # anything may have changed: a listener (re)connected and may have missed messages

RETRY_S = 0.5  # between attempts to reconnect a lost channel


class Channel(Protocol):
    async def publish(self, kind: str) -> None:
        """Tells every listener that `kind` changed. Never raises: a change that could not be
        told is logged, and gateways still pick it up within refresh_s."""

    def listen(self) -> AsyncIterator[str]:
        """The kinds that changed, as they are told; `EVERYTHING` first, and again after the
        channel was lost and found. Runs until closed or cancelled."""

    async def close(self) -> None: ...


def told_nobody(kind: str, where: str, exc: BaseException) -> None:
    log.warning("could not tell the other gateways that %s changed (%s: %s); each picks it up within "
                "refresh_s", kind, where, exc)


async def reconnecting(where: str, session: Callable[[], AsyncIterator[str]],
                       failures: tuple[type[BaseException], ...]) -> AsyncIterator[str]:
    """`session()`'s kinds, opening a new session whenever one fails; one log line when the
    channel is lost and one when it is back, not one per attempt."""
    lost = False
    while True:
        try:
            async for kind in session():
                if lost:
                    log.warning("change channel (%s) is back", where)
                    lost = False
                yield kind
        except failures as exc:
            task = asyncio.current_task()
            if task is not None and task.cancelling():
                # A client library that turned our cancellation into one of its timeouts (redis-py's
                # read does): stop, or the task would never end and the shutdown would wait for it.
                raise asyncio.CancelledError from exc
            if not lost:
                log.warning("lost the change channel (%s: %s); reloading keys and budgets every refresh_s "
                            "until it is back", where, exc)
                lost = True
        await asyncio.sleep(RETRY_S)
