"""GET /admin/insight/forecast in-process over a real database (SQLite and PostgreSQL): global
and every budget, or one scope, each to its period's end with what it spent, the forecast, its
intervals and when its budget runs out; a scope with too little history says so; a bad scope
is a 400 naming `scope`; a viewer gets its own team's spend and budgets only."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from types import SimpleNamespace

import httpx
import pytest
from storage_backends import ledger_row, place  # noqa: F401

from tokenbrake.config import BudgetConfig, parse_config
from tokenbrake.server import insight
from tokenbrake.storage import LedgerWriter
from tokenbrake.storage.rollups import floor

MASTER = "tb-master-forecast"
NOW = datetime.now(UTC)
HOUR = timedelta(hours=1)


def hourly(prefix: str, hours: int, cost: str, **fields):
    """A row an hour for the last `hours` complete hours."""
    top = floor(NOW, "hour")
    return [ledger_row(request_id=f"{prefix}-{k}", ts=top - k * HOUR + timedelta(minutes=10), cost_usd=Decimal(cost),
                       **fields) for k in range(1, hours + 1)]


ROWS = [*hourly("a", 240, "1", team="alpha", key_name="ka", user="ana", tags={"feature": "search"}),
        *hourly("b", 240, "0.25", team="beta", key_name="kb", user="bo"),
        *hourly("g", 30, "0.5", team="gamma", key_name="kg", user=None),
        *hourly("s", 100, "0.1", team=None, key_name="solo", user="cy")]
MONTH_START = NOW.replace(day=1, hour=0, minute=0, second=0, microsecond=0)


def spent_in_month(rows) -> Decimal:
    return sum((row.cost_usd for row in rows if row.ts >= MONTH_START), Decimal(0))


@pytest.fixture
async def api(place, monkeypatch):
    monkeypatch.setenv("TOKENBRAKE_MASTER_KEY", MASTER)
    database = await place.open()
    writer = LedgerWriter(database.ledger)
    try:
        await database.ledger.write(ROWS)
        # alpha has spent $240 in all: $48 more, two days at its pace, and its total budget is spent
        await database.budgets.set(BudgetConfig(scope="team:alpha", amount_usd=Decimal(288), period="total"))
        await database.budgets.set(BudgetConfig(scope="user:*", amount_usd=Decimal(5000), period="total"))
        config = parse_config({"database": place.url, "upstreams": {}, "models": {},
                               "budgets": [{"scope": "global", "amount_usd": "100000", "period": "month"},
                                           {"scope": "team:beta", "amount_usd": "5", "period": "rolling",
                                            "rolling_s": 3600}]})
        app = httpx.ASGITransport(app=_app(config, database, writer))
        async with httpx.AsyncClient(transport=app, base_url="http://gateway",
                                     headers={"authorization": f"Bearer {MASTER}"}) as client:
            client.database = database  # type: ignore[attr-defined]
            yield client
    finally:
        await writer.close()
        await database.close()


def _app(config, database, writer):
    from starlette.applications import Starlette

    app = Starlette(routes=insight.routes)
    app.state.tokenbrake = SimpleNamespace(config=config, database=database, writer=writer)
    return app


async def forecasts(api, **params) -> list[dict]:
    response = await api.get("/admin/insight/forecast", params=params)
    assert response.status_code == 200, response.text
    return response.json()["forecasts"]


def named(found: list[dict], scope: str, counter: str | None = None) -> dict:
    (one,) = [f for f in found if f["scope"] == scope and f["counter"] == counter]
    return one


async def test_global_then_every_budget_each_to_its_period_end(api):
    found = await forecasts(api)
    assert [(f["scope"], f["counter"], f["period"]) for f in found][:2] == [("global", None, "month"),
                                                                          ("global", None, "month")]
    plain, budgeted = found[0], found[1]
    assert plain["budget_usd"] is None and budgeted["budget_usd"] == "100000"
    next_month = (MONTH_START + timedelta(days=32)).replace(day=1)
    assert plain["period_start"] == MONTH_START.isoformat().replace("+00:00", "Z")
    assert plain["period_end"] == next_month.isoformat().replace("+00:00", "Z")
    assert Decimal(plain["spent_usd"]) == spent_in_month(ROWS).quantize(Decimal("0.0001"))
    assert plain["status"] == "ok" and plain["enough_history"] is True
    eighty, ninety_five = plain["intervals"]
    assert (eighty["level"], ninety_five["level"]) == (0.8, 0.95)
    assert Decimal(ninety_five["low_usd"]) <= Decimal(plain["forecast_usd"]) <= Decimal(ninety_five["high_usd"])
    first, *_, last = plain["path"]  # the way a chart draws: from what is spent now to the period's end
    assert (first["forecast_usd"], first["intervals"][0]["low_usd"]) == (plain["spent_usd"], plain["spent_usd"])
    assert (last["t"], last["forecast_usd"], last["intervals"]) == (plain["period_end"], plain["forecast_usd"],
                                                                    plain["intervals"])
    assert budgeted["runs_out_at"] is None and budgeted["over_budget"] is False
    assert {"team:alpha", "user:*"} <= {f["scope"] for f in found}
    assert "team:beta" not in {f["scope"] for f in found}  # a rolling window has no end to forecast to


async def test_a_budget_says_when_it_runs_out_at_the_current_pace(api):
    (alpha,) = await forecasts(api, scope="team:alpha")
    assert alpha["period"] == "total" and alpha["period_start"] is None
    assert Decimal(alpha["spent_usd"]) == 240 and alpha["budget_usd"] == "288"
    runs_out = datetime.fromisoformat(alpha["runs_out_at"])
    assert abs(runs_out - (datetime.now(UTC) + 48 * HOUR)) < 2 * HOUR
    assert alpha["over_budget"] is True


async def test_a_budget_per_member_is_forecast_for_each_within_its_tenant(api):
    found = await forecasts(api, scope="user:*")
    ana = named(found, "user:*", "user:ana")
    assert ana["tenant"] == "team:alpha" and ana["filters"] == {"user": ["ana"], "team": ["alpha"]}
    assert Decimal(ana["spent_usd"]) == sum(r.cost_usd for r in ROWS if r.user == "ana")
    cy = named(found, "user:*", "user:cy")  # users within a key without a team are not rolled up
    assert cy["tenant"] == "key:solo" and cy["status"] == "not_rolled_up" and "not rolled up" in cy["reason"]


async def test_a_scope_without_a_budget_is_forecast_over_its_month(api):
    (search,) = await forecasts(api, scope="tag:feature=search")
    assert search["filters"] == {"tag.feature": ["search"]} and search["budget_usd"] is None
    assert Decimal(search["spent_usd"]) == spent_in_month([r for r in ROWS if r.tags.get("feature") == "search"])


async def test_a_scope_with_too_little_history_says_so(api):
    (gamma,) = await forecasts(api, scope="team:gamma")
    assert gamma["status"] == "not_enough_history" and gamma["enough_history"] is False
    hours = gamma["history_hours"]  # 30 hours before NOW; 31 if an hour has begun since NOW was read
    assert hours in (30, 31) and gamma["needed_hours"] == 72 and f"{hours} hours" in gamma["reason"]
    assert "forecast_usd" not in gamma
    (nobody,) = await forecasts(api, scope="team:nobody")
    assert nobody["enough_history"] is False and nobody["history_hours"] == 0


@pytest.mark.parametrize("params, param", [
    ({"scope": "colour:red"}, "scope"),
    ({"scope": "tag:feature"}, "scope"),
    ({"scope": "model:*"}, "scope"),  # one counter per model, and no budget on it
    ({"team": "alpha"}, "team"),
])
async def test_a_bad_parameter_is_a_400_naming_it(api, params, param):
    response = await api.get("/admin/insight/forecast", params=params)
    assert response.status_code == 400, response.text
    assert response.json()["error"]["message"].startswith(f"'{param}': ")


async def test_a_viewer_gets_its_own_teams_spend_and_budgets_only(api):
    plaintext, _ = await api.database.keys.create("beta-viewer", team="beta", role="viewer")
    viewer = {"authorization": f"Bearer {plaintext}"}
    response = await api.get("/admin/insight/forecast", headers=viewer)
    assert response.status_code == 200, response.text
    found = response.json()["forecasts"]
    assert found[0]["scope"] == "global" and found[0]["filters"] == {"team": ["beta"]}
    assert Decimal(found[0]["spent_usd"]) == spent_in_month([r for r in ROWS if r.team == "beta"])
    assert [(f["scope"], f["counter"]) for f in found[1:]] == [("user:*", "user:bo")]
    refused = await api.get("/admin/insight/forecast", params={"scope": "team:alpha"}, headers=viewer)
    assert refused.status_code == 403
