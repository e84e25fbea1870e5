"""Calls for the anomaly tests: a team's steady traffic for weeks, and each kind of incident
on top of it, as ledger rows (the import format reads into the same)."""

from __future__ import annotations

import random
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from storage_backends import ledger_row

from tokenbrake.config import AnomaliesConfig
from tokenbrake.foresight.alert import Alert, End
from tokenbrake.foresight.detector import Detector
from tokenbrake.foresight.replay import Minutes, add_call, minute_rows
from tokenbrake.storage.ledger import LedgerRow

PRICE = {"small": Decimal("0.0000002"), "mid": Decimal("0.000001"), "large": Decimal("0.00002")}  # USD a token
TOKENS = 10_000


def call(n: str, ts: datetime, user: str = "ana", model: str = "mid", tokens: int = TOKENS, status: int = 200,
         session: str | None = None, team: str = "search", key: str = "key-a") -> LedgerRow:
    return ledger_row(request_id=f"c-{n}", ts=ts, key_name=key, team=team, user=user,
                      session=session or f"s-{user}-{int(ts.timestamp() // 1800)}", requested_model=model,
                      served_model=model, input_tokens=tokens, output_tokens=0, cost_usd=tokens * PRICE[model],
                      status=status)


def steady(start: datetime, end: datetime, seed: int = 1, per_minute: float = 2.0) -> list[LedgerRow]:
    """About `per_minute` calls a minute by ana, bo and cy, 30% on the small model, the rest
    mid ($1.20 an hour in all)."""
    rnd = random.Random(seed)
    rows, t, n = [], start, 0
    while t < end:
        t += timedelta(seconds=rnd.expovariate(per_minute / 60))
        if t < end:
            rows.append(call(f"{seed}-{n}", t, rnd.choice(["ana", "bo", "cy"]), "small" if rnd.random() < 0.3 else "mid",
                             int(TOKENS * rnd.uniform(0.7, 1.3))))
            n += 1
    return rows


def incident(kind: str, start: datetime, minutes: int = 20) -> list[LedgerRow]:
    """One incident's extra (or changed) calls, from `start` for `minutes`."""
    rows = []
    for m in range(minutes):
        t = start + timedelta(minutes=m)
        for i in range(12):
            at = t + timedelta(seconds=5 * i)
            n = f"{kind}-{m}-{i}"
            if kind == "new_heavy_spender" and i % 3 == 0:  # 4 calls a minute, $0.50 each
                rows.append(call(n, at, "zed", tokens=500_000, session="s-zed"))
            elif kind == "runaway_session":  # 12 calls a minute in one session
                rows.append(call(n, at, "ana", tokens=30_000, session="agent-1"))
            elif kind == "input_size_surge" and i == 0:  # a pasted contract a minute
                rows.append(call(n, at, "ana", tokens=TOKENS * 12))
            elif kind == "error_cost_surge" and i % 2 == 0:  # failing calls, retried
                rows.append(call(n, at, "bo", tokens=20_000, status=500, session=f"s-bo-retry-{m}"))
            elif kind == "model_mix_shift" and i % 6 == 0:  # the usual calls, on the large model
                rows.append(call(n, at, ["ana", "bo", "cy"][m % 3], "large"))
            elif kind == "spend_spike":  # a dozen calls a minute, everyone's
                rows.append(call(n, at, ["ana", "bo", "cy"][i % 3]))
    return rows


def minutes_of(rows: Iterable[LedgerRow]) -> Minutes:
    minutes: Minutes = {}
    for row in rows:
        add_call(minutes, row)
    return minutes


def run(rows: Iterable[LedgerRow], config: AnomaliesConfig | None = None,
        detector: Detector | None = None) -> list[Alert | End]:
    """Every minute from the first call's to the last's, fed and evaluated, as replay does."""
    minutes = minutes_of(rows)
    detector = detector or Detector(config or AnomaliesConfig())
    events: list[Alert | End] = []
    for minute in range(min(minutes), max(minutes) + 1):
        detector.feed_minute(minute, minute_rows(minutes.get(minute, {})))
        events += detector.evaluate(minute)
    return events


START = datetime(2026, 10, 5, tzinfo=UTC)  # a Monday
INCIDENT = START + timedelta(days=15, hours=14, minutes=10, seconds=30)  # Tuesday of the third week, 14:10:30
