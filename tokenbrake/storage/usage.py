"""Usage reports: requests, tokens, cost and errors per group, straight from the ledger.

Grouping is one SQL `GROUP BY` on both backends. Tags are grouped through `ledger_tags`, one
group per `key=value` pair; a request with two tags counts in two groups, and a request with
none in "(none)", so tag groups do not add up to the total. Input tokens include cached and
cache-write ones (everything the model read); costs are added exactly, in decimal.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from tokenbrake.storage.backend import Backend, Dialect, Params, to_decimal, utc

NONE = "(none)"
GROUPINGS = {
    "key": "l.key_name",
    "team": "l.team",
    "user": "l.user_name",
    "session": "l.session_id",
    "model": "COALESCE(l.served_model, l.requested_model)",
    "tag": "t.key || '=' || t.value",
    "day": None,  # the dialect's spelling of the UTC date
}


@dataclass(frozen=True, slots=True)
class UsageGroup:
    group: str
    requests: int
    input_tokens: int  # including cached and cache-write tokens
    output_tokens: int
    cost_usd: Decimal
    errors: int  # calls that ended with status >= 400
    saved_usd: Decimal = Decimal(0)  # routed calls: cost saved against the model asked for


def _measures(dialect: Dialect) -> str:
    return (f"count(*), sum(l.input_tokens + l.cached_input_tokens + l.cache_write_tokens), "
            f"sum(l.output_tokens), {dialect.money_sum}(l.cost_usd), "
            f"sum(CASE WHEN l.status >= 400 THEN 1 ELSE 0 END), {dialect.money_sum}(l.saved_usd)")


def _where(since: datetime | None, until: datetime | None) -> tuple[str, Params]:
    conditions, params = [], []
    if since is not None:
        conditions.append("l.ts >= ?")
        params.append(utc(since))
    if until is not None:
        conditions.append("l.ts < ?")
        params.append(utc(until))
    return (" WHERE " + " AND ".join(conditions) if conditions else ""), params


def _group(name: str | None, requests, input_tokens, output_tokens, cost, errors, saved) -> UsageGroup:
    return UsageGroup(group=NONE if name is None else str(name), requests=int(requests or 0),
                      input_tokens=int(input_tokens or 0), output_tokens=int(output_tokens or 0),
                      cost_usd=to_decimal(cost), errors=int(errors or 0), saved_usd=to_decimal(saved))


async def grouped(backend: Backend, by: str, since: datetime | None, until: datetime | None) -> list[UsageGroup]:
    """Usage per group of `by` (one of GROUPINGS), most expensive first."""
    if by not in GROUPINGS:
        raise ValueError(f"cannot group usage by {by!r}: use one of {', '.join(GROUPINGS)}")
    dialect = backend.dialect
    expr = dialect.day("l.ts") if by == "day" else GROUPINGS[by]
    join = " LEFT JOIN ledger_tags t ON t.request_id = l.request_id" if by == "tag" else ""
    where, params = _where(since, until)
    rows = await backend.fetch(f"SELECT {expr}, {_measures(dialect)} FROM ledger l{join}{where} GROUP BY 1", params)
    return sorted((_group(*row) for row in rows), key=lambda g: (-g.cost_usd, g.group))


async def total(backend: Backend, since: datetime | None, until: datetime | None) -> UsageGroup:
    where, params = _where(since, until)
    rows = await backend.fetch(f"SELECT {_measures(backend.dialect)} FROM ledger l{where}", params)
    return _group("total", *rows[0])


# A row's tenant, as scopes.tenant_of has it: its key's team, else its key; NULL if anonymous.
TENANT = ("CASE WHEN l.team IS NOT NULL AND l.team <> '' THEN 'team:' || l.team"
          " WHEN l.key_name IS NOT NULL AND l.key_name <> '' THEN 'key:' || l.key_name END")


async def spenders_by_tenant(backend: Backend, by: str, since: datetime | None) -> list[tuple[str | None, str]]:
    """(tenant, group of `by`) pairs that cost something since then, most expensive first:
    the counters of a per-tenant user or tag budget. Rows with no such group are left out."""
    if by not in ("user", "tag"):
        raise ValueError(f"only user and tag spend is counted per tenant, not {by!r}")
    join = " JOIN ledger_tags t ON t.request_id = l.request_id" if by == "tag" else ""
    where, params = _where(since, None)
    rows = await backend.fetch(f"SELECT {TENANT}, {GROUPINGS[by]}, {backend.dialect.money_sum}(l.cost_usd)"
                               f" FROM ledger l{join}{where} GROUP BY 1, 2", params)
    found = sorted(((to_decimal(cost), tenant or "", str(group)) for tenant, group, cost in rows if group is not None),
                   key=lambda row: (-row[0], row[1], row[2]))
    return [(tenant or None, group) for _, tenant, group in found]
