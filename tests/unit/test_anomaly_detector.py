"""The anomaly detector, fed minute by minute: two weeks of a team's steady traffic raise
nothing; each kind of incident on top of it is raised once, as its kind, within five minutes,
naming who is behind it, what it costs and the command that stops it; it ends once quiet;
the same minutes give the same ids; a month-end job seen last month is usual."""

from __future__ import annotations

from datetime import timedelta

import pytest
from anomaly_traffic import INCIDENT, START, TOKENS, call, incident, run, steady

from tokenbrake.config import AnomaliesConfig
from tokenbrake.foresight.alert import Alert, End, moment
from tokenbrake.foresight.usual import month_twin

BASE = steady(START, INCIDENT + timedelta(minutes=45))


def alerts(events) -> list[Alert]:
    return [e for e in events if isinstance(e, Alert)]


def test_weeks_of_steady_traffic_raise_nothing():
    assert alerts(run(BASE)) == []


@pytest.mark.parametrize("kind", ["new_heavy_spender", "runaway_session", "input_size_surge", "error_cost_surge",
                                  "model_mix_shift", "spend_spike"])
def test_each_kind_is_raised_once_as_itself_within_five_minutes(kind):
    (alert,) = alerts(run(BASE + incident(kind, INCIDENT)))
    assert alert.kind == kind
    assert timedelta(0) < moment(alert.at) - INCIDENT <= timedelta(minutes=5)
    assert moment(alert.since) <= INCIDENT + timedelta(minutes=1)
    assert alert.cost_so_far_usd > 0 and alert.projected_usd_per_day > 24 * AnomaliesConfig().floor_usd_per_hour
    assert alert.remedy.startswith("tokenbrake ")


def test_a_new_heavy_spender_names_the_user_and_a_budget_that_stops_them():
    (alert,) = alerts(run(BASE + incident("new_heavy_spender", INCIDENT)))
    assert alert.scope == "team:search/user:zed" and alert.team == "search" and alert.factor is None
    assert alert.remedy == "tokenbrake budgets set --scope user:zed --amount 1 --period day"
    assert 80 <= alert.rate_usd_per_hour <= 130  # 4 calls a minute at $0.50 (the first minute in part)
    assert alert.contributors[0]["kind"] == "team" and alert.contributors[0]["name"] == "search"
    assert "zed" in alert.text() and "new heavy spender" in alert.text()


def test_a_runaway_session_is_stopped_by_its_id():
    (alert,) = alerts(run(BASE + incident("runaway_session", INCIDENT)))
    assert alert.scope == "team:search/session:agent-1"
    assert alert.remedy == "tokenbrake sessions stop agent-1"
    assert alert.factor is not None and alert.factor >= AnomaliesConfig().runaway_factor


def test_a_team_alert_lists_its_top_users_and_models_with_shares():
    (alert,) = alerts(run(BASE + incident("model_mix_shift", INCIDENT)))
    assert alert.scope == "team:search"
    models = {c["name"]: c["share"] for c in alert.contributors if c["kind"] == "model"}
    assert max(models, key=models.__getitem__) == "large" and models["large"] > 0.5
    assert sum(c["share"] for c in alert.contributors if c["kind"] == "user") == pytest.approx(1, abs=0.01)


def test_an_incident_ends_once_quiet_with_its_own_id():
    config = AnomaliesConfig()
    events = run(BASE + incident("new_heavy_spender", INCIDENT, minutes=10), config)
    (alert,) = alerts(events)
    (end,) = [e for e in events if isinstance(e, End)]
    assert end.id == alert.id and end.view() == {"id": alert.id, "ended_at": end.view()["ended_at"]}
    over = INCIDENT + timedelta(minutes=10)  # its last call; the window then empties in `window_minutes`
    assert over + timedelta(minutes=config.end_after_minutes) <= moment(end.ended_at)
    assert moment(end.ended_at) <= over + timedelta(minutes=config.window_minutes + config.end_after_minutes + 1)


def test_two_detectors_fed_the_same_minutes_raise_the_same_ids():
    rows = BASE + incident("spend_spike", INCIDENT)
    assert [a.id for a in alerts(run(rows))] == [a.id for a in alerts(run(rows))] != []


def test_a_higher_floor_silences_a_small_incident():
    assert alerts(run(BASE + incident("error_cost_surge", INCIDENT), AnomaliesConfig(floor_usd_per_hour=50))) == []


def test_the_month_twin_of_a_month_end_hour_is_last_months_last_day():
    jan_31 = int(moment(0).replace(year=2026, month=1, day=31, hour=2).timestamp() // 3600)
    feb_28 = int(moment(0).replace(year=2026, month=2, day=28, hour=2).timestamp() // 3600)
    assert month_twin(feb_28) == jan_31
    assert month_twin(jan_31 + 24 * 5) is None


def test_a_burst_raised_after_a_quiet_minute_is_dated_from_the_burst_and_counts_its_cost():
    """A team's departure is raised a minute after it is first seen; when that minute is quiet
    (ten pasted contracts in one minute, then nothing), the alert still begins at the burst."""
    burst = [call(f"burst-{i}", INCIDENT + timedelta(seconds=3 * i), "ana", tokens=TOKENS * 12) for i in range(10)]
    usual = steady(START, INCIDENT - timedelta(minutes=1))
    after = [call("after", INCIDENT + timedelta(minutes=3))]  # the detector is fed minutes up to this one
    (alert,) = alerts(run(usual + burst + after))
    assert moment(alert.since) == INCIDENT.replace(second=0)
    assert alert.cost_so_far_usd >= 10 * TOKENS * 12 * 0.000001 * 0.99  # the burst's ten calls, at least
