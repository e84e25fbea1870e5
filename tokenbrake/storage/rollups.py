"""Ledger rollups: requests, tokens, cost, savings and latency per minute, hour and day, by
the attribution dimensions, kept up to date in the same transaction as the ledger rows.

Three tables of one shape, `rollup_minute`, `rollup_hour` and `rollup_day`: one row per
(`bucket`, `dims`, `v1`, `v2`), where `dims` names what the row is grouped by and `v1`, `v2`
hold the values (`''` where the ledger holds NULL or nothing):

- `''`: everything (v1 = v2 = '');
- one dimension: `team`, `model` (served), `asked`, `upstream`, `status` (`2xx`, `4xx`,
  `5xx`, `0`: no answer), `tag:NAME` (one per tag name; `tag:` alone counts the requests that
  carry no tag at all), its value in v1;
- team with one other: `team|model`, `team|user`, `team|tag:NAME`…, the team in v1 and the
  other in v2. Every query a team's viewer makes is such a pair, and "by team and model" is
  the chart most asked for; other pairs (model with user) are not kept, because each pair
  multiplies the rows a request adds by the cardinality of both sides. Keys, users and
  sessions belong to one team as a rule, so they are kept as team pairs only: "by user" reads
  `team|user` by v2, as many rows as a `user` grouping would have, one upsert fewer a row.

Metrics are plain integers, so they add up (and subtract) exactly on both databases: money in
units of 1e-10 USD (the ledger's own precision), a latency sum, and a latency histogram in
fixed buckets (`LATENCY_BOUNDS_MS`) from which percentiles are estimated.

A batch's rollups count exactly the rows the batch inserted, never one the ledger held
already (a retried batch): on PostgreSQL the ledger inserts' `RETURNING` rows gather in a
temporary table that one statement then adds up; on SQLite, whose write lock makes the transaction the only
writer, the batch's rows are aggregated before they are inserted, leaving out request ids the
ledger holds. Minute rows older than `MINUTES_KEPT` are pruned as writes go on; hour, day and
week rows are kept.

A batch writes its minutes only. Each closed hour's minutes are folded into hours, days and
weeks afterwards, once, by compaction.py, which records in `rollup_compacted` the mark up to
which those three tables hold everything (today's day row holds the day up to the mark). A
row older than the mark (a late write: a journal replayed after a crash, a long call
settling) is added to the coarser tables too, in its batch, so they are always complete up
to the mark, and the minutes from the mark on (or from `MINUTES_KEPT` ago, whichever reaches
further back).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from tokenbrake.storage.backend import Dialect, Params

MONEY_UNIT = Decimal("1e-10")  # the ledger's MONEY_PLACES: what one unit of cost_units is worth
MINUTES_KEPT = timedelta(days=3)
PRUNE_EVERY_S = 600.0
GRANULARITIES = ("minute", "hour", "day", "week")
TABLES = {g: f"rollup_{g}" for g in GRANULARITIES}
COARSER = ("hour", "day", "week")  # folded from the minutes, up to the mark
MARKS = "rollup_compacted"  # one row: `folded_until`, before which the coarser tables hold every row
# Upper bounds (exclusive) of the latency histogram's buckets; the last bucket has none.
LATENCY_BOUNDS_MS = (25, 50, 100, 200, 400, 700, 1000, 1500, 2000, 3000, 5000, 8000, 12000, 20000, 40000)
HISTOGRAM = tuple(f"h{i:02d}" for i in range(len(LATENCY_BOUNDS_MS) + 1))
COUNTS = ("requests", "errors", "input_tokens", "cached_input_tokens", "cache_write_tokens", "output_tokens",
          "reasoning_tokens", "cost_units", "saved_units")
METRICS = (*COUNTS, "latency_ms_sum", *HISTOGRAM)
KEY = ("dims", "bucket", "v1", "v2")
# What the aggregation reads of a ledger row, in this order (SQLite gets them as parameters).
SOURCE = ("request_id", "ts", "key_name", "team", "user_name", "session_id", "tags", "requested_model",
          "served_model", "provider", "status", "input_tokens", "cached_input_tokens", "cache_write_tokens",
          "output_tokens", "reasoning_tokens", "cost_units", "saved_units", "latency_ms")
# Dimensions of one value, as columns of the prepared rows (see `_prepared`).
NESTED = ("key", "user", "session")  # within a team: kept as team pairs only
SINGLE = {"key": "key_name", "team": "team", "user": "user_name", "model": "model", "asked": "asked",
          "upstream": "upstream", "session": "session_id", "status": "status"}


def units(amount: Decimal | None) -> int:
    """USD as whole units of 1e-10."""
    return 0 if amount is None else int(Decimal(amount).quantize(MONEY_UNIT).scaleb(10))


def _pg(d: Dialect) -> bool:
    return d.name == "postgresql"


def truncate(d: Dialect, granularity: str, column: str) -> str:
    """SQL for the start of the UTC minute, hour or day holding the timestamp `column`."""
    if _pg(d):
        return f"(date_trunc('{granularity}', {column} AT TIME ZONE 'UTC') AT TIME ZONE 'UTC')"
    # SQLite holds fixed-width ISO-8601 text in UTC (sqlite.py), so a prefix names the bucket.
    if granularity == "week":  # ISO weeks, from Monday, as PostgreSQL's date_trunc
        return f"(date(substr({column}, 1, 10), '-6 days', 'weekday 1') || 'T00:00:00.000000+00:00')"
    keep, rest = {"minute": (16, ":00.000000+00:00"), "hour": (13, ":00:00.000000+00:00"),
                  "day": (10, "T00:00:00.000000+00:00")}[granularity]
    return f"(substr({column}, 1, {keep}) || '{rest}')"


def money_units(d: Dialect, column: str) -> str:
    """SQL turning a money column of the ledger into units, exactly."""
    if _pg(d):
        return f"CAST(ROUND(COALESCE({column}, 0) * 10000000000) AS BIGINT)"
    # SQLite keeps money as decimal text ("-0.0012500000"): the digits, with the fraction
    # padded to ten places, read as one integer, so no float ever rounds them.
    c, dot = column, f"instr({column}, '.')"
    return (f"COALESCE(CASE WHEN {dot} = 0 THEN CAST({c} AS INTEGER) * 10000000000 ELSE "
            f"CAST(substr({c}, 1, {dot} - 1) || substr(substr({c}, {dot} + 1) || '0000000000', 1, 10) AS INTEGER) "
            f"END, 0)")


def _text(d: Dialect) -> str:
    # Byte order on PostgreSQL too, so prefix ranges (`tag:`…) follow the index, as on SQLite.
    return 'TEXT COLLATE "C"' if _pg(d) else "TEXT"


def schema(d: Dialect, granularities: Sequence[str] = ("minute", "hour", "day")) -> list[str]:
    """The tables of the granularities named (m007 made three; m009 added weeks)."""
    t, text = d.types, _text(d)
    columns = ", ".join(f"{m} {t['float'] if m == 'latency_ms_sum' else t['bigint']} NOT NULL" for m in METRICS)
    statements = []
    for table in (TABLES[g] for g in granularities):
        rowid = "" if _pg(d) else " WITHOUT ROWID"
        statements.append(f"CREATE TABLE {table} (bucket {t['timestamp']} NOT NULL, dims {text} NOT NULL, "
                          f"v1 {text} NOT NULL, v2 {text} NOT NULL, {columns}, "
                          f"PRIMARY KEY (dims, bucket, v1, v2)){rowid}")
        # The primary key serves "by X over a span"; this, "X = x over a span".
        statements.append(f"CREATE INDEX {table}_values ON {table} (dims, v1, v2, bucket)")
    return statements


def floor(t: datetime, granularity: str) -> datetime:
    """The start of the UTC minute, hour, day or week (from Monday) holding `t`."""
    t = t.astimezone(UTC).replace(second=0, microsecond=0)
    if granularity != "minute":
        t = t.replace(minute=0)
    if granularity in ("day", "week"):
        t = t.replace(hour=0)
    return t - timedelta(days=t.weekday()) if granularity == "week" else t


def literal(d: Dialect, t: datetime) -> str:
    """A timestamp as an SQL literal (for migrations, which take no parameters)."""
    t = t.astimezone(UTC)
    return f"TIMESTAMPTZ '{t.isoformat()}'" if _pg(d) else f"'{t.strftime('%Y-%m-%dT%H:%M:%S.%f')}+00:00'"


def compaction_schema(d: Dialect, now: datetime) -> list[str]:
    """m009: weeks, and the mark compaction keeps, at the start of the current hour. What the
    live path wrote into hours and today's day rows is cut back to before the mark (the
    minutes hold the rest: every write since m007 kept them), and the weeks are built from
    the days."""
    hour, day = literal(d, floor(now, "hour")), literal(d, floor(now, "day"))
    return [*schema(d, ("week",)),
            f"CREATE TABLE {MARKS} (folded_until {d.types['timestamp']} NOT NULL)",
            f"DELETE FROM rollup_hour WHERE bucket >= {hour}",
            f"DELETE FROM rollup_day WHERE bucket >= {day}",
            fold(d, "day", "hour", hour, day),
            fold(d, "week", "day", hour),
            f"INSERT INTO {MARKS} (folded_until) VALUES ({hour})"]


def fold(d: Dialect, granularity: str, source: str, until: str, since: str | None = None) -> str:
    """SQL adding the `source` table's rows in [since, until) (SQL expressions) into the
    coarser `granularity` one."""
    where = f" WHERE bucket < {until}" + (f" AND bucket >= {since}" if since is not None else "")
    return _upsert(d, granularity, TABLES[source], where)


def _tag_pairs(d: Dialect, column: str) -> str:
    return f"jsonb_each_text(CAST({column} AS jsonb)) t" if _pg(d) else f"json_each({column}) t"


def _status_class(column: str) -> str:
    return f"CASE WHEN {column} < 100 THEN '0' ELSE CAST({column} / 100 AS TEXT) || 'xx' END"


def _histogram(column: str) -> list[str]:
    bounds = (None, *LATENCY_BOUNDS_MS, None)
    cases = []
    for name, low, high in zip(HISTOGRAM, bounds[:-1], bounds[1:], strict=True):
        test = " AND ".join(([f"{column} >= {low}"] if low is not None else [])
                            + ([f"{column} < {high}"] if high is not None else []))
        cases.append(f"CASE WHEN {test} THEN 1 ELSE 0 END AS {name}")
    return cases


# A batch's histogram travels packed: counters of PACK_BITS bits, PER_WORD to a BIGINT, so
# adding up a row's 17 groupings sums 4 columns, not 16 (half the work of a batch's rollups).
# Exact while no grouping of one batch has 4,096 rows in one bucket: Ledger.write passes at
# most MAX_PACKED_ROWS rows at a time.
PACK_BITS, PER_WORD = 12, 5
MAX_PACKED_ROWS = (1 << PACK_BITS) - 1
PACKED = tuple(f"hp{w}" for w in range(-(-len(HISTOGRAM) // PER_WORD)))
DELTA = (*COUNTS, "latency_ms_sum", *PACKED)  # the columns of a batch's delta


def _bucket_index(column: str) -> str:
    cases = " ".join(f"WHEN {column} < {bound} THEN {i}" for i, bound in enumerate(LATENCY_BOUNDS_MS))
    return f"CASE {cases} ELSE {len(LATENCY_BOUNDS_MS)} END"


def _packed_words(index: str) -> list[str]:
    words = []
    for w, name in enumerate(PACKED):
        cases = " ".join(f"WHEN {i} THEN {1 << (PACK_BITS * (i % PER_WORD))}"
                         for i in range(len(HISTOGRAM)) if i // PER_WORD == w)
        words.append(f"CASE {index} {cases} ELSE 0 END AS {name}")
    return words


def _unpacked(i: int) -> str:
    """SQL for histogram counter `i` out of the packed words."""
    return f"((hp{i // PER_WORD} >> {PACK_BITS * (i % PER_WORD)}) & {MAX_PACKED_ROWS})"


def _prepared(d: Dialect, granularity: str, source: str, where: str = "", packed: bool = False) -> str:
    """The rows to roll up, one per ledger row, with their bucket, dimension values ('' for
    none) and metrics: the common ground of the live path (`packed`: the histogram as
    `PACKED` words) and the backfill."""
    histogram = [f"{_bucket_index('b.latency_ms')} AS hidx"] if packed else _histogram("b.latency_ms")
    columns = [
        f"{truncate(d, granularity, 'b.ts')} AS bucket",
        "COALESCE(b.key_name, '') AS key_name", "COALESCE(b.team, '') AS team",
        "COALESCE(b.user_name, '') AS user_name", "COALESCE(b.session_id, '') AS session_id", "b.tags AS tags",
        "COALESCE(b.requested_model, '') AS asked", "COALESCE(b.served_model, b.requested_model, '') AS model",
        "COALESCE(b.provider, '') AS upstream", f"{_status_class('b.status')} AS status",
        "1 AS requests", "CASE WHEN b.status >= 400 THEN 1 ELSE 0 END AS errors",
        *(f"b.{c} AS {c}" for c in COUNTS[2:]), "b.latency_ms AS latency_ms_sum", *histogram,
    ]
    rows = f"SELECT {', '.join(columns)} FROM {source} b{where}"
    return f"SELECT q.*, {', '.join(_packed_words('q.hidx'))} FROM ({rows}) q" if packed else rows


def branches(d: Dialect, metrics_of: Sequence[str] = METRICS) -> list[str]:
    """One SELECT per grouping a ledger row counts in, each over the prepared rows `p`."""
    metrics = ", ".join(f"p.{m}" for m in metrics_of)
    tags = _tag_pairs(d, "p.tags")

    def one(dims: str, v1: str, v2: str, rest: str = "") -> str:
        return f"SELECT p.bucket AS bucket, {dims} AS dims, {v1} AS v1, {v2} AS v2, {metrics} FROM p{rest}"

    found = [one("''", "''", "''")]
    for name, column in SINGLE.items():
        if name not in NESTED:
            found.append(one(f"'{name}'", f"p.{column}", "''"))
        if name != "team":
            found.append(one(f"'team|{name}'", "p.team", f"p.{column}"))
    found += [one("'tag:' || t.key", "t.value", "''", f", {tags}"),
              one("'team|tag:' || t.key", "p.team", "t.value", f", {tags}"),
              one("'tag:'", "''", "''", " WHERE p.tags = '{}'"),
              one("'team|tag:'", "p.team", "''", " WHERE p.tags = '{}'")]
    return found


def _sums(prefix: str = "") -> str:
    return ", ".join(f"SUM({prefix}{m}) AS {m}" for m in METRICS)


# Counts of requests within one batch: they fit an INTEGER, whose SUM PostgreSQL adds as a
# BIGINT; a BIGINT's SUM it adds as a NUMERIC, several times slower.
SMALL = ("requests", "errors", *HISTOGRAM)


def _upsert(d: Dialect, granularity: str, delta: str, where: str = " WHERE 1 = 1", packed: bool = False) -> str:
    """Adds the delta rows (bucketed by minute; `packed`: a batch's delta, its histogram in
    `PACKED` words) or a finer table's rows into one rollup table. In key order, so two
    PostgreSQL writers that touch the same rows lock them in the same order. PostgreSQL's
    delta is one batch, already one row per minute key: added as it is."""
    table = TABLES[granularity]
    bucket = "bucket" if granularity == "minute" else truncate(d, granularity, "bucket")
    updates = ", ".join(f"{m} = {table}.{m} + excluded.{m}" for m in METRICS)
    values = {m: m for m in METRICS} | ({h: _unpacked(i) for i, h in enumerate(HISTOGRAM)} if packed else {})
    if _pg(d) and granularity == "minute" and packed:
        select = f"SELECT bucket, dims, v1, v2, {', '.join(values[m] for m in METRICS)} FROM {delta}{where}"
    else:
        sums = ", ".join(f"SUM(CAST({values[m]} AS INTEGER))" if _pg(d) and m in SMALL else f"SUM({values[m]})"
                         for m in METRICS)
        select = f"SELECT {bucket}, dims, v1, v2, {sums} FROM {delta}{where} GROUP BY 1, 2, 3, 4"
    return (f"INSERT INTO {table} (bucket, dims, v1, v2, {', '.join(METRICS)}) {select} ORDER BY 2, 1, 3, 4 "
            f"ON CONFLICT (dims, bucket, v1, v2) DO UPDATE SET {updates}")


def _delta(d: Dialect) -> str:
    """The batch's rows rolled up by minute, from the prepared rows `p` (packed)."""
    # PostgreSQL sums BIGINTs as NUMERICs: the packed words go back to BIGINTs, to unpack.
    sums = ", ".join(f"CAST(SUM({m}) AS BIGINT) AS {m}" if m in PACKED and _pg(d) else f"SUM({m}) AS {m}" for m in DELTA)
    # In byte order on PostgreSQL (as the tables' keys): a sort by the locale's rules costs
    # the statement a third of its time.
    keys = "bucket, dims, v1, v2" if not _pg(d) else 'bucket, dims COLLATE "C", v1 COLLATE "C", v2 COLLATE "C"'
    # Each grouping summed on its own: 17 sorts of a batch's rows cost less than one of 17 times
    # as many, whose keys also differ later.
    return " UNION ALL ".join(f"SELECT {keys}, {sums} FROM ({branch}) x GROUP BY 1, 2, 3, 4"
                              for branch in branches(d, DELTA))


