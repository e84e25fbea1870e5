"""The embedded backend: one SQLite file in WAL mode, driven from one worker thread.

sqlite3 blocks, so every statement runs on a single dedicated thread (the connection never
leaves it) and the event loop only awaits the result. One asyncio lock serialises
transactions, so statements of two coroutines never interleave on the one connection.
`BEGIN IMMEDIATE` takes SQLite's write lock up front, which also serialises other
processes (the CLI creating a key while the gateway runs); they wait up to `BUSY_TIMEOUT_MS`.

Money is stored as text and added with the `decimal_sum` aggregate registered here,
because SQLite's own `sum` would add it as floats.
"""

from __future__ import annotations

import asyncio
import os
import sqlite3
from collections.abc import AsyncIterator, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from datetime import datetime
from decimal import Context, Decimal
from typing import Any, TypeVar

from tokenbrake.storage.backend import Dialect, Params, utc

BUSY_TIMEOUT_MS = 5000
T = TypeVar("T")


def _money(value: Decimal) -> str:
    return format(value, "f")  # plain digits, never exponent notation


def _timestamp(value: datetime) -> str:
    """ISO 8601 in UTC, fixed width: `isoformat(timespec="microseconds")`'s text, made in
    two thirds of its time (one of these per ledger row)."""
    t = utc(value)
    return _ISO_UTC % (t.year, t.month, t.day, t.hour, t.minute, t.second, t.microsecond)


_ISO_UTC = "%04d-%02d-%02dT%02d:%02d:%02d.%06d+00:00"


SQLITE = Dialect(
    name="sqlite",
    types={"id": "INTEGER PRIMARY KEY AUTOINCREMENT", "timestamp": "TEXT", "money": "TEXT",
           "bigint": "INTEGER", "float": "REAL", "bool": "INTEGER"},
    money_sum="decimal_sum",
    # Timestamps are stored as fixed-width ISO-8601 in UTC, so the date is the first 10 chars.
    day=lambda column: f"substr({column}, 1, 10)",
    money=_money,
    timestamp=_timestamp,
)


class DecimalSum:
    """SQLite aggregate: the exact sum of decimal text, as text."""

    context = Context(prec=60)

    def __init__(self) -> None:
        self.total = Decimal(0)

    def step(self, value: str | None) -> None:
        if value is not None:
            self.total = self.context.add(self.total, Decimal(value))

    def finalize(self) -> str:
        return format(self.total, "f")


def _param(value: Any) -> Any:
    if isinstance(value, Decimal):
        return _money(value)
    if isinstance(value, datetime):
        return _timestamp(value)
    return value


def _params(params: Params) -> tuple:
    return tuple(_param(value) for value in params)


def _connect(path: str) -> sqlite3.Connection:
    if path != ":memory:" and not os.path.exists(path):
        # Key hashes and (if configured) prompts live here: readable by the owner only.
        os.close(os.open(path, os.O_CREAT | os.O_WRONLY, 0o600))
    conn = sqlite3.connect(path, isolation_level=None)  # autocommit; transactions are explicit
    conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = NORMAL")  # durable enough in WAL mode, much faster
    # typeshed's aggregate protocol takes and returns ints only; SQLite passes any value (text here).
    conn.create_aggregate("decimal_sum", 1, DecimalSum)  # type: ignore[arg-type]
    return conn


class SQLiteBackend:
    dialect = SQLITE

    def __init__(self, path: str) -> None:
        self.path = path
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="tokenbrake-sqlite")
        self._lock = asyncio.Lock()
        self._conn: sqlite3.Connection | None = None
        self.max_parameters = 999  # until the connection says

    @classmethod
    async def open(cls, path: str) -> SQLiteBackend:
        backend = cls(path)
        try:
            backend._conn = await backend._run(_connect, path)
            # As SQLite was built: 32 766 by default since 3.32, 999 before (still found on
            # older distributions), more where a build raised it.
            backend.max_parameters = await backend._run(backend._conn.getlimit, sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER)
        except BaseException:
            backend._thread.shutdown(wait=False)
            raise
        return backend

    async def _run(self, fn: Callable[..., T], *args: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._thread, fn, *args)

    def _fetch(self, sql: str, params: Params) -> list[tuple]:
        return self._connection().execute(sql, _params(params)).fetchall()

    def _execute(self, sql: str, params: Params) -> int:
        return self._connection().execute(sql, _params(params)).rowcount

    def _write_batch(self, statements: Sequence[tuple[str, Params]]) -> None:
        conn = self._connection()
        conn.execute("BEGIN IMMEDIATE")
        try:
            for sql, params in statements:
                conn.execute(sql, params)  # already converted by the caller (see backend.py)
            conn.execute("COMMIT")
        except BaseException:
            self._rollback()
            raise

    def _rollback(self) -> None:
        if self._conn is not None and self._conn.in_transaction:
            self._conn.execute("ROLLBACK")

    def _connection(self) -> sqlite3.Connection:
        if self._conn is None:
            raise sqlite3.ProgrammingError("the database is closed")
        return self._conn

    async def fetch(self, sql: str, params: Params = ()) -> list[tuple]:
        async with self._lock:
            return await self._run(self._fetch, sql, params)

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[_SQLiteTx]:
        async with self._lock:
            await self._run(self._execute, "BEGIN IMMEDIATE", ())
            try:
                yield _SQLiteTx(self)
                await self._run(self._execute, "COMMIT", ())
            except BaseException:
                await self._run(self._rollback)
                raise

    async def write_batch(self, statements: Sequence[tuple[str, Params]]) -> None:
        async with self._lock:
            await self._run(self._write_batch, statements)

    async def close(self) -> None:
        async with self._lock:
            if self._conn is not None:
                await self._run(self._conn.close)
                self._conn = None
        self._thread.shutdown(wait=True)


class _SQLiteTx:
    def __init__(self, backend: SQLiteBackend) -> None:
        self._backend = backend

    async def execute(self, sql: str, params: Params = ()) -> int:
        return await self._backend._run(self._backend._execute, sql, params)

    async def fetch(self, sql: str, params: Params = ()) -> list[tuple]:
        return await self._backend._run(self._backend._fetch, sql, params)
