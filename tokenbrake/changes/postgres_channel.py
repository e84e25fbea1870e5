"""The change channel over PostgreSQL LISTEN/NOTIFY, for gateways sharing a database.

Notifications go to every session of the database whatever its schema, so the payload names
the schema (`tb_prod keys`) and a listener keeps only its own. Publishing is one
`pg_notify` on the pool; listening holds one connection of its own, outside the pool, since a
LISTEN lasts as long as its session.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import psycopg

from tokenbrake.changes.channel import EVERYTHING, reconnecting, told_nobody
from tokenbrake.storage.backend import Backend
from tokenbrake.storage.postgres import CONNECT_TIMEOUT_S, split_schema

NAME = "tokenbrake_changes"
WAIT_S = 5.0  # between checks that the listening connection still answers


class PostgresChannel:
    def __init__(self, backend: Backend, url: str) -> None:
        self._backend = backend
        self._url, self._schema = split_schema(url)
        self._conn: psycopg.AsyncConnection | None = None

    async def publish(self, kind: str) -> None:
        try:
            await self._backend.fetch("SELECT pg_notify(?, ?)", (NAME, f"{await self._schema_name()} {kind}"))
        except psycopg.Error as exc:
            told_nobody(kind, "PostgreSQL", exc)

    async def _schema_name(self) -> str:
        """The schema the tables live in: the URL's `schema=`, or the server's search_path."""
        if self._schema is None:
            [(self._schema,)] = await self._backend.fetch("SELECT current_schema()")
        return self._schema

    def listen(self) -> AsyncIterator[str]:
        return reconnecting("PostgreSQL", self._session, (psycopg.Error, OSError))

    async def _session(self) -> AsyncIterator[str]:
        schema = await self._schema_name()
        # Named so that pg_stat_activity shows what the connection is for, and for which schema.
        conn = await psycopg.AsyncConnection.connect(self._url, autocommit=True, connect_timeout=CONNECT_TIMEOUT_S,
                                                     application_name=f"{NAME} {schema}")
        self._conn = conn
        async with conn:
            await conn.execute(f"LISTEN {NAME}")
            yield EVERYTHING
            while True:
                async for notice in conn.notifies(timeout=WAIT_S):
                    mine, _, kind = notice.payload.partition(" ")
                    if mine == schema:
                        yield kind
                await conn.execute("SELECT 1")  # a connection that died quietly fails here

    async def close(self) -> None:
        if self._conn is not None:
            await self._conn.close()
