"""Reading the rollups: totals, breakdowns and time series, for the insight API, the dashboard
and `tokenbrake usage`. Only the recent-requests view reads the ledger (newest first, on its
time index).

A span is read from the coarsest rollups that tile it exactly, the coarser tables only up to
the mark compaction has folded them to (compaction.py): whole weeks from `rollup_week`, the
days at either end from `rollup_day`, then hours, then minutes; this week's row and today's
hold the week and the day up to the mark, and the minutes after it are read as minutes.
Minutes are kept for `MINUTES_KEPT`, so an end further back is rounded out to its hour. What
a query covered, after rounding, comes back with its answer. A 90-day breakdown up to now
thus reads about 13 weeks, 6 days, 23 hours and 60 minutes of rows a group at its start,
and one week row and the minutes since the last fold at its end, whatever the ledger holds.

A query groups and filters by at most one dimension and team (rollups.py keeps no other
pairs); asking for more is a `QueryError` naming the parameter. Top-N answers rank groups by
cost; `other` is the rest of the total (for a tag, with the requests that lack it).
"""

from __future__ import annotations

import functools
import operator
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from tokenbrake.storage.backend import Backend, Params, to_datetime
from tokenbrake.storage.compaction import folded_until
from tokenbrake.storage.rollups import (
    COUNTS,
    HISTOGRAM,
    LATENCY_BOUNDS_MS,
    METRICS,
    MINUTES_KEPT,
    MONEY_UNIT,
    NESTED,
    TABLES,
    floor,
    truncate,
)
from tokenbrake.storage.usage import NONE, UsageGroup

DIMENSIONS = ("key", "team", "user", "model", "asked", "upstream", "session", "status")
TAG = "tag."  # `tag.feature`: one tag's values
ALL_TAGS = "tag"  # as a grouping only: every tag, as `name=value`
EVERY = {"minute": timedelta(minutes=1), "hour": timedelta(hours=1), "day": timedelta(days=1)}
MAX_POINTS = 10_000
STATUS_CLASS = re.compile(r"[1-5]xx|0")


class QueryError(ValueError):
    """A query the rollups cannot answer; `param` names the parameter to change."""

    def __init__(self, param: str, message: str) -> None:
        super().__init__(f"'{param}': {message}")
        self.param = param


