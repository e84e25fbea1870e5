"""Replay: the forecaster and the detector run over a file of past calls (the import format,
storage/import_format.py) on a simulated clock, printing what they would have said.

The calls are summed per minute into the groupings the ledger writer's rollups keep
(`minute_rows`, the same sums rollups.py writes), then fed to the live `Detector` minute by
minute, empty minutes included, in time order, each minute evaluated as a gateway evaluates
it (`at`: the minute's end and `settle_s`). At each simulated midnight (of the days of the
month asked) the spend of the whole deployment and of each team is forecast to its month's
end (forecast.py, as `tokenbrake forecast` does), from the hours replayed so far. Nothing is
written to a database.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from tokenbrake.config import Config
from tokenbrake.foresight.alert import Alert, iso
from tokenbrake.foresight.detector import GLOBAL, KEY, MODEL, SESSION, STATUS, TEAM, USER, Detector, Row
from tokenbrake.foresight.forecast import MAX_HISTORY_DAYS, Forecast, forecast_spend
from tokenbrake.limits import Window
from tokenbrake.limits.windows import period
from tokenbrake.storage.import_format import LineError, read_calls
from tokenbrake.storage.ledger import LedgerRow

Minutes = dict[int, dict[tuple[str, str, str], list[float]]]


class ReplayRefused(ValueError):
    """A line of the file is not a call."""


def _status_class(status: int) -> str:
    return "0" if status < 100 else f"{status // 100}xx"


def add_call(minutes: Minutes, call: LedgerRow) -> None:
    """One call into its minute's groupings, as the rollups count it ('' for a value missing)."""
    found = minutes.setdefault(int(call.ts.timestamp() // 60), {})
    team = call.team or ""
    values = (1.0, float(call.input_tokens + call.cached_input_tokens + call.cache_write_tokens), float(call.cost_usd))
    keys = ((GLOBAL, "", ""), (TEAM, team, ""), (KEY, team, call.key_name or ""), (USER, team, call.user or ""),
            (SESSION, team, call.session or ""), (MODEL, team, call.served_model or call.requested_model or ""),
            (STATUS, team, _status_class(call.status)))
    for key in keys:
        into = found.get(key)
        if into is None:
            found[key] = list(values)
        else:
            into[0] += values[0]
            into[1] += values[1]
            into[2] += values[2]


def minute_rows(found: dict[tuple[str, str, str], list[float]]) -> list[Row]:
    return [(*key, *values) for key, values in found.items()]  # type: ignore[misc]


def read_minutes(path: str | Path, form: str, now: datetime | None = None) -> Minutes:
    """The file's calls summed per minute; `ReplayRefused` naming the first bad lines."""
    now = now or datetime.now(UTC)
    minutes: Minutes = {}
    bad: list[str] = []
    with open(path, encoding="utf-8", newline="" if form == "csv" else None) as lines:
        for found in read_calls(lines, form, now):
            if isinstance(found, LineError):
                bad.append(str(found))
                if len(bad) >= 20:
                    break
            elif not bad:
                add_call(minutes, found)
    if bad:
        raise ReplayRefused(f"{path}: {len(bad)} bad line(s), nothing replayed:\n" + "\n".join(bad))
    return minutes


class Forecasts:
    """The hours replayed so far of the deployment and each team, forecast to the month's end."""

    def __init__(self, tz: str) -> None:
        self.tz = tz
        self.hours: dict[str, dict[int, float]] = {}

    def add(self, minute: int, found: dict[tuple[str, str, str], list[float]]) -> None:
        hour = minute // 60
        for (dims, v1, _), values in found.items():
            if dims in (GLOBAL, TEAM):
                series = self.hours.setdefault("global" if dims == GLOBAL else f"team:{v1}", {})
                series[hour] = series.get(hour, 0.0) + values[2]

    def lines(self, minute: int) -> Iterator[dict[str, Any]]:
        now = datetime.fromtimestamp(minute * 60, UTC)
        start, end = period(Window("month", tz=self.tz), now.timestamp())
        first = minute // 60 - MAX_HISTORY_DAYS * 24 - 24
        for scope, series in sorted(self.hours.items()):
            hourly = [(datetime.fromtimestamp(h * 3600, UTC), c) for h, c in sorted(series.items()) if first <= h]
            result = forecast_spend(hourly, now, end, start)
            if isinstance(result, Forecast):
                low, high = result.intervals[0].low_usd, result.intervals[0].high_usd
                yield {"type": "forecast", "scope": scope, "at": iso(minute), "period_end": iso(end.timestamp() / 60),
                       "spent_usd": round(result.spent_usd, 4), "forecast_usd": round(result.forecast_usd, 4),
                       "interval_80_usd": [round(low, 4), round(high, 4)]}


def replay(minutes: Minutes, config: Config, forecast_days: Iterable[int] | None = None,
           on_minute: Callable[[int], None] | None = None) -> Iterator[dict[str, Any]]:
    """The alerts (`type` alert), ends (`type` end) and forecasts (`type` forecast) the minutes
    would have produced, in time order. `forecast_days`: the days of the month whose midnight
    forecasts (None: every day)."""
    if not minutes:
        return
    detector = Detector(config.anomalies)
    forecasts = Forecasts(config.budgeting.timezone)
    days = None if forecast_days is None else set(forecast_days)
    empty: dict[tuple[str, str, str], list[float]] = {}
    for minute in range(min(minutes), max(minutes) + 1):
        midnight = minute % 1440 == 0 and minute > min(minutes)
        if midnight and (days is None or datetime.fromtimestamp(minute * 60, UTC).day in days):
            yield from forecasts.lines(minute)
        found = minutes.get(minute, empty)
        detector.feed_minute(minute, minute_rows(found))
        forecasts.add(minute, found)
        for event in detector.evaluate(minute):
            yield {"type": "alert" if isinstance(event, Alert) else "end", **event.view()}
        if on_minute is not None:
            on_minute(minute)

