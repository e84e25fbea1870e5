"""A scope's spend to the end of its period, forecast from its own hourly history.

The method is top-down, in two steps. The days: the scope's totals of consecutive 24 hours,
counted back from the current hour over up to eight weeks, are regressed on the day of the
week and a linear trend with AR(1) errors (days.py). The hours: each day ahead is spread over
its hours by each hour's share of its day in the past, per hour of the week (`_profile`), so
the hours ahead keep the week's shape: a lunch peak, quiet nights, a nightly batch. The
forecast is what the period has spent so far plus the hours from now to its end.

Why this: a regression on weekday terms and a trend with autocorrelated errors is the
textbook model of a seasonal series with drift (ARIMA errors with regressors; Holt-Winters
and Prophet fit much the same structure), and its forecast error is known in closed form, so
the interval comes from the same model as the forecast. It fits at most 56 daily totals with
numpy, a base dependency: about 8 ms a scope on a busy two-CPU machine, so hundreds of scopes
can be forecast on a request, where statsmodels or prophet would be an optional extra fitted
by numerical optimisation (Stan, for prophet) for every scope. Fitting days rather than hours
puts the noise where it is: a busy day is busy all day and busy days come in runs, so a model
of hours with independent errors gave intervals two to three times too narrow on the test
traffic (a day's residual sum varied 3 to 8 times as much as 24 independent hours would).

The interval is a normal quantile (80%, 95%) of the error of the sum ahead: the days'
(days.py: the innovations to come carried into later days, the parameters' error, and rho's
own), in proportion to the level forecast, plus, for a part of a day, how far hours strayed
from their share of it. Its low end is never below what is spent. On synthetic seasonal
traffic with growth and noise it held the truth at about its nominal rate
(tests/unit/test_forecast_accuracy.py).

Limits: one shape for every week, so a holiday or a month-end batch job is not foreseen; the
trend is linear and weighs recent weeks more, so a step up is followed within weeks, not
hours; hours are UTC hours, and a period that starts on a half hour (UTC+05:30) counts its
first hour whole. History starts at the first hour with spend: under `MIN_HISTORY_HOURS` of
it, or no spend at all, is answered `NotEnoughHistory` rather than guessed.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from statistics import NormalDist

import numpy as np

from tokenbrake.foresight.days import HALF_LIFE_DAYS, WEEKLY_DAYS, Days, fit_days

MIN_HISTORY_HOURS = 72  # three days: each hour of the day seen three times
MAX_HISTORY_DAYS = 8 * 7  # as far back as the days are fitted
LEVELS = (0.8, 0.95)


@dataclass(frozen=True, slots=True)
class Interval:
    level: float  # the share of outcomes it should hold, e.g. 0.8
    low_usd: float
    high_usd: float


@dataclass(frozen=True, slots=True)
class Waypoint:
    """The period's spend forecast to a moment ahead, as a chart draws the way there."""

    at: datetime
    forecast_usd: float
    intervals: tuple[Interval, ...]  # one per `LEVELS`


@dataclass(frozen=True, slots=True)
class Forecast:
    spent_usd: float  # in the period, up to now
    forecast_usd: float  # spent, plus the hours predicted from now to the period's end
    intervals: tuple[Interval, ...]  # one per `LEVELS`
    runs_out_at: datetime | None  # when spend reaches the budget (past: it has); None: not in the period
    history_hours: int  # complete hours since the first spend
    path: tuple[Waypoint, ...] = ()  # now, the end of each day ahead (24 hours from now), the period's end


@dataclass(frozen=True, slots=True)
class NotEnoughHistory:
    reason: str
    history_hours: int
    needed_hours: int = MIN_HISTORY_HOURS