@dataclass(frozen=True, slots=True)
class Metrics:
    counts: tuple[int, ...] = (0,) * len(COUNTS)  # rollups.COUNTS order
    latency_ms_sum: float = 0.0
    histogram: tuple[int, ...] = (0,) * len(HISTOGRAM)

    @classmethod
    def of(cls, values: Sequence[Any]) -> Metrics:
        """From sums in rollups.METRICS order, counts as integers (all NULL: nothing summed);
        `_partial` makes them from some of the columns."""
        if values[0] is None:
            return ZERO
        n = len(COUNTS)
        return cls(tuple(values[:n]), float(values[n]), tuple(values[n + 1:]))

    def __add__(self, other: Metrics) -> Metrics:
        return Metrics(tuple(map(operator.add, self.counts, other.counts)), self.latency_ms_sum + other.latency_ms_sum,
                       tuple(map(operator.add, self.histogram, other.histogram)))

    @classmethod
    def added(cls, many: Sequence[Metrics]) -> Metrics:
        """The sum of many at once (one object made, not one per addition)."""
        if not many:
            return ZERO
        return cls(tuple(map(sum, zip(*(m.counts for m in many), strict=True))),
                   sum(m.latency_ms_sum for m in many),
                   tuple(map(sum, zip(*(m.histogram for m in many), strict=True))))

    def __sub__(self, other: Metrics) -> Metrics:
        return Metrics(tuple(map(operator.sub, self.counts, other.counts)), self.latency_ms_sum - other.latency_ms_sum,
                       tuple(map(operator.sub, self.histogram, other.histogram)))

    @property
    def requests(self) -> int:
        return self.counts[0]

    @property
    def errors(self) -> int:
        return self.counts[1]

    @property
    def input_tokens(self) -> int:
        """Input tokens read afresh (the ledger's input_tokens: no cached, no cache-write ones)."""
        return self.counts[2]

    @property
    def cached_input_tokens(self) -> int:
        return self.counts[3]

    @property
    def cache_write_tokens(self) -> int:
        return self.counts[4]

    @property
    def output_tokens(self) -> int:
        return self.counts[5]

    @property
    def reasoning_tokens(self) -> int:
        return self.counts[6]

    @property
    def cost_units(self) -> int:
        return self.counts[7]

    @property
    def saved_units(self) -> int:
        return self.counts[8]

    @property
    def read_tokens(self) -> int:
        """Everything the model read: input, cached and cache-write tokens."""
        return self.input_tokens + self.cached_input_tokens + self.cache_write_tokens

    @property
    def cost_usd(self) -> Decimal:
        return self.cost_units * MONEY_UNIT

    @property
    def saved_usd(self) -> Decimal:
        return self.saved_units * MONEY_UNIT

    def latency_ms(self, share: float) -> float | None:
        """The latency below which `share` of the requests ended, interpolated within its
        histogram bucket (the last, open bucket answers its lower bound)."""
        total = sum(self.histogram)
        if total <= 0:
            return None
        rank, seen = share * total, 0
        bounds = (0, *LATENCY_BOUNDS_MS)
        for i, count in enumerate(self.histogram):
            if count and seen + count >= rank:
                if i >= len(LATENCY_BOUNDS_MS):
                    return float(bounds[i])
                low, high = bounds[i], LATENCY_BOUNDS_MS[i]
                return low + (high - low) * (rank - seen) / count
            seen += count
        return float(bounds[-1])

    def view(self, fields: Sequence[str] | None = None) -> dict[str, Any]:
        """The API's metrics object: money as decimal strings, latency in ms; only `fields`
        (of `VIEW_FIELDS`) if named. (A 90-day hourly chart has tens of thousands of these:
        kept to plain integer work.)"""
        if fields is not None:
            return {name: _FIELD[name](self) for name in fields}
        c = self.counts
        requests = c[0]
        if not requests and not any(c):
            return dict(_ZERO_VIEW)
        return {
            "requests": requests, "errors": c[1], "input_tokens": c[2] + c[3] + c[4], "cached_input_tokens": c[3],
            "output_tokens": c[5], "reasoning_tokens": c[6], "cost_usd": units_text(c[7]),
            "saved_usd": units_text(c[8]),
            "latency_ms_avg": round(self.latency_ms_sum / requests, 3) if requests > 0 else None,
            "latency_ms_p50": _rounded(self.latency_ms(0.5)), "latency_ms_p95": _rounded(self.latency_ms(0.95)),
        }


_ZERO_VIEW = {"requests": 0, "errors": 0, "input_tokens": 0, "cached_input_tokens": 0, "output_tokens": 0,
              "reasoning_tokens": 0, "cost_usd": "0", "saved_usd": "0", "latency_ms_avg": None, "latency_ms_p50": None,
              "latency_ms_p95": None}
VIEW_FIELDS = tuple(_ZERO_VIEW)
_FIELD: dict[str, Callable[[Metrics], Any]] = {
    "requests": lambda m: m.requests, "errors": lambda m: m.errors, "input_tokens": lambda m: m.read_tokens,
    "cached_input_tokens": lambda m: m.cached_input_tokens, "output_tokens": lambda m: m.output_tokens,
    "reasoning_tokens": lambda m: m.reasoning_tokens, "cost_usd": lambda m: units_text(m.cost_units),
    "saved_usd": lambda m: units_text(m.saved_units),
    "latency_ms_avg": lambda m: round(m.latency_ms_sum / m.requests, 3) if m.requests > 0 else None,
    "latency_ms_p50": lambda m: _rounded(m.latency_ms(0.5)), "latency_ms_p95": lambda m: _rounded(m.latency_ms(0.95)),
}


