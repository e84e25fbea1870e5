"""The rollups the ledger writer keeps: per minute, hour, day and week, they add up to exactly
what the ledger rows hold, each table up to its compaction mark and all of them once folded;
a retried batch adds nothing twice; a batch that fails leaves neither row nor sum; building
them from an existing ledger (migrations m007 and m009) gives the same tables as writing the
rows live; writes racing a fold lose nothing. On SQLite and PostgreSQL alike."""

from __future__ import annotations

import asyncio
import sqlite3
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import psycopg
import pytest
from insight_rows import NOW, metrics_of, varied_rows
from storage_backends import db, execute, ledger_row, place, sqlite_place  # noqa: F401

from tokenbrake.storage.backend import to_datetime
from tokenbrake.storage.compaction import RollupCompactor, folded_until
from tokenbrake.storage.database import connect
from tokenbrake.storage.ledger import MONEY_PLACES, Charge, Ledger, LedgerRow
from tokenbrake.storage.migrations import migrate
from tokenbrake.storage.rollups import (
    COUNTS,
    GRANULARITIES,
    MAX_PACKED_ROWS,
    METRICS,
    MINUTES_KEPT,
    MONEY_UNIT,
    TABLES,
    money_units,
)

LATER = NOW + timedelta(hours=2)  # compacting "then" folds every row written


def bucket_of(ts: datetime, granularity: str) -> datetime:
    """The bucket's start, worked out field by field (the oracle for rollups.floor)."""
    t = ts.astimezone(UTC)
    if granularity == "week":  # ISO weeks start on Monday
        return datetime(t.year, t.month, t.day, tzinfo=UTC) - timedelta(days=t.isoweekday() - 1)
    fields = {"minute": 5, "hour": 4, "day": 3}[granularity]
    return datetime(*t.timetuple()[:fields], tzinfo=UTC)


def groupings(row: LedgerRow) -> list[tuple[str, str, str]]:
    """What rollups.py says a row counts in, written out again as the test's oracle."""
    status = "0" if row.status < 100 else f"{row.status // 100}xx"
    team = row.team or ""
    values = {"key": row.key_name or "", "team": team, "user": row.user or "",
              "model": row.served_model or row.requested_model or "", "asked": row.requested_model or "",
              "upstream": row.provider or "", "session": row.session or "", "status": status}
    found = [("", "", "")]
    for name, value in values.items():
        if name not in ("key", "user", "session"):  # those within a team: as team pairs only
            found.append((name, value, ""))
        if name != "team":
            found.append((f"team|{name}", team, value))
    for key, value in row.tags.items():
        found += [(f"tag:{key}", value, ""), (f"team|tag:{key}", team, value)]
    if not row.tags:
        found += [("tag:", "", ""), ("team|tag:", team, "")]
    return found


def expected(rows: list[LedgerRow], granularity: str, before: datetime | None = None) -> dict:
    """The table's rows: for the coarser ones, of the rows `before` the mark if given."""
    sums: dict = defaultdict(lambda: [0] * len(METRICS))
    kept = datetime.now(UTC) - MINUTES_KEPT  # as the writer cut off just now (NOW is the suite's start)
    for row in rows:
        if granularity == "minute" and row.ts < kept:
            continue
        if before is not None and row.ts >= before:
            continue
        for dims, v1, v2 in groupings(row):
            total = sums[(dims, bucket_of(row.ts, granularity), v1, v2)]
            for i, value in enumerate(metrics_of(row)):
                total[i] += value
    return {key: tuple(values) for key, values in sums.items()}


async def stored(database, granularity: str) -> dict:
    found = await database.backend.fetch(f"SELECT dims, bucket, v1, v2, {', '.join(METRICS)} FROM {TABLES[granularity]}")
    return {(dims, to_datetime(bucket), v1, v2): tuple(float(v) if i == len(COUNTS) else int(v) for i, v in enumerate(rest))
            for dims, bucket, v1, v2, *rest in found}


async def all_rollups(database) -> dict:
    return {g: await stored(database, g) for g in GRANULARITIES}


async def compacted(database, now: datetime = LATER) -> None:
    await RollupCompactor(database.backend).compact(now)


async def test_rollups_add_up_to_exactly_what_the_rows_hold_per_minute_hour_day_and_week(db):
    rows = varied_rows(300, spread=timedelta(days=9))
    for start in range(0, len(rows), 64):  # several batches, each into rollups that already hold some
        await db.ledger.write(rows[start:start + 64])
    mark = await folded_until(db.backend)
    assert await stored(db, "minute") == expected(rows, "minute")
    for granularity in ("hour", "day", "week"):  # before a fold: the rows before the mark
        assert await stored(db, granularity) == expected(rows, granularity, mark), granularity
    await compacted(db)
    for granularity in GRANULARITIES:
        assert await stored(db, granularity) == expected(rows, granularity), granularity


