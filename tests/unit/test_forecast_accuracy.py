"""The forecaster on synthetic seasonal traffic (seasonal_spend.py: a daily shape, weekends at
under half, 15% growth a month, busy days in runs, noise an hour): the month-end forecast made
on days 7, 14 and 21 is within 10% of what the month spent, and over many seeds the 80% and
95% intervals hold the truth at about those rates."""

from __future__ import annotations

from datetime import timedelta

import numpy as np
from seasonal_spend import MONTH_END, MONTH_START, before, seasonal_spend

from tokenbrake.foresight.forecast import Forecast, forecast_spend

HISTORY = timedelta(days=42)  # the six weeks before the month
DAYS = (7, 14, 21)


def forecasts(seeds: range, hour: int = 13):
    """(day, forecast, what the month spent) for each seed and forecast day."""
    for seed in seeds:
        series = seasonal_spend(MONTH_START - HISTORY, MONTH_END, seed)
        truth = sum(cost for t, cost in series if t >= MONTH_START)
        for day in DAYS:
            now = MONTH_START + timedelta(days=day - 1, hours=hour, minutes=20)
            result = forecast_spend(before(series, now), now, MONTH_END, MONTH_START)
            assert isinstance(result, Forecast)
            yield day, result, truth


def test_the_month_end_forecast_from_day_7_14_and_21_is_within_ten_percent():
    errors: dict[int, list[float]] = {day: [] for day in DAYS}
    for day, result, truth in forecasts(range(30)):
        errors[day].append(abs(result.forecast_usd / truth - 1))
    for day in DAYS:
        assert max(errors[day]) < 0.10, (day, max(errors[day]))
    assert np.mean(errors[7]) < 0.05 and np.mean(errors[21]) < np.mean(errors[7])


def test_the_intervals_hold_the_truth_at_about_their_nominal_rate():
    held = {0.8: [], 0.95: []}
    for _, result, truth in forecasts(range(100, 250), hour=9):
        for interval in result.intervals:
            held[interval.level].append(interval.low_usd <= truth <= interval.high_usd)
    assert 0.72 <= np.mean(held[0.8]) <= 0.88, np.mean(held[0.8])
    assert 0.90 <= np.mean(held[0.95]) <= 0.99, np.mean(held[0.95])


def test_forecasts_made_later_in_the_month_are_surer():
    widths = {day: [] for day in DAYS}
    for day, result, truth in forecasts(range(10)):
        eighty = result.intervals[0]
        widths[day].append((eighty.high_usd - eighty.low_usd) / truth)
    assert np.mean(widths[7]) > np.mean(widths[14]) > np.mean(widths[21])
