"""Files for the `ledger import` tests: past calls as the file's fields, written as JSONL or CSV,
and what they add up to by a dimension."""

from __future__ import annotations

import csv
import io
import json
import random
from collections import defaultdict
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

NOW = datetime.now(UTC)
OPTIONAL = ("key", "team", "user", "session", "input_tokens", "output_tokens", "status")
COLUMNS = ("time", "model", "cost_usd", *OPTIONAL, "tag.feature", "tag.env")


def past_calls(count: int, seed: int = 5, spread: timedelta = timedelta(days=40)) -> list[dict[str, Any]]:
    """Calls over the `spread` before now (some within the 3 days minutes are kept), each
    optional field present or not."""
    rnd = random.Random(seed)
    calls = []
    for _ in range(count):
        ts = NOW - timedelta(seconds=rnd.randrange(120, int(spread.total_seconds())))
        call: dict[str, Any] = {"time": ts.isoformat(), "model": rnd.choice(["gpt-4o", "small", "claude-sonnet"]),
                                "cost_usd": Decimal(rnd.randrange(10**8)) / 10**10}
        choices = {"key": ["app", "batch"], "team": ["search", "ads"], "user": ["ana", "bo", "cy"],
                   "session": ["s1", "s2"], "input_tokens": [rnd.randrange(5000)],
                   "output_tokens": [rnd.randrange(900)], "status": [200, 200, 429, 500, 0]}
        call |= {name: rnd.choice(values) for name, values in choices.items() if rnd.random() < 0.7}
        tags = rnd.choice([{}, {"feature": "search"}, {"feature": "chat", "env": "prod"}])
        if tags:
            call["tags"] = tags
        calls.append(call)
    return calls


def jsonl(calls: list[dict[str, Any]]) -> str:
    """Money as JSON numbers (a Decimal's shortest float spelling is its own digits here)."""
    return "".join(json.dumps(call, default=float) + "\n" for call in calls)


def csv_text(calls: list[dict[str, Any]]) -> str:
    out = io.StringIO()
    writer = csv.DictWriter(out, COLUMNS)
    writer.writeheader()
    for call in calls:
        tags = {f"tag.{name}": value for name, value in call.get("tags", {}).items()}
        writer.writerow({name: value for name, value in call.items() if name != "tags"} | tags)
    return out.getvalue()


def value(call: dict[str, Any], dimension: str) -> Any:
    """The call's value of an insight dimension, as a breakdown names it (None: none)."""
    if dimension.startswith("tag."):
        return call.get("tags", {}).get(dimension[4:])
    if dimension == "day":
        return datetime.fromisoformat(call["time"]).date()
    return call.get(dimension)


def sums(calls: list[dict[str, Any]], key: Callable[[dict[str, Any]], Any]) -> dict[Any, tuple[int, Decimal, int, int]]:
    """Requests, cost, input and output tokens per key."""
    found: dict[Any, list] = defaultdict(lambda: [0, Decimal(0), 0, 0])
    for call in calls:
        entry = found[key(call)]
        entry[0] += 1
        entry[1] += call["cost_usd"]
        entry[2] += call.get("input_tokens", 0)
        entry[3] += call.get("output_tokens", 0)
    return {k: (n, cost, i, o) for k, (n, cost, i, o) in found.items()}
