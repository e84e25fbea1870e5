"""The dashboard in a real browser: headless Chromium (Debian's chromium and chromium-driver)
driven by Selenium, against a real gateway in front of the emulator, its ledger seeded by real
requests through the official OpenAI SDK.

Pins that each page's charts and tables show the ledger's numbers, read back from the page as a
person sees them (the table cells' text, the chart's bars); that filtering by team and
switching the period change them and stay in the address; that a viewer key sees its team's
numbers only and is refused another team's; that numbers refresh without a reload; that logout
ends the login; and that `tokenbrake dashboard` serves the same pages on its own. A screenshot
of each page is saved under tests/artifacts/dashboard/ (printed with -s)."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import sys
from collections import defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx
import openai
import pytest
import yaml
from gateway_setup import MASTER_KEY, UPSTREAM_KEYS, create_key, gateway_config

from tokenbrake.storage import LedgerRow, open_database
from tokenbrake.tools.launch import ChildServer

ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts" / "dashboard"
CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"
WAIT_S = 30
OLD_DAYS = 40  # one row this long ago: outside today, this week and this month, inside 90 days


def usd(amount: Decimal) -> str:
    """A dollar amount as the dashboard shows it (static/core.js, `usd`)."""
    if amount == 0:
        return "$0.00"
    size = abs(amount)
    places = 2 if size >= 1 else 4 if size >= Decimal("0.01") else 6
    rounded = amount.quantize(Decimal(1).scaleb(-places), rounding=ROUND_HALF_UP)
    return ("-$" if rounded < 0 else "$") + f"{abs(rounded):,.{places}f}"


@dataclass
class Seeded:
    gateway: ChildServer
    config_path: Path
    database: str
    keys: dict[str, str]
    rows: list[LedgerRow]

    def today(self, team: str | None = None) -> list[LedgerRow]:
        start = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
        return [r for r in self.rows if r.ts >= start and (team is None or r.team == team)]

    def cost_by(self, dimension: Callable[[LedgerRow], str | None], rows: list[LedgerRow]) -> dict[str, str]:
        """Each group's cost, as the dashboard shows it; calls without a value group as (none)."""
        sums: dict[str, Decimal] = defaultdict(Decimal)
        for row in rows:
            sums[dimension(row) or "(none)"] += row.cost_usd
        return {name: usd(total) for name, total in sums.items()}


def flush(url: str) -> None:
    """Has the gateway write its queued ledger rows (the usage report flushes first)."""
    httpx.get(f"{url}/admin/usage", headers={"authorization": f"Bearer {MASTER_KEY}"}, timeout=30).raise_for_status()


def read_ledger(url: str) -> list[LedgerRow]:
    async def go():
        db = await open_database(url)
        try:
            return await db.ledger.rows(limit=10_000)
        finally:
            await db.close()

    return asyncio.run(go())


def write_old_row(url: str, like: LedgerRow) -> None:
    """One call from OLD_DAYS ago, written as the gateway's writer writes rows (so with its
    rollups): the only way to have a ledger span more than today without waiting for it."""
    async def go():
        db = await open_database(url)
        try:
            await db.ledger.write([LedgerRow(**{**{f: getattr(like, f) for f in like.__dataclass_fields__},
                                                "request_id": "old-" + like.request_id,
                                                "ts": datetime.now(UTC) - timedelta(days=OLD_DAYS),
                                                "cost_usd": Decimal("0.5"), "charges": ()})])
        finally:
            await db.close()

    asyncio.run(go())


