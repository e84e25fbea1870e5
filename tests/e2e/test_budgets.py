"""Budgets through real gateways and the official SDKs: a hard budget is never exceeded by
concurrent, streamed and cancelled requests, in one process or two sharing Redis, and is
nearly used up (not refused early); its spend survives a restart; refusals, clamps,
downgrades and alerts are what the SDK user and the operator see."""

import asyncio
import json
import random
import secrets
import subprocess
import sys
import threading
import uuid
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import anthropic
import httpx
import openai
import pytest
import redis
from gateway_setup import MASTER_KEY, create_key, gateway_config, write_config
from services import redis_url

from tokenbrake.storage import open_database
from tokenbrake.storage.reports import usd
from tokenbrake.tools.launch import ChildServer

REDIS_URL = redis_url()
# $0.001 per input token, $0.004 per output token: a call of ~15 input and 40 output tokens
# has a worst case of about $0.18.
METERED = {"input_per_mtok": 1000, "output_per_mtok": 4000}


def user(text: str) -> list[dict]:
    return [{"role": "user", "content": text}]


def budget_setup(emulator, tmp_path, state: str, budgets: list[dict], **extra) -> tuple[dict, object, str]:
    """A config with metered models, the given budgets and limits state; and a key on team 'proof'."""
    config = gateway_config(emulator.url, f"sqlite:///{tmp_path / 'ledger.db'}")
    config["models"]["metered"] = {"upstream": "emu-openai", "model": "metered-oa", "price": METERED}
    config["models"]["metered-claude"] = {"upstream": "emu-anthropic", "model": "metered-an", "price": METERED}
    config["ledger"] = {"flush_interval_s": 0.2}
    config["state"] = state
    config["budgeting"] = {"min_output_tokens": 4, "refresh_s": 0.2}
    config["budgets"] = budgets
    config.update(extra)
    path = write_config(tmp_path, config)
    return config, path, create_key(path, "budgeted", "--team", "proof")


def start(path, **env) -> ChildServer:
    return ChildServer(["serve", "--config", str(path)], quiet=True,
                       env={"TOKENBRAKE_MASTER_KEY": MASTER_KEY, **env})


def ledger_cost(database_url: str, key_name: str) -> tuple[Decimal, int]:
    """The settled spend of a key read from the ledger (after the gateways have stopped)."""
    async def read():
        db = await open_database(database_url)
        try:
            return [g for g in await db.ledger.usage("key") if g.group == key_name]
        finally:
            await db.close()

    [group] = asyncio.run(read())
    return group.cost_usd, group.requests


async def one_call(i: int, oa: openai.AsyncOpenAI, an: anthropic.AsyncAnthropic, marker: str) -> str:
    """A call of one of five kinds with a random reply length; returns how it ended."""
    text = f"[[emulator: id={marker}-{i} tokens={random.randint(1, 60)}]]"
    kind = i % 5
    try:
        if kind == 0:
            await oa.chat.completions.create(model="metered", max_tokens=40, messages=user(text))
        elif kind == 1:
            stream = await oa.chat.completions.create(model="metered", max_tokens=40, messages=user(text), stream=True)
            async for _ in stream:
                pass
        elif kind == 2:
            async with an.messages.stream(model="metered-claude", max_tokens=40, messages=user(text)) as stream:
                await stream.get_final_message()
        elif kind == 3:
            await an.messages.create(model="metered-claude", max_tokens=40, messages=user(text))
        else:  # cancelled by the client after a few chunks
            stream = await oa.chat.completions.create(
                model="metered", max_tokens=40, stream=True,
                messages=user(f"[[emulator: id={marker}-{i} tokens=40 tps=400]]"))
            async for _ in stream:
                if random.random() < 0.3:
                    break
            await stream.close()
            return "cancelled"
        return "ok"
    except (openai.RateLimitError, anthropic.RateLimitError) as error:
        assert "Budget team:proof (month)" in str(error)
        return "refused"


async def traffic(urls: list[str], key: str, count: int) -> list[str]:
    marker = uuid.uuid4().hex[:8]
    clients = [(openai.AsyncOpenAI(base_url=url + "/v1", api_key=key, max_retries=0),
                anthropic.AsyncAnthropic(base_url=url, api_key=key, max_retries=0)) for url in urls]
    try:
        return await asyncio.gather(*(one_call(i, *clients[i % len(clients)], marker) for i in range(count)))
    finally:
        for oa, an in clients:
            await oa.close()
            await an.close()


