"""The detector live, on SQLite and PostgreSQL: two replicas watching one database raise a
new heavy spender once (one row, one webhook POST with Slack's `text`, the same id on both),
and end it once; the alert table keeps one open incident per scope and kind; the insight
API shows a viewer its own team's alerts only; `tokenbrake anomalies` prints them."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace

import httpx
import pytest
from aiohttp import web
from anomaly_traffic import incident, steady
from click.testing import CliRunner
from loopback import serve_app
from storage_backends import place, sqlite_place  # noqa: F401  (the fixtures: both databases, SQLite)

from tokenbrake.cli import main
from tokenbrake.config import parse_config
from tokenbrake.foresight.watch import AnomalyWatch
from tokenbrake.limits import open_limit_store
from tokenbrake.server import insight
from tokenbrake.settlement.alerts import Alerts
from tokenbrake.storage import LedgerWriter

NOW = datetime.fromtimestamp(time.time() // 60 * 60, UTC)
START = NOW - timedelta(minutes=12)  # the incident's, ten minutes long


@pytest.fixture
async def webhook():
    """A real HTTP server on loopback, keeping what is POSTed to it."""
    received: list[dict] = []

    async def keep(request: web.Request) -> web.Response:
        received.append(await request.json())
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_post("/hook", keep)
    runner, port = await serve_app(app)
    yield f"http://127.0.0.1:{port}/hook", received
    await runner.cleanup()


async def replica(place, url: str, clock):
    config = parse_config({"database": place.url, "upstreams": {}, "models": {}, "alerts": {"webhook_url": url}})
    db = await place.open()
    alerts = Alerts(config.alerts, await open_limit_store("memory://"))
    return db, alerts, AnomalyWatch(config, db, alerts, clock=clock)


async def test_two_replicas_raise_and_end_an_incident_once(place, webhook):
    url, received = webhook
    first = await place.open()
    await first.ledger.write(steady(NOW - timedelta(days=3), NOW, seed=3) + incident("new_heavy_spender", START, 10))
    now = [(START - timedelta(minutes=2)).timestamp()]
    replicas = [await replica(place, url, lambda: now[0]) for _ in range(2)]
    try:
        for _, _, watch in replicas:
            assert await watch.tick() == []  # the first reads history only
        now[0] = (START + timedelta(minutes=6)).timestamp()
        raised = [await watch.tick() for _, _, watch in replicas]
        assert [[e.kind for e in events] for events in raised] == [["new_heavy_spender"]] * 2
        assert raised[0][0].id == raised[1][0].id and raised[0][0].scope == "team:search/user:zed"
        now[0] = (START + timedelta(minutes=30)).timestamp()
        ended = [await watch.tick() for _, _, watch in replicas]
        assert [[e.id for e in events] for events in ended] == [[raised[0][0].id]] * 2
        for _, alerts, _ in replicas:
            await alerts.aclose()
        assert [body["type"] for body in received] == ["anomaly", "anomaly_end"]
        assert "zed" in received[0]["text"] and received[0]["remedy"].startswith("tokenbrake budgets set")
        (row,) = await first.alerts.since(NOW - timedelta(hours=1))
        assert row["id"] == raised[0][0].id and row["ended_at"] is not None
    finally:
        for db, _, _ in replicas:
            await db.close()
        await first.close()


def alert_view(n: int, team: str | None, scope: str, kind: str = "spend_spike") -> dict:
    return {"id": f"an-{n}", "kind": kind, "scope": scope, "team": team, "since": "2026-12-01T10:00:00Z",
            "at": "2026-12-01T10:03:15Z", "factor": 4.0, "cost_so_far_usd": 3.0, "projected_usd_per_day": 120.0,
            "contributors": [{"kind": "user", "name": "ana", "share": 0.9}], "remedy": "tokenbrake budgets set",
            "detail": "more calls"}


async def test_one_open_incident_per_scope_and_kind_and_the_second_adopts_its_id(place):
    db = await place.open()
    try:
        at = datetime.now(UTC)
        first = await db.alerts.raise_once(alert_view(1, "a", "team:a"), at, at)
        again = await db.alerts.raise_once(alert_view(1, "a", "team:a"), at, at)
        a_minute_off = await db.alerts.raise_once(alert_view(2, "a", "team:a"), at + timedelta(minutes=1), at)
        other_kind = await db.alerts.raise_once(alert_view(3, "a", "team:a", "model_mix_shift"), at, at)
        assert (first.won, again.won, a_minute_off.won, other_kind.won) == (True, False, False, True)
        assert a_minute_off.id == "an-1"
        assert await db.alerts.end("an-1", at) and not await db.alerts.end("an-1", at)
        assert (await db.alerts.raise_once(alert_view(2, "a", "team:a"), at, at)).won  # over: a new one may open
    finally:
        await db.close()


async def test_a_viewer_sees_its_own_teams_anomalies_only(place, monkeypatch):
    monkeypatch.setenv("TOKENBRAKE_MASTER_KEY", "sk-master-anomalies")
    db = await place.open()
    writer = LedgerWriter(db.ledger)
    try:
        at = datetime.now(UTC)
        for n, team, scope in ((1, "alpha", "team:alpha"), (2, "beta", "team:beta"), (3, None, "global")):
            await db.alerts.raise_once(alert_view(n, team, scope), at, at)
        plaintext, _ = await db.keys.create("beta-viewer", team="beta", role="viewer")
        from starlette.applications import Starlette

        app = Starlette(routes=insight.routes)
        app.state.tokenbrake = SimpleNamespace(config=parse_config({"upstreams": {}, "models": {}}), database=db,
                                               writer=writer)
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://gateway") as client:
            master = await client.get("/admin/insight/anomalies", headers={"authorization": "Bearer sk-master-anomalies"})
            viewer = await client.get("/admin/insight/anomalies", headers={"authorization": f"Bearer {plaintext}"})
            bad = await client.get("/admin/insight/anomalies", params={"sinse": "1d"},
                                   headers={"authorization": f"Bearer {plaintext}"})
        assert sorted(a["scope"] for a in master.json()["anomalies"]) == ["global", "team:alpha", "team:beta"]
        assert [a["scope"] for a in viewer.json()["anomalies"]] == ["team:beta"]
        assert bad.status_code == 400 and "sinse" in bad.json()["error"]["message"]
    finally:
        await writer.close()
        await db.close()


def test_the_cli_lists_anomalies_with_the_command_that_stops_them(tmp_path):
    import asyncio

    from tokenbrake.storage import open_database

    url = f"sqlite:///{tmp_path / 'ledger.db'}"

    async def seed() -> None:
        db = await open_database(url)
        at = datetime.now(UTC)
        await db.alerts.raise_once(alert_view(7, "alpha", "team:alpha"), at, at)
        await db.close()

    asyncio.run(seed())
    config = tmp_path / "tokenbrake.yaml"
    config.write_text(f"database: {url}\nupstreams: {{}}\nmodels: {{}}\n")
    shown = CliRunner().invoke(main, ["anomalies", "--config", str(config)])
    assert shown.exit_code == 0, shown.output
    assert "spend_spike" in shown.output and "team:alpha" in shown.output and "stop it: tokenbrake budgets set" in shown.output
    as_json = CliRunner().invoke(main, ["anomalies", "--json", "--config", str(config)])
    assert json.loads(as_json.output.splitlines()[0])["id"] == "an-7"
    bad = CliRunner().invoke(main, ["anomalies", "--since", "soon", "--config", str(config)])
    assert bad.exit_code != 0 and "--since" in bad.output


async def test_ticks_fall_when_each_minute_has_settled_and_a_disabled_detector_never_starts(sqlite_place):
    db = await sqlite_place.open()
    try:
        minute = 1_800_000_000 // 60 * 60
        config = parse_config({"upstreams": {}, "models": {}})
        watch = AnomalyWatch(config, db, None, clock=lambda: minute + 3.0)
        assert watch._until_next() == pytest.approx(12.05)  # 15 s past the minute, as replay's `at`
        off = AnomalyWatch(parse_config({"upstreams": {}, "models": {}, "anomalies": {"enabled": False}}), db, None)
        await off.start()
        assert off._task is None
    finally:
        await db.close()
