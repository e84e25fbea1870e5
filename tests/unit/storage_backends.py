"""Fixtures that run one storage test against every backend: SQLite in a temporary file and
the real PostgreSQL, in a fresh schema per test that is dropped afterwards.

PostgreSQL is the one `services.py` provides (TEST_POSTGRES_URL): the local server
when it answers, else a throwaway one.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import psycopg
import pytest
from services import postgres_url

from tokenbrake.storage import Database, LedgerRow, open_database

PG_URL = postgres_url()


@dataclass
class Place:
    """Where one test's database lives; `open()` can be called more than once."""

    kind: str  # "sqlite" or "postgresql"
    url: str
    schema: str | None = None
    path: Path | None = None  # the SQLite file

    async def open(self) -> Database:
        return await open_database(self.url, schema=self.schema)


@pytest.fixture(params=["sqlite", "postgresql"])
async def place(request: pytest.FixtureRequest, tmp_path: Path):
    if request.param == "sqlite":
        path = tmp_path / "tokenbrake.db"
        yield Place("sqlite", f"sqlite:///{path}", path=path)
        return
    async for pg in _postgres_place():
        yield pg


@pytest.fixture
async def sqlite_place(tmp_path: Path):
    path = tmp_path / "tokenbrake.db"
    return Place("sqlite", f"sqlite:///{path}", path=path)


@pytest.fixture
async def pg_place():
    async for pg in _postgres_place():
        yield pg


async def _postgres_place():
    schema = f"tb_test_{secrets.token_hex(6)}"
    yield Place("postgresql", PG_URL, schema=schema)
    async with await psycopg.AsyncConnection.connect(PG_URL, autocommit=True) as conn:
        await conn.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")


@pytest.fixture
async def db(place: Place):
    database = await place.open()
    yield database
    await database.close()


async def execute(db: Database, sql: str) -> None:
    """Runs a statement on the database underneath, e.g. to break it for a test."""
    async with db.backend.transaction() as tx:
        await tx.execute(sql)


async def dump(db: Database) -> str:
    """Every value in every table, as one string."""
    text = []
    for table in ("migrations", "virtual_keys", "ledger", "ledger_tags"):
        text.extend(repr(row) for row in await db.backend.fetch(f"SELECT * FROM {table}"))
    return "\n".join(text)


def ledger_row(n: int = 0, **fields) -> LedgerRow:
    values = dict(
        request_id=f"req-{n}", ts=datetime(2026, 11, 1, 12, 0, tzinfo=UTC), key_name="key-a", team="team-a",
        user="ana", session=None, tags={}, requested_model="gpt-4o", served_model="gpt-4o", provider="openai-api",
        input_tokens=100, cached_input_tokens=0, cache_write_tokens=0, output_tokens=10, reasoning_tokens=0,
        cost_usd=Decimal("0.001"), latency_ms=12.5, status=200, error=None, stream=False, endpoint="chat",
        front_door="openai",
    )
    return LedgerRow(**(values | fields))
