"""The ledger: one row per upstream call, written in batches, read back by reports.

A batch is one transaction: every row and its tags, or nothing, so a failed write can be
retried whole. Writing a request id that is already there does nothing, which makes the
retry safe even when a commit succeeded but its acknowledgement was lost.

Money is quantised to `MONEY_PLACES` decimal places before it is stored, so both backends
hold (and add up) exactly the same numbers.

The same transaction keeps the rollups (rollups.py) up to date, counting only the rows it
inserted, so a retried batch adds nothing twice and a failed one leaves neither row nor sum.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from functools import lru_cache

from tokenbrake.storage.backend import Backend, Dialect, Params, to_datetime, to_decimal
from tokenbrake.storage.compaction import RollupCompactor
from tokenbrake.storage.rollups import MAX_PACKED_ROWS, RollupWriter, units
from tokenbrake.storage.usage import UsageGroup, grouped, spenders_by_tenant, total

MONEY_PLACES = Decimal("1e-10")


@dataclass(slots=True)
class LedgerRow:
    request_id: str
    ts: datetime  # UTC
    key_name: str | None
    team: str | None
    user: str | None
    session: str | None
    tags: dict[str, str]
    requested_model: str | None
    served_model: str | None
    provider: str | None  # the upstream's config name
    input_tokens: int
    cached_input_tokens: int
    cache_write_tokens: int
    output_tokens: int
    reasoning_tokens: int
    cost_usd: Decimal
    latency_ms: float
    status: int
    error: str | None
    stream: bool
    endpoint: str
    front_door: str
    prompt: str | None = None  # only when the config turns storing on
    completion: str | None = None
    saved_usd: Decimal | None = None  # routed calls: the cost saved against the model asked for
    loop_suspected: str | None = None  # the loop kind a session's detector saw in this call
    usage_unseen: bool = False  # its gateway died mid-call: charged at the reserved worst case
    charges: tuple[Charge, ...] = ()  # what it settled on each budget counter, kept with the row


@dataclass(frozen=True, slots=True)
class Charge:
    """A request's settled cost on one budget counter (its storage key, limits/windows.py), in
    nano-USD. Written with the ledger row, so a counter's spend can be rebuilt from the
    database; `keep_until` (epoch seconds; None: forever) is when nothing reads it again."""

    counter_key: str
    nanos: int
    at: float
    keep_until: float | None


_NAMES = ("request_id", "ts", "key_name", "team", "user_name", "session_id", "tags", "requested_model",
          "served_model", "provider", "input_tokens", "cached_input_tokens", "cache_write_tokens", "output_tokens",
          "reasoning_tokens", "cost_usd", "latency_ms", "status", "error", "stream", "endpoint", "front_door",
          "prompt", "completion", "saved_usd", "loop_suspected", "usage_unseen")
_COLUMNS = ", ".join(_NAMES)
_ONE_ROW = f"({', '.join('?' for _ in _NAMES)})"
_TAG_ROW = "(?, ?, ?)"
_CHARGE_COLUMNS = "request_id, counter_key, nanos, at, keep_until"
_CHARGE_ROW = "(?, ?, ?, ?, ?)"
# A batch goes in as few statements as it can. SQLite's driver lets go of the GIL around
# every statement it runs and must take it back after, and a thread waiting for the GIL slows
# the event loop that holds it: row by row, a busy gateway's writer thread would be waiting
# almost all the time. A statement holds up to this many rows (13 000 parameters), or fewer
# where the database takes fewer parameters (an older SQLite: 999), so a full batch is one
# statement.
MAX_ROWS_PER_INSERT = 500


def statement_sizes(rows: int, largest: int = MAX_ROWS_PER_INSERT) -> list[int]:
    """How many rows each statement of a batch of `rows` takes: full statements of `largest`,
    then the rest in powers of two. Each size is one statement text, prepared once and kept by
    the driver; so few sizes keep few of them (a quiet gateway's batches come in every size)."""
    full, rest = divmod(rows, largest)
    return [largest] * full + [1 << bit for bit in reversed(range(rest.bit_length())) if rest >> bit & 1]


@lru_cache(maxsize=32)
def _insert_sql(table: str, columns: str, one_row: str, rows: int) -> str:
    return f"INSERT INTO {table} ({columns}) VALUES {', '.join([one_row] * rows)} ON CONFLICT DO NOTHING"


def _inserts(table: str, columns: str, one_row: str, rows: Sequence[tuple],
             max_parameters: int) -> list[tuple[str, Params]]:
    """`rows` as multi-row inserts, each with its parameters in one flat list."""
    if not rows:
        return []
    largest = max(1, min(MAX_ROWS_PER_INSERT, max_parameters // len(rows[0])))
    statements: list[tuple[str, Params]] = []
    start = 0
    for size in statement_sizes(len(rows), largest):
        chunk = rows[start:start + size]
        statements.append((_insert_sql(table, columns, one_row, size), [v for row in chunk for v in row]))
        start += size
    return statements


def _values(row: LedgerRow, dialect: Dialect) -> tuple:
    """The row as an insert's parameters, in the types the backend's driver takes."""
    return (
        row.request_id, dialect.timestamp(row.ts), row.key_name, row.team, row.user, row.session,
        _tags_json(row.tags), row.requested_model, row.served_model, row.provider,
        row.input_tokens, row.cached_input_tokens, row.cache_write_tokens, row.output_tokens, row.reasoning_tokens,
        dialect.money(Decimal(row.cost_usd).quantize(MONEY_PLACES)), float(row.latency_ms), row.status, row.error,
        bool(row.stream), row.endpoint, row.front_door, row.prompt, row.completion,
        None if row.saved_usd is None else dialect.money(Decimal(row.saved_usd).quantize(MONEY_PLACES)),
        row.loop_suspected, bool(row.usage_unseen),
    )


def _tags_json(tags: dict[str, str]) -> str:
    # Most calls carry no tags; json.dumps of {} would cost more than the rest of the row.
    return json.dumps(tags, sort_keys=True) if tags else "{}"


def _row(values: tuple) -> LedgerRow:
    (request_id, ts, key_name, team, user, session, tags, requested_model, served_model, provider,
     input_tokens, cached_input_tokens, cache_write_tokens, output_tokens, reasoning_tokens,
     cost_usd, latency_ms, status, error, stream, endpoint, front_door, prompt, completion, saved_usd,
     loop_suspected, usage_unseen) = values
    return LedgerRow(
        request_id=request_id, ts=to_datetime(ts), key_name=key_name, team=team, user=user, session=session,
        tags=json.loads(tags), requested_model=requested_model, served_model=served_model, provider=provider,
        input_tokens=input_tokens, cached_input_tokens=cached_input_tokens, cache_write_tokens=cache_write_tokens,
        output_tokens=output_tokens, reasoning_tokens=reasoning_tokens, cost_usd=to_decimal(cost_usd),
        latency_ms=latency_ms, status=status, error=error, stream=bool(stream), endpoint=endpoint,
        front_door=front_door, prompt=prompt, completion=completion,
        saved_usd=None if saved_usd is None else to_decimal(saved_usd), loop_suspected=loop_suspected,
        usage_unseen=bool(usage_unseen),
    )


def _rollup_source(row: LedgerRow, values: tuple) -> tuple:
    """What the rollups read of a row (rollups.SOURCE), from its insert's parameters."""
    return (*values[:10], row.status, row.input_tokens, row.cached_input_tokens, row.cache_write_tokens,
            row.output_tokens, row.reasoning_tokens, units(row.cost_usd), units(row.saved_usd), float(row.latency_ms))


class Ledger:
    def __init__(self, backend: Backend, *, rollups: bool = True) -> None:
        """`rollups=False` writes the rows alone: only to measure what the rollups cost."""
        self._backend = backend
        self._rollups = RollupWriter(backend.dialect) if rollups else None
        self.compactor = RollupCompactor(backend) if rollups else None

    async def write(self, rows: Sequence[LedgerRow]) -> None:
        """Writes the rows, their tags and charges, and their rollups, in one transaction."""
        if not rows:
            return
        statements: list[tuple[str, Params]] = []
        for start in range(0, len(rows), MAX_PACKED_ROWS):  # the rollups add up at most this many at once
            statements += self._statements(rows[start:start + MAX_PACKED_ROWS])
        await self._backend.write_batch(statements)

    def _statements(self, rows: Sequence[LedgerRow]) -> list[tuple[str, Params]]:
        dialect = self._backend.dialect
        values = [_values(row, dialect) for row in rows]
        tags = [(row.request_id, str(key), str(value)) for row in rows for key, value in row.tags.items()]
        charges = [(row.request_id, c.counter_key, c.nanos, c.at, c.keep_until) for row in rows for c in row.charges]
        limit = self._backend.max_parameters
        statements = _inserts("ledger", _COLUMNS, _ONE_ROW, values, limit)
        if self._rollups is not None:
            sources = [_rollup_source(row, v) for row, v in zip(rows, values, strict=True)] \
                if dialect.name == "sqlite" else ()
            statements = self._rollups.statements(statements, sources, limit)
        return (statements + _inserts("ledger_tags", "request_id, key, value", _TAG_ROW, tags, limit)
                + _inserts("budget_charges", _CHARGE_COLUMNS, _CHARGE_ROW, charges, limit))

    async def held(self, request_ids: Sequence[str]) -> set[str]:
        """Which of these request ids the ledger holds already."""
        found: set[str] = set()
        step = self._backend.max_parameters
        for start in range(0, len(request_ids), step):
            chunk = request_ids[start:start + step]
            found.update(request_id for (request_id,) in await self._backend.fetch(
                f"SELECT request_id FROM ledger WHERE request_id IN ({', '.join('?' * len(chunk))})", chunk))
        return found

    async def rows(self, limit: int = 100) -> list[LedgerRow]:
        """The most recent rows first."""
        found = await self._backend.fetch(f"SELECT {_COLUMNS} FROM ledger ORDER BY ts DESC, id DESC LIMIT ?", (limit,))
        return [_row(values) for values in found]

    async def recent(self, conditions: Sequence[str] = (), params: Sequence = (), limit: int = 50) -> list[LedgerRow]:
        """The most recent rows meeting every condition (SQL on the ledger as `l`), newest first:
        read backwards along the time index, so it stops after `limit` rows."""
        where = f" WHERE {' AND '.join(conditions)}" if conditions else ""
        found = await self._backend.fetch(f"SELECT {', '.join('l.' + n for n in _NAMES)} FROM ledger l{where} "
                                          f"ORDER BY l.ts DESC, l.id DESC LIMIT ?", (*params, limit))
        return [_row(values) for values in found]

    async def usage(self, by: str, since: datetime | None = None, until: datetime | None = None) -> list[UsageGroup]:
        """Requests, tokens and cost per group, most expensive first. See usage.py."""
        return await grouped(self._backend, by, since, until)

    async def spenders_by_tenant(self, by: str, since: datetime | None = None) -> list[tuple[str | None, str]]:
        """(tenant, user or tag) pairs by what they spent since then, the biggest first. See usage.py."""
        return await spenders_by_tenant(self._backend, by, since)

    async def totals(self, since: datetime | None = None, until: datetime | None = None) -> UsageGroup:
        return await total(self._backend, since, until)