# The rollup columns each field of the view is computed from.
_NEEDS: dict[str, tuple[str, ...]] = {
    "requests": ("requests",), "errors": ("errors",),
    "input_tokens": ("input_tokens", "cached_input_tokens", "cache_write_tokens"),
    "cached_input_tokens": ("cached_input_tokens",), "output_tokens": ("output_tokens",),
    "reasoning_tokens": ("reasoning_tokens",), "cost_usd": ("cost_units",), "saved_usd": ("saved_units",),
    "latency_ms_avg": ("requests", "latency_ms_sum"), "latency_ms_p50": HISTOGRAM, "latency_ms_p95": HISTOGRAM,
}


@functools.cache
def _partial(columns: tuple[str, ...]) -> Callable[[Sequence[Any]], Metrics]:
    """Metrics from sums of some columns, the rest 0: each part picked out of the sums and a
    0 after them (a chart of one metric makes tens of thousands of these)."""
    zero = len(columns)

    def picker(names: Sequence[str]) -> Callable[[Sequence[Any]], tuple]:
        return operator.itemgetter(*[columns.index(name) if name in columns else zero for name in names])

    counts, histogram = picker(COUNTS), picker(HISTOGRAM)
    latency = columns.index("latency_ms_sum") if "latency_ms_sum" in columns else None
    no_histogram = not set(HISTOGRAM) & set(columns)

    def of(values: Sequence[Any]) -> Metrics:
        padded = (*values, 0)
        return Metrics(counts(padded), 0.0 if latency is None else float(values[latency]),
                       ZERO.histogram if no_histogram else histogram(padded))

    return of


def columns_for(fields: Sequence[str] | None) -> Sequence[str]:
    """The rollup columns that `fields` of the view need (all of them without `fields`)."""
    if fields is None:
        return METRICS
    wanted = {column for name in fields for column in _NEEDS[name]}
    return tuple(name for name in METRICS if name in wanted)


def units_text(units: int) -> str:
    """Units of 1e-10 USD as money() writes the amount: `0`, `0.00099442`, `-12.5`."""
    if not units:
        return "0"
    text = f"{abs(units):011d}"
    whole, digits = text[:-10], text[-10:].rstrip("0")
    return ("-" if units < 0 else "") + (f"{whole}.{digits}" if digits else whole)


ZERO = Metrics()


def money(amount: Decimal) -> str:
    """USD as plain digits: `0`, `0.00099442`, `12.5`."""
    return format(amount.normalize(), "f") if amount else "0"


def iso(moment: datetime) -> str:
    """A moment as the API writes it: ISO 8601 in UTC, `Z` for the zone."""
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _rounded(value: float | None) -> float | None:
    return None if value is None else round(value, 3)


Group = tuple[str | None, ...]  # one value per `by` dimension; None where the ledger holds none


@dataclass(frozen=True, slots=True)
class Breakdown:
    since: datetime
    until: datetime
    rows: list[tuple[Group, Metrics]]
    other: Metrics | None
    total: Metrics


@dataclass(frozen=True, slots=True)
class Series:
    since: datetime
    until: datetime
    times: list[datetime]
    series: list[tuple[Group | None, list[Metrics]]]  # group None: the rest, past the top N


@dataclass(frozen=True, slots=True)
class Totals:
    since: datetime
    until: datetime
    current: Metrics
    previous_since: datetime
    previous_until: datetime
    previous: Metrics


@dataclass(frozen=True, slots=True)
class Query:
    """A span and filters: dimension -> the values any of which a request may have."""

    since: datetime
    until: datetime
    filters: Mapping[str, Sequence[str]] = field(default_factory=dict)


def check_dimension(name: str, param: str, grouping: bool = False) -> str:
    if name in DIMENSIONS or (name.startswith(TAG) and len(name) > len(TAG)) or (grouping and name == ALL_TAGS):
        return name
    extra = ", tag" if grouping else ""
    raise QueryError(param, f"unknown dimension {name!r}: use one of {', '.join(DIMENSIONS)}, tag.NAME{extra}")


def _stored(name: str) -> str:
    return "tag:" + name[len(TAG):] if name.startswith(TAG) else name


