"""What every probe check expects of an answer, whichever front door it came through."""

from __future__ import annotations

import json


class ProbeFailed(Exception):
    """A check whose call succeeded but whose answer lacks what the SDK's user relies on."""


def _expect_weather(name: str, arguments: str) -> None:
    """A call of get_weather whose arguments are a JSON object naming a city."""
    _expect(name == "get_weather", f"called {name!r}, not get_weather")
    try:
        parsed = json.loads(arguments)
    except json.JSONDecodeError:
        raise ProbeFailed(f"tool arguments are not JSON: {arguments[:80]!r}") from None
    _expect(isinstance(parsed, dict) and isinstance(parsed.get("city"), str), f"no city in {arguments[:80]!r}")


def _expect(condition: bool, failure: str) -> None:
    if not condition:
        raise ProbeFailed(failure)