async def test_a_fold_moves_the_mark_to_the_last_hour_closed_and_a_second_folds_nothing(db):
    rows = varied_rows(200, spread=timedelta(days=2))
    await db.ledger.write(rows)
    mark = await RollupCompactor(db.backend).compact(LATER)
    assert mark == bucket_of(LATER - timedelta(minutes=1), "hour") == await folded_until(db.backend)
    folded = await all_rollups(db)
    assert await RollupCompactor(db.backend).compact(LATER) == mark  # another replica, same hour
    assert await all_rollups(db) == folded


async def test_rows_older_than_the_marks_go_to_the_coarser_tables_in_their_batch(db):
    first = varied_rows(100, seed=3, spread=timedelta(days=3), prefix="a")
    await db.ledger.write(first)
    await compacted(db)
    late = varied_rows(100, seed=4, spread=timedelta(days=3), prefix="b")  # a journal replayed after the fold
    await db.ledger.write(late)
    for granularity in GRANULARITIES:
        assert await stored(db, granularity) == expected(first + late, granularity), granularity


async def marks_set(database, at: datetime) -> None:
    """As if the rollups were last folded at `at` (before any row is written)."""
    async with database.backend.transaction() as tx:
        await tx.execute("UPDATE rollup_compacted SET folded_until = ?", (bucket_of(at, "hour"),))


async def test_with_folding_stalled_for_days_the_minutes_since_the_mark_are_kept_and_folded_later(db):
    await marks_set(db, NOW - MINUTES_KEPT - timedelta(days=2))
    rows = varied_rows(150, spread=timedelta(days=4))
    await db.ledger.write(rows)
    minutes = await stored(db, "minute")
    assert min(bucket for _, bucket, _, _ in minutes) < NOW - MINUTES_KEPT  # not pruned: not folded yet
    await compacted(db)
    for granularity in ("hour", "day", "week"):
        assert await stored(db, granularity) == expected(rows, granularity), granularity


async def test_batches_racing_folds_on_every_replica_lose_and_double_nothing(place):
    """Three writers (replicas) write small batches while two of them fold, minute after
    minute of a simulated clock; once all is folded, every table holds exactly the rows."""
    replicas = [await place.open() for _ in range(3)]
    rows = sorted(varied_rows(900, seed=9, spread=timedelta(hours=3)), key=lambda row: row.ts)
    await marks_set(replicas[0], NOW - timedelta(hours=3))  # the folds below then move them hour by hour
    try:
        async def write(database, part):
            for start in range(0, len(part), 5):
                await database.ledger.write(part[start:start + 5])

        async def fold(database):
            for minutes in range(180, -1, -1):
                await RollupCompactor(database.backend).compact(NOW - timedelta(minutes=minutes))

        await asyncio.gather(*(write(database, rows[i::3]) for i, database in enumerate(replicas)),
                             fold(replicas[0]), fold(replicas[1]))
        await compacted(replicas[0])
        for granularity in GRANULARITIES:
            assert await stored(replicas[2], granularity) == expected(rows, granularity), granularity
    finally:
        for database in replicas:
            await database.close()


async def test_the_totals_equal_the_ledgers_own_sums(db):
    rows = varied_rows(120)
    await db.ledger.write(rows)
    totals = await db.ledger.totals()
    await compacted(db)
    (requests, cost, saved), = await db.backend.fetch(
        "SELECT SUM(requests), SUM(cost_units), SUM(saved_units) FROM rollup_day WHERE dims = ''")
    assert int(requests) == totals.requests == 120
    assert Decimal(int(cost)) * MONEY_UNIT == totals.cost_usd
    assert Decimal(int(saved)) * MONEY_UNIT == totals.saved_usd


async def test_a_retried_batch_adds_nothing_twice(db):
    rows = varied_rows(80)
    await db.ledger.write(rows[:50])
    await db.ledger.write(rows[:50])  # committed, but the writer never heard: written again
    await db.ledger.write(rows[30:])  # overlaps the first
    await compacted(db)
    for granularity in GRANULARITIES:
        assert await stored(db, granularity) == expected(rows, granularity)