@dataclass(frozen=True, slots=True)
class _Plan:
    """Which rollup rows answer a query, and where each dimension's value is in them."""

    dims: str
    prefix: bool  # `dims` is a prefix (every tag)
    columns: dict[str, str]

    def condition(self) -> tuple[str, list]:
        if self.prefix:
            return "dims >= ? AND dims < ?", [self.dims, self.dims[:-1] + chr(ord(self.dims[-1]) + 1)]
        return "dims = ?", [self.dims]


def _plan(by: Sequence[str], filters: Mapping[str, Sequence[str]]) -> _Plan:
    used = list(dict.fromkeys([*by, *filters]))
    others = [name for name in used if name != "team"]
    team = "team" in used
    if len(others) > 1:
        param = others[1] if others[1] in filters else "by"
        raise QueryError(param, f"{others[0]} with {others[1]} is not rolled up: group and filter by one "
                                f"dimension, or by team and one other")
    if not others:
        return _Plan("team" if team else "", False, {"team": "v1"} if team else {})
    (name,) = others
    where = "v2" if team else "v1"
    if name == ALL_TAGS:
        cut = len("team|tag:") + 1 if team else len("tag:") + 1
        untagged = "team|tag:" if team else "tag:"
        expr = f"CASE WHEN dims = '{untagged}' THEN '' ELSE substr(dims, {cut}) || '=' || {where} END"
        return _Plan("team|tag:" if team else "tag:", True, {"team": "v1", name: expr} if team else {name: expr})
    if team or name in NESTED:
        return _Plan(f"team|{_stored(name)}", False, {"team": "v1", name: "v2"})
    return _Plan(_stored(name), False, {name: "v1"})


def _filter_sql(plan: _Plan, filters: Mapping[str, Sequence[str]]) -> tuple[str, list]:
    where, params = plan.condition()
    for name, values in filters.items():
        if not values:
            continue
        if name == "status":
            for value in values:
                if not STATUS_CLASS.fullmatch(value):
                    raise QueryError("status", f"{value!r} is not a status class: use 2xx, 4xx, 5xx or 0")
        where += f" AND {plan.columns[name]} IN ({', '.join('?' for _ in values)})"
        params += list(values)
    return where, params


STEP = {**EVERY, "week": timedelta(days=7)}
COARSEST_FIRST = ("week", "day", "hour", "minute")


def _constrained(plan: _Plan, filters: Mapping[str, Sequence[str]], chosen: Sequence[str]) -> set[str]:
    """The value columns (v1, v2) that a query's filters, or its chosen groups of a nested
    dimension (ten users of 5,000), pin to a few values: an index on them reads less than
    the primary key's span. Ten teams or models of fifty are read faster in key order."""
    if plan.prefix:  # every tag: a range of dims, no index serves a value within it
        return set()
    nested = {plan.columns[name] for name in chosen} & {"v2"}
    return {plan.columns[name] for name, values in filters.items() if values} | nested


def _ceil(t: datetime, every: str) -> datetime:
    down = floor(t, every)
    return down if down == t else down + STEP[every]


Piece = tuple[str, datetime, datetime]  # granularity, from, to


def tiles(since: datetime, until: datetime, now: datetime, folded: datetime) -> tuple[datetime, datetime, list[Piece]]:
    """The span actually covered (its ends rounded out to the minute, or to the hour where no
    minutes are kept) and the rollup pieces that tile it: the coarsest first, the coarser
    tables only before `folded`, where the bucket holding the mark (today, this week) holds
    what came before it."""
    kept = min(now - MINUTES_KEPT, folded)  # minutes are there from here on

    def resolution(t: datetime) -> str:
        return "minute" if floor(t, "hour") >= kept else "hour"

    start, end = floor(since, resolution(since)), _ceil(until, resolution(until))

    def cover(a: datetime, b: datetime, level: int) -> list[Piece]:
        granularity = COARSEST_FIRST[level]
        if a >= b:
            return []
        if granularity == "minute":
            return [("minute", a, b)]
        first = _ceil(a, granularity)
        if b >= folded:  # through the mark: up to it, the bucket holding it included if it starts in the span
            last = folded if first < folded and first <= floor(folded, granularity) else first
        else:
            last = max(first, floor(b, granularity))
        if first >= last:
            return cover(a, b, level + 1)
        return [*cover(a, first, level + 1), (granularity, first, last), *cover(last, b, level + 1)]

    return start, end, cover(start, end, 0)