_RETURNING = (", ".join(SOURCE[:-3]) + ", CAST(ROUND(cost_usd * 10000000000) AS BIGINT) AS cost_units"
              ", CAST(ROUND(COALESCE(saved_usd, 0) * 10000000000) AS BIGINT) AS saved_units, latency_ms")
_SQLITE_DELTA = "temp.rollup_delta"
_PG_BATCH = "pg_temp.rollup_batch"
_PRUNE = ("DELETE FROM rollup_minute WHERE dims IN (WITH RECURSIVE n(dims) AS (SELECT MIN(dims) FROM rollup_minute "
          "UNION ALL SELECT (SELECT MIN(dims) FROM rollup_minute WHERE dims > n.dims) FROM n WHERE n.dims IS NOT NULL) "
          f"SELECT dims FROM n WHERE dims IS NOT NULL) AND bucket < ? AND bucket < (SELECT folded_until FROM {MARKS})")
# Minutes are written from the cutoff on, and from the fold mark on where that is older (no
# compaction for days): those are not in the coarser tables yet. Older rows go to those.
_MINUTES = f" WHERE (bucket >= ? OR bucket >= (SELECT folded_until FROM {MARKS}))"
_LATE = f" WHERE bucket < (SELECT folded_until FROM {MARKS})"
# PostgreSQL: batches share this lock and compaction takes it alone, so a batch that began
# before a fold commits before the fold reads the minutes, and one after reads the new mark.
# (SQLite's write lock already makes each transaction the only writer.)
SHARED_LOCK = "SELECT pg_advisory_xact_lock_shared(hashtext(current_schema() || '.rollup_compacted'))"
EXCLUSIVE_LOCK = "SELECT pg_advisory_xact_lock(hashtext(current_schema() || '.rollup_compacted'))"