def send_traffic(url: str, keys: dict[str, str]) -> None:
    """Two teams' applications: models, users, feature tags, a session, a routed model, a stream
    and an upstream failure, through the official OpenAI SDK."""
    def client(key: str, **headers: str) -> openai.OpenAI:
        return openai.OpenAI(base_url=url + "/v1", api_key=key, max_retries=0, default_headers=headers)

    ask = [{"role": "user", "content": "Summarise the refund policy in one sentence."}]
    search = client(keys["search-app"], **{"X-Tokenbrake-Tags": "feature=search"})
    complete = client(keys["search-app"], **{"X-Tokenbrake-Tags": "feature=autocomplete", "X-Tokenbrake-Session": "run-3"})
    support = client(keys["support-bot"], **{"X-Tokenbrake-Tags": "feature=support", "X-Tokenbrake-Session": "ticket-7"})
    for _ in range(3):
        search.chat.completions.create(model="gpt-4o", messages=ask, user="alice")
    for _ in range(2):
        complete.chat.completions.create(model="small", messages=ask, user="bob")
    streamed = search.chat.completions.create(model="small", messages=ask, user="alice", stream=True)
    assert "".join(c.choices[0].delta.content or "" for c in streamed if c.choices)
    for _ in range(2):
        search.chat.completions.create(model="auto", messages=[{"role": "user", "content": "hi"}], user="bob")
    with pytest.raises(openai.InternalServerError):
        search.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "[[emulator: status=503]]"}])
    for _ in range(2):
        support.chat.completions.create(model="claude-fast", messages=ask, user="carol")
    support.chat.completions.create(model="small", messages=ask, user="carol")


@pytest.fixture(scope="module")
def seeded(emulator: ChildServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Seeded]:
    folder = tmp_path_factory.mktemp("dashboard")
    database = f"sqlite:///{folder / 'ledger.db'}"
    raw = gateway_config(emulator.url, database)
    raw["routes"] = {"auto": {"tiers": ["small", "gpt-4o"]}}
    raw["sessions"] = {"rules": [{"scope": "global", "max_calls": 100, "on_loop": "warn"}]}
    raw["budgets"] = [{"scope": "team:search", "amount_usd": "1.00", "period": "day"},
                      {"scope": "team:support", "amount_usd": "0.02", "period": "month"}]
    path = folder / "tokenbrake.yaml"
    path.write_text(yaml.safe_dump(raw))
    keys = {"search-app": create_key(path, "search-app", "--team", "search"),
            "support-bot": create_key(path, "support-bot", "--team", "support"),
            "search-viewer": create_key(path, "search-viewer", "--team", "search", "--role", "viewer")}
    gateway = ChildServer(["serve", "--config", str(path)], env={**UPSTREAM_KEYS, "TOKENBRAKE_MASTER_KEY": MASTER_KEY})
    try:
        send_traffic(gateway.url, keys)
        flush(gateway.url)
        write_old_row(database, read_ledger(database)[0])
        yield Seeded(gateway, path, database, keys, read_ledger(database))
    finally:
        gateway.stop()


@pytest.fixture(scope="module")
def browser():
    missing = [path for path in (CHROMIUM, CHROMEDRIVER) if shutil.which(path) is None]
    if missing:
        pytest.fail(f"the dashboard's browser tests need Debian's chromium and chromium-driver (missing {', '.join(missing)}):"
                    " apt-get install -y chromium chromium-driver", pytrace=False)
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                     "--window-size=1280,800", "--force-device-scale-factor=1"):
        options.add_argument(argument)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(WAIT_S)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    yield driver
    driver.quit()


def wait(driver, condition, what: str, timeout: float = WAIT_S):
    """`condition(driver)` once it is truthy; past `timeout`, a screenshot of the page as it was."""
    from selenium.common.exceptions import TimeoutException
    from selenium.webdriver.support.ui import WebDriverWait

    try:
        return WebDriverWait(driver, timeout, poll_frequency=0.2).until(lambda d: condition(d), message=what)
    except TimeoutException:
        path = ARTIFACTS / f"timed-out-{''.join(c if c.isalnum() else '-' for c in what)[:60]}.png"
        driver.save_screenshot(str(path))
        raise TimeoutException(f"{what} (page: {driver.current_url}; screenshot: {path})") from None


