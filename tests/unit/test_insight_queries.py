"""The insight queries read the rollups and answer what the ledger rows say: totals over any
span (with the period before it), breakdowns with top N and the rest, time series, filters
on every dimension and on tags; and they refuse, naming the parameter, what the rollups do
not hold. Each answer is checked against the rows themselves, over the span it covered."""

from __future__ import annotations

import random
from collections import defaultdict
from datetime import UTC, timedelta

import pytest
from insight_rows import NOW, summed, value, varied_rows
from storage_backends import db, place  # noqa: F401

from tokenbrake.storage.compaction import RollupCompactor
from tokenbrake.storage.insight_queries import (
    ZERO,
    Metrics,
    Query,
    QueryError,
    _ceil,
    sources,
    tiles,
)
from tokenbrake.storage.rollups import MINUTES_KEPT, floor

ROWS = varied_rows(400, seed=11, spread=timedelta(days=10))


# How far compaction has gone when the queries run: as written (marks at the migration, most
# rows older: written to every table in their batch), all folded, folding stalled for five
# days (the minutes since kept), and stalled then folded partway.
FOLDING = {"as written": (None, None), "all folded": (None, NOW + timedelta(hours=2)),
           "stalled 5 days": (NOW - timedelta(days=5), None),
           "folded partway": (NOW - timedelta(days=5), NOW - timedelta(days=2))}


@pytest.fixture(params=list(FOLDING))
async def seeded(db, request):
    stalled, folded = FOLDING[request.param]
    if stalled is not None:
        async with db.backend.transaction() as tx:
            await tx.execute("UPDATE rollup_compacted SET folded_until = ?", (floor(stalled, "hour"),))
    for start in range(0, len(ROWS), 100):
        await db.ledger.write(ROWS[start:start + 100])
    if folded is not None:
        await RollupCompactor(db.backend).compact(folded)
    return db


def inside(start, end, filters=None) -> list:
    return [row for row in ROWS if start <= row.ts < end
            and all(value(row, name) in {v or None for v in values} for name, values in (filters or {}).items())]


def grouped(rows, by) -> dict:
    groups = defaultdict(list)
    for row in rows:
        groups[tuple(value(row, name) for name in by)].append(row)
    return {group: summed(members) for group, members in groups.items()}


SPANS = [(timedelta(days=10), timedelta(0)), (timedelta(days=7), timedelta(0)), (timedelta(hours=24), timedelta(0)),
         (timedelta(minutes=90), timedelta(0)), (timedelta(days=5, minutes=17), timedelta(days=2, minutes=3)),
         (timedelta(days=9, hours=5), timedelta(days=4, hours=1)), (timedelta(hours=47), timedelta(hours=2, minutes=41)),
         (timedelta(days=2), timedelta(days=1))]


@pytest.mark.parametrize("back, to", SPANS)
async def test_a_spans_total_is_what_its_rows_add_up_to(seeded, back, to):
    start, end, total = await seeded.insight.total(Query(NOW - back, NOW - to), NOW)
    assert start <= NOW - back and end >= NOW - to
    assert total == summed(inside(start, end)) and total.requests > 0


async def test_ends_within_the_minutes_kept_are_exact_to_the_minute_and_older_ones_to_the_hour(seeded):
    since, until = NOW - timedelta(days=6, minutes=17), NOW - timedelta(hours=30, seconds=5)
    start, end, _ = await seeded.insight.total(Query(since, until), NOW)
    assert start == floor(since, "hour") and end == _ceil(until, "minute")


async def test_totals_come_with_the_period_just_before(seeded):
    totals = await seeded.insight.totals(Query(NOW - timedelta(days=3), NOW), NOW)
    assert totals.previous_until == totals.since
    assert totals.previous_since == floor(totals.since - (totals.until - totals.since), "hour")  # 6 days back: hours
    assert totals.current == summed(inside(totals.since, totals.until))
    assert totals.previous == summed(inside(totals.previous_since, totals.previous_until))


async def test_a_breakdown_lists_the_top_groups_by_cost_and_the_rest_as_other(seeded):
    found = await seeded.insight.breakdown(Query(NOW - timedelta(days=8), NOW), ["user"], top=2, now=NOW)
    expected = grouped(inside(found.since, found.until), ["user"])
    ranked = sorted(expected.items(), key=lambda item: -item[1].cost_units)
    assert found.rows == ranked[:2]
    assert found.other == sum((m for _, m in ranked[2:]), ZERO)
    assert found.total == summed(inside(found.since, found.until))


