"""Who reads and changes what, decided server-side on every call: a viewer key (its own or its
dashboard login) reads its team's budgets and sessions only, changes nothing and calls no
model; the master key and an admin's dashboard login see everything, the login acting only
with its CSRF token."""

from __future__ import annotations

from decimal import Decimal

import pytest
from dashboard_app import MASTER, gateway_at

from tokenbrake.admission.auth import Access
from tokenbrake.core import GatewayError
from tokenbrake.limits.types import SessionCaps
from tokenbrake.server.access import counter_team, scoped, team_budgets

BUDGETS = [
    {"scope": "team:search", "amount_usd": "5", "period": "day"},
    {"scope": "team:support", "amount_usd": "7", "period": "day"},
    {"scope": "global", "amount_usd": "100", "period": "month"},
]
CHAT = {"model": "small", "messages": [{"role": "user", "content": "hi"}]}


@pytest.fixture
def folder(tmp_path, monkeypatch):
    monkeypatch.setenv("TOKENBRAKE_MASTER_KEY", MASTER)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def bearer(key: str) -> dict[str, str]:
    return {"authorization": f"Bearer {key}"}


async def test_a_viewer_key_calling_a_model_gets_a_403_in_each_sdks_format_saying_why(folder):
    async with gateway_at(folder) as gateway:
        viewer = await gateway.key("search-viewer", team="search", role="viewer")
        openai = await gateway.client.post("/v1/chat/completions", json=CHAT, headers=bearer(viewer))
        assert openai.status_code == 403
        assert openai.json()["error"]["code"] == "viewer_key"
        assert "viewer key" in openai.json()["error"]["message"] and "calls no models" in openai.json()["error"]["message"]
        anthropic = await gateway.client.post("/v1/messages", json={**CHAT, "max_tokens": 5},
                                              headers={"x-api-key": viewer, "anthropic-version": "2023-06-01"})
        assert anthropic.status_code == 403 and anthropic.json()["error"]["type"] == "permission_error"
        assert (await gateway.client.get("/v1/models", headers=bearer(viewer))).status_code == 403


async def test_a_viewer_key_reads_only_its_teams_budget_counters(folder):
    async with gateway_at(folder, BUDGETS) as gateway:
        viewer = await gateway.key("search-viewer", team="search", role="viewer")
        seen = (await gateway.client.get("/admin/budgets", headers=bearer(viewer))).json()["data"]
        assert [(b["scope"], [c["counter"] for c in b["counters"]]) for b in seen] == [("team:search", ["team:search"])]
        every = (await gateway.client.get("/admin/budgets", headers=bearer(MASTER))).json()["data"]
        assert [b["scope"] for b in every] == ["team:search", "team:support", "global"]


async def test_a_viewer_key_reads_only_its_teams_sessions(folder):
    async with gateway_at(folder) as gateway:
        viewer = await gateway.key("search-viewer", team="search", role="viewer")
        await gateway.key("search-app", team="search")
        await gateway.key("support-bot", team="support")
        for key, session in [("search-app", "run-1"), ("support-bot", "run-2")]:
            await gateway.state.limits.session_admit(key, session, SessionCaps(), 600)
            await gateway.state.limits.session_settle(key, session, 100, Decimal("0.5"))
        listed = (await gateway.client.get("/admin/sessions", headers=bearer(viewer))).json()["data"]
        assert [(s["key"], s["session"]) for s in listed] == [("search-app", "run-1")]
        assert (await gateway.client.get("/admin/sessions/run-1", headers=bearer(viewer))).status_code == 200
        other = await gateway.client.get("/admin/sessions/run-2", headers=bearer(viewer))
        assert other.status_code == 404 and "support" not in other.text
        assert len((await gateway.client.get("/admin/sessions", headers=bearer(MASTER))).json()["data"]) == 2


async def test_a_viewer_key_changes_nothing_and_sees_no_keys(folder):
    async with gateway_at(folder) as gateway:
        viewer = await gateway.key("search-viewer", team="search", role="viewer")
        await gateway.state.limits.session_admit("search-viewer", "own", SessionCaps(), 600)
        attempts = [("POST", "/admin/budgets", {"scope": "team:search", "amount_usd": "1", "period": "day"}),
                    ("POST", "/admin/keys", {"name": "mine", "team": "search"}),
                    ("POST", "/admin/sessions/own/stop", None), ("DELETE", "/admin/budgets?scope=team:search&period=day", None),
                    ("GET", "/admin/keys", None), ("GET", "/admin/usage", None)]
        for method, path, body in attempts:
            answer = await gateway.client.request(method, path, json=body, headers=bearer(viewer))
            assert answer.status_code == 403, path
            assert "read-only" in answer.json()["error"]["message"], path
        assert await gateway.state.database.keys.get("mine") is None


