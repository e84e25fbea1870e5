"""The journal's lines: one JSON array each, its first element saying what it is.

- `["s", request_id, ...]`: a call is about to go upstream (start): who it is for, the model
  it asked for and the one it will try first, and what its budgets reserved (nano-USD) on
  which counters;
- `["r", request_id, [row fields...], [[counter, nanos, at, keep_until], ...]]`: a ledger
  row, with the budget charges it carries (a cascade's earlier calls each have one too, all
  under their request's id);
- `["e", request_id]`: the request ended without a row (it never reached an upstream).

Arrays, not objects: a line is written for every request, and naming each field in it would
double its size.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import orjson

from tokenbrake.core import RequestContext
from tokenbrake.limits.types import to_nanos
from tokenbrake.storage.ledger import Charge, LedgerRow

START, ROW, END = "s", "r", "e"

_ROW_FIELDS = tuple(f.name for f in fields(LedgerRow) if f.name != "charges")
_DECIMALS = {"cost_usd", "saved_usd"}


@dataclass(frozen=True, slots=True)
class Held:
    """A budget counter a reservation is held on: its storage key, a rolling window's length
    (0 for others), and how long it is kept from `placed_at` (None: forever)."""

    key: str
    rolling_s: float
    keep_s: float | None


@dataclass(frozen=True, slots=True)
class Start:
    request_id: str
    at: float  # epoch seconds
    key_name: str | None
    team: str | None
    user: str | None
    session: str | None
    tags: dict[str, str]
    requested_model: str | None
    model: str  # the configured model it tries first
    upstream: str
    stream: bool
    endpoint: str
    front_door: str
    reserved_nanos: int  # 0: no budget applied
    held_on: tuple[Held, ...]
    placed_at: float


def _default(value: Any) -> Any:
    if isinstance(value, Decimal):
        return str(value)
    raise TypeError(f"cannot write {type(value).__name__} to the journal")


def start_line(start: Start) -> bytes:
    return orjson.dumps([START, start.request_id, start.at, start.key_name, start.team, start.user, start.session,
                         start.tags, start.requested_model, start.model, start.upstream, start.stream,
                         start.endpoint, start.front_door, start.reserved_nanos,
                         [[h.key, h.rolling_s, h.keep_s] for h in start.held_on], start.placed_at]) + b"\n"


def row_line(request_id: str, row: LedgerRow) -> bytes:
    values = [getattr(row, name) for name in _ROW_FIELDS]
    charges = [[c.counter_key, c.nanos, c.at, c.keep_until] for c in row.charges]
    return orjson.dumps([ROW, request_id, values, charges], default=_default) + b"\n"


def end_line(request_id: str) -> bytes:
    return orjson.dumps([END, request_id]) + b"\n"


def parse(line: bytes) -> tuple[str, str, Start | LedgerRow | None]:
    """(kind, request id, what it holds). Raises ValueError for a line that is not one."""
    try:
        record = orjson.loads(line)
        kind, request_id = record[0], record[1]
        if kind == START:
            return kind, request_id, _start(record)
        if kind == ROW:
            return kind, request_id, _row(record[2], record[3])
        if kind == END:
            return kind, request_id, None
    except (orjson.JSONDecodeError, IndexError, KeyError, TypeError, ValueError) as exc:
        raise ValueError(f"not a journal line ({exc})") from None
    raise ValueError(f"unknown journal record {kind!r}")


def _start(record: list) -> Start:
    (_, request_id, at, key_name, team, user, session, tags, requested, model, upstream, stream, endpoint,
     front_door, reserved, held_on, placed_at) = record
    return Start(request_id, at, key_name, team, user, session, tags, requested, model, upstream, stream, endpoint,
                 front_door, int(reserved), tuple(Held(k, r, keep) for k, r, keep in held_on), placed_at)


def _row(values: list, charges: list) -> LedgerRow:
    named = dict(zip(_ROW_FIELDS, values, strict=True))
    named["ts"] = datetime.fromisoformat(named["ts"]).astimezone(UTC)
    for name in _DECIMALS:
        if named[name] is not None:
            named[name] = Decimal(named[name])
    return LedgerRow(**named, charges=tuple(Charge(*charge) for charge in charges))


def start_of(ctx: RequestContext, now: float) -> Start:
    who, target, hold = ctx.who, ctx.targets[0] if ctx.targets else None, ctx.budget_hold
    grant = hold.grant if hold is not None else None
    return Start(
        request_id=ctx.request_id, at=now, key_name=who.key_name, team=who.team, user=who.user,
        session=who.session, tags=dict(who.tags), requested_model=ctx.requested_model or None,
        model=target.name if target else "", upstream=target.upstream if target else "", stream=ctx.stream,
        endpoint=ctx.endpoint_name, front_door=ctx.format.value,
        reserved_nanos=to_nanos(grant.amount) if grant is not None else 0,
        held_on=tuple(Held(p.key, p.rolling_s, p.keep_s) for p in grant.held_on) if grant is not None else (),
        placed_at=grant.placed_at if grant is not None else now,
    )
