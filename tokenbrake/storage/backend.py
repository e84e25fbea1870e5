"""The narrow interface both database technologies implement, and the values crossing it.

Everything above this layer (keys, ledger, migrations) writes its SQL once, with `?`
placeholders, and speaks to a `Backend`: `fetch` for a read, `transaction()` for anything
that writes. A `Dialect` carries the few things the two databases spell differently.
Parameters go in as plain Python values (`Decimal`, aware `datetime`, `bool`); what comes
back is normalised by `to_datetime` / `to_decimal`, because SQLite hands back text where
PostgreSQL hands back typed values.

The exception is `write_batch`, the bulk path (the ledger writes thousands of rows a second
through it): statements run in one transaction, their parameters going to the driver
untouched, already holding money and timestamps as the dialect's `money` and
`timestamp` make them. Converting each value once, knowing its type, is several times
cheaper than inspecting every value of every row, and that work holds the GIL the request
path needs. It is one call, not a transaction's several, so SQLite's thread runs a whole
batch in one turn.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, Protocol, overload

Params = Sequence[Any]


@dataclass(frozen=True, slots=True)
class Dialect:
    name: str
    types: dict[str, str]  # column types by role, substituted into migrations
    money_sum: str  # aggregate that adds money exactly
    day: Callable[[str], str]  # SQL for the UTC "YYYY-MM-DD" of a timestamp column
    money: Callable[[Decimal], Any]  # a money amount as a `write_batch` parameter
    timestamp: Callable[[datetime], Any]  # an aware datetime as a `write_batch` parameter
    # Held for the whole migration transaction so replicas starting together migrate once.
    migration_lock: str | None = None


class Tx(Protocol):
    """Statements inside one transaction: committed together, or not at all."""

    async def execute(self, sql: str, params: Params = ()) -> int: ...  # rows affected

    async def fetch(self, sql: str, params: Params = ()) -> list[tuple]: ...


class Backend(Protocol):
    dialect: Dialect
    max_parameters: int  # the most parameters one statement may take

    async def fetch(self, sql: str, params: Params = ()) -> list[tuple]: ...

    def transaction(self) -> AbstractAsyncContextManager[Tx]: ...

    async def write_batch(self, statements: Sequence[tuple[str, Params]]) -> None:
        """Runs each statement with its parameters (as the driver takes them), all in one
        transaction."""

    async def close(self) -> None: ...


def utc(value: datetime) -> datetime:
    """An aware UTC datetime; a naive one is taken to be UTC already."""
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


@overload
def to_datetime(value: datetime | str) -> datetime: ...
@overload
def to_datetime(value: None) -> None: ...
@overload
def to_datetime(value: datetime | str | None) -> datetime | None: ...
def to_datetime(value: datetime | str | None) -> datetime | None:
    if value is None:
        return None
    return utc(value if isinstance(value, datetime) else datetime.fromisoformat(value))


def to_decimal(value: Decimal | str | int | None) -> Decimal:
    return Decimal(0) if value is None else Decimal(value)