def sources(every: str, start: datetime, end: datetime, folded: datetime) -> list[Piece]:
    """Where a series by `every` reads [start, end): its own table before the mark (the
    bucket holding the mark, up to it), the minutes after."""
    if every == "minute":
        return [("minute", start, end)]
    found = [(every, start, min(end, folded))] if folded > start else []
    return found + ([("minute", max(start, folded), end)] if end > folded else [])


def _sums(columns: Sequence[str]) -> str:
    """Counts summed back to integers (PostgreSQL's SUM of a BIGINT is a NUMERIC)."""
    return ", ".join(f"SUM({m})" if m == "latency_ms_sum" else f"CAST(SUM({m}) AS BIGINT)" for m in columns)


_SUMS = _sums(METRICS)


class Insight:
    def __init__(self, backend: Backend) -> None:
        self._backend = backend

    async def _grouped(self, by: Sequence[str], query: Query, pieces: list[Piece],
                       among: list[Group] | None = None) -> dict[Group, Metrics]:
        """Metrics per group over the pieces (`among`: only those groups)."""
        sql, values = self._union(by, query, pieces, METRICS, among)
        if not sql:
            return {}
        keys = ", ".join(f"g{i}" for i in range(len(by)))
        sql = f"SELECT {keys + ', ' if keys else ''}{_SUMS} FROM ({sql}) r" + (f" GROUP BY {keys}" if keys else "")
        wanted = None if among is None else set(among)
        found = {}
        for row in await self._backend.fetch(sql, values):
            metrics = Metrics.of(row[len(by):])
            group = tuple(v or None for v in row[:len(by)])
            if (any(metrics.counts) or any(metrics.histogram)) and (wanted is None or group in wanted):
                found[group] = metrics
        return found

    async def _ranked(self, by: Sequence[str], query: Query, pieces: list[Piece], top: int) -> list[Group]:
        """The `top` + 1 most expensive groups, summing only what ranks them (a 90-day ranking
        of users adds two columns of each of their day rows, not all of them)."""
        sql, values = self._union(by, query, pieces, ("cost_units", "requests"), None)
        if not sql:
            return []
        keys = ", ".join(f"g{i}" for i in range(len(by)))
        # PostgreSQL adds BIGINTs as NUMERICs, slowly; as doubles they rank the same (exact below
        # $900,000 a group), and the metrics shown are summed exactly afterwards.
        cost, requests = (("CAST(cost_units AS DOUBLE PRECISION)", "CAST(requests AS DOUBLE PRECISION)")
                          if self._backend.dialect.name == "postgresql" else ("cost_units", "requests"))
        rows = await self._backend.fetch(
            f"SELECT {keys}, SUM({cost}), SUM({requests}) FROM ({sql}) r GROUP BY {keys} "
            f"ORDER BY {len(by) + 1} DESC, {len(by) + 2} DESC, {keys} LIMIT ?", [*values, top + 1])
        return [tuple(v or None for v in row[:len(by)]) for row in rows]

    def _union(self, by: Sequence[str], query: Query, pieces: list[Piece], columns: Sequence[str],
               among: list[Group] | None) -> tuple[str, list]:
        plan = _plan(by, query.filters)
        where, params = _filter_sql(plan, query.filters)
        for i, name in enumerate(by if among is not None else ()):  # a superset, for two dimensions
            values = sorted({g[i] or "" for g in among or []})
            where += f" AND {plan.columns[name]} IN ({', '.join('?' for _ in values)})"
            params += values
        groups = [f"{plan.columns[name]} AS g{i}" for i, name in enumerate(by)]
        constrained = _constrained(plan, query.filters, by if among is not None else ())
        branches: list[str] = []
        bound: list = []
        for granularity, start, end in pieces:
            branches.append(f"SELECT {', '.join([*groups, *columns])} FROM {self._table(granularity, constrained)} "
                            f"WHERE {where} AND bucket >= ? AND bucket < ?")
            bound += [*params, start, end]
        return " UNION ALL ".join(branches), bound

    def _table(self, granularity: str, constrained: set[str]) -> str:
        """The table, and on SQLite the index to read it by. SQLite's planner, without
        statistics, always takes the primary key (dims, bucket, …), which for one team's
        rows reads every team's: a team's reads (dims, v1, bucket), a few users' (dims, v2,
        bucket), a team's few users (dims, v1, v2, bucket). PostgreSQL picks by its statistics."""
        table = TABLES[granularity]
        if self._backend.dialect.name != "sqlite" or granularity == "minute" or not constrained:
            return table
        index = {"v1": "spans", "v2": "nested"}.get("".join(sorted(constrained)), "values")
        return f"{table} INDEXED BY {table}_{index}"

    async def total(self, query: Query, now: datetime | None = None) -> tuple[datetime, datetime, Metrics]:
        """Everything in the span, under the filters: (covered since, until, metrics)."""
        start, end, pieces = tiles(query.since, query.until, now or datetime.now(UTC), await folded_until(self._backend))
        return start, end, (await self._grouped((), query, pieces)).get((), ZERO)

    async def totals(self, query: Query, now: datetime | None = None) -> Totals:
        """The span's total and the one of the same length just before it (its start rounded
        out to the hour where minutes are no longer kept)."""
        now = now or datetime.now(UTC)
        start, end, current = await self.total(query, now)
        before, after, previous = await self.total(Query(start - (end - start), start, query.filters), now)
        return Totals(start, end, current, before, after, previous)

    async def breakdown(self, query: Query, by: Sequence[str], top: int | None = None,
                        now: datetime | None = None, folded: datetime | None = None) -> Breakdown:
        """Metrics per group of `by` (one or two dimensions), most expensive first; past the
        top N, `other` holds the rest of the total. `folded`: the compaction mark, if read."""
        _check_by(by)
        folded = folded or await folded_until(self._backend)
        start, end, pieces = tiles(query.since, query.until, now or datetime.now(UTC), folded)
        total = (await self._grouped((), query, pieces)).get((), ZERO)
        if top is None:
            return Breakdown(start, end, sorted((await self._grouped(by, query, pieces)).items(), key=_rank), None, total)
        ranked = await self._ranked(by, query, pieces, top)
        picked = ranked[:top]
        rows = sorted((await self._grouped(by, query, pieces, picked)).items(), key=_rank) if picked else []
        other = total - Metrics.added([m for _, m in rows]) if len(ranked) > top else None
        return Breakdown(start, end, rows, other, total)

    async def series(self, query: Query, every: str, by: Sequence[str] = (), top: int = 10,
                     now: datetime | None = None, fields: Sequence[str] | None = None) -> Series:
        """Metrics per `every` bucket; with `by`, one series for each of the top N groups by
        cost over the span, and one for the rest (group None) if there are more. With
        `fields` (of VIEW_FIELDS), the points hold only what those need; the rest is 0."""
        columns = columns_for(fields)
        now = now or datetime.now(UTC)
        if every not in EVERY:
            raise QueryError("every", f"{every!r}: use minute, hour or day")
        _check_by(by)
        start, end = floor(query.since, every), _ceil(query.until, every)
        if every == "minute" and start < now - MINUTES_KEPT:
            raise QueryError("every", f"minutes are kept for {MINUTES_KEPT.days} days: use every=hour, "
                                      f"or a since within the last {MINUTES_KEPT.days} days")
        times = [start + i * EVERY[every] for i in range(round((end - start) / EVERY[every]))]
        if len(times) > MAX_POINTS:
            raise QueryError("every", f"{len(times)} points is too many (at most {MAX_POINTS}): use a coarser "
                                      f"every or a shorter span")
        span = Query(start, end, query.filters)
        keys = [self._backend.dialect.timestamp(t) for t in times]  # buckets as the database returns them
        folded = await folded_until(self._backend)
        base = await self._points(span, (), every, folded, None, columns)
        if not by:
            return Series(start, end, times, [((), _filled(base.get((), {}), keys))])
        ranked = await self.breakdown(span, by, top, now, folded)
        picked = [group for group, _ in ranked.rows]
        points = await self._points(span, by, every, folded, picked, columns)
        series: list[tuple[Group | None, list[Metrics]]] = [(g, _filled(points.get(g, {}), keys)) for g in picked]
        if ranked.other is not None:  # the rest: the total less the top groups, bucket by bucket
            top_sum = [Metrics.added(points_at) for points_at in zip(*(line for _, line in series), strict=True)]
            series.append((None, [b - t for b, t in zip(_filled(base.get((), {}), keys), top_sum, strict=True)]))
        return Series(start, end, times, series)

    async def earliest(self) -> datetime | None:
        """The start of the first day anything was recorded (days, hours and minutes: the
        recent ones may not be folded yet)."""
        firsts = [to_datetime(first) for table in ("rollup_day", "rollup_hour", "rollup_minute")
                  for ((first,),) in [await self._backend.fetch(f"SELECT MIN(bucket) FROM {table} WHERE dims = ''")]
                  if first is not None]
        return floor(min(firsts), "day") if firsts else None

    async def rows(self, granularity: str, dims: Sequence[str], since: datetime,
                   until: datetime) -> list[tuple[datetime, str, str, str, int, int, float]]:
        """The rollup rows of the groupings `dims` in [since, until), oldest first, as the anomaly
        detector reads them: (bucket, dims, v1, v2, requests, tokens read, cost in USD)."""
        table = TABLES[granularity]
        marks = ", ".join("?" for _ in dims)
        found = await self._backend.fetch(
            f"SELECT bucket, dims, v1, v2, requests, input_tokens + cached_input_tokens + cache_write_tokens, "
            f"cost_units FROM {table} WHERE dims IN ({marks}) AND bucket >= ? AND bucket < ? ORDER BY bucket",
            [*dims, since, until])
        unit = float(MONEY_UNIT)
        return [(to_datetime(b), d, v1, v2, int(r), int(t), int(c) * unit) for b, d, v1, v2, r, t, c in found]

    async def usage(self, by: str, since: datetime | None = None, until: datetime | None = None,
                    filters: Mapping[str, Sequence[str]] | None = None, top: int | None = None,
                    now: datetime | None = None) -> tuple[list[UsageGroup], UsageGroup]:
        """`tokenbrake usage` and /admin/usage: per group of `by` (a dimension, `tag` for every
        tag as name=value, or `day`), most expensive first, past the top N the rest as
        "(other)"; and the total, each request once."""
        now = now or datetime.now(UTC)
        start = since or await self.earliest() or now
        query = Query(start, until or now, filters or {})
        if by == "day":
            found = await self.series(query, "day", now=now)
            ((_, line),) = found.series
            groups = [usage_group(t.strftime("%Y-%m-%d"), m) for t, m in zip(found.times, line, strict=True) if m.requests]
            return sorted(groups, key=lambda g: (-g.cost_usd, g.group)), usage_group("total", Metrics.added(line))
        ranked = await self.breakdown(query, [by], top, now)
        groups = [usage_group(group[0], m) for group, m in ranked.rows]
        if ranked.other is not None:
            groups.append(usage_group("(other)", ranked.other))
        return groups, usage_group("total", ranked.total)

    async def _points(self, query: Query, by: Sequence[str], every: str, folded: datetime, picked: list[Group] | None,
                      columns: Sequence[str] = METRICS) -> dict[Group, dict[Any, Metrics]]:
        """Metrics (of `columns`) per group and bucket (keyed by the bucket as the database
        returns it), for the `picked` groups only if given: from the `every` table up to the
        mark, the minutes after it cut to `every`."""
        plan = _plan(by, query.filters)
        where, params = _filter_sql(plan, query.filters)
        for i, name in enumerate(by):  # the top groups' values (a superset, for two dimensions)
            values = sorted({g[i] or "" for g in picked or []})
            if picked is not None and values:
                where += f" AND {plan.columns[name]} IN ({', '.join('?' for _ in values)})"
                params += values
        grouped = [f"{plan.columns[name]} AS g{i}" for i, name in enumerate(by)]
        constrained = _constrained(plan, query.filters, by if picked else ())
        dialect = self._backend.dialect
        branches, bound = [], []
        for granularity, start, end in sources(every, query.since, query.until, folded):
            bucket = "bucket" if granularity == every else truncate(dialect, every, "bucket")
            branches.append(f"SELECT {', '.join([f'{bucket} AS bucket', *grouped, *columns])} FROM "
                            f"{self._table(granularity, constrained)} WHERE {where} AND bucket >= ? AND bucket < ?")
            bound += [*params, start, end]
        if not branches:
            return {}
        keys = ["bucket", *(f"g{i}" for i in range(len(grouped)))]
        sql = (f"SELECT {', '.join(keys)}, {_sums(columns)} FROM ({' UNION ALL '.join(branches)}) r "
               f"GROUP BY {', '.join(keys)}")
        wanted = None if picked is None else set(picked)
        n = len(grouped)
        found: dict[Group, dict[Any, Metrics]] = {}
        of = Metrics.of if columns is METRICS else _partial(tuple(columns))
        for row in await self._backend.fetch(sql, bound):
            group = (row[1] or None,) if n == 1 else tuple(v or None for v in row[1:1 + n])
            if (wanted is None or group in wanted) and row[1 + n] is not None:
                found.setdefault(group, {})[row[0]] = of(row[1 + n:])
        return found