def forecast_spend(hourly: Sequence[tuple[datetime, float | Decimal]], now: datetime, period_end: datetime,
                   period_start: datetime | None = None, budget_usd: float | Decimal | None = None,
                   spent_earlier_usd: float | Decimal = 0) -> Forecast | NotEnoughHistory:
    """The period's spend: so far (the series' hours from `period_start`'s to now, plus
    `spent_earlier_usd` from before the series begins) and forecast to `period_end`.

    `hourly` holds (hour start, cost), oldest first; hours missing from it cost nothing, and
    its last hour may be the one `now` is in. With `budget_usd`, also when the period's spend
    reaches it at the pace forecast."""
    hours, costs = _grid(hourly)
    now_h, end_h = _hour(now), _hour(period_end)
    current = int(np.floor(now_h))
    history = _history(hours, costs, current)
    if isinstance(history, NotEnoughHistory):
        return history
    past, since_first = history
    days = fit_days(past.sum(axis=1))
    ahead, starts, ends = _pieces(current, now_h, end_h)
    predicted, of_day = _hours_ahead(past, days, ahead - current, ends - starts)
    rest = float(predicted.sum())
    in_period = hours <= current
    if period_start is not None:
        in_period &= hours >= np.floor(_hour(period_start))
    spent = float(costs[in_period].sum()) + float(spent_earlier_usd)
    path = _path(spent, now, (ends, predicted, (ahead - current) // 24), of_day, past, days)
    runs_out = None
    if budget_usd is not None:
        runs_out = _runs_out(float(budget_usd), float(spent_earlier_usd), (hours[in_period], costs[in_period], now_h),
                             (starts, ends, predicted))
    return Forecast(spent, spent + rest, path[-1].intervals, runs_out, since_first, path)


def _intervals(spent: float, rest: float, spread: float) -> tuple[Interval, ...]:
    """The normal intervals of `LEVELS` around spent + rest, never below what is spent."""
    return tuple(Interval(level, spent + max(0.0, rest - z * spread), spent + rest + z * spread)
                 for level in LEVELS for z in [NormalDist().inv_cdf((1 + level) / 2)])


def _path(spent: float, now: datetime, ahead: tuple[np.ndarray, np.ndarray, np.ndarray], of_day: np.ndarray,
          past: np.ndarray, days: Days) -> tuple[Waypoint, ...]:
    """The spend forecast to now (what is spent), to the end of each day ahead and to the
    period's end (`ahead`: each hour's end, forecast cost and day), each with its interval:
    the error of the days up to it, so the band widens as the way goes on. The last is the
    forecast of the period."""
    ends, predicted, day_of = ahead
    points = [Waypoint(now, spent, _intervals(spent, 0.0, 0.0))]
    for day in range(len(of_day)):
        upto = day_of <= day
        shares = np.where(np.arange(len(of_day)) <= day, of_day, 0.0)
        spread = float(np.sqrt(days.variance(shares) + _within_days(past, shares, days)))
        rest = float(predicted[upto].sum())
        points.append(Waypoint(datetime.fromtimestamp(float(ends[upto][-1]) * 3600, UTC), spent + rest,
                               _intervals(spent, rest, spread)))
    return tuple(points)


def _hour(moment: datetime) -> float:
    return moment.timestamp() / 3600


def _grid(hourly: Sequence[tuple[datetime, float | Decimal]]) -> tuple[np.ndarray, np.ndarray]:
    """Hour numbers (hours since the epoch) from the series' first to its last, with their
    costs; the hours missing cost 0."""
    if not hourly:
        return np.zeros(0, dtype=np.int64), np.zeros(0)
    first, last = (int(_hour(hourly[i][0]) // 1) for i in (0, -1))
    costs = np.array([float(cost) for _, cost in hourly])
    if last - first + 1 != len(hourly):  # hours missing: each put in its place (a rollup series has them all)
        numbers = np.array([int(_hour(t) // 1) for t, _ in hourly], dtype=np.int64)
        costs = np.bincount(numbers - first, costs, minlength=last - first + 1)
    return np.arange(first, last + 1), costs


def _history(hours: np.ndarray, costs: np.ndarray, current: int) -> tuple[np.ndarray, int] | NotEnoughHistory:
    """The whole days (24 hours, the last ending at the current hour) since the first hour
    with spend, the hours before it saying nothing of the scope's pace, as rows of 24 costs,
    oldest first; and how many hours since the first spend. Or why there are too few."""
    spending = np.flatnonzero((hours < current) & (costs > 0))
    if not len(spending):
        return NotEnoughHistory("no spend recorded yet", 0)
    since_first = int(current - hours[spending[0]])
    if since_first < MIN_HISTORY_HOURS:
        return NotEnoughHistory(f"{since_first} hours since the first spend; a forecast needs {MIN_HISTORY_HOURS} "
                                f"(three days) to know the shape of a day", since_first)
    whole = min(since_first // 24, MAX_HISTORY_DAYS) * 24
    at = int(np.searchsorted(hours, current))  # the series may end before the current hour, with nothing since
    before = np.concatenate([costs[:at], np.zeros(current - int(hours[at - 1]) - 1)])
    return before[-whole:].reshape(-1, 24), since_first


def _pieces(current: int, now_h: float, end_h: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The hours from now to the period's end, each with the part still to come (from, to, in
    hour numbers)."""
    ahead = np.arange(current, max(int(np.ceil(end_h)), current))
    starts = np.maximum(ahead, now_h)
    return ahead, starts, np.maximum(np.minimum(ahead + 1, end_h), starts)


def _hours_ahead(past: np.ndarray, days: Days, offsets: np.ndarray, parts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The forecast cost of each hour ahead (`offsets` from the current hour, `parts` of each
    still to come): its day's forecast total times its share of that day; and the share of
    each day ahead still to come."""
    weekly = len(past) >= WEEKLY_DAYS
    shares = _profile(past, weekly)[offsets % (168 if weekly else 24)] * parts
    day_of = offsets // 24
    of_day = np.bincount(day_of, shares, minlength=int(day_of.max()) + 1 if len(offsets) else 0)
    return np.maximum(days.totals(len(of_day)), 0.0)[day_of] * shares, of_day


def _profile(past: np.ndarray, weekly: bool) -> np.ndarray:
    """Each hour's share of its day, by its place in the day (0: the current hour's) or, with
    `weekly`, in the week: the past days' spend at that hour over their totals, recent days
    weighing more. The shares of a day add up to 1; a day with no spend at all has an even
    share per hour."""
    count = len(past)
    weight = 0.5 ** (np.arange(count, 0, -1) / HALF_LIFE_DAYS)
    kinds = 7 if weekly else 1
    kind = np.arange(-count, 0) % kinds  # the day of the week as days.py counts it
    spent = np.zeros((kinds, 24))
    np.add.at(spent, kind, past * weight[:, None])
    totals = spent.sum(axis=1, keepdims=True)
    shares = np.where(totals > 0, spent / np.where(totals > 0, totals, 1.0), 1 / 24)
    return shares.reshape(-1)


def _within_days(past: np.ndarray, of_day: np.ndarray, days: Days) -> float:
    """The variance a part of a day adds to its day's: how the hours of past days strayed from
    their share of the day, for the fraction `of_day` of each day ahead (none for a whole day)."""
    totals = past.sum(axis=1, keepdims=True)
    share = np.where(totals > 0, past / np.where(totals > 0, totals, 1.0), 1 / 24).mean(axis=0)
    stray = float(((past - totals * share) ** 2).mean())
    scale = np.clip(np.maximum(days.totals(len(of_day)), 0.0) / days.level, 0.25, 4.0) if days.level > 0 else 1.0
    part = np.clip(of_day, 0.0, 1.0)
    return float((24 * 24 / 23 * part * (1 - part) * stray * scale ** 2).sum())


def _runs_out(budget: float, spent_earlier: float, past: tuple[np.ndarray, np.ndarray, float],
              ahead: tuple[np.ndarray, np.ndarray, np.ndarray]) -> datetime | None:
    """When the period's spend, as it went (`past`: its hours, their costs, now) and then as
    forecast (`ahead`: from, to, cost), reaches `budget`, linear within each hour; None if it
    stays below it to the period's end."""
    past_hours, past_costs, now_h = past
    begins = np.concatenate([past_hours, ahead[0]])
    finish = np.concatenate([np.minimum(past_hours + 1, now_h), ahead[1]])
    amounts = np.concatenate([past_costs, ahead[2]])
    before = spent_earlier + np.concatenate([[0.0], np.cumsum(amounts)[:-1]])
    reached = np.flatnonzero(before + amounts >= budget)
    if not len(reached):
        return None
    i = reached[0]
    part = max(budget - before[i], 0.0) / amounts[i] if amounts[i] > 0 else 0.0
    return datetime.fromtimestamp(float(begins[i] + (finish[i] - begins[i]) * part) * 3600, UTC)