def log_in(driver, base: str, key: str, page: str = "overview") -> None:
    from selenium.webdriver.common.by import By

    driver.delete_all_cookies()
    driver.get(f"{base}/dashboard/{page}")
    wait(driver, lambda d: d.current_url.startswith(f"{base}/dashboard/login"), "the login form")
    driver.find_element(By.ID, "key").send_keys(key)
    driver.find_element(By.ID, "login").click()
    wait(driver, lambda d: urlsplit(d.current_url).path == f"/dashboard/{page}", f"the {page} page after logging in")


READ_TABLE = """
const table = document.querySelector('#' + arguments[0] + ' table.data');
if (!table) return null;
const cells = (tr) => [...tr.children].map((cell) => cell.innerText.trim());
return {head: cells(table.querySelector('thead tr')),
        body: [...table.querySelectorAll('tbody tr')].map(cells),
        foot: [...table.querySelectorAll('tfoot tr')].map(cells)};
"""


def table(driver, panel: str, rows: int | None = None) -> dict:
    """The panel's table as shown, once it is drawn (with `rows` body rows, if given)."""
    seen: list = [None]

    def drawn(d):
        seen[0] = found = d.execute_script(READ_TABLE, panel)
        return found if found is not None and (rows is None or len(found["body"]) == rows) else None

    try:
        return wait(driver, drawn, f"the table of #{panel}" + (f" with {rows} rows" if rows is not None else ""))
    except Exception as exc:
        raise AssertionError(f"{exc}; the table showed {seen[0]}") from None


def column(found: dict, name: str, key: int = 0) -> dict[str, str]:
    """{first cell: the named column's cell} for each body row."""
    index = found["head"].index(name)
    return {row[key]: row[index] for row in found["body"]}


def chart(driver, panel: str) -> list[dict]:
    """The traces plotly drew in the panel's chart (once there is an SVG)."""
    return wait(driver, lambda d: d.execute_script(
        "const el = document.getElementById(arguments[0] + '-chart');"
        "return el && el.querySelector('svg.main-svg') && el.data ? el.data.map((t) => ({x: t.x, y: t.y, name: t.name})) : null;",
        panel), f"the chart of #{panel}")


def screenshot(driver, name: str) -> Path:
    path = ARTIFACTS / f"{name}.png"
    driver.save_screenshot(str(path))
    print(f"screenshot: {path}")
    return path


def severe_console_messages(driver) -> list[str]:
    return [entry["message"] for entry in driver.get_log("browser") if entry["level"] == "SEVERE"]


def test_the_overview_shows_the_ledgers_spend_by_model_team_feature_user_and_key(seeded, browser):
    base = seeded.gateway.url
    log_in(browser, base, MASTER_KEY)
    browser.get(f"{base}/dashboard/overview?period=month")
    today = seeded.today()
    total = sum((r.cost_usd for r in today), Decimal(0))
    wait(browser, lambda d: d.find_element("css selector", "#card-day .value").text == usd(total), "today's spend")
    assert browser.find_element("css selector", "#card-month .value").text == usd(total)
    expected = {
        "by-model": seeded.cost_by(lambda r: r.served_model, today),
        "by-team": seeded.cost_by(lambda r: r.team, today),
        "by-feature": seeded.cost_by(lambda r: r.tags.get("feature"), today),
        "top-users": seeded.cost_by(lambda r: r.user, today),
        "top-keys": seeded.cost_by(lambda r: r.key_name, today),
    }
    for panel, costs in expected.items():
        shown = table(browser, panel, rows=len(costs))
        assert column(shown, "Cost") == costs, panel
        assert shown["foot"][-1][0] == "total"
        bars = chart(browser, panel)[0]
        assert dict(zip(bars["y"], bars["x"])) == {name: pytest.approx(float(Decimal(v.strip("$").replace(",", ""))), abs=1e-6)
                                                   for name, v in costs.items()}, panel
    saved = sum((r.saved_usd or Decimal(0) for r in today), Decimal(0))
    assert saved > 0  # the routed calls served by small saved against gpt-4o
    shown = table(browser, "savings")
    assert shown["foot"][0] == ["total", usd(saved)]
    assert column(shown, "Amount")["Routing to a cheaper model"] == usd(saved)
    budgets = column(table(browser, "budgets", rows=2), "Spent")
    assert budgets == {"team:search": usd(sum((r.cost_usd for r in today if r.team == "search"), Decimal(0))),
                       "team:support": usd(sum((r.cost_usd for r in today if r.team == "support"), Decimal(0)))}
    assert table(browser, "budgets")["body"][0][0] == "team:support"  # closest to its cap ($0.02 a month) first
    spend = chart(browser, "spend")
    assert {trace["name"] for trace in spend} == set(expected["by-model"])
    screenshot(browser, "overview")
    assert severe_console_messages(browser) == []


