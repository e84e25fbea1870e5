"""Where a budget counter lives for a given moment: its storage key and how long to keep it.

A calendar window's key carries the period's start in the window's time zone, e.g.
`budget:team:search:2026-11-01T00:00+01:00`, so a new period is a new, empty counter and
nothing ever has to be reset. `total` lives at `budget:<key>:total`, a rolling window at
`budget:<key>:rolling:<seconds>s` (its spend is trimmed by time instead).

Minutes and hours are cut in absolute time from the local start (so DST never makes an hour
last two); days, weeks (from Monday) and months from local midnight, so a day across a DST
change lasts 23 or 25 hours.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo

from tokenbrake.limits.types import BudgetCounter, Window

# Stored counters outlive their period by this much, so a request settling just after a
# period ended still lands in the period it reserved in.
KEEP_AFTER_S = 3600.0


@dataclass(frozen=True, slots=True)
class Placement:
    key: str  # storage key, before the backend's prefix
    rolling_s: float  # the rolling window's length; 0 for every other kind
    resets_at: datetime | None  # calendar: the period's end
    keep_s: float | None  # from now, how long the stored counter must be kept; None: forever

    def kept_until(self, placed_at: float, settled_at: float) -> float | None:
        """Until when (epoch seconds) a cost settled at `settled_at` on the counter placed at
        `placed_at` is read again; None: forever. A rolling window's spend drops out of it a
        window after it was settled."""
        if self.rolling_s:
            return settled_at + self.rolling_s + KEEP_AFTER_S
        return None if self.keep_s is None else placed_at + self.keep_s


@lru_cache(maxsize=64)
def _zone(name: str) -> ZoneInfo:
    return ZoneInfo(name)


def _midnight(day: date, tz: ZoneInfo) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=tz)


def period(window: Window, now: float) -> tuple[datetime, datetime]:
    """The calendar period holding `now`: (start, end), aware, in the window's zone."""
    tz = _zone(window.tz)
    local = datetime.fromtimestamp(now, tz)
    if window.kind in ("minute", "hour"):
        start = local.replace(second=0, microsecond=0)
        if window.kind == "hour":
            start = start.replace(minute=0)
        step = timedelta(minutes=1) if window.kind == "minute" else timedelta(hours=1)
        return start, (start.astimezone(UTC) + step).astimezone(tz)
    today = local.date()
    if window.kind == "day":
        first, after = today, today + timedelta(days=1)
    elif window.kind == "week":
        first = today - timedelta(days=today.weekday())
        after = first + timedelta(days=7)
    elif window.kind == "month":
        first = today.replace(day=1)
        after = date(first.year + first.month // 12, first.month % 12 + 1, 1)
    else:
        raise ValueError(f"{window.kind} is not a calendar window")
    return _midnight(first, tz), _midnight(after, tz)


UNCALENDARED = ("total", "rolling")  # windows without periods: their counters never move
MAX_PERIODS_KEPT = 10_000  # a `user:*` budget has a counter per end user: bounded, it cannot grow without end


def place(counter: BudgetCounter, now: float) -> Placement:
    """Where `counter` lives at `now`, its period worked out afresh (a limit store places
    its counters through its own `Placements`, which remembers them)."""
    if counter.window.kind in UNCALENDARED:
        return _uncalendared(counter)
    return _current_period(counter, now).placed(now)


class Placements:
    """Places budget counters, remembering each calendar counter's current period: every
    admitted request places each of its budgets (reserving, then reading its status), and
    working the period out again costs more than the rest of a budget's check. A period holds
    for every moment from its start to its end, so what is remembered is right until then; a
    moment outside it (the next period, or a clock set back) replaces it."""

    def __init__(self, max_kept: int = MAX_PERIODS_KEPT) -> None:
        self.max_kept = max_kept
        self._periods: dict[tuple[str, Window], _Period] = {}

    def place(self, counter: BudgetCounter, now: float) -> Placement:
        if counter.window.kind in UNCALENDARED:
            return _uncalendared(counter)
        current = self._periods.get((counter.key, counter.window))
        if current is None or not current.start_s <= now < current.end_s:
            current = _current_period(counter, now)
            if len(self._periods) >= self.max_kept:
                self._periods.clear()
            self._periods[(counter.key, counter.window)] = current
        return current.placed(now)

    def __len__(self) -> int:
        return len(self._periods)


@dataclass(frozen=True, slots=True)
class _Period:
    start_s: float
    end_s: float
    key: str
    end: datetime

    def placed(self, now: float) -> Placement:
        return Placement(self.key, 0.0, self.end, self.end_s - now + KEEP_AFTER_S)


def _uncalendared(counter: BudgetCounter) -> Placement:
    window = counter.window
    if window.kind == "total":
        return Placement(f"budget:{counter.key}:total", 0.0, None, None)
    assert window.seconds is not None  # a rolling window has its length
    seconds = float(window.seconds)
    return Placement(f"budget:{counter.key}:rolling:{seconds:g}s", seconds, None, seconds + KEEP_AFTER_S)


def _current_period(counter: BudgetCounter, now: float) -> _Period:
    start, end = period(counter.window, now)
    key = f"budget:{counter.key}:{start.isoformat(timespec='minutes')}"
    return _Period(start.timestamp(), end.timestamp(), key, end)