async def test_an_admins_dashboard_login_reads_with_its_cookie_and_acts_only_with_its_csrf_token(folder):
    async with gateway_at(folder) as gateway:
        await gateway.key("search-app", team="search")
        await gateway.state.limits.session_admit("search-app", "run-1", SessionCaps(), 600)
        await gateway.login()
        assert (await gateway.client.get("/admin/keys")).status_code == 200
        forged = await gateway.client.post("/admin/sessions/run-1/stop", headers={"x-csrf-token": "guess"})
        assert forged.status_code == 403 and "CSRF" in forged.json()["error"]["message"]
        assert (await gateway.client.post("/admin/sessions/run-1/stop")).status_code == 403
        assert (await gateway.state.limits.session_get("search-app", "run-1")).status == "active"
        stopped = await gateway.client.post("/admin/sessions/run-1/stop", headers={"x-csrf-token": await gateway.csrf()})
        assert stopped.status_code == 200 and stopped.json()["status"] == "stopped"


async def test_a_viewers_dashboard_login_reads_its_team_only_and_cannot_act(folder):
    async with gateway_at(folder, BUDGETS) as gateway:
        await gateway.login(await gateway.key("support-viewer", team="support", role="viewer"))
        seen = (await gateway.client.get("/admin/budgets")).json()["data"]
        assert [b["scope"] for b in seen] == ["team:support"]
        refused = await gateway.client.post("/admin/budgets", headers={"x-csrf-token": await gateway.csrf()},
                                            json={"scope": "team:support", "amount_usd": "99", "period": "day"})
        assert refused.status_code == 403


async def test_without_a_master_key_the_admin_api_is_off_but_a_viewer_key_still_reads(folder, monkeypatch):
    monkeypatch.delenv("TOKENBRAKE_MASTER_KEY")
    async with gateway_at(folder, BUDGETS) as gateway:
        viewer = await gateway.key("search-viewer", team="search", role="viewer")
        off = await gateway.client.get("/admin/budgets", headers=bearer(MASTER))
        assert off.status_code == 403 and "admin API is off" in off.json()["error"]["message"]
        assert (await gateway.client.get("/admin/budgets", headers=bearer(viewer))).status_code == 200


async def test_no_key_or_a_wrong_one_reads_nothing(folder):
    async with gateway_at(folder) as gateway:
        app_key = await gateway.key("search-app", team="search")
        for headers in ({}, bearer("tb-wrong"), bearer(app_key)):
            answer = await gateway.client.get("/admin/budgets", headers=headers)
            assert answer.status_code == 401 and "master key" in answer.json()["error"]["message"]


def test_a_viewers_filters_are_forced_to_its_team_and_another_team_is_refused():
    viewer = Access("viewer", team="search", key_name="v")
    assert scoped(viewer, {"model": ["small"]}) == {"model": ["small"], "team": ["search"]}
    assert scoped(viewer, {"team": ["search"]}) == {"team": ["search"]}
    with pytest.raises(GatewayError) as refused:
        scoped(viewer, {"team": ["search", "support"]})
    assert refused.value.status == 403 and "not team support" in refused.value.message
    assert scoped(Access("admin"), {"team": ["a", "b"]}) == {"team": ["a", "b"]}


@pytest.mark.parametrize(("counter", "team"), [
    ({"counter": "team:search", "tenant": None}, "search"),
    ({"counter": "key:search-app", "tenant": None}, "search"),
    ({"counter": "user:alice", "tenant": "team:support"}, "support"),
    ({"counter": "user:alice", "tenant": "key:search-app"}, "search"),
    ({"counter": "user:alice", "tenant": None}, None),  # one counter across tenants
    ({"counter": "global", "tenant": None}, None),
    ({"counter": "model:small", "tenant": None}, None),
])
def test_a_budget_counter_belongs_to_the_team_whose_spend_it_counts(counter, team):
    assert counter_team(counter, {"search-app": "search"}) == team


def test_a_budget_shown_to_a_team_keeps_only_that_teams_counters():
    rows = [{"scope": "user:*", "counters": [{"counter": "user:a", "tenant": "team:x"},
                                            {"counter": "user:b", "tenant": "team:y"}]},
            {"scope": "team:y", "counters": [{"counter": "team:y", "tenant": None}]}]
    assert team_budgets(rows, "x", {}) == [{"scope": "user:*", "counters": [{"counter": "user:a", "tenant": "team:x"}]}]


async def test_a_viewer_key_gets_its_teams_insight_and_a_403_for_another_teams(folder):
    async with gateway_at(folder) as gateway:
        viewer = await gateway.key("search-viewer", team="search", role="viewer")
        by_team = await gateway.client.get("/admin/insight/breakdown", params={"by": "team"}, headers=bearer(viewer))
        assert by_team.status_code == 200
        other = await gateway.client.get("/admin/insight/breakdown", params={"by": "team", "team": "support"},
                                         headers=bearer(viewer))
        assert other.status_code == 403 and "not team support" in other.json()["error"]["message"]
        for path in ("series", "totals", "savings", "requests"):
            answer = await gateway.client.get(f"/admin/insight/{path}", params={"team": "support"}, headers=bearer(viewer))
            assert answer.status_code == 403, path