async def test_a_breakdown_without_top_lists_every_group_and_no_other(seeded):
    found = await seeded.insight.breakdown(Query(NOW - timedelta(days=2), NOW), ["status"], now=NOW)
    assert dict(found.rows) == grouped(inside(found.since, found.until), ["status"]) and found.other is None
    assert {group for group, _ in found.rows} <= {("2xx",), ("4xx",), ("5xx",), ("0",)}


@pytest.mark.parametrize("by, filters", [
    (["team", "model"], {}),
    (["model"], {"team": ["alpha"]}),
    (["user"], {"team": ["beta", ""]}),  # "": the rows with no team
    (["team"], {"user": ["ana", "bo"]}),
    (["status"], {"status": ["5xx", "4xx"]}),
    (["asked"], {"asked": ["auto"]}),
    (["tag.feature"], {}),
    (["team"], {"tag.env": ["prod"]}),
    (["team", "tag.env"], {"team": ["alpha"]}),
    (["session"], {"team": ["alpha"]}),
    ([], {"upstream": ["local"]}),
])
async def test_breakdowns_by_one_dimension_or_team_and_one_under_any_filter(seeded, by, filters):
    found = await seeded.insight.breakdown(Query(NOW - timedelta(days=6, hours=3), NOW - timedelta(hours=5), filters),
                                           by, now=NOW)
    rows = inside(found.since, found.until, filters)
    expected = {group: m for group, m in grouped(rows, by).items()
                if not any(name.startswith("tag.") and v is None for name, v in zip(by, group, strict=True))}
    assert dict(found.rows) == expected and found.total == summed(rows)


async def test_a_tags_other_holds_the_requests_without_that_tag_too(seeded):
    found = await seeded.insight.breakdown(Query(NOW - timedelta(days=9), NOW), ["tag.feature"], top=1, now=NOW)
    rows = inside(found.since, found.until)
    top = [row for row in rows if row.tags.get("feature") == found.rows[0][0][0]]
    assert found.other == summed(rows) - summed(top)


async def test_every_tag_at_once_groups_by_name_and_value(seeded):
    found = await seeded.insight.breakdown(Query(NOW - timedelta(days=9), NOW), ["tag"], now=NOW)
    rows = inside(found.since, found.until)
    by_pair = defaultdict(list)
    for row in rows:
        for pair in [f"{k}={v}" for k, v in row.tags.items()] or [None]:
            by_pair[(pair,)].append(row)
    assert dict(found.rows) == {group: summed(members) for group, members in by_pair.items()}


@pytest.mark.parametrize("every", ["hour", "day", "minute"])
async def test_a_series_has_a_point_per_bucket_that_add_up_to_the_groups(seeded, every):
    back = timedelta(hours=20) if every == "minute" else timedelta(days=9)
    found = await seeded.insight.series(Query(NOW - back, NOW), every, ["model"], top=1, now=NOW)
    step = {"minute": timedelta(minutes=1), "hour": timedelta(hours=1), "day": timedelta(days=1)}[every]
    assert found.times[0] == found.since and found.times[-1] + step == found.until
    assert all(b - a == step for a, b in zip(found.times, found.times[1:], strict=False))
    rows = inside(found.since, found.until)
    (group, line), (rest, other) = found.series
    assert rest is None
    for t, point, other_point in zip(found.times, line, other, strict=True):
        in_bucket = [row for row in rows if t <= row.ts < t + step]
        assert point == summed([row for row in in_bucket if (value(row, "model"),) == group])
        assert other_point == summed([row for row in in_bucket if (value(row, "model"),) != group])


async def test_a_series_without_by_is_one_line_of_everything(seeded):
    found = await seeded.insight.series(Query(NOW - timedelta(days=3), NOW, {"team": ["alpha"]}), "day", now=NOW)
    ((group, line),) = found.series
    assert group == () and sum(line, ZERO) == summed(inside(found.since, found.until, {"team": ["alpha"]}))


async def test_a_series_with_every_group_listed_has_no_other(seeded):
    found = await seeded.insight.series(Query(NOW - timedelta(days=3), NOW), "day", ["upstream"], top=10, now=NOW)
    assert all(group is not None for group, _ in found.series) and len(found.series) == 2


