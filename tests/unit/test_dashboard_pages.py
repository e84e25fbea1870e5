"""The dashboard's pages and login, in process: who gets in and how (the master key or a viewer
key, a random HttpOnly SameSite=Strict cookie, CSRF tokens on the login form and on logout),
what each page is made of, and the static files, plotly.js among them (and the pages without
it)."""

from __future__ import annotations

import gzip

import pytest
from dashboard_app import BASE, MASTER, gateway_at

from tokenbrake.dashboard.pages import NO_PLOTLY, PAGES, Dashboard


@pytest.fixture
def folder(tmp_path, monkeypatch):
    monkeypatch.setenv("TOKENBRAKE_MASTER_KEY", MASTER)
    monkeypatch.chdir(tmp_path)
    return tmp_path


async def test_a_page_without_a_login_sends_the_browser_to_the_login_form_and_back(folder):
    async with gateway_at(folder) as gateway:
        answer = await gateway.client.get("/dashboard/explore?by=team&since=24h")
        assert answer.status_code == 303
        assert answer.headers["location"] == "/dashboard/login?next=%2Fdashboard%2Fexplore%3Fby%3Dteam%26since%3D24h"
        form = await gateway.client.get(answer.headers["location"])
        assert form.status_code == 200 and 'name="next" value="/dashboard/explore?by=team&amp;since=24h"' in form.text


async def test_the_master_key_logs_in_with_an_httponly_samesite_strict_cookie(folder):
    async with gateway_at(folder) as gateway:
        answer = await gateway.login()
        assert answer.status_code == 303 and answer.headers["location"] == "/dashboard/overview"
        cookie = next(h for h in answer.headers.get_list("set-cookie") if h.startswith("tb_dashboard="))
        flags = {part.strip().lower() for part in cookie.split(";")[1:]}
        assert {"httponly", "samesite=strict", "path=/"} <= flags
        assert MASTER not in cookie  # a random token, not the key
        assert (await gateway.client.get("/dashboard/overview")).status_code == 200


async def test_each_page_renders_its_panels_nav_scripts_and_csrf_token_behind_a_strict_policy(folder):
    async with gateway_at(folder) as gateway:
        await gateway.login()
        for name, title in PAGES.items():
            page = await gateway.client.get(f"/dashboard/{name}")
            assert page.status_code == 200, name
            assert f"<title>{title} · tokenbrake</title>" in page.text
            assert f'<script src="/dashboard/static/{name}.js" defer></script>' in page.text
            assert '<script src="/dashboard/static/plotly.min.js?v=' in page.text
            assert f'<a href="/dashboard/{name}" aria-current=page>' in page.text
            assert 'data-role="admin"' in page.text and 'name="csrf-token"' in page.text
            assert "script-src 'self'" in page.headers["content-security-policy"]
            assert page.headers["cache-control"] == "no-store" and page.headers["x-frame-options"] == "DENY"
        assert (await gateway.client.get("/dashboard/nothing")).status_code == 404


async def test_the_bare_address_goes_to_the_overview(folder):
    async with gateway_at(folder) as gateway:
        answer = await gateway.client.get("/dashboard")
        assert answer.status_code == 307 and answer.headers["location"] == "/dashboard/overview"


async def test_a_wrong_key_or_an_application_key_does_not_log_in(folder):
    async with gateway_at(folder) as gateway:
        app_key = await gateway.key("search-app", team="search")
        for key in ("tb-wrong", app_key, MASTER[:-1]):
            answer = await gateway.login(key)
            assert answer.status_code == 401
            assert "neither the master key nor a viewer key" in answer.text
            assert "tb_dashboard=" not in answer.headers.get("set-cookie", "")
        assert (await gateway.client.get("/dashboard/overview")).status_code == 303


async def test_a_viewer_key_logs_in_to_its_teams_view(folder):
    async with gateway_at(folder) as gateway:
        viewer = await gateway.key("search-viewer", team="search", role="viewer")
        assert (await gateway.login(viewer)).status_code == 303
        page = await gateway.client.get("/dashboard/overview")
        assert 'data-role="viewer" data-team="search" data-actions="off"' in page.text
        assert "viewer · team search" in page.text