def test_filtering_by_team_narrows_every_panel_and_stays_in_the_address(seeded, browser):
    from selenium.webdriver.support.ui import Select

    base = seeded.gateway.url
    log_in(browser, base, MASTER_KEY)
    browser.get(f"{base}/dashboard/overview?period=week")
    table(browser, "by-team", rows=2)
    Select(browser.find_element("id", "team")).select_by_value("support")
    wait(browser, lambda d: parse_qs(urlsplit(d.current_url).query).get("team") == ["support"], "team=support in the URL")
    support = seeded.today("support")
    assert column(table(browser, "by-team", rows=1), "Cost") == {"support": usd(sum((r.cost_usd for r in support), Decimal(0)))}
    assert column(table(browser, "by-model", rows=2), "Cost") == seeded.cost_by(lambda r: r.served_model, support)
    assert column(table(browser, "top-users", rows=1), "Cost") == seeded.cost_by(lambda r: r.user, support)
    wait(browser, lambda d: d.find_element("css selector", "#card-week .value").text
         == usd(sum((r.cost_usd for r in support), Decimal(0))), "this week's spend of team support")
    browser.refresh()  # the filter is in the address: a reload keeps it
    assert Select(browser.find_element("id", "team")).first_selected_option.get_attribute("value") == "support"
    assert column(table(browser, "by-team", rows=1), "Cost") == {"support": usd(sum((r.cost_usd for r in support), Decimal(0)))}
    assert "team=support" in browser.find_element("css selector", "nav a[href*=requests]").get_attribute("href")
    screenshot(browser, "overview-team-support")


def test_switching_the_period_changes_the_window_and_the_address(seeded, browser):
    from selenium.webdriver.support.ui import Select

    base = seeded.gateway.url
    log_in(browser, base, MASTER_KEY, page="explore")
    browser.get(f"{base}/dashboard/explore?by=team&since=7d&every=day&metric=cost_usd")
    recent = {r: c for r, c in seeded.cost_by(lambda r: r.team, seeded.today()).items()}
    assert column(table(browser, "breakdown", rows=2), "Cost") == recent
    Select(browser.find_element("id", "since")).select_by_value("90d")
    wait(browser, lambda d: parse_qs(urlsplit(d.current_url).query).get("since") == ["90d"], "since=90d in the URL")
    everything = seeded.cost_by(lambda r: r.team, seeded.rows)  # with the row from OLD_DAYS ago
    assert everything != recent
    wait(browser, lambda d: column(table(d, "breakdown", rows=2), "Cost") == everything, "90 days' spend by team")
    series = chart(browser, "series")
    assert {trace["name"] for trace in series} == {"search", "support"}
    assert len(table(browser, "series")["body"]) >= 2  # today and OLD_DAYS ago
    screenshot(browser, "explore")
    Select(browser.find_element("id", "every")).select_by_value("hour")  # 2,160 hours: more than a chart shows
    wait(browser, lambda d: parse_qs(urlsplit(d.current_url).query).get("every") == ["hour"], "every=hour in the URL")
    assert message(browser, "series") == ("By hour this span would be 2,160 points a line, more than the chart can show: "
                                          "drawn by day. Shorten the span to see hours.")
    assert all(t.endswith("T00:00:00Z") for t in chart(browser, "series")[0]["x"])  # days
    browser.get(f"{base}/dashboard/overview?period=week")
    Select(browser.find_element("id", "period")).select_by_value("day")
    wait(browser, lambda d: parse_qs(urlsplit(d.current_url).query).get("period") == ["day"], "period=day in the URL")
    today = datetime.now(UTC).strftime("%Y-%m-%d")
    wait(browser, lambda d: all(t.startswith(today) and t[11:13] for t in chart(d, "spend")[0]["x"]),
         "the spend chart redrawn with today's hours only")


