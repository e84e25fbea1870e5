"""The forecaster on series whose answer is known: a steady scope's month-end is its pace to
the end, and a budget runs out when the pace says; what the period has spent counts from its
start, the current hour in part; too little history, or none with spend, is answered as such
and says how much there is and how much is needed."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from seasonal_spend import MONTH_END, MONTH_START, before, seasonal_spend, steady_spend

from tokenbrake.foresight.forecast import MIN_HISTORY_HOURS, Forecast, NotEnoughHistory, forecast_spend

NOW = MONTH_START + timedelta(days=9, hours=12, minutes=30)  # 2026-03-10 12:30


def steady(now: datetime = NOW, per_hour: float = 1.0, days: int = 30, noise: float = 0.0, seed: int = 0):
    start = (now - timedelta(days=days)).replace(minute=0)
    return before(steady_spend(start, MONTH_END, per_hour, seed, noise), now)


def test_a_steady_scope_ends_the_month_at_its_pace():
    result = forecast_spend(steady(), NOW, MONTH_END, MONTH_START)
    assert isinstance(result, Forecast)
    hours_so_far = (NOW - MONTH_START) / timedelta(hours=1)
    assert result.spent_usd == pytest.approx(hours_so_far)
    assert result.forecast_usd == pytest.approx(31 * 24, rel=1e-6)
    assert result.history_hours == 30 * 24


def test_a_budget_runs_out_when_the_pace_says_within_an_hour_or_two():
    for seed in range(5):
        series = steady(per_hour=2.0, noise=0.1, seed=seed)
        spent = sum(cost for t, cost in series if t >= MONTH_START)
        budget = spent + 2.0 * 100  # a hundred hours more at $2 an hour
        result = forecast_spend(series, NOW, MONTH_END, MONTH_START, budget_usd=budget)
        assert isinstance(result, Forecast)
        assert result.runs_out_at is not None
        assert abs(result.runs_out_at - (NOW + timedelta(hours=100))) < timedelta(hours=2)


def test_a_budget_that_lasts_the_period_does_not_run_out():
    result = forecast_spend(steady(), NOW, MONTH_END, MONTH_START, budget_usd=31 * 24 + 50)
    assert isinstance(result, Forecast) and result.runs_out_at is None


def test_a_budget_already_spent_ran_out_when_spend_reached_it():
    result = forecast_spend(steady(), NOW, MONTH_END, MONTH_START, budget_usd=48.5)
    assert isinstance(result, Forecast)
    assert result.runs_out_at == MONTH_START + timedelta(hours=48, minutes=30)


def test_spend_before_the_series_counts_toward_a_total_budget():
    result = forecast_spend(steady(), NOW, NOW + timedelta(days=30), budget_usd=1000, spent_earlier_usd=500)
    assert isinstance(result, Forecast)
    assert result.spent_usd == pytest.approx(500 + 30 * 24 + 0.5)
    assert result.runs_out_at is not None
    assert abs(result.runs_out_at - (NOW + timedelta(hours=1000 - 500 - 30 * 24 - 0.5))) < timedelta(minutes=1)


def test_intervals_widen_with_the_level_and_never_go_below_what_is_spent():
    series = before(seasonal_spend(MONTH_START - timedelta(days=40), MONTH_END, seed=3), NOW)
    result = forecast_spend(series, NOW, MONTH_END, MONTH_START)
    assert isinstance(result, Forecast)
    eighty, ninety_five = result.intervals
    assert (eighty.level, ninety_five.level) == (0.8, 0.95)
    assert result.spent_usd <= ninety_five.low_usd < eighty.low_usd < result.forecast_usd
    assert result.forecast_usd < eighty.high_usd < ninety_five.high_usd


def test_the_period_ended_forecasts_what_it_spent():
    result = forecast_spend(steady(), NOW, NOW - timedelta(hours=1), MONTH_START)
    assert isinstance(result, Forecast)
    assert result.forecast_usd == result.spent_usd
    assert all(i.low_usd == i.high_usd == result.spent_usd for i in result.intervals)


def test_too_little_history_says_how_much_there_is_and_how_much_is_needed():
    result = forecast_spend(steady(days=2), NOW, MONTH_END, MONTH_START)
    assert isinstance(result, NotEnoughHistory)
    assert result.history_hours == 48 and result.needed_hours == MIN_HISTORY_HOURS == 72
    assert "48 hours" in result.reason and "72" in result.reason


def test_hours_before_the_first_spend_are_not_history():
    quiet = [(NOW - timedelta(days=20) + timedelta(hours=i), 0.0) for i in range(20 * 24 - 24)]
    result = forecast_spend(quiet + steady(days=1), NOW, MONTH_END, MONTH_START)
    assert isinstance(result, NotEnoughHistory) and result.history_hours == 24


@pytest.mark.parametrize("series", [[], [(NOW - timedelta(days=5) + timedelta(hours=i), 0.0) for i in range(100)]])
def test_no_spend_at_all_is_not_enough_history(series):
    result = forecast_spend(series, NOW, MONTH_END, MONTH_START)
    assert isinstance(result, NotEnoughHistory)
    assert result.history_hours == 0 and "no spend" in result.reason


def test_a_series_that_stopped_hours_ago_forecasts_from_its_pace_with_the_quiet_hours():
    series = steady(now=NOW - timedelta(hours=6))
    result = forecast_spend(series, NOW, MONTH_END, MONTH_START)
    assert isinstance(result, Forecast)
    assert result.spent_usd == pytest.approx((NOW - timedelta(hours=6) - MONTH_START) / timedelta(hours=1))
    assert result.forecast_usd < 31 * 24


def test_times_in_other_zones_are_the_same_moments():
    here = datetime(2026, 3, 10, 13, 30, tzinfo=UTC).astimezone()
    assert forecast_spend(steady(), here, MONTH_END, MONTH_START) == forecast_spend(steady(), NOW + timedelta(hours=1),
                                                                                    MONTH_END, MONTH_START)


def test_the_answer_is_plain_floats_and_datetimes():
    result = forecast_spend(steady(noise=0.1), NOW, MONTH_END, MONTH_START, budget_usd=500)
    assert isinstance(result, Forecast)
    numbers = [result.spent_usd, result.forecast_usd, *(v for i in result.intervals for v in (i.low_usd, i.high_usd))]
    assert all(type(number) is float for number in numbers) and type(result.runs_out_at) is datetime


def test_the_way_to_the_period_end_starts_at_what_is_spent_and_ends_at_the_forecast():
    series = steady(per_hour=2.0, noise=0.2, seed=3)
    result = forecast_spend(series, NOW, MONTH_END, MONTH_START)
    assert isinstance(result, Forecast)
    first, *ahead = result.path
    assert (first.at, first.forecast_usd) == (NOW, result.spent_usd)
    assert all(i.low_usd == i.high_usd == result.spent_usd for i in first.intervals)
    assert len(ahead) == -(-(MONTH_END - NOW) // timedelta(days=1))  # a waypoint a day ahead, the last cut short
    assert ahead[-1].at == MONTH_END
    assert (ahead[-1].forecast_usd, ahead[-1].intervals) == (result.forecast_usd, result.intervals)
    for earlier, later in zip(result.path, result.path[1:]):
        assert later.at - earlier.at <= timedelta(days=1)
        assert later.forecast_usd > earlier.forecast_usd  # a steady $2 an hour adds every day
        assert later.forecast_usd - earlier.forecast_usd == pytest.approx(2.0 * (later.at - earlier.at).total_seconds()
                                                                          / 3600, rel=0.2)
        for a, b in zip(earlier.intervals, later.intervals):
            assert b.high_usd - b.low_usd > a.high_usd - a.low_usd  # the band widens as the way goes on