def admin_budgets(url: str) -> list[dict]:
    return httpx.get(url + "/admin/budgets", headers={"authorization": f"Bearer {MASTER_KEY}"}).json()["data"]


HARD_20 = [{"scope": "team:proof", "amount_usd": 20, "period": "month"}]


def assert_budget_held(outcomes: list[str], spent: Decimal, limit: Decimal) -> None:
    assert outcomes.count("refused") > 100, outcomes.count("refused")  # demand was well over the budget
    assert spent <= limit, spent
    assert spent >= limit * Decimal("0.95"), spent


def test_500_concurrent_calls_never_exceed_a_hard_budget_and_nearly_use_it(emulator, tmp_path):
    config, path, key = budget_setup(emulator, tmp_path, f"memory:///{tmp_path / 'limits.json'}", HARD_20)
    with start(path) as gateway:
        outcomes = asyncio.run(traffic([gateway.url], key, 500))
        [status] = admin_budgets(gateway.url)
    spent, _ = ledger_cost(config["database"], "budgeted")
    assert_budget_held(outcomes, spent, Decimal(20))
    assert Decimal(status["counters"][0]["spent_usd"]) == spent  # the counter agrees with the ledger


def test_two_gateways_sharing_redis_never_exceed_a_hard_budget_together(emulator, tmp_path):
    prefix = f"tbe2e-{secrets.token_hex(6)}:"
    config, path, key = budget_setup(emulator, tmp_path, f"{REDIS_URL}?prefix={prefix}", HARD_20)
    try:
        with start(path) as first, start(path) as second:
            outcomes = asyncio.run(traffic([first.url, second.url], key, 500))
        spent, _ = ledger_cost(config["database"], "budgeted")
        assert_budget_held(outcomes, spent, Decimal(20))
    finally:
        client = redis.Redis.from_url(REDIS_URL)
        keys = list(client.scan_iter(match=prefix + "*"))
        if keys:
            client.delete(*keys)
        client.close()


def test_a_restart_keeps_the_periods_spend(emulator, tmp_path):
    state = f"memory:///{tmp_path / 'limits.json'}"
    _, path, key = budget_setup(emulator, tmp_path, state, [{"scope": "team:proof", "amount_usd": 1, "period": "day"}])
    with start(path) as gateway:
        client = openai.OpenAI(base_url=gateway.url + "/v1", api_key=key, max_retries=0)
        for _ in range(4):  # 15 + 40 tokens each: about $0.175 a call
            client.chat.completions.create(model="metered", max_tokens=40, messages=user("[[emulator: tokens=40]]"))
        before = admin_budgets(gateway.url)[0]["counters"][0]["spent_usd"]
    with start(path) as restarted:
        assert admin_budgets(restarted.url)[0]["counters"][0]["spent_usd"] == before
        client = openai.OpenAI(base_url=restarted.url + "/v1", api_key=key, max_retries=0)
        with pytest.raises(openai.RateLimitError, match=r"Budget team:proof \(day\)"):
            for _ in range(3):  # one more whole call fits, then one clamped, then none
                client.chat.completions.create(model="metered", max_tokens=40, messages=user("[[emulator: tokens=40]]"))
    assert Decimal(before) > Decimal("0.6")


def test_a_refusal_is_each_sdks_rate_limit_error_naming_budget_spend_need_and_reset(emulator, tmp_path):
    _, path, key = budget_setup(emulator, tmp_path, "memory://",
                                [{"scope": "team:proof", "amount_usd": "0.01", "period": "month"}])
    with start(path) as gateway:
        oa = openai.OpenAI(base_url=gateway.url + "/v1", api_key=key, max_retries=0)
        with pytest.raises(openai.RateLimitError) as refused:
            oa.chat.completions.create(model="metered", max_tokens=40, messages=user("hello"))
        message = refused.value.message
        assert "Budget team:proof (month)" in message and "spent $0.00 of $0.01" in message
        assert "needs at least $0.0" in message and "resets at" in message
        assert int(refused.value.response.headers["retry-after"]) > 0
        an = anthropic.Anthropic(base_url=gateway.url, api_key=key, max_retries=0)
        with pytest.raises(anthropic.RateLimitError, match=r"Budget team:proof \(month\)"):
            an.messages.create(model="metered-claude", max_tokens=40, messages=user("hello"))


