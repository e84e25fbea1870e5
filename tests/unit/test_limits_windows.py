"""Where a budget counter lives: calendar periods in a time zone, total, rolling."""

from __future__ import annotations

import random
from datetime import UTC, datetime
from decimal import Decimal

import pytest

from tokenbrake.limits import BudgetCounter, Window, from_nanos, open_limit_store, to_nanos
from tokenbrake.limits.windows import KEEP_AFTER_S, Placement, Placements, period, place


def at(*args: int) -> float:
    return datetime(*args, tzinfo=UTC).timestamp()


def test_month_key_carries_the_local_period_start():
    counter = BudgetCounter("team:search", Decimal(50), Window("month", tz="Europe/Paris"))
    assert place(counter, at(2026, 11, 14, 9)).key == "budget:team:search:2026-11-01T00:00+01:00"
    assert place(counter, at(2026, 10, 31, 22, 59)).key == "budget:team:search:2026-10-01T00:00+02:00"


def test_month_ends_at_the_next_local_midnight():
    start, end = period(Window("month", tz="Europe/Paris"), at(2026, 12, 15))
    assert (start.isoformat(), end.isoformat()) == ("2026-12-01T00:00:00+01:00", "2027-01-01T00:00:00+01:00")


def test_week_starts_on_monday():
    start, end = period(Window("week", tz="Asia/Tokyo"), at(2026, 11, 26, 16))  # Friday 01:00 in Tokyo
    assert (start.isoformat(), end.isoformat()) == ("2026-11-23T00:00:00+09:00", "2026-11-30T00:00:00+09:00")


def test_day_across_a_dst_change_lasts_25_hours():
    start, end = period(Window("day", tz="Europe/Paris"), at(2026, 10, 25, 12))
    assert end.timestamp() - start.timestamp() == 25 * 3600


def test_hour_in_a_half_hour_zone_is_local():
    start, end = period(Window("hour", tz="Asia/Kolkata"), at(2026, 11, 1, 10, 45))  # 16:15 local
    assert (start.isoformat(), end.isoformat()) == ("2026-11-01T16:00:00+05:30", "2026-11-01T17:00:00+05:30")


def test_total_and_rolling_keys_do_not_move():
    total = BudgetCounter("key:k", Decimal(1), Window("total"))
    rolling = BudgetCounter("key:k", Decimal(1), Window.rolling(3600))
    assert place(total, at(2026, 1, 1)).key == place(total, at(2030, 1, 1)).key == "budget:key:k:total"
    assert place(rolling, at(2026, 1, 1)).key == "budget:key:k:rolling:3600s"
    assert place(total, at(2026, 1, 1)).keep_s is None


def placed_afresh(counter: BudgetCounter, now: float) -> Placement:
    start, end = period(counter.window, now)
    return Placement(f"budget:{counter.key}:{start.isoformat(timespec='minutes')}", 0.0, end,
                     end.timestamp() - now + KEEP_AFTER_S)


@pytest.mark.parametrize("kind", ["minute", "hour", "day", "week", "month"])
@pytest.mark.parametrize("tz", ["Europe/Paris", "Asia/Kolkata", "UTC"])
def test_a_remembered_period_places_every_moment_as_working_it_out_again_would(kind, tz):
    counter = BudgetCounter(f"team:{kind}:{tz}", Decimal(1), Window(kind, tz=tz))
    moment = at(2026, 10, 24, 23)  # across Paris's change back from summer time, and a month's end
    moments = []
    while moment < at(2026, 11, 2, 1):
        moments.append(moment)
        moment += 433.7  # lands on either side of every boundary, and now and then right at one
    moments += random.Random(7).sample(moments, 40)  # then back and forth: a clock set back, or reordered calls
    moments += [period(counter.window, m)[1].timestamp() + delta for m in moments[::97] for delta in (-1e-6, 0.0)]
    placements = Placements()
    for moment in moments:
        assert placements.place(counter, moment) == placed_afresh(counter, moment), datetime.fromtimestamp(moment, UTC)
        assert place(counter, moment) == placed_afresh(counter, moment)


def test_the_remembered_periods_are_bounded():
    placements = Placements(max_kept=3)
    for n in range(10):
        counter = BudgetCounter(f"key:k{n}", Decimal(1), Window("day"))
        assert placements.place(counter, at(2026, 11, 1) + n) == placed_afresh(counter, at(2026, 11, 1) + n)
    assert len(placements) <= 3


def test_total_and_rolling_counters_are_placed_alike_remembered_or_not():
    placements = Placements()
    for window in (Window("total"), Window.rolling(3600)):
        counter = BudgetCounter("key:k", Decimal(1), window)
        assert placements.place(counter, at(2026, 1, 1)) == place(counter, at(2026, 1, 1))
    assert len(placements) == 0  # nothing to remember: they have no periods


@pytest.mark.parametrize("window", [dict(kind="rolling"), dict(kind="fortnight"), dict(kind="day", seconds=5)])
def test_bad_windows_are_rejected(window):
    with pytest.raises(ValueError):
        Window(**window)


def test_money_converts_exactly_and_rounds_costs_up_limits_down():
    assert to_nanos(Decimal("0.1")) == 100_000_000
    assert to_nanos(Decimal("0.0000000001")) == 1
    assert to_nanos(Decimal("0.0000000019"), up=False) == 1
    assert from_nanos(123_456_789_012) == Decimal("123.456789012")


async def test_unknown_state_url_is_refused():
    with pytest.raises(ValueError, match="unsupported state URL"):
        await open_limit_store("etcd://somewhere")
