"""`tokenbrake insight replay FILE` prints, as JSON lines in time order, the alerts the live
detector would have raised on FILE's calls (with when), each incident's end, and month-end
forecasts at each simulated midnight; the thresholds come from --config; a bad line is an
error naming it, and nothing is replayed."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from anomaly_traffic import INCIDENT, START, incident, steady
from click.testing import CliRunner

from tokenbrake.cli import main
from tokenbrake.storage.ledger import LedgerRow


def line(row: LedgerRow) -> str:
    return json.dumps({"time": row.ts.isoformat(), "team": row.team, "key": row.key_name, "user": row.user,
                       "session": row.session, "model": row.served_model, "input_tokens": row.input_tokens,
                       "cost_usd": str(row.cost_usd), "status": row.status})


@pytest.fixture(scope="module")
def calls(tmp_path_factory) -> str:
    rows = steady(START, INCIDENT + timedelta(minutes=40), seed=5) + incident("new_heavy_spender", INCIDENT, 10)
    path = tmp_path_factory.mktemp("replay") / "calls.jsonl"
    path.write_text("\n".join(line(row) for row in sorted(rows, key=lambda r: r.ts, reverse=True)) + "\n")
    return str(path)


def replay(*args: str) -> list[dict]:
    result = CliRunner().invoke(main, ["insight", "replay", *args])
    assert result.exit_code == 0, result.output
    return [json.loads(text) for text in result.output.splitlines()]


def test_it_prints_the_alert_its_end_and_each_midnights_forecasts_in_time_order(calls, tmp_path):
    lines = replay(calls, "--config", str(tmp_path / "none.yaml"))
    alerts = [x for x in lines if x["type"] == "alert"]
    (alert,) = alerts
    assert {"id", "kind", "scope", "since", "at", "factor", "cost_so_far_usd", "projected_usd_per_day",
            "contributors", "remedy"} <= set(alert)
    assert alert["kind"] == "new_heavy_spender" and alert["scope"] == "team:search/user:zed"
    (end,) = [x for x in lines if x["type"] == "end"]
    assert end["id"] == alert["id"] and end["ended_at"] > alert["at"]
    forecasts = [x for x in lines if x["type"] == "forecast"]
    assert {x["scope"] for x in forecasts} == {"global", "team:search"}
    assert all(x["at"].endswith("T00:00:00Z") for x in forecasts)
    times = [x.get("at") or x.get("ended_at") for x in lines]
    assert times == sorted(times)


def test_the_configs_thresholds_are_the_ones_replayed(calls, tmp_path):
    config = tmp_path / "tokenbrake.yaml"
    config.write_text("upstreams: {}\nmodels: {}\nanomalies: {floor_usd_per_hour: 500}\n")
    lines = replay(calls, "--config", str(config), "--forecast-days", "7,14")
    assert [x for x in lines if x["type"] == "alert"] == []
    assert {x["at"][8:10] for x in lines if x["type"] == "forecast"} == {"14"}  # (the file spans Oct 5-20)


def test_a_bad_line_is_named_and_nothing_is_replayed(tmp_path):
    path = tmp_path / "bad.jsonl"
    path.write_text('{"time": "2026-10-01T12:00:00Z", "model": "m", "cost_usd": 1}\n{"time": "yesterday"}\n')
    result = CliRunner().invoke(main, ["insight", "replay", str(path)])
    assert result.exit_code != 0 and "line 2" in result.output and "nothing replayed" in result.output