def test_the_budgets_sessions_and_requests_pages_show_the_ledgers_numbers(seeded, browser):
    base = seeded.gateway.url
    log_in(browser, base, MASTER_KEY, page="budgets")
    search_spent = usd(sum((r.cost_usd for r in seeded.today("search")), Decimal(0)))
    assert column(table(browser, "budget-table", rows=2), "Spent")["team:search"] == search_spent
    burndown = chart(browser, "burndown-0")
    assert [trace["name"] for trace in burndown][:2] == ["even pace", "remaining"]
    assert table(browser, "burndown-0")["foot"][0][0] == "now (settled and reserved)"
    screenshot(browser, "budgets")

    browser.get(f"{base}/dashboard/sessions")
    sessions = {name: [r for r in seeded.today() if r.session == name] for name in ("ticket-7", "run-3")}
    costs = {name: usd(sum((r.cost_usd for r in rows), Decimal(0))) for name, rows in sessions.items()}
    live = table(browser, "live", rows=2)
    assert column(live, "Cost") == costs
    assert column(live, "Calls") == {name: str(len(rows)) for name, rows in sessions.items()}
    assert column(table(browser, "history", rows=2), "Cost") == costs
    chart(browser, "live")
    browser.find_element("css selector", "#live button.act[data-session='run-3']").click()  # stop, with the CSRF token
    wait(browser, lambda d: column(table(d, "stopped", rows=1), "Cost") == {"run-3": costs["run-3"]}, "run-3 stopped")
    assert column(table(browser, "live"), "Status")["run-3"] == "stopped"
    screenshot(browser, "sessions")
    browser.find_element("css selector", "#live button.act[data-session='run-3']").click()  # resume
    wait(browser, lambda d: column(table(d, "live"), "Status")["run-3"] == "active", "run-3 resumed")

    browser.get(f"{base}/dashboard/requests")
    shown = table(browser, "requests", rows=min(50, len(seeded.rows)))
    newest = max((r for r in seeded.rows if not r.request_id.startswith("old-")), key=lambda r: r.ts)
    first = dict(zip(shown["head"], shown["body"][0]))
    assert (first["Key"], first["Team"], first["Cost"], first["Status"]) == (
        newest.key_name, newest.team, usd(newest.cost_usd), str(newest.status))
    assert {row[shown["head"].index("Status")] for row in shown["body"]} >= {"200", "502"}
    chart(browser, "requests")
    screenshot(browser, "requests")


def dollars(text: str) -> Decimal:
    return Decimal(text.replace("$", "").replace(",", ""))


def message(driver, panel: str) -> str:
    return wait(driver, lambda d: d.find_element("id", f"{panel}-message").text, f"the message of #{panel}")