def test_a_request_whose_worst_case_does_not_fit_is_served_with_a_lower_max_tokens(emulator, tmp_path):
    # ~12 input tokens ($0.012) + 1000 output tokens ($4) do not fit in $0.10; ~22 output tokens do.
    _, path, key = budget_setup(emulator, tmp_path, "memory://",
                                [{"scope": "team:proof", "amount_usd": "0.10", "period": "month"}])
    marker = uuid.uuid4().hex[:8]
    with start(path) as gateway:
        oa = openai.OpenAI(base_url=gateway.url + "/v1", api_key=key, max_retries=0)
        reply = oa.chat.completions.create(model="metered", max_tokens=1000,
                                           messages=user(f"[[emulator: id={marker} tokens=500]]"))
    [seen] = [r for r in httpx.get(emulator.url + "/_emulator/requests").json() if marker in json.dumps(r["body"])]
    sent_cap = seen["body"]["max_completion_tokens"]  # "metered" is on OpenAI's API (the emulator posing as it)
    assert 4 <= sent_cap < 30
    assert reply.usage.completion_tokens == sent_cap
    assert reply.choices[0].finish_reason == "length"


def test_a_downgrade_budget_serves_the_cheaper_model_once_the_remainder_is_low(emulator, tmp_path):
    budgets = [{"scope": "team:proof", "amount_usd": "0.50", "period": "month", "mode": "downgrade",
                "downgrade_to": "small", "downgrade_below_usd": "0.30"}]
    _, path, key = budget_setup(emulator, tmp_path, "memory://", budgets)
    with start(path) as gateway:
        oa = openai.OpenAI(base_url=gateway.url + "/v1", api_key=key, max_retries=0)
        call = lambda: oa.chat.completions.with_raw_response.create(  # noqa: E731
            model="metered", max_tokens=40, messages=user("[[emulator: tokens=40]]"))
        first = call()
        assert first.headers["x-tokenbrake-served-by"] == "metered"
        assert "x-tokenbrake-downgraded" not in first.headers
        for _ in range(2):
            call()
        downgraded = call()  # three calls of ~$0.175 leave less than $0.30
        assert downgraded.headers["x-tokenbrake-served-by"] == "small"
        assert downgraded.headers["x-tokenbrake-downgraded"] == "team:proof"


def test_a_downgraded_request_is_held_to_the_cheaper_models_caps_and_rate_limits(emulator, tmp_path):
    """The downgrade is decided before the caps and rate limits: they count the model that
    serves the request (say, a local server that takes only so many), not the one it asked for."""
    budgets = [{"scope": "team:proof", "amount_usd": "0.10", "period": "month", "mode": "downgrade",
                "downgrade_to": "small", "downgrade_below_usd": "0.20"}]  # below its threshold from the start
    limits = [{"scope": "model:small", "max_output_tokens": 7, "requests_per_minute": 1}]
    _, path, key = budget_setup(emulator, tmp_path, "memory://", budgets, limits=limits)
    marker = uuid.uuid4().hex[:8]
    with start(path) as gateway:
        oa = openai.OpenAI(base_url=gateway.url + "/v1", api_key=key, max_retries=0)
        reply = oa.chat.completions.with_raw_response.create(
            model="metered", max_tokens=40, messages=user(f"[[emulator: id={marker} tokens=40]]"))
        assert reply.headers["x-tokenbrake-served-by"] == "small"
        assert reply.parse().usage.completion_tokens == 7  # small's max_output_tokens
        [seen] = [r for r in httpx.get(emulator.url + "/_emulator/requests").json() if marker in json.dumps(r["body"])]
        assert seen["body"]["max_tokens"] == 7
        with pytest.raises(openai.RateLimitError, match="model:small"):  # small's requests_per_minute
            oa.chat.completions.create(model="metered", max_tokens=40, messages=user("[[emulator: tokens=4]]"))


