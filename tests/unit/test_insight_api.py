"""The insight API in-process over a real database: each endpoint answers what the ledger rows
say, in the contract's shape (money as decimal strings, ISO times in UTC); a bad parameter is
a 400 that names it and the fix; only the master key gets in; a viewer is held to its team."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from types import SimpleNamespace

import httpx
import pytest
from insight_rows import summed, value, varied_rows
from starlette.applications import Starlette
from storage_backends import place  # noqa: F401

from tokenbrake.config import parse_config
from tokenbrake.core import GatewayError
from tokenbrake.server import insight
from tokenbrake.server.access import Access, scoped
from tokenbrake.storage import LedgerWriter

MASTER = "tb-master-insight"
ROWS = varied_rows(150, seed=5, spread=timedelta(days=6))


@pytest.fixture
async def api(place, monkeypatch):
    """The insight routes over a real database and ledger writer (the whole gateway, with its
    start and stop, runs in tests/e2e/test_insight.py)."""
    monkeypatch.setenv("TOKENBRAKE_MASTER_KEY", MASTER)
    database = await place.open()
    writer = LedgerWriter(database.ledger)
    try:
        await database.ledger.write(ROWS)
        config = parse_config({"database": place.url, "upstreams": {}, "models": {}})
        app = Starlette(routes=insight.routes)
        app.state.tokenbrake = SimpleNamespace(config=config, database=database, writer=writer)
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://gateway",
                                     headers={"authorization": f"Bearer {MASTER}"}) as client:
            yield client
    finally:
        await writer.close()
        await database.close()


def in_span(answer: dict, **filters) -> list:
    since, until = (_time(answer[k]) for k in ("since", "until"))
    return [row for row in ROWS if since <= row.ts < until
            and all(value(row, name) in values for name, values in filters.items())]


def _time(text: str):
    from datetime import datetime
    return datetime.fromisoformat(text)


async def test_totals_answer_the_spans_rows_and_the_period_before(api):
    answer = (await api.get("/admin/insight/totals", params={"since": "3d"})).json()
    current = summed(in_span(answer))
    assert answer["current"]["requests"] == current.requests > 0
    assert Decimal(answer["current"]["cost_usd"]) == current.cost_usd
    assert answer["since"].endswith("Z") and answer["previous_until"] == answer["since"]
    previous = summed(in_span({"since": answer["previous_since"], "until": answer["previous_until"]}))
    assert answer["previous"]["requests"] == previous.requests


async def test_a_breakdown_answers_the_top_groups_the_rest_and_the_total(api):
    answer = (await api.get("/admin/insight/breakdown", params={"by": "model", "top": "1", "since": "7d"})).json()
    rows = in_span(answer)
    (top,) = answer["rows"]
    mine = [row for row in rows if value(row, "model") == top["group"]["model"]]
    assert top["requests"] == len(mine) and Decimal(top["cost_usd"]) == summed(mine).cost_usd
    assert answer["other"]["requests"] == len(rows) - len(mine) and answer["total"]["requests"] == len(rows)
    assert set(top) >= {"errors", "input_tokens", "cached_input_tokens", "output_tokens", "reasoning_tokens",
                        "saved_usd", "latency_ms_avg", "latency_ms_p50", "latency_ms_p95"}


async def test_filters_repeat_for_either_value_and_tags_filter_by_name(api):
    answer = (await api.get("/admin/insight/breakdown?by=team&user=ana&user=bo&since=7d")).json()
    rows = in_span(answer, user={"ana", "bo"})
    assert sum(r["requests"] for r in answer["rows"]) == len(rows)
    tagged = (await api.get("/admin/insight/totals?since=7d&tag.feature=search")).json()
    assert tagged["current"]["requests"] == len(in_span(tagged, **{"tag.feature": {"search"}}))


async def test_a_series_answers_a_point_per_bucket_for_each_group(api):
    answer = (await api.get("/admin/insight/series", params={"every": "day", "by": "team", "since": "7d"})).json()
    assert answer["every"] == "day" and answer["by"] == ["team"]
    groups = [s["group"] for s in answer["series"]]
    assert {"team": None} in groups or {"team": "alpha"} in groups
    assert len({len(s["points"]) for s in answer["series"]}) == 1
    assert sum(p["requests"] for s in answer["series"] for p in s["points"]) == len(in_span(answer))
    assert answer["series"][0]["points"][0]["t"] == answer["since"]


async def test_a_series_of_named_metrics_answers_only_those_with_the_same_values(api):
    params = {"every": "hour", "by": "model", "since": "2d"}
    full = (await api.get("/admin/insight/series", params=params)).json()
    some = (await api.get("/admin/insight/series", params={**params, "metrics": "cost_usd,latency_ms_p95"})).json()
    assert [s["group"] for s in some["series"]] == [s["group"] for s in full["series"]]
    for narrow, wide in zip(some["series"], full["series"], strict=True):
        assert narrow["points"] == [{"t": p["t"], "cost_usd": p["cost_usd"], "latency_ms_p95": p["latency_ms_p95"]}
                                    for p in wide["points"]]
    assert any(p["cost_usd"] != "0" for s in some["series"] for p in s["points"])


async def test_savings_answer_what_routing_saved(api):
    answer = (await api.get("/admin/insight/savings", params={"since": "7d"})).json()
    assert Decimal(answer["routing_usd"]) == summed(in_span(answer)).saved_usd == Decimal(answer["total_usd"])
    assert answer["cache_usd"] == answer["reduction_usd"] == answer["downgrades_usd"] == "0"


async def test_recent_requests_come_newest_first_under_the_filters(api):
    answer = (await api.get("/admin/insight/requests", params={"limit": "5", "team": "alpha"})).json()
    expected = sorted((r for r in ROWS if r.team == "alpha"), key=lambda r: r.ts, reverse=True)[:5]
    assert [r["request_id"] for r in answer["rows"]] == [r.request_id for r in expected]
    first = answer["rows"][0]
    assert Decimal(first["cost_usd"]) == expected[0].cost_usd and "prompt" not in first
    older = (await api.get("/admin/insight/requests", params={"limit": "2", "before": first["ts"]})).json()
    assert all(r["ts"] < first["ts"] for r in older["rows"])


@pytest.mark.parametrize("path, params, param", [
    ("totals", {"since": "yesterday"}, "since"),
    ("totals", {"since": "1d", "until": "3d"}, "since"),
    ("totals", {"until": "noon"}, "until"),
    ("totals", {"tem": "alpha"}, "tem"),
    ("totals", {"status": "200"}, "status"),
    ("series", {"every": "week"}, "every"),
    ("series", {"every": "minute", "since": "30d"}, "every"),
    ("series", {"by": "colour"}, "by"),
    ("series", {"top": "0", "by": "model"}, "top"),
    ("series", {"metrics": "cost,requests"}, "metrics"),
    ("breakdown", {}, "by"),
    ("breakdown", {"by": "model", "user": "ana"}, "user"),
    ("breakdown", {"by": "model,user"}, "by"),
    ("breakdown", {"by": "model", "top": "many"}, "top"),
    ("requests", {"limit": "100000"}, "limit"),
    ("requests", {"before": "soon"}, "before"),
    ("requests", {"tag.": "x"}, "tag."),
])
async def test_a_bad_parameter_is_a_400_naming_it_and_the_fix(api, path, params, param):
    response = await api.get(f"/admin/insight/{path}", params=params)
    assert response.status_code == 400, response.text
    message = response.json()["error"]["message"]
    assert message.startswith(f"'{param}': ") and len(message) > len(param) + 12


async def test_only_the_master_key_gets_in(api):
    assert (await api.get("/admin/insight/totals", headers={"authorization": "Bearer nope"})).status_code == 401
    assert (await api.get("/admin/insight/totals", headers={"authorization": ""})).status_code == 401


def test_a_viewer_is_held_to_its_team():
    viewer = Access("viewer", "alpha")
    assert scoped(viewer, {"model": ["gpt-4o"]}) == {"model": ["gpt-4o"], "team": ["alpha"]}
    assert scoped(viewer, {"team": ["alpha"]}) == {"team": ["alpha"]}
    with pytest.raises(GatewayError) as refused:
        scoped(viewer, {"team": ["alpha", "beta"]})
    assert refused.value.status == 403
    assert scoped(Access("admin"), {"team": ["beta"]}) == {"team": ["beta"]}