def test_the_overview_and_the_budgets_draw_the_forecast_the_api_gives(seeded, browser):
    base = seeded.gateway.url
    answer = httpx.get(f"{base}/admin/insight/forecast", headers={"authorization": f"Bearer {MASTER_KEY}"}, timeout=30)
    forecasts = answer.json()["forecasts"]
    month = forecasts[0]
    assert (month["scope"], month["budget_usd"], month["status"]) == ("global", None, "ok")  # 40 days of history
    log_in(browser, base, MASTER_KEY)
    browser.get(f"{base}/dashboard/overview?period=month")
    shown = table(browser, "forecast", rows=len(month["path"]) - 1)  # a row a day ahead, to the month's end
    last = dict(zip(shown["head"], shown["body"][-1]))
    # The forecast moves with the clock within the current hour: the page's is read a moment later.
    for name, value in (("Forecast spend", month["forecast_usd"]), ("80% low", month["intervals"][0]["low_usd"]),
                        ("80% high", month["intervals"][0]["high_usd"])):
        assert float(dollars(last[name])) == pytest.approx(float(value), rel=0.01, abs=1e-4), name
    assert {"spent", "forecast", "80% interval"} <= {trace["name"] for trace in chart(browser, "forecast")}
    assert message(browser, "forecast").startswith("Forecast for ")
    screenshot(browser, "overview-forecast")

    # The old row is one team's: its budget has 40 days of history, the other's a few minutes.
    ok, short = (next(f for f in forecasts if f["budget_usd"] is not None and (f["status"] == "ok") == want)
                 for want in (True, False))
    browser.get(f"{base}/dashboard/budgets")

    def panel_of(forecast: dict) -> str:
        return wait(browser, lambda d: d.execute_script(
            "const s = [...document.querySelectorAll('#burndowns section')].find((s) => s.dataset.title.startsWith("
            "arguments[0] + ' ')); return s ? s.id : null;", forecast["scope"]), f"{forecast['scope']}'s burn-down")

    panel = panel_of(ok)
    wait(browser, lambda d: any(t["name"] == "forecast" for t in chart(d, panel)), "the burn-down's forecast")
    remaining = {t["name"]: t for t in chart(browser, panel)}["forecast"]
    # What the forecast leaves of the budget by its period's end.
    assert remaining["y"][-1] == pytest.approx(float(ok["budget_usd"]) - float(ok["forecast_usd"]), rel=0.01, abs=1e-4)
    assert message(browser, panel).startswith("Forecast for ")
    assert message(browser, panel_of(short)) == f"No forecast: {short['reason']}."
    screenshot(browser, "budgets-forecast")


def test_a_viewer_key_sees_its_teams_numbers_only(seeded, browser):
    base = seeded.gateway.url
    log_in(browser, base, seeded.keys["search-viewer"])
    search = seeded.today("search")
    assert column(table(browser, "by-team", rows=1), "Cost") == {"search": usd(sum((r.cost_usd for r in search), Decimal(0)))}
    assert column(table(browser, "top-keys", rows=1), "Cost") == seeded.cost_by(lambda r: r.key_name, search)
    assert column(table(browser, "budgets", rows=1), "Budget") == {"team:search": "team:search"}
    assert browser.find_element("id", "team").get_attribute("disabled") == "true"
    assert "viewer · team search" in browser.find_element("id", "who").text
    screenshot(browser, "overview-viewer")
    refused = browser.execute_async_script(
        "const done = arguments[arguments.length - 1];"
        "fetch('/admin/insight/breakdown?by=team&team=support').then(async (r) => done([r.status, await r.text()]));")
    assert refused[0] == 403 and "0.0" not in refused[1]  # a refusal, never support's numbers
    browser.get(f"{base}/dashboard/requests")
    shown = table(browser, "requests")
    assert {row[shown["head"].index("Team")] for row in shown["body"]} == {"search"}
    browser.get(f"{base}/dashboard/sessions")
    live = table(browser, "live", rows=1)
    assert list(column(live, "Cost")) == ["run-3"]  # ticket-7 is team support's
    assert browser.find_elements("css selector", "#live button.act") == []  # a viewer has no actions