class Receiver:
    """A real HTTP server on a free loopback port that keeps every JSON body POSTed to it."""

    def __init__(self) -> None:
        received = self.received = []

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                received.append(json.loads(self.rfile.read(int(self.headers["content-length"]))))
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def test_alerts_reach_a_webhook_once_per_threshold_and_period(emulator, tmp_path):
    receiver = Receiver()
    budgets = [{"scope": "team:proof", "amount_usd": 1, "period": "month", "alert_at": [0.5, 0.8]}]
    try:
        _, path, key = budget_setup(emulator, tmp_path, "memory://", budgets,
                                    alerts={"webhook_url": receiver.url, "timeout_s": 2})
        with start(path) as gateway:
            oa = openai.OpenAI(base_url=gateway.url + "/v1", api_key=key, max_retries=0)
            for _ in range(5):  # ~$0.175 each: past 50% on the 3rd, past 80% on the 5th
                oa.chat.completions.create(model="metered", max_tokens=40, messages=user("[[emulator: tokens=40]]"))
        fired = sorted((alert["budget"], alert["threshold"]) for alert in receiver.received)
        assert fired == [("team:proof", 0.5), ("team:proof", 0.8)]
        assert all(alert["period"] == "month" and Decimal(alert["spent_usd"]) >= Decimal("0.5")
                   for alert in receiver.received)
    finally:
        receiver.close()


def cli(path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "tokenbrake.cli", "budgets", *args, "--config", str(path)],
                          capture_output=True, text=True, timeout=60)


def test_a_budget_set_with_the_cli_takes_effect_without_a_restart(emulator, tmp_path):
    _, path, key = budget_setup(emulator, tmp_path, f"memory:///{tmp_path / 'limits.json'}", [])
    with start(path) as gateway:
        oa = openai.OpenAI(base_url=gateway.url + "/v1", api_key=key, max_retries=0)
        oa.chat.completions.create(model="metered", max_tokens=40, messages=user("hello"))
        done = cli(path, "set", "--scope", "team:proof", "--amount", "0.01", "--period", "week")
        assert done.returncode == 0, done.stderr
        listed = json.loads(cli(path, "list", "--json").stdout)
        assert [(b["scope"], b["period"], b["amount_usd"]) for b in listed] == [("team:proof", "week", "0.01")]
        for _ in range(50):  # the gateway reloads budgets every 0.2 s
            try:
                oa.chat.completions.create(model="metered", max_tokens=40, messages=user("hello"))
            except openai.RateLimitError as refused:
                assert "Budget team:proof (week)" in refused.message
                break
            asyncio.run(asyncio.sleep(0.1))
        else:
            pytest.fail("the budget set at run time was never enforced")


def test_the_admin_api_sets_and_lists_budgets_with_their_spend(emulator, tmp_path):
    _, path, key = budget_setup(emulator, tmp_path, "memory://", HARD_20)
    headers = {"authorization": f"Bearer {MASTER_KEY}"}
    with start(path) as gateway:
        created = httpx.post(gateway.url + "/admin/budgets", headers=headers,
                             json={"scope": "user:*", "amount_usd": "5", "period": "day", "mode": "soft"})
        assert created.status_code == 201, created.text
        assert httpx.post(gateway.url + "/admin/budgets", json={"scope": "global", "amount_usd": 1}).status_code == 401
        bad = httpx.post(gateway.url + "/admin/budgets", headers=headers, json={"scope": "team", "amount_usd": 1})
        assert bad.status_code == 400 and "scope" in bad.json()["error"]["message"]
        openai.OpenAI(base_url=gateway.url + "/v1", api_key=key, max_retries=0).chat.completions.create(
            model="metered", max_tokens=40, messages=user("hello"), user="ana")
        listed = {b["scope"]: b for b in admin_budgets(gateway.url)}
        deleted = httpx.delete(gateway.url + "/admin/budgets", headers=headers, params={"scope": "user:*", "period": "day"})
        assert deleted.status_code == 200, deleted.text
        again = httpx.delete(gateway.url + "/admin/budgets", headers=headers, params={"scope": "user:*", "period": "day"})
        assert again.status_code == 404
        after_delete = {b["scope"] for b in admin_budgets(gateway.url)}
    assert after_delete == {"team:proof"}
    assert set(listed) == {"team:proof", "user:*"}
    [counter] = listed["team:proof"]["counters"]
    assert Decimal(counter["spent_usd"]) > 0 and counter["resets_at"]
    assert listed["user:*"]["mode"] == "soft" and listed["user:*"]["source"] == "runtime"
    [ana] = listed["user:*"]["counters"]  # a `*` budget lists the members that spent this period
    assert ana["counter"] == "user:ana" and Decimal(ana["spent_usd"]) == Decimal(counter["spent_usd"])