async def test_a_request_id_twice_in_one_batch_counts_once_as_its_first_row(db):
    first = ledger_row(1, ts=NOW, cost_usd=Decimal("0.5"))
    again = ledger_row(1, ts=NOW, cost_usd=Decimal("9"), team="other")
    await db.ledger.write([first, again])
    assert await stored(db, "minute") == expected([first], "minute")


async def test_a_batch_larger_than_a_packed_counter_holds_counts_every_row_of_one_latency_bucket(db):
    """A batch's histogram is added up packed, 12 bits a counter; a batch of more rows than
    that, all alike, still counts each one."""
    rows = [ledger_row(n, ts=NOW, latency_ms=120.0) for n in range(MAX_PACKED_ROWS + 5)]
    await db.ledger.write(rows)
    assert await stored(db, "minute") == expected(rows, "minute")
    ((count,),) = await db.backend.fetch("SELECT h03 FROM rollup_minute WHERE dims = ''")
    assert count == len(rows)


async def test_a_failed_batch_leaves_neither_row_nor_rollup(db):
    await db.ledger.write([ledger_row(1, ts=NOW)])
    before = await all_rollups(db)
    await execute(db, "DROP TABLE budget_charges")  # the batch's last statement will fail
    doomed = ledger_row(2, ts=NOW, charges=(Charge("budget:global:month", 5, 1.0, None),))
    with pytest.raises((sqlite3.Error, psycopg.Error)):
        await db.ledger.write([doomed])
    assert [row.request_id for row in await db.ledger.rows()] == ["req-1"]
    assert await all_rollups(db) == before


async def test_building_rollups_from_an_existing_ledger_equals_writing_them_live(place):
    old = varied_rows(60, seed=1, spread=timedelta(days=20), prefix="old")  # mostly past the minutes kept
    recent = varied_rows(60, seed=2, spread=timedelta(hours=5), prefix="new")
    backend = await connect(place.url, place.schema)
    try:
        await migrate(backend, until="m006_durable_spend")  # a ledger from before the rollups
        await Ledger(backend, rollups=False).write(old + recent)
    finally:
        await backend.close()
    migrated = await place.open()  # m007 builds them, m009 leaves each table complete up to its mark
    try:
        built = await all_rollups(migrated)
        mark = await folded_until(migrated.backend)
        await compacted(migrated)
        folded = await all_rollups(migrated)
    finally:
        await migrated.close()
    assert built["minute"] == expected(old + recent, "minute")
    for granularity in ("hour", "day", "week"):
        assert built[granularity] == expected(old + recent, granularity, mark), granularity
        assert folded[granularity] == expected(old + recent, granularity), granularity


async def test_live_writes_keep_no_minutes_older_than_they_are_kept(db):
    rows = [ledger_row(1, ts=NOW - MINUTES_KEPT - timedelta(hours=1)), ledger_row(2, ts=NOW)]
    await db.ledger.write(rows)
    assert {bucket for _, bucket, _, _ in await stored(db, "minute")} == {bucket_of(NOW, "minute")}
    mark = await folded_until(db.backend)
    assert await stored(db, "hour") == expected(rows, "hour", mark)  # the old one still counts in its hour


async def test_old_minutes_are_pruned_as_writes_go_on(db):
    await db.ledger.write([ledger_row(1, ts=NOW)])
    old = NOW - MINUTES_KEPT - timedelta(minutes=5)
    async with db.backend.transaction() as tx:
        await tx.execute(f"INSERT INTO rollup_minute (bucket, dims, v1, v2, {', '.join(METRICS)}) "
                         f"VALUES (?, 'team', 'alpha', '', {', '.join('1' for _ in METRICS)})", (bucket_of(old, 'minute'),))
    await Ledger(db.backend).write([ledger_row(2, ts=NOW)])  # a writer's first batch prunes
    minutes = await stored(db, "minute")
    assert {bucket for _, bucket, _, _ in minutes} == {bucket_of(NOW, "minute")}
    assert minutes[("", bucket_of(NOW, "minute"), "", "")][0] == 2


@pytest.mark.parametrize("text, units", [("12", 120000000000), ("-0.5", -5000000000), ("0.0000000001", 1),
                                          ("123456.1234567890", 1234561234567890), ("-0.0012500000", -12500000),
                                          (None, 0)])
async def test_sqlite_reads_money_text_as_exact_units(sqlite_place, text, units):
    database = await sqlite_place.open()
    try:
        assert await database.backend.fetch(f"SELECT {money_units(database.backend.dialect, '?1')}", (text,)) == [(units,)]
    finally:
        await database.close()


def test_a_unit_of_rollup_money_is_the_ledgers_precision():
    assert MONEY_UNIT == MONEY_PLACES