async def test_an_empty_span_answers_zeros(db):
    found = await db.insight.totals(Query(NOW - timedelta(days=1), NOW), NOW)
    assert found.current == found.previous == ZERO
    assert found.current.view()["latency_ms_p50"] is None and found.current.view()["cost_usd"] == "0"


@pytest.mark.parametrize("by, filters, param", [
    (["model", "user"], {}, "by"),
    (["model"], {"user": ["ana"]}, "user"),
    (["team", "model", "key"], {}, "by"),
    (["colour"], {}, "by"),
    (["model"], {"status": ["200"]}, "status"),
])
async def test_what_the_rollups_do_not_hold_is_refused_naming_the_parameter(db, by, filters, param):
    with pytest.raises(QueryError) as refused:
        await db.insight.breakdown(Query(NOW - timedelta(days=1), NOW, filters), by, now=NOW)
    assert refused.value.param == param and str(refused.value).startswith(f"'{param}': ")


async def test_minutes_further_back_than_they_are_kept_are_refused(db):
    with pytest.raises(QueryError, match="'every'.*every=hour"):
        await db.insight.series(Query(NOW - MINUTES_KEPT - timedelta(hours=2), NOW), "minute", now=NOW)


async def test_a_series_of_too_many_points_is_refused(db):
    with pytest.raises(QueryError, match="'every'.*coarser"):
        await db.insight.series(Query(NOW - timedelta(days=900), NOW), "hour", now=NOW)


def test_the_pieces_tile_the_covered_span_exactly_and_read_each_table_only_where_it_is_complete():
    rnd = random.Random(3)
    weeks = 0
    for _ in range(3000):
        until = NOW - timedelta(seconds=rnd.choice([0, rnd.randrange(10 * 86400)]))
        since = until - timedelta(seconds=rnd.randrange(1, 95 * 86400))
        folded = floor(NOW - timedelta(seconds=rnd.choice([0, rnd.randrange(6 * 86400)])), "hour")
        start, end, pieces = tiles(since, until, NOW, folded)
        assert start <= since and end >= until
        covered = sorted((a, b) for _, a, b in pieces)
        assert covered[0][0] == start and covered[-1][1] == end
        assert all(b == c for (_, b), (c, _) in zip(covered, covered[1:], strict=False))
        for granularity, a, b in pieces:
            assert a < b and floor(a, granularity) == a
            if granularity == "minute":  # kept for MINUTES_KEPT, and from the mark on
                assert a >= min(NOW - MINUTES_KEPT, folded)
            else:  # whole buckets before the mark, or up to it (this week, today, so far)
                assert b == folded or (floor(b, granularity) == b and b <= folded)
        weeks += any(g == "week" for g, _, _ in pieces)
        assert len(pieces) <= 7  # weeks, then days, hours and minutes at either end
        assert sum(g == "minute" and a >= folded for g, a, _ in pieces) <= 1  # after the mark, one run
    assert weeks > 1000


def test_a_series_reads_its_own_table_up_to_the_mark_and_the_minutes_after():
    folded = floor(NOW - timedelta(days=2, hours=5), "hour")
    start, end = floor(NOW - timedelta(days=30), "day"), floor(NOW, "day") + timedelta(days=1)
    assert sources("day", start, end, folded) == [("day", start, folded), ("minute", folded, end)]
    assert sources("hour", folded, end, folded) == [("minute", folded, end)]
    assert sources("minute", start, end, folded) == [("minute", start, end)]


def test_percentiles_are_read_from_the_histogram():
    metrics = Metrics.of([4, 0, 0, 0, 0, 0, 0, 0, 0, 400.0, 0, 0, 2, 2] + [0] * 12)  # two in 50-100, two in 100-200
    assert metrics.latency_ms(0.5) == 100 and metrics.latency_ms(0.25) == 75
    assert metrics.view()["latency_ms_avg"] == 100 and 180 <= metrics.view()["latency_ms_p95"] <= 200
    assert ZERO.latency_ms(0.5) is None
    assert NOW.tzinfo is UTC


@pytest.mark.parametrize("units", [0, 1, -1, 10_000_000_000, -125_000_000_000, 12_345_678_901, 99, 5_000_000_000])
def test_money_from_units_reads_as_the_decimal_does(units):
    from decimal import Decimal

    from tokenbrake.storage.insight_queries import money, units_text
    from tokenbrake.storage.rollups import MONEY_UNIT

    assert units_text(units) == money(Decimal(units) * MONEY_UNIT)