def spend_until_refused(call) -> str:
    """Calls until the budget refuses; the refusal's message."""
    for _ in range(10):
        try:
            call()
        except (openai.RateLimitError, anthropic.RateLimitError) as refused:
            return refused.message
    pytest.fail("the budget never refused")


def test_one_tenants_end_user_never_spends_the_budget_of_another_tenants_user_of_that_name(emulator, tmp_path):
    """Key A says its user is alice; key B (another team) has a user alice too. A spending
    all its alice's `user:*` budget leaves B's alice whole, and B's refusal shows B's spend."""
    config, path, _ = budget_setup(emulator, tmp_path, "memory://",
                                   [{"scope": "user:*", "amount_usd": "0.40", "period": "month"}])
    red, blue = create_key(path, "red-app", "--team", "red"), create_key(path, "blue-app", "--team", "blue")
    with start(path) as gateway:
        oa = openai.OpenAI(base_url=gateway.url + "/v1", api_key=red, max_retries=0,
                           default_headers={"X-Tokenbrake-User": "alice"})
        an = anthropic.Anthropic(base_url=gateway.url, api_key=blue, max_retries=0)
        red_refusal = spend_until_refused(lambda: oa.chat.completions.create(
            model="metered", max_tokens=40, messages=user("[[emulator: tokens=40]]")))

        def blue_call():
            return an.messages.create(model="metered-claude", max_tokens=40, metadata={"user_id": "alice"},
                                      messages=user("[[emulator: tokens=40]]"))

        assert blue_call().usage.output_tokens == 40  # whole: red's spend took nothing from it
        blue_refusal = spend_until_refused(blue_call)
        listed = {(c["counter"], c["tenant"]): Decimal(c["spent_usd"]) for c in admin_budgets(gateway.url)[0]["counters"]}
    blue_spent, _ = ledger_cost(config["database"], "blue-app")
    red_spent, _ = ledger_cost(config["database"], "red-app")
    assert "for user:alice in team:red cannot pay" in red_refusal
    assert f"for user:alice in team:blue cannot pay for this request: spent {usd(blue_spent)} of $0.40" in blue_refusal
    assert "red" not in blue_refusal
    assert listed == {("user:alice", "team:red"): red_spent, ("user:alice", "team:blue"): blue_spent}
    assert Decimal("0.3") < blue_spent <= Decimal("0.40") and Decimal("0.3") < red_spent <= Decimal("0.40")
    printed = cli(path, "list").stdout  # the operator's table: one line per tenant's alice
    assert "  user:alice in team:red " in printed and "  user:alice in team:blue " in printed


def test_a_budget_across_tenants_counts_every_tenants_user_of_that_name_together(emulator, tmp_path):
    """Set at run time with `budgets set --across-tenants`: one counter for every tenant's alice."""
    _, path, _ = budget_setup(emulator, tmp_path, "memory://", [])
    done = cli(path, "set", "--scope", "user:alice", "--amount", "0.20", "--across-tenants")
    assert done.returncode == 0 and "across tenants" in done.stdout, done.stderr
    [stored] = json.loads(cli(path, "list", "--json").stdout)
    assert (stored["scope"], stored["across_tenants"]) == ("user:alice", True)
    red, blue = create_key(path, "red-app", "--team", "red"), create_key(path, "blue-app")
    with start(path) as gateway:
        def call(key):
            return openai.OpenAI(base_url=gateway.url + "/v1", api_key=key, max_retries=0).chat.completions.create(
                model="metered", max_tokens=40, user="alice", messages=user("[[emulator: tokens=40]]"))

        call(red)  # ~$0.175 of $0.20
        with pytest.raises(openai.RateLimitError) as refused:
            call(blue)
        [row] = admin_budgets(gateway.url)
    assert "Budget user:alice (month) for user:alice cannot pay for this request: spent $0.1" in refused.value.message
    assert [(c["counter"], c["tenant"]) for c in row["counters"]] == [("user:alice", None)]
