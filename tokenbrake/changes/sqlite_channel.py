"""The change channel of the embedded default: one gateway process on a SQLite file.

The CLI that changes a key or a budget is another process, with nothing to reach the
gateway through but the file. SQLite counts, per connection, the commits made by other
connections (`PRAGMA data_version`, read from the WAL index in shared memory); the gateway
reads it every `POLL_S` and reloads everything when it moved. Its own ledger writes go
through its own connection, so they do not move it. Publishing has nothing to do: the
commit is the message, and the gateway's own admin API reloads its caches itself.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from collections.abc import AsyncIterator

from tokenbrake.changes.channel import EVERYTHING
from tokenbrake.storage.backend import Backend

log = logging.getLogger(__name__)

POLL_S = 0.2  # a change is in force within this, plus one reload


class SQLiteChannel:
    def __init__(self, backend: Backend) -> None:
        self._backend = backend

    async def publish(self, kind: str) -> None:
        return None

    async def listen(self) -> AsyncIterator[str]:
        seen = await self._version()
        yield EVERYTHING
        while True:
            await asyncio.sleep(POLL_S)
            try:
                version = await self._version()
            except sqlite3.Error:
                log.exception("reading the database's change count failed; trying again")
                continue
            if version != seen:
                seen = version
                yield EVERYTHING

    async def _version(self) -> int:
        [(version,)] = await self._backend.fetch("PRAGMA data_version")
        return version

    async def close(self) -> None:
        return None
