"""Synthetic hourly spend with known seasonality, trend and noise, for the forecaster's tests:
a daily shape peaking mid-afternoon UTC, weekends at under half a weekday, steady growth, a
shock per day that carries over to the next (busy days come in runs) and noise per hour, both
in proportion to the level."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np

HOUR = timedelta(hours=1)
MONTH_START = datetime(2026, 3, 1, tzinfo=UTC)  # a Sunday
MONTH_END = datetime(2026, 4, 1, tzinfo=UTC)


def seasonal_spend(start: datetime, end: datetime, seed: int, per_hour_usd: float = 2.0,
                   growth_per_month: float = 0.15, day_noise: float = 0.05, day_persistence: float = 0.5,
                   hour_noise: float = 0.25) -> list[tuple[datetime, float]]:
    """(hour start, cost) for every hour in [start, end)."""
    rnd = np.random.default_rng(seed)
    count = int((end - start) / HOUR)
    shocks = np.zeros(count // 24 + 1)
    for day in range(1, len(shocks)):
        shocks[day] = day_persistence * shocks[day - 1] + rnd.normal(0, day_noise)
    times = [start + i * HOUR for i in range(count)]
    age_days = np.arange(count) / 24
    hour = np.array([t.hour for t in times])
    weekend = np.array([t.weekday() >= 5 for t in times])
    level = per_hour_usd * (1 + growth_per_month * age_days / 30)
    daily = 1 + 0.7 * np.sin(2 * np.pi * (hour - 8) / 24)
    noise = rnd.gamma(1 / hour_noise ** 2, hour_noise ** 2, count)  # mean 1
    costs = level * daily * np.where(weekend, 0.45, 1.0) * np.exp(shocks[(age_days // 1).astype(int)]) * noise
    return list(zip(times, costs.tolist()))


def steady_spend(start: datetime, end: datetime, per_hour_usd: float, seed: int = 0,
                 noise: float = 0.0) -> list[tuple[datetime, float]]:
    """The same cost every hour, give or take `noise` (a share of it)."""
    count = int((end - start) / HOUR)
    costs = per_hour_usd * np.random.default_rng(seed).normal(1, noise, count) if noise else np.full(count, per_hour_usd)
    return [(start + i * HOUR, float(cost)) for i, cost in enumerate(costs)]


def before(series: list[tuple[datetime, float]], now: datetime) -> list[tuple[datetime, float]]:
    """What the rollups hold at `now`: the hours before it, the current one in part."""
    held = [(t, c) for t, c in series if t + HOUR <= now]
    current = [(t, c * ((now - t) / HOUR)) for t, c in series if t < now < t + HOUR]
    return held + current