async def test_a_revoked_viewer_keys_login_ends_when_the_gateway_learns_of_it(folder):
    async with gateway_at(folder) as gateway:
        viewer = await gateway.key("short-lived", team="search", role="viewer")
        await gateway.login(viewer)
        assert (await gateway.client.get("/dashboard/budgets")).status_code == 200
        await gateway.state.database.keys.revoke("short-lived")
        await gateway.state.keys.reload()
        assert (await gateway.client.get("/dashboard/budgets")).status_code == 303


async def test_the_login_form_refuses_a_post_without_its_own_token_or_from_another_site(folder):
    async with gateway_at(folder) as gateway:
        assert (await gateway.login(csrf="forged")).status_code == 403
        gateway.client.headers["origin"] = "https://evil.example"
        assert (await gateway.login()).status_code == 403
        gateway.client.headers["origin"] = BASE
        assert (await gateway.login()).status_code == 303


async def test_after_logging_in_only_a_dashboard_page_is_where_the_browser_goes(folder):
    async with gateway_at(folder) as gateway:
        for wanted in ("https://evil.example/", "//evil.example/x", "/admin/keys", "/dashboard/requests?team=a"):
            gateway.client.cookies.clear()
            answer = await gateway.login(next=wanted)
            assert answer.headers["location"] == (wanted if wanted.startswith("/dashboard/") else "/dashboard/overview")


async def test_logout_is_a_post_with_the_logins_csrf_token(folder):
    async with gateway_at(folder) as gateway:
        await gateway.login()
        assert (await gateway.client.get("/dashboard/logout")).status_code in (404, 405)
        refused = await gateway.client.post("/dashboard/logout", data={"csrf": "forged"})
        assert refused.status_code == 403
        assert (await gateway.client.get("/dashboard/overview")).status_code == 200
        token = await gateway.csrf()
        cookie = gateway.client.cookies["tb_dashboard"]
        done = await gateway.client.post("/dashboard/logout", data={"csrf": token})
        assert done.status_code == 303 and done.headers["location"] == "/dashboard/login"
        assert (await gateway.client.get("/dashboard/overview")).status_code == 303
        gateway.client.cookies.set("tb_dashboard", cookie)  # the old cookie, replayed, is no login
        assert (await gateway.client.get("/dashboard/overview")).status_code == 303


async def test_the_scripts_and_styles_are_served_from_the_package_and_nothing_else_is(folder):
    async with gateway_at(folder) as gateway:
        for name, kind in [("core.js", "text/javascript"), ("overview.js", "text/javascript"), ("dashboard.css", "text/css")]:
            answer = await gateway.client.get(f"/dashboard/static/{name}")
            assert answer.status_code == 200 and answer.headers["content-type"].startswith(kind), name
        for name in ("nothing.js", "..%2F..%2Fserver%2Fapp.py", "pages.py", "..%2Ftemplates%2Flayout.html"):
            assert (await gateway.client.get(f"/dashboard/static/{name}")).status_code == 404, name


async def test_plotly_js_comes_from_the_installed_plotly_package_compressed_and_cached(folder):
    async with gateway_at(folder) as gateway:
        shipped = Dashboard().plotly.read_bytes()
        answer = await gateway.client.get("/dashboard/static/plotly.min.js", headers={"accept-encoding": "gzip"})
        assert answer.status_code == 200 and answer.headers["content-encoding"] == "gzip"
        assert answer.content == shipped  # httpx undoes the gzip
        assert len(gzip.compress(shipped)) < len(shipped) / 2
        assert "immutable" in answer.headers["cache-control"]
        plain = await gateway.client.get("/dashboard/static/plotly.min.js", headers={"accept-encoding": "identity"})
        assert plain.content == shipped and "content-encoding" not in plain.headers


async def test_without_plotly_the_pages_say_which_extra_draws_the_charts(folder):
    async with gateway_at(folder) as gateway:
        gateway.app.app.state.dashboard = Dashboard(plotly=None)
        await gateway.login()
        page = await gateway.client.get("/dashboard/overview")
        assert page.status_code == 200
        assert "plotly.min.js" not in page.text
        assert NO_PLOTLY.replace("'", "&#x27;") in page.text and "tokenbrake[dashboard]" in NO_PLOTLY
        assert (await gateway.client.get("/dashboard/static/plotly.min.js")).status_code == 404
