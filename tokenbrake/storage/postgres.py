"""The scale-out backend: PostgreSQL through psycopg 3's async connection pool.

Several gateway replicas share one database. The pool checks a connection before lending it
and throws away one that broke, so a database restart costs the statements in flight, not
the gateway: the ledger writer keeps its rows and the next attempt gets a fresh connection.

`schema` (or `?schema=` in the URL) puts every table in that schema, creating it if
needed; any other libpq parameter in the URL (`?options=-csearch_path%3Dx`, `sslmode`,
`connect_timeout`) goes to libpq unchanged.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import psycopg
from psycopg import sql as pgsql
from psycopg_pool import AsyncConnectionPool

from tokenbrake.storage.backend import Dialect, Params, utc

CONNECT_TIMEOUT_S = 3  # a start that cannot reach the database fails within 5 s, start-up included
POOL_MAX_SIZE = 8
# Plain identifiers only: the name goes into libpq's `options`, where quoting is its own dialect.
SCHEMA_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,62}")

POSTGRES = Dialect(
    name="postgresql",
    types={"id": "BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY", "timestamp": "TIMESTAMPTZ",
           "money": "NUMERIC(20, 10)", "bigint": "BIGINT", "float": "DOUBLE PRECISION", "bool": "BOOLEAN"},
    money_sum="sum",
    day=lambda column: f"to_char({column} AT TIME ZONE 'UTC', 'YYYY-MM-DD')",
    money=lambda value: value,  # psycopg sends Decimal and datetime as NUMERIC and TIMESTAMPTZ
    timestamp=utc,
    migration_lock="SELECT pg_advisory_xact_lock(1952539243)",  # any constant; this one is b"tabk"
)


def _placeholders(sql: str) -> str:
    # The shared SQL uses `?`; psycopg wants `%s`. No shared statement has a literal ? or %.
    return sql.replace("?", "%s")


def split_schema(url: str) -> tuple[str, str | None]:
    """The URL without a `schema` query parameter (libpq would refuse it), and that schema."""
    parts = urlsplit(url)
    query = parse_qsl(parts.query, keep_blank_values=True)
    schema = next((value for key, value in query if key == "schema"), None)
    rest = urlencode([(key, value) for key, value in query if key != "schema"])
    return urlunsplit(parts._replace(query=rest)), schema


def redact(url: str) -> str:
    parts = urlsplit(url)
    if parts.password is None:
        return url
    return urlunsplit(parts._replace(netloc=parts.netloc.replace(f":{parts.password}@", ":***@")))


class PostgresBackend:
    dialect = POSTGRES
    max_parameters = 65_535  # the wire protocol counts a statement's parameters in 16 bits

    def __init__(self, pool: AsyncConnectionPool) -> None:
        self._pool = pool

    @classmethod
    async def open(cls, url: str, schema: str | None = None) -> PostgresBackend:
        url, url_schema = split_schema(url)
        schema = schema or url_schema
        if schema and not SCHEMA_NAME.fullmatch(schema):
            raise ValueError(f"schema {schema!r}: use letters, digits and underscores, not starting with a digit")
        await _first_connection(url, schema)
        kwargs = {"autocommit": True} | ({"options": f"-csearch_path={schema}"} if schema else {})
        pool = AsyncConnectionPool(url, kwargs=kwargs, min_size=1, max_size=POOL_MAX_SIZE, open=False,
                                   check=AsyncConnectionPool.check_connection, name="tokenbrake")
        try:
            await pool.open(wait=True, timeout=CONNECT_TIMEOUT_S)
        except Exception as exc:
            await pool.close()
            raise ConnectionError(f"cannot connect to PostgreSQL at {redact(url)}: {exc}") from exc
        return cls(pool)

    async def fetch(self, sql: str, params: Params = ()) -> list[tuple]:
        async with self._pool.connection() as conn:
            cursor = await conn.execute(_placeholders(sql), params)
            return await cursor.fetchall()

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[_PostgresTx]:
        async with self._pool.connection() as conn, conn.transaction():
            yield _PostgresTx(conn)

    async def write_batch(self, statements: Sequence[tuple[str, Params]]) -> None:
        async with self._pool.connection() as conn, conn.transaction(), conn.cursor() as cursor:
            for sql, params in statements:
                await cursor.execute(_placeholders(sql), params)

    async def close(self) -> None:
        await self._pool.close()


async def _first_connection(url: str, schema: str | None) -> None:
    """One plain connection ahead of the pool (which retries until its timeout and then says
    only "pool initialization incomplete"), so a database that is missing, refuses the user
    or does not answer fails at once with the server's own reason; it creates the schema."""
    try:
        connect = psycopg.AsyncConnection.connect(url, autocommit=True, connect_timeout=CONNECT_TIMEOUT_S)
        async with await connect as conn:
            if schema:
                await conn.execute(pgsql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(pgsql.Identifier(schema)))
    except psycopg.OperationalError as exc:
        raise ConnectionError(f"cannot connect to PostgreSQL at {redact(url)}: {' '.join(str(exc).split())}") from exc


class _PostgresTx:
    def __init__(self, conn: psycopg.AsyncConnection) -> None:
        self._conn = conn

    async def execute(self, sql: str, params: Params = ()) -> int:
        cursor = await self._conn.execute(_placeholders(sql), params)
        return cursor.rowcount

    async def fetch(self, sql: str, params: Params = ()) -> list[tuple]:
        cursor = await self._conn.execute(_placeholders(sql), params)
        return await cursor.fetchall()
