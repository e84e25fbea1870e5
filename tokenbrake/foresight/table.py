"""The forecasts as `tokenbrake forecast` prints them: a line each, money in dollars, times in
UTC to the minute; a forecast that could not be made says why on its line."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from tokenbrake.storage.reports import usd

HEADER = ("scope / counter", "period", "ends", "budget", "spent", "forecast", "80% interval", "runs out")


def forecast_table(views: list[dict[str, Any]]) -> str:
    rows = [_row(view) for view in views]
    widths = [max([len(name), *(len(row[i]) for row in rows if len(row) > i)]) for i, name in enumerate(HEADER)]

    def line(cells: tuple[str, ...]) -> str:
        if len(cells) < len(HEADER):  # a forecast not made: its reason runs on from the period
            return f"{cells[0]:<{widths[0]}} {cells[1]:<{widths[1]}} {cells[2]}"
        return " ".join(cell.ljust(w) if i < 3 else cell.rjust(w)
                        for i, (cell, w) in enumerate(zip(cells, widths, strict=True))).rstrip()

    return "\n".join([line(HEADER), *(line(row) for row in rows)])


def _row(view: dict[str, Any]) -> tuple[str, ...]:
    name = view["counter"] or view["scope"]
    if view["tenant"]:
        name += f" in {view['tenant']}"
    if view["status"] != "ok":
        return name, view["period"], view["reason"]
    low, high = (view["intervals"][0][end] for end in ("low_usd", "high_usd"))
    return (name, view["period"], _minute(view["period_end"]), _dollars(view["budget_usd"]), _dollars(view["spent_usd"]),
            _dollars(view["forecast_usd"]), f"{_dollars(low)}-{_dollars(high)}", _runs_out(view))


def _runs_out(view: dict[str, Any]) -> str:
    if view["budget_usd"] is None:
        return "-"
    return _minute(view["runs_out_at"]) if view["runs_out_at"] else "after end"


def _dollars(amount: str | None) -> str:
    """To the cent, or below a dollar to a hundredth of one, as the JSON has it."""
    if amount is None:
        return "-"
    value = Decimal(amount)
    return usd(value.quantize(Decimal("0.01")) if abs(value) >= 1 else value)


def _minute(moment: str | None) -> str:
    """`2026-04-01T00:00:00Z` as `2026-04-01 00:00`."""
    return "-" if moment is None else moment[:16].replace("T", " ")


def anomaly_lines(alerts: list[dict[str, Any]]) -> list[str]:
    """Two lines an alert, as `tokenbrake anomalies` prints them: what and since when, then
    the command that would stop it."""
    lines = []
    for alert in alerts:
        factor = f"x{alert['factor']:g}" if alert["factor"] is not None else "new"
        state = f"ended {_minute(alert['ended_at'])}" if alert.get("ended_at") else "ON"
        top = ", ".join(f"{c['kind']} {c['name']} {c['share']:.0%}" for c in alert["contributors"][:3])
        lines.append(f"{_minute(alert['since'])} {alert['kind']:<18} {alert['scope']} {factor} "
                     f"{usd(Decimal(str(alert['cost_so_far_usd'])))} so far, "
                     f"{usd(Decimal(str(alert['projected_usd_per_day'])))}/day [{state}] {top}".rstrip())
        lines.append(f"    {alert['detail']}; stop it: {alert['remedy']}")
    return lines
