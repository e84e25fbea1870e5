import sqlite3
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal

import pytest
from storage_backends import db, ledger_row, place, sqlite_place  # noqa: F401

from tokenbrake.storage import GROUPINGS, UsageGroup
from tokenbrake.storage import sqlite as sqlite_module
from tokenbrake.storage.ledger import MAX_ROWS_PER_INSERT, statement_sizes
from tokenbrake.storage.sqlite import SQLITE
from tokenbrake.storage.sqlite import _connect as connect_sqlite

DAY1 = datetime(2026, 11, 1, 23, 59, 59, tzinfo=UTC)
DAY2 = datetime(2026, 11, 2, 0, 0, 1, tzinfo=UTC)


async def test_a_written_row_reads_back_exactly(db):
    row = ledger_row(1, session="s-1", tags={"feature": "search", "env": "prod"}, cached_input_tokens=7,
                     cache_write_tokens=3, reasoning_tokens=4, cost_usd=Decimal("0.0123456789"), status=502,
                     error="upstream 502", stream=True, prompt='{"messages": []}', completion="hello",
                     ts=datetime(2026, 11, 1, 12, 0, 0, 123456, tzinfo=UTC))
    await db.ledger.write([row])
    assert await db.ledger.rows() == [row]


async def test_times_written_in_another_zone_read_back_as_utc(db):
    local = datetime(2026, 11, 1, 14, 0, tzinfo=timezone(timedelta(hours=2)))
    await db.ledger.write([ledger_row(ts=local)])
    (stored,) = await db.ledger.rows()
    assert stored.ts == local and stored.ts.tzinfo == UTC and stored.ts.hour == 12


async def test_rows_come_most_recent_first_up_to_the_limit(db):
    base = datetime(2026, 11, 1, tzinfo=UTC)
    await db.ledger.write([ledger_row(n, ts=base + timedelta(minutes=n)) for n in range(5)])
    assert [row.request_id for row in await db.ledger.rows(limit=3)] == ["req-4", "req-3", "req-2"]


async def test_writing_a_request_id_twice_keeps_one_row(db):
    await db.ledger.write([ledger_row(1, tags={"a": "1"})])
    await db.ledger.write([ledger_row(1, tags={"a": "1"}), ledger_row(2)])
    totals = await db.ledger.totals()
    assert totals.requests == 2
    assert await db.ledger.usage("tag") == [
        UsageGroup("(none)", 1, 100, 10, Decimal("0.001"), 0), UsageGroup("a=1", 1, 100, 10, Decimal("0.001"), 0)]


async def test_held_names_the_request_ids_the_ledger_holds_however_many_are_asked(db, monkeypatch):
    await db.ledger.write([ledger_row(n) for n in range(0, 30, 3)])
    monkeypatch.setattr(db.backend, "max_parameters", 7)  # a statement per 7 ids asked
    assert await db.ledger.held([f"req-{n}" for n in range(30)]) == {f"req-{n}" for n in range(0, 30, 3)}
    assert await db.ledger.held([]) == set()


@pytest.mark.parametrize("largest", [MAX_ROWS_PER_INSERT, 38, 1])
@pytest.mark.parametrize("rows", [0, 1, 7, MAX_ROWS_PER_INSERT - 1, MAX_ROWS_PER_INSERT, 3 * MAX_ROWS_PER_INSERT + 37])
def test_a_batch_is_cut_into_few_statements_of_few_sizes(rows, largest):
    sizes = statement_sizes(rows, largest)
    assert sum(sizes) == rows
    assert sizes == sorted(sizes, reverse=True) and max(sizes, default=0) <= largest
    rest = [size for size in sizes if size < largest]
    assert all(size & (size - 1) == 0 for size in rest) and len(rest) == len(set(rest))  # distinct powers of two


async def test_an_sqlite_built_with_the_old_limit_of_999_parameters_still_takes_a_full_batch(sqlite_place, monkeypatch):
    def old_sqlite(path: str) -> sqlite3.Connection:
        conn = connect_sqlite(path)
        conn.setlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER, 999)  # the default before SQLite 3.32
        return conn

    monkeypatch.setattr(sqlite_module, "_connect", old_sqlite)
    database = await sqlite_place.open()
    try:
        assert database.backend.max_parameters == 999
        rows = [ledger_row(n, tags={f"t{t}": "x" for t in range(4)}) for n in range(MAX_ROWS_PER_INSERT)]
        await database.ledger.write(rows)  # 13 000 parameters in all, 2 000 tags
        assert {row.request_id for row in await database.ledger.rows(limit=1000)} == {row.request_id for row in rows}
        assert sum(group.requests for group in await database.ledger.usage("tag")) == 4 * len(rows)
    finally:
        await database.close()


async def test_a_batch_of_several_insert_statements_reads_back_exactly_once_per_request_id(db):
    base = datetime(2026, 11, 1, tzinfo=UTC)
    count = 2 * MAX_ROWS_PER_INSERT + 37
    rows = [ledger_row(n, ts=base + timedelta(seconds=n), cost_usd=Decimal(n) / 1000,
                       tags={"n": str(n), "parity": str(n % 2)}) for n in range(count)]
    # Two full statements of rows, shorter ones for the rest, repeats of a whole statement's
    # rows inside the batch; and tags over several statements of their own.
    await db.ledger.write(rows + rows[:MAX_ROWS_PER_INSERT + 60])
    assert await db.ledger.rows(limit=10 * count) == rows[::-1]
    by_tag = {group.group: group.requests for group in await db.ledger.usage("tag")}
    assert by_tag["parity=0"] == (count + 1) // 2 and by_tag["parity=1"] == count // 2
    assert sum(requests for name, requests in by_tag.items() if name.startswith("n=")) == count