class RollupWriter:
    """Turns a batch's ledger inserts into statements that also maintain the rollups."""

    def __init__(self, dialect: Dialect) -> None:
        self.dialect = dialect
        self._pruned_at = float("-inf")
        d = dialect
        if _pg(d):
            # The inserts' RETURNING rows gather in a temporary table, then one statement adds
            # them up: two replicas' batches then lock rollup rows in one order (key order,
            # table by table), where a statement per insert could cross and deadlock.
            self._pg_batch: list[tuple[str, Params]] = [
                (f"CREATE TEMP TABLE IF NOT EXISTS {_PG_BATCH} AS SELECT {_RETURNING} FROM ledger WITH NO DATA", [])]
            self._pg_rollup = (f"WITH p AS ({_prepared(d, 'minute', _PG_BATCH, packed=True)}), d AS ({_delta(d)}), "
                               f"m AS ({_upsert(d, 'minute', 'd', _MINUTES, packed=True)}), "
                               f"h AS ({_upsert(d, 'hour', 'd', _LATE, packed=True)}), "
                               f"dy AS ({_upsert(d, 'day', 'd', _LATE, packed=True)}) "
                               f"{_upsert(d, 'week', 'd', _LATE, packed=True)}")
        else:
            columns = ", ".join(f"{m} {'REAL' if m == 'latency_ms_sum' else 'INTEGER'}" for m in DELTA)
            self._sqlite_create = (f"CREATE TEMP TABLE IF NOT EXISTS rollup_delta "
                                   f"(bucket TEXT, dims TEXT, v1 TEXT, v2 TEXT, {columns})")
            fresh = " WHERE NOT EXISTS (SELECT 1 FROM ledger l WHERE l.request_id = b.request_id)"
            self._sqlite_tail = (f", p AS ({_prepared(d, 'minute', 'b', fresh, packed=True)}) "
                                 f"INSERT INTO {_SQLITE_DELTA} {_delta(d)}")
            self._sqlite_upserts = [_upsert(d, "minute", _SQLITE_DELTA, _MINUTES, packed=True),
                                    *(_upsert(d, g, _SQLITE_DELTA, _LATE, packed=True) for g in COARSER)]
        self._sqlite_sources: dict[int, str] = {}

    def statements(self, ledger_inserts: list[tuple[str, Params]], sources: Sequence[tuple],
                   max_parameters: int, now: datetime | None = None) -> list[tuple[str, Params]]:
        """The batch's statements, ledger inserts included, that add exactly the rows inserted
        to the rollups. `sources`: each row in `SOURCE` order, as the driver takes it (read
        by SQLite only; PostgreSQL takes what its insert returns)."""
        now = now or datetime.now(UTC)
        cutoff = self.dialect.timestamp(now - MINUTES_KEPT)
        prune = self._prune(cutoff)
        if _pg(self.dialect):
            inserts = [(f"WITH b AS ({sql} RETURNING {_RETURNING}) INSERT INTO {_PG_BATCH} SELECT * FROM b", params)
                       for sql, params in ledger_inserts]
            return [(SHARED_LOCK, []), *self._pg_batch, *prune, *inserts, (self._pg_rollup, [cutoff]),
                    (f"TRUNCATE {_PG_BATCH}", [])]  # DELETE: each later scan slowed by its dead rows
        return prune + self._sqlite(sources, max_parameters, cutoff) + ledger_inserts

    def _prune(self, cutoff) -> list[tuple[str, Params]]:
        if time.monotonic() - self._pruned_at < PRUNE_EVERY_S:
            return []
        self._pruned_at = time.monotonic()
        return [(_PRUNE, [cutoff])]

    def _sqlite(self, sources: Sequence[tuple], max_parameters: int, cutoff) -> list[tuple[str, Params]]:
        # Before the ledger insert: a request id the ledger holds is left out, and so is a
        # second copy within the batch (the insert keeps the first).
        unique = list({row[0]: row for row in reversed(sources)}.values())[::-1]  # the first of each id
        if not unique:
            return []
        from tokenbrake.storage.ledger import (  # few statement texts
            MAX_ROWS_PER_INSERT,
            statement_sizes,
        )

        largest = max(1, min(MAX_ROWS_PER_INSERT, max_parameters // len(SOURCE)))
        statements: list[tuple[str, Params]] = [(self._sqlite_create, [])]
        start = 0
        for size in statement_sizes(len(unique), largest):
            chunk = unique[start:start + size]
            statements.append((self._sqlite_source(size), [v for row in chunk for v in row]))
            start += size
        statements += [(self._sqlite_upserts[0], [cutoff]), *((sql, []) for sql in self._sqlite_upserts[1:]),
                       (f"DELETE FROM {_SQLITE_DELTA}", [])]
        return statements

    def _sqlite_source(self, rows: int) -> str:
        if rows not in self._sqlite_sources:
            one = f"({', '.join('?' for _ in SOURCE)})"
            self._sqlite_sources[rows] = (f"WITH b({', '.join(SOURCE)}) AS (VALUES {', '.join([one] * rows)})"
                                          + self._sqlite_tail)
        return self._sqlite_sources[rows]


def backfill(d: Dialect, now: datetime | None = None) -> list[str]:
    """Statements that build the rollups of the ledger as it stands (into empty tables): the
    hours and recent minutes from the ledger, one grouping at a time (each a scan and a sort
    of the ledger, far cheaper than one sort of every grouping at once), the days from the
    hours."""
    now = now or datetime.now(UTC)
    ledger = (f"(SELECT {', '.join(SOURCE[:-3])}, {money_units(d, 'cost_usd')} AS cost_units, "
              f"{money_units(d, 'saved_usd')} AS saved_units, latency_ms FROM ledger)")
    since = literal(d, now - MINUTES_KEPT)
    statements = []
    for granularity, where in (("hour", ""), ("minute", f" WHERE b.ts >= {since}")):
        prepared = _prepared(d, granularity, ledger, where)
        for branch in branches(d):
            statements.append(f"INSERT INTO {TABLES[granularity]} (bucket, dims, v1, v2, {', '.join(METRICS)}) "
                              f"WITH p AS ({prepared}) SELECT bucket, dims, v1, v2, {_sums()} FROM ({branch}) x "
                              f"GROUP BY 1, 2, 3, 4")
    statements.append(f"INSERT INTO rollup_day (bucket, dims, v1, v2, {', '.join(METRICS)}) "
                      f"SELECT {truncate(d, 'day', 'bucket')}, dims, v1, v2, {_sums()} FROM rollup_hour "
                      f"GROUP BY 1, 2, 3, 4")
    return statements
