"""Demo scene: a spend anomaly raised within minutes, and a budget's forecast moving with it.

Before the gateway starts, three weeks of the legal team's past usage are imported into the
ledger, as `tokenbrake ledger import` does (a JSONL file written here: a working day's rhythm
of small questions from four people, quieter at night and at weekends). That history is the
usual the detector compares with and what the month-end forecast of the team's budget is made
from. Then mira starts pasting whole contracts through the gateway, with the official SDK.

The running gateway judges each minute once it has closed and settled (`anomalies.settle_s`
after its end); rather than wait up to a minute and a half for that, the scene runs the
gateway's own detector (`AnomalyWatch`, the same code, on the same database) with its clock
moved on to when the gateway would look, and prints the alert it raises, at that time. The
alert is stored as the gateway stores it, so the dashboard's overview and `tokenbrake
anomalies` show it, and the gateway, reaching that minute, finds it raised already.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
import tempfile
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tokenbrake.config import parse_config
from tokenbrake.foresight.alert import Alert, iso
from tokenbrake.foresight.outlook import outlook
from tokenbrake.foresight.watch import AnomalyWatch
from tokenbrake.storage import Database, open_database
from tokenbrake.storage.ledger_import import import_file
from tokenbrake.tools.demo_scenes import DemoRun, line, say
from tokenbrake.tools.demo_scenes.budgets import document

if TYPE_CHECKING:
    from openai.types.chat import ChatCompletionMessageParam

TITLE = "Foresight: a power user's pasted contracts raise an alert; the budget's forecast moves"
KEYS = [{"name": "legal-app", "team": "legal", "models": None}]
TEAM, USER = "legal", "mira"
PEOPLE = ("ana", "ben", "chloe", USER)
HISTORY_DAYS = 21
BUDGET_USD = "60"
PRICE_IN, PRICE_OUT = Decimal("2.50") / 1_000_000, Decimal("10") / 1_000_000  # frontier's, as gpt-4o
CONTRACTS, CONTRACT_WORDS = 10, 9000


def configure(raw: dict, emulator_url: str) -> None:
    raw.setdefault("budgets", []).append({"scope": f"team:{TEAM}", "amount_usd": BUDGET_USD, "period": "month"})
    # The demo's calls cost cents: floors in proportion (a deployment's default floor is $2/h).
    raw["anomalies"] = {"floor_usd_per_hour": 1.0, "heavy_usd_per_hour": 2.0}


def history(now: datetime, seed: int = 7) -> list[dict[str, Any]]:
    """The legal team's last three weeks, one call a line of the import format: a few calls an
    hour by day on weekdays, fewer at night and at weekends, each a short question."""
    rng, calls = random.Random(seed), []
    start = (now - timedelta(days=HISTORY_DAYS)).replace(minute=0, second=0, microsecond=0)
    hour = start
    while hour < now - timedelta(hours=1):
        weekday, working = hour.weekday() < 5, 8 <= hour.hour < 19
        expected = (6 if working else 1) * (1 if weekday else 0.3)
        for _ in range(_poisson(rng, expected)):
            tokens_in, tokens_out = rng.randint(400, 1600), rng.randint(100, 400)
            cost = tokens_in * PRICE_IN + tokens_out * PRICE_OUT
            at = hour + timedelta(seconds=rng.randrange(3600))
            calls.append({"time": at.isoformat().replace("+00:00", "Z"), "key": "legal-app", "team": TEAM,
                          "user": rng.choice(PEOPLE), "model": "frontier", "input_tokens": tokens_in,
                          "output_tokens": tokens_out, "cost_usd": f"{cost:.6f}", "status": 200,
                          "tags": {"feature": "contract-qa"}})
        hour += timedelta(hours=1)
    return calls


def _poisson(rng: random.Random, mean: float) -> int:
    count, threshold, product = 0, 2.718281828459045 ** -mean, rng.random()
    while product > threshold:
        count += 1
        product *= rng.random()
    return count


async def seed(db: Database) -> None:
    """Imports the history, as `tokenbrake ledger import FILE` would."""
    calls = history(datetime.now(UTC))
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "legal-history.jsonl"
        path.write_text("".join(json.dumps(call) + "\n" for call in calls))
        await import_file(db.ledger, path, "jsonl")


def play(run: DemoRun) -> None:
    import openai  # here, not at the top: see demo_scenes/__init__.py

    config = parse_config(run.config)
    say(f"imported: {HISTORY_DAYS} days of team {TEAM}'s past calls (`tokenbrake ledger import`), ${BUDGET_USD} "
        "a month budget")
    before = _budget_forecast(run, config)
    say(f"budget team:{TEAM}: ${before['spent_usd']} spent, forecast ${before['forecast_usd']} by "
        f"{before['period_end'][:10]}")
    client = openai.OpenAI(base_url=run.url + "/v1", api_key=run.keys["legal-app"], max_retries=0)
    ask: list[ChatCompletionMessageParam] = [{"role": "user", "content": "Which clauses are unusual?\n"
                                              + document(CONTRACT_WORDS)}]

    def paste() -> str:
        reply = client.chat.completions.with_raw_response.create(model="frontier", messages=ask, user=USER)
        usage = reply.parse().usage
        assert usage is not None  # the gateway always reports usage
        return f"{usage.prompt_tokens} input tokens"

    started = time.time()
    for n in range(1, CONTRACTS + 1):
        line(f"{USER} pastes contract {n} of {CONTRACTS} → frontier", paste)
    run.flush()
    raised = _detect(run, config)
    if not raised:
        say("no alert was raised")
    for alert in raised:
        _show(alert, started)
    after = _budget_forecast(run, config)
    say(f"budget team:{TEAM}: ${after['spent_usd']} spent, forecast ${after['forecast_usd']} by "
        f"{after['period_end'][:10]} (was ${before['forecast_usd']})")
    if raised:
        left = (float(BUDGET_USD) - float(after["spent_usd"])) / raised[0].rate_usd_per_hour
        say(f"at mira's pace the rest of the ${BUDGET_USD} would be gone in {left:.0f} hours")


def _detect(run: DemoRun, config) -> list[Alert]:
    """The gateway's detector over the demo's database: started on the history, then ticked
    at the moments the gateway would, up to two minutes after the current one has settled."""
    async def go() -> list[Alert]:
        db = await open_database(run.database)
        try:
            clock = [time.time()]
            watch = AnomalyWatch(config, db, None, clock=lambda: clock[0])
            logging.getLogger("tokenbrake.foresight.watch").setLevel(logging.ERROR)  # printed below instead
            await watch.tick()  # reads the history: the hours of the last five weeks, the last day's minutes
            raised: list[Alert] = []
            for later in (1, 2):
                clock[0] = (time.time() // 60 + later) * 60 + config.anomalies.settle_s
                raised += [e for e in await watch.tick() if isinstance(e, Alert)]
            return raised
        finally:
            await db.close()

    return asyncio.run(go())


def _show(alert: Alert, started: float) -> None:
    factor = f", {alert.factor:.0f}x its usual" if alert.factor is not None else ""
    top = ", ".join(f"{c['kind']} {c['name']} {c['share']:.0%}" for c in alert.contributors[:3])
    after = (alert.at * 60 - started) / 60
    say(f"ALERT at {iso(alert.at)[11:19]} UTC, {after:.1f} min after the first paste (the gateway judges "
        "each minute once it has closed and settled; the demo moved the detector's clock on instead of "
        "waiting): "
        f"{alert.kind.replace('_', ' ')} on {alert.scope}{factor}: {alert.detail}")
    say(f"top: {top}; ${alert.cost_so_far_usd:.2f} so far, ${alert.projected_usd_per_day:,.0f}/day if it goes on",
        indent=4)
    say(f"stop it: {alert.remedy}", indent=4)


def _budget_forecast(run: DemoRun, config) -> dict[str, Any]:
    async def go() -> dict[str, Any]:
        db = await open_database(run.database)
        try:
            found = await outlook(config, db, datetime.now(UTC), f"team:{TEAM}")
            return next(f for f in found if f.get("budget_usd") is not None)
        finally:
            await db.close()

    return asyncio.run(go())
