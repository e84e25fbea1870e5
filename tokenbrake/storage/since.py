"""Reading "since when" for reports: `7d`, `24h`, `30m`, or a date (`2026-11-01`, UTC midnight)."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, time, timedelta

_RELATIVE = re.compile(r"(\d+)\s*([dhm])")
_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
_UNITS = {"d": "days", "h": "hours", "m": "minutes"}


def parse_since(text: str, now: datetime) -> datetime:
    """The moment `text` names, counting back from `now`; ValueError if it names none."""
    text = text.strip()
    if match := _RELATIVE.fullmatch(text):
        amount, unit = match.groups()
        return now - timedelta(**{_UNITS[unit]: int(amount)})
    if _DATE.fullmatch(text):
        try:
            return datetime.combine(date.fromisoformat(text), time(), tzinfo=UTC)
        except ValueError:
            raise ValueError(f"{text!r} is not a real date") from None
    raise ValueError(f"cannot read {text!r} as a time: use 7d, 24h, 30m, or a date like 2026-11-01")
