"""Opening the database a URL names, migrating it, and what callers get back."""

from __future__ import annotations

from dataclasses import dataclass

from tokenbrake.storage.alert_rows import AlertStore
from tokenbrake.storage.backend import Backend
from tokenbrake.storage.budget_rows import BudgetStore
from tokenbrake.storage.insight_queries import Insight
from tokenbrake.storage.keys import KeyStore
from tokenbrake.storage.ledger import Ledger
from tokenbrake.storage.migrations import migrate
from tokenbrake.storage.responses import ResponseStore

SQLITE_SCHEME = "sqlite:///"
POSTGRES_SCHEMES = ("postgresql://", "postgres://")


@dataclass
class Database:
    backend: Backend
    keys: KeyStore
    ledger: Ledger
    budgets: BudgetStore
    insight: Insight  # what the rollups say (insight_queries.py)
    responses: ResponseStore  # Responses API conversations the gateway keeps (responses.py)
    alerts: AlertStore  # anomaly alerts, once across replicas (alert_rows.py)

    async def close(self) -> None:
        await self.backend.close()


async def connect(url: str, schema: str | None = None) -> Backend:
    """The backend for `url`, connected but not migrated."""
    if url.startswith(SQLITE_SCHEME):
        from tokenbrake.storage.sqlite import SQLiteBackend

        if schema is not None:
            raise ValueError("schema= is for PostgreSQL; a SQLite database is one file")
        path = url[len(SQLITE_SCHEME):]
        if not path:
            raise ValueError("sqlite URL without a path: use sqlite:///relative.db or sqlite:////absolute.db")
        return await SQLiteBackend.open(path)
    if url.startswith(POSTGRES_SCHEMES):
        from tokenbrake.storage.postgres import PostgresBackend

        return await PostgresBackend.open(url, schema)
    raise ValueError(f"unsupported database URL {url.split('://')[0]!r}: use sqlite:///PATH or postgresql://...")


async def open_database(url: str, *, schema: str | None = None) -> Database:
    """Connects to `url` and applies pending migrations.

    `sqlite:///relative/path.db` or `sqlite:////absolute/path.db` (created, mode 600, if
    missing); `postgresql://user:pass@host:5432/db`, where `schema` (or `?schema=NAME` in the
    URL) keeps every table in that schema, created if needed.
    """
    backend = await connect(url, schema)
    try:
        await migrate(backend)
    except BaseException:
        await backend.close()
        raise
    return Database(backend=backend, keys=KeyStore(backend), ledger=Ledger(backend), budgets=BudgetStore(backend),
                    insight=Insight(backend), responses=ResponseStore(backend), alerts=AlertStore(backend))