def test_numbers_refresh_by_themselves_without_reloading_the_page(seeded, browser):
    base = seeded.gateway.url
    log_in(browser, base, MASTER_KEY)
    before = browser.find_element("css selector", "#card-day .value")
    wait(browser, lambda d: before.text.startswith("$"), "today's spend")
    shown = before.text
    browser.execute_script("window.notReloaded = true;")
    with openai.OpenAI(base_url=base + "/v1", api_key=seeded.keys["search-app"], max_retries=0) as client:
        client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "one more"}], user="alice")
    flush(base)
    wait(browser, lambda d: before.text != shown, "today's spend to refresh by itself", timeout=25)
    assert browser.execute_script("return window.notReloaded === true")
    seeded.rows = read_ledger(seeded.database)


def test_light_dark_and_a_phone_sized_window(seeded, browser):
    base = seeded.gateway.url
    log_in(browser, base, MASTER_KEY)
    table(browser, "by-model")
    background = browser.execute_script("return getComputedStyle(document.body).backgroundColor")
    browser.find_element("id", "theme-toggle").click()
    wait(browser, lambda d: d.execute_script("return getComputedStyle(document.body).backgroundColor") != background,
         "the other theme")
    screenshot(browser, "overview-other-theme")
    browser.refresh()  # the choice is kept
    assert browser.execute_script("return document.documentElement.dataset.theme") in ("light", "dark")
    browser.find_element("id", "theme-toggle").click()
    browser.set_window_size(390, 844)
    try:
        browser.refresh()  # as a phone opens it
        table(browser, "by-model")
        chart(browser, "by-model")
        assert browser.execute_script("return document.documentElement.scrollWidth") <= 390 + 1  # nothing sticks out
        screenshot(browser, "overview-phone")
    finally:
        browser.set_window_size(1280, 800)


def test_logout_ends_the_login(seeded, browser):
    base = seeded.gateway.url
    log_in(browser, base, MASTER_KEY)
    browser.find_element("id", "logout").click()
    wait(browser, lambda d: urlsplit(d.current_url).path == "/dashboard/login", "the login form after logging out")
    browser.get(f"{base}/dashboard/overview")
    assert urlsplit(browser.current_url).path == "/dashboard/login"
    answer = browser.execute_async_script("const done = arguments[arguments.length - 1];"
                                          "fetch('/admin/insight/totals').then((r) => done(r.status));")
    assert answer == 401


def test_tokenbrake_dashboard_serves_the_same_pages_on_its_own(seeded, browser):
    standalone = ChildServer(["dashboard", "--config", str(seeded.config_path)], env={"TOKENBRAKE_MASTER_KEY": MASTER_KEY})
    try:
        log_in(browser, standalone.url, MASTER_KEY)
        today = seeded.today()
        assert column(table(browser, "by-model", rows=len(seeded.cost_by(lambda r: r.served_model, today))), "Cost") == \
            seeded.cost_by(lambda r: r.served_model, today)
        screenshot(browser, "standalone-overview")
        chat = httpx.post(f"{standalone.url}/v1/chat/completions", json={"model": "small", "messages": []},
                          headers={"authorization": f"Bearer {seeded.keys['search-app']}"})
        assert chat.status_code == 404  # it serves no models
    finally:
        standalone.stop()


def test_the_cli_makes_a_viewer_key_that_cannot_call_models(seeded):
    with openai.OpenAI(base_url=seeded.gateway.url + "/v1", api_key=seeded.keys["search-viewer"], max_retries=0) as client:
        with pytest.raises(openai.PermissionDeniedError, match="viewer key"):
            client.chat.completions.create(model="small", messages=[{"role": "user", "content": "hi"}])
    listed = subprocess.run([sys.executable, "-m", "tokenbrake.cli", "keys", "list", "--config", str(seeded.config_path)],
                            capture_output=True, text=True, check=True, timeout=60).stdout
    [line] = [line for line in listed.splitlines() if line.startswith("search-viewer ")]
    assert "none (viewer)" in line
    refused = subprocess.run([sys.executable, "-m", "tokenbrake.cli", "keys", "create", "--name", "no-team", "--role",
                              "viewer", "--config", str(seeded.config_path)], capture_output=True, text=True, timeout=60)
    assert refused.returncode != 0 and "give it the team" in refused.stderr
