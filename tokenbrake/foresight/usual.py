"""What is usual for a scope: its hourly history and, from it, its usual for an hour of the week.

The detector keeps each watched scope's last `HOURS_KEPT` hours (requests, tokens, cost) in a
ring, fed hour by hour from what it reads of the rollups. The usual for an hour is the median
of the same hour of the week over the last four weeks (two at least), or, with under two weeks
of history, of the same hour of the day over the last week (three days at least): medians, so
one week's incident or holiday does not move the usual. On the first and the last day of a
month the same hour of the previous month's first or last day counts too (the larger of the
two), so a batch job that runs at every month's end is usual from its second month on. An
hour's usual is never below half the last week's mean hour: the median of a scope whose calls
come a few a day is 0 at most hours. Hours before the detector's history began are unknown,
never zero.
"""

from __future__ import annotations

import calendar
from dataclasses import dataclass
from datetime import UTC, datetime

import numpy as np

HOURS_KEPT = 35 * 24  # four weeks of the same hour, and last month's end
WEEKS = 4
WEEK = 168
MIN_WEEKS, MIN_DAYS = 2, 3
SPARSE_SHARE = 0.5  # of the last week's mean hour: the least an hour's usual is
REQUESTS, TOKENS, COST, SQUARES = range(4)  # SQUARES: each minute's cost squared over its requests


class Ring:
    """A scope's hours, by hour number (hours since the epoch), the last `HOURS_KEPT` of them."""

    __slots__ = ("stamps", "values")

    def __init__(self) -> None:
        # 32-bit: a gateway keeps one per team, key, user and team-model seen (17 KB each)
        self.stamps = np.full(HOURS_KEPT, -1, dtype=np.int32)
        self.values = np.zeros((HOURS_KEPT, 4), dtype=np.float32)

    def add(self, hour: int, values) -> None:
        at = hour % HOURS_KEPT
        if self.stamps[at] != hour:
            self.stamps[at] = hour
            self.values[at] = 0.0
        self.values[at] += values

    def at(self, hours: list[int]) -> np.ndarray:
        """Each hour's values; zeros for an hour the ring holds nothing of."""
        index = np.asarray(hours, dtype=np.int64)
        held = self.stamps[index % HOURS_KEPT] == index
        return np.where(held[:, None], self.values[index % HOURS_KEPT].astype(np.float64), 0.0)

    def since(self, first: int) -> np.ndarray:
        """The sum of the hours from `first` on."""
        return self.values[self.stamps >= first].sum(axis=0, dtype=np.float64)

    def hours_spent(self, first: int) -> int:
        """How many hours from `first` on had any cost."""
        return int(((self.stamps >= first) & (self.values[:, COST] > 0)).sum())


@dataclass(frozen=True, slots=True)
class Usual:
    """A scope's usual per hour for one hour of the week, and its last week's averages."""

    requests: float
    tokens: float
    cost: float
    week: np.ndarray  # the last 168 hours' sums (requests, tokens, cost, squares)

    @property
    def cost_per_request(self) -> float:
        return self.week[COST] / self.week[REQUESTS] if self.week[REQUESTS] > 0 else 0.0

    @property
    def tokens_per_request(self) -> float:
        return self.week[TOKENS] / self.week[REQUESTS] if self.week[REQUESTS] > 0 else 0.0

    @property
    def cost_squared(self) -> float:
        """A request's mean squared cost: from the minutes (exact for a minute of one request,
        more for more), or, for hours read whole, three times the mean's square."""
        if self.week[SQUARES] > 0 and self.week[REQUESTS] > 0:
            return max(float(self.week[SQUARES] / self.week[REQUESTS]), self.cost_per_request ** 2)
        return 3 * self.cost_per_request ** 2

    @property
    def daily_cost(self) -> float:
        return float(self.week[COST]) / 7


def usual(ring: Ring | None, hour: int, first: int) -> Usual | None:
    """The usual for `hour` (an hour number), from the history that began at hour `first`;
    None with too little of it (a scope never seen within it is usually zero)."""
    weeks = [hour - WEEK * k for k in range(1, WEEKS + 1) if hour - WEEK * k >= first]
    days = [hour - 24 * k for k in range(1, 8) if hour - 24 * k >= first]
    if len(weeks) < MIN_WEEKS and len(days) < MIN_DAYS:
        return None
    if ring is None:
        return Usual(0.0, 0.0, 0.0, np.zeros(4))
    hours = weeks if len(weeks) >= MIN_WEEKS else days
    values = np.median(ring.at(hours), axis=0)
    last_month = month_twin(hour)
    if last_month is not None and last_month >= first:
        values = np.maximum(values, ring.at([last_month])[0])
    week = ring.since(hour - WEEK)
    # A median of sparse hours is 0 where calls come a few a day: never under a part of the week's mean.
    values = np.maximum(values, SPARSE_SHARE * week / WEEK)
    return Usual(float(values[REQUESTS]), float(values[TOKENS]), float(values[COST]), week)


def month_twin(hour: int) -> int | None:
    """The same hour of the previous month's first (or last) day, for an hour on a month's
    first (or last) day; else None."""
    moment = datetime.fromtimestamp(hour * 3600, UTC)
    if moment.day == 1:
        previous = moment.replace(day=1, month=moment.month - 1) if moment.month > 1 else moment.replace(
            year=moment.year - 1, month=12)
        return int(previous.timestamp() // 3600)
    if moment.day == calendar.monthrange(moment.year, moment.month)[1]:
        year, month = (moment.year, moment.month - 1) if moment.month > 1 else (moment.year - 1, 12)
        previous = moment.replace(year=year, month=month, day=calendar.monthrange(year, month)[1])
        return int(previous.timestamp() // 3600)
    return None