async def seed(db) -> None:
    await db.ledger.write([
        ledger_row(1, ts=DAY1, key_name="k1", team="t1", user="ana", session="s1", tags={"feature": "search"},
                   input_tokens=100, cached_input_tokens=50, output_tokens=10, cost_usd=Decimal("0.10")),
        ledger_row(2, ts=DAY1, key_name="k1", team="t1", user="bob", session="s1",
                   tags={"feature": "search", "env": "prod"}, output_tokens=20, cost_usd=Decimal("0.20"), status=500),
        ledger_row(3, ts=DAY2, key_name="k2", team=None, user=None, served_model=None, requested_model="small",
                   tags={"env": "prod"}, input_tokens=1, cache_write_tokens=2, output_tokens=3,
                   cost_usd=Decimal("0.0000000001"), status=429),
    ])


EXPECTED = {
    "key": {"k1": (2, 250, 30, "0.30", 1), "k2": (1, 3, 3, "0.0000000001", 1)},
    "team": {"t1": (2, 250, 30, "0.30", 1), "(none)": (1, 3, 3, "0.0000000001", 1)},
    "user": {"bob": (1, 100, 20, "0.20", 1), "ana": (1, 150, 10, "0.10", 0), "(none)": (1, 3, 3, "0.0000000001", 1)},
    "model": {"gpt-4o": (2, 250, 30, "0.30", 1), "small": (1, 3, 3, "0.0000000001", 1)},
    "session": {"s1": (2, 250, 30, "0.30", 1), "(none)": (1, 3, 3, "0.0000000001", 1)},
    "tag": {"feature=search": (2, 250, 30, "0.30", 1), "env=prod": (2, 103, 23, "0.2000000001", 2)},
    "day": {"2026-11-01": (2, 250, 30, "0.30", 1), "2026-11-02": (1, 3, 3, "0.0000000001", 1)},
}


def test_every_grouping_is_covered():
    assert set(EXPECTED) == set(GROUPINGS)


@pytest.mark.parametrize("by", list(EXPECTED))
async def test_usage_by_every_grouping_is_exact_and_sorted_by_cost(db, by):
    await seed(db)
    groups = await db.ledger.usage(by)
    expected = [UsageGroup(name, r, i, o, Decimal(c), e) for name, (r, i, o, c, e) in EXPECTED[by].items()]
    assert groups == sorted(expected, key=lambda g: -g.cost_usd)
    assert all(isinstance(g.cost_usd, Decimal) for g in groups)


async def test_usage_since_and_until_bound_the_time_range(db):
    await seed(db)
    assert [g.group for g in await db.ledger.usage("key", since=DAY2)] == ["k2"]
    assert [g.group for g in await db.ledger.usage("key", until=DAY2)] == ["k1"]
    assert await db.ledger.usage("key", since=DAY2 + timedelta(seconds=1)) == []


async def test_totals_add_everything_up(db):
    await seed(db)
    assert await db.ledger.totals() == UsageGroup("total", 3, 253, 33, Decimal("0.3000000001"), 2)
    assert (await db.ledger.totals(since=DAY2)).requests == 1


async def test_totals_of_an_empty_ledger_are_zero(db):
    assert await db.ledger.totals() == UsageGroup("total", 0, 0, 0, Decimal(0), 0)
    assert await db.ledger.usage("team") == []


async def test_unknown_grouping_is_refused(db):
    with pytest.raises(ValueError, match="colour"):
        await db.ledger.usage("colour")


@pytest.mark.parametrize("moment", [
    datetime(2026, 11, 29, 1, 2, 3, 4, tzinfo=UTC),
    datetime(2026, 11, 29, 23, 59, 59, 999999, tzinfo=UTC),
    datetime(2026, 11, 30, 0, 30, tzinfo=timezone(timedelta(hours=2))),  # the day before, in UTC
    datetime(2026, 11, 1, 12, 0),  # naive: taken as UTC
    datetime(999, 1, 1, tzinfo=UTC),
])
def test_sqlite_stores_times_as_fixed_width_iso_8601_in_utc(moment):
    as_utc = moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
    assert SQLITE.timestamp(moment) == as_utc.isoformat(timespec="microseconds")
    assert len(SQLITE.timestamp(moment)) == 32  # the day is its first ten characters, and text sorts as time


async def test_user_and_tag_spenders_are_told_apart_by_tenant_the_biggest_first(db):
    await db.ledger.write([
        ledger_row(1, team="red", user="alice", tags={"f": "chat"}, cost_usd=Decimal("0.3")),
        ledger_row(2, team="blue", user="alice", tags={"f": "chat"}, cost_usd=Decimal("0.5")),
        ledger_row(3, team=None, key_name="bot", user="alice", cost_usd=Decimal("0.1")),
        ledger_row(4, team=None, key_name=None, user="alice", cost_usd=Decimal("0.05")),
        ledger_row(5, team="red", user=None, cost_usd=Decimal("9")),  # no user: no user counter
        ledger_row(6, team="red", user="alice", ts=datetime(2026, 10, 1, tzinfo=UTC), cost_usd=Decimal("7")),
    ])
    since = datetime(2026, 11, 1, tzinfo=UTC)
    assert await db.ledger.spenders_by_tenant("user", since=since) == [
        ("team:blue", "alice"), ("team:red", "alice"), ("key:bot", "alice"), (None, "alice")]
    assert await db.ledger.spenders_by_tenant("tag", since=since) == [("team:blue", "f=chat"), ("team:red", "f=chat")]