def usage_group(name: str | None, metrics: Metrics) -> UsageGroup:
    return UsageGroup(group=NONE if name is None else name, requests=metrics.requests, input_tokens=metrics.read_tokens,
                      output_tokens=metrics.output_tokens, cost_usd=metrics.cost_usd, errors=metrics.errors,
                      saved_usd=metrics.saved_usd)


def _check_by(by: Sequence[str]) -> None:
    if len(by) > 2:
        raise QueryError("by", "at most two dimensions, e.g. by=team,model")
    for name in by:
        check_dimension(name, "by", grouping=True)
    if len(set(by)) < len(by):
        raise QueryError("by", "a dimension is named twice")


def _rank(item: tuple[Group, Metrics]) -> tuple:
    group, metrics = item
    return (-metrics.cost_units, -metrics.requests, tuple(v or "" for v in group))


def _filled(points: Mapping[Any, Metrics], keys: list) -> list[Metrics]:
    return [points.get(k, ZERO) for k in keys]


def ledger_conditions(filters: Mapping[str, Sequence[str]]) -> tuple[list[str], Params]:
    """The filters as conditions on the ledger (alias `l`), for the recent-requests view."""
    columns = {"key": "l.key_name", "team": "l.team", "user": "l.user_name",
               "model": "COALESCE(l.served_model, l.requested_model)", "asked": "l.requested_model",
               "upstream": "l.provider", "session": "l.session_id",
               "status": "CASE WHEN l.status < 100 THEN '0' ELSE CAST(l.status / 100 AS TEXT) || 'xx' END"}
    conditions: list[str] = []
    params: list = []
    for name, values in filters.items():
        if not values:
            continue
        marks = ", ".join("?" for _ in values)
        if name.startswith(TAG):
            conditions.append(f"EXISTS (SELECT 1 FROM ledger_tags t WHERE t.request_id = l.request_id "
                              f"AND t.key = ? AND t.value IN ({marks}))")
            params += [name[len(TAG):], *values]
            continue
        if name == "status":
            _filter_sql(_Plan("", False, {"status": "x"}), {"status": values})  # checks the classes
        column = columns[name]
        none = f" OR {column} IS NULL OR {column} = ''" if "" in values else ""
        conditions.append(f"({column} IN ({marks}){none})")
        params += list(values)
    return conditions, params
