"""Ledger rows with every dimension mixed, for the rollup and insight tests."""

from __future__ import annotations

import asyncio
import bisect
import random
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

from storage_backends import ledger_row

from tokenbrake.storage import open_database
from tokenbrake.storage.insight_queries import ZERO, Metrics
from tokenbrake.storage.ledger import MONEY_PLACES, LedgerRow
from tokenbrake.storage.rollups import HISTOGRAM, LATENCY_BOUNDS_MS, MONEY_UNIT

NOW = datetime.now(UTC)


def varied_rows(count: int, seed: int = 7, spread: timedelta = timedelta(hours=30), prefix: str = "r") -> list[LedgerRow]:
    """Rows over the last `spread`, with every dimension, tag and status mixed."""
    rnd = random.Random(seed)
    rows = []
    for n in range(count):
        tags = rnd.choice([{}, {"feature": "search"}, {"feature": "chat", "env": "prod"}, {"env": "dev"}])
        rows.append(ledger_row(
            f"{prefix}{n}", request_id=f"{prefix}-{n}", ts=NOW - rnd.random() * spread,
            key_name=rnd.choice(["k1", "k2", None]), team=rnd.choice(["alpha", "beta", None]),
            user=rnd.choice(["ana", "bo", "cy", None]), session=rnd.choice([None, "s1", "s2"]), tags=tags,
            requested_model=rnd.choice(["auto", "gpt-4o"]), served_model=rnd.choice(["gpt-4o", "small"]),
            provider=rnd.choice(["openai", "local"]), input_tokens=rnd.randrange(1000),
            cached_input_tokens=rnd.randrange(50), cache_write_tokens=rnd.randrange(5),
            output_tokens=rnd.randrange(300), reasoning_tokens=rnd.randrange(20),
            cost_usd=Decimal(rnd.randrange(10**9)) / 10**10, latency_ms=rnd.randrange(0, 90000) / 2,
            status=rnd.choice([200, 200, 200, 429, 502, 0, 499]),
            saved_usd=rnd.choice([None, Decimal("0.0001234567"), Decimal("-0.002")])))
    return rows


def units(amount: Decimal | None) -> int:
    return int(Decimal(amount or 0).quantize(MONEY_PLACES) / MONEY_UNIT)


def metrics_of(row: LedgerRow) -> list:
    """A row's metrics, in rollups.METRICS order."""
    histogram = [0] * len(HISTOGRAM)
    histogram[bisect.bisect_right(LATENCY_BOUNDS_MS, row.latency_ms)] = 1
    return [1, int(row.status >= 400), row.input_tokens, row.cached_input_tokens, row.cache_write_tokens,
            row.output_tokens, row.reasoning_tokens, units(row.cost_usd), units(row.saved_usd),
            float(row.latency_ms), *histogram]


def summed(rows: list[LedgerRow]) -> Metrics:
    total = ZERO
    for row in rows:
        total = total + Metrics.of(metrics_of(row))
    return total


def value(row: LedgerRow, dimension: str) -> str | None:
    """The row's value of an insight dimension (None for none), as the API names them."""
    if dimension.startswith("tag."):
        return row.tags.get(dimension[4:])
    found = {"key": row.key_name, "team": row.team, "user": row.user, "model": row.served_model or row.requested_model,
             "asked": row.requested_model, "upstream": row.provider, "session": row.session,
             "status": "0" if row.status < 100 else f"{row.status // 100}xx"}[dimension]
    return found or None




def ledger_config(folder: Path, rows: list[LedgerRow], extra: str = "") -> str:
    """A config file whose SQLite ledger holds `rows`, for the CLI's tests; `extra`: more YAML."""
    url = f"sqlite:///{folder / 'ledger.db'}"

    async def seed() -> None:
        db = await open_database(url)
        await db.ledger.write(rows)
        await db.close()

    asyncio.run(seed())
    path = folder / "tokenbrake.yaml"
    path.write_text(f"database: {url}\nupstreams: {{}}\nmodels: {{}}\n{extra}")
    return str(path)
