"""Budget rules without a network: which counters a request counts against, what it may
cost, how far it is clamped, what a refusal says; and the Budgets stage on the in-process
store driven by a fake clock (downgrade, soft budgets, waiting, settling, period resets)."""

from __future__ import annotations

import asyncio
import contextlib
from datetime import UTC, datetime
from decimal import Decimal

import pytest
from limits_backends import FakeClock

from tokenbrake.admission.budget_rules import (
    ApplicableMemo,
    PossibleCall,
    affordable_output,
    applicable,
    merge,
    refusal,
    worst_case,
)
from tokenbrake.config import AlertsConfig, BudgetConfig, parse_config
from tokenbrake.core import Attribution, Endpoint, Format, GatewayError, RequestContext, Usage
from tokenbrake.limits import Window
from tokenbrake.limits.memory import MemoryStore
from tokenbrake.routing.targets import build_targets
from tokenbrake.scopes import budget_values, split_tenant
from tokenbrake.settlement.alerts import Alerts
from tokenbrake.settlement.pricing import PriceBook
from tokenbrake.stages.reserve_budget import Budgets, ThresholdDowngrade
from tokenbrake.storage.reports import usd
from tokenbrake.wire import request_size

# $0.001 per input token, $0.004 per output token; "cheap" a tenth of that.
RAW = {
    "upstreams": {"u": {"kind": "openai", "base_url": "http://127.0.0.1:9/v1"}},
    "models": {
        "big": {"upstream": "u", "price": {"input_per_mtok": 1000, "output_per_mtok": 4000}},
        "dear": {"upstream": "u", "price": {"input_per_mtok": 2000, "output_per_mtok": 8000}},
        "cheap": {"upstream": "u", "price": {"input_per_mtok": 100, "output_per_mtok": 400}},
        "big-then-dear": {"upstream": "u", "price": {"input_per_mtok": 1000, "output_per_mtok": 4000},
                          "fallbacks": ["dear"]},
    },
    "budgeting": {"min_output_tokens": 4, "max_wait_s": 0},
}


def config_with(budgets: list[dict], **budgeting):
    return parse_config({**RAW, "budgets": budgets, "budgeting": {**RAW["budgeting"], **budgeting}})


def budget(scope: str, amount: str = "1", **fields) -> BudgetConfig:
    return BudgetConfig(scope=scope, amount_usd=Decimal(amount), **fields)


VALUES = {"key": ["k1"], "team": ["search"], "user": ["ana"], "model": ["big"], "tag": ["feature=chat", "env=prod"]}


# -- which counters

def test_a_request_counts_against_the_budgets_whose_scope_it_is_in():
    found = applicable([budget("global"), budget("team:search"), budget("team:ads"), budget("user:*"),
                        budget("tag:*"), budget("model:big"), budget("model:cheap")], VALUES, "UTC")
    assert [a.counter.key for a in found] == ["global", "team:search", "user:ana", "tag:feature=chat", "tag:env=prod",
                                              "model:big"]


def test_soft_budgets_make_soft_counters_and_periods_make_windows():
    [soft, rolling] = applicable([budget("team:search", mode="soft", period="day"),
                                  budget("key:k1", period="rolling", rolling_s=3600)], VALUES, "Europe/Paris")
    assert not soft.counter.hard and soft.counter.window == Window("day", tz="Europe/Paris")
    assert rolling.counter.hard and rolling.counter.window == Window.rolling(3600)


def test_a_star_model_budget_names_one_counter_per_model_the_request_may_reach():
    found = applicable([budget("model:*")], {**VALUES, "model": ["big", "dear"]}, "UTC")
    assert [a.counter.key for a in found] == ["model:big", "model:dear"]


def test_two_budgets_naming_one_counter_keep_the_smaller_amount():
    [kept] = applicable([budget("tag:*", "9"), budget("tag:feature=chat", "2")], {"tag": ["feature=chat"]}, "UTC")
    assert kept.counter.limit == Decimal("2")


def test_remembered_budgets_are_those_the_request_counts_against_until_the_budgets_change():
    memo = ApplicableMemo("Europe/Paris", max_entries=3)
    budgets = [budget("team:search"), budget("user:*", period="day"), budget("tag:*")]
    requests = [{**VALUES, "user": [name]} for name in ("ana", "bob", "cy", "dee", "ana", "bob")]
    requests += [{**VALUES, "user": [], "tag": []}, {**VALUES, "team": ["ads"]}, VALUES]
    for values in requests:  # more distinct requests than the memo keeps, and some again
        assert memo(budgets, values) == applicable(budgets, values, "Europe/Paris")
    assert [a.counter.key for a in memo(budgets, VALUES)] == ["team:search", "user:ana", "tag:feature=chat",
                                                              "tag:env=prod"]
    reloaded = [budget("team:search", "0.5"), budget("model:big")]  # BudgetCache's next list
    assert [(a.counter.key, a.budget.amount_usd) for a in memo(reloaded, VALUES)] == [
        ("team:search", Decimal("0.5")), ("model:big", Decimal(1))]


# -- tenants: end users and tags are the client's word, so each tenant counts its own

def alice_of(**who) -> dict[str, list[str]]:
    return budget_values(RequestContext(format=Format.OPENAI, endpoint=Endpoint.CHAT, body={}, headers={},
                                        who=Attribution(user="alice", tags={"feature": "chat"}, **who)), ["big"])


def test_two_keys_of_different_teams_count_the_same_user_in_two_counters():
    per_user = [budget("user:*"), budget("user:alice"), budget("tag:*"), budget("tag:feature=chat")]
    a = applicable(per_user, alice_of(key_name="a", team="red"), "UTC")
    b = applicable(per_user, alice_of(key_name="b", team="blue"), "UTC")
    assert [x.counter.key for x in a] == ["team:red/user:alice", "team:red/tag:feature=chat"]
    assert [x.counter.key for x in b] == ["team:blue/user:alice", "team:blue/tag:feature=chat"]


def test_two_keys_of_one_team_share_its_users_counters():
    [a] = applicable([budget("user:*")], alice_of(key_name="a", team="red"), "UTC")
    [b] = applicable([budget("user:*")], alice_of(key_name="b", team="red"), "UTC")
    assert a.counter == b.counter


def test_a_key_with_no_team_is_its_own_tenant():
    keys = [applicable([budget("user:*")], alice_of(key_name=name), "UTC")[0].counter.key for name in ("bot", "cron")]
    assert keys == ["key:bot/user:alice", "key:cron/user:alice"]
    [team] = applicable([budget("user:*")], alice_of(key_name="x", team="bot"), "UTC")
    assert team.counter.key == "team:bot/user:alice"  # a team and a key of one name are two tenants


def test_a_rule_across_tenants_counts_every_tenants_user_in_one_counter():
    shared = [budget("user:*", across_tenants=True), budget("tag:feature=chat", across_tenants=True)]
    a = applicable(shared, alice_of(key_name="a", team="red"), "UTC")
    b = applicable(shared, alice_of(key_name="b"), "UTC")
    assert [x.counter.key for x in a] == [x.counter.key for x in b] == ["user:alice", "tag:feature=chat"]


def test_a_per_tenant_and_an_across_tenants_budget_both_hold():
    found = applicable([budget("user:*", "5"), budget("user:*", "50", across_tenants=True)],
                       alice_of(key_name="a", team="red"), "UTC")
    assert [(x.counter.key, x.counter.limit) for x in found] == [("team:red/user:alice", 5), ("user:alice", 50)]


def test_key_team_model_and_global_counters_are_those_they_always_were():
    found = applicable([budget("global"), budget("key:*"), budget("team:red"), budget("model:big")],
                       alice_of(key_name="a", team="red"), "UTC")
    assert [x.counter.key for x in found] == ["global", "key:a", "team:red", "model:big"]


def test_an_anonymous_request_has_no_tenant():
    [found] = applicable([budget("user:*")], alice_of(), "UTC")
    assert found.counter.key == "user:alice"


def test_a_tenant_name_cannot_be_made_to_meet_another_tenants_counter():
    """The client picks the user; a team named `a/user:b` and user `c` must not land where
    team `a` and user `b/user:c` do."""
    [odd] = applicable([budget("user:*")], {"tenant": ["team:a/user:b"], "user": ["c"]}, "UTC")
    [plain_] = applicable([budget("user:*")], {"tenant": ["team:a"], "user": ["b/user:c"]}, "UTC")
    assert odd.counter.key != plain_.counter.key
    assert split_tenant("user:*", odd.counter.key) == ("team:a/user:b", "user:c")
    assert split_tenant("user:*", plain_.counter.key) == ("team:a", "user:b/user:c")


def test_across_tenants_is_refused_on_a_scope_that_is_one_counter_for_everyone():
    with pytest.raises(ValueError, match="across_tenants: only user: and tag: scopes count per tenant"):
        budget("team:red", across_tenants=True)


async def test_one_tenants_alice_never_spends_anothers_and_a_refusal_shows_only_its_own_spend():
    h = Harness([{"scope": "user:*", "amount_usd": "0.18"}])  # one call's worst case: $0.168
    red, blue, blue_again = h.request(team="red"), h.request(team="blue"), h.request(team="blue")
    red.who.user = blue.who.user = blue_again.who.user = "alice"
    await h.call(red, output_tokens=40)
    blue_first = await h.call(blue, output_tokens=40)
    assert blue_first.body["max_tokens"] == 40  # whole: red's spend took nothing from blue's alice
    with pytest.raises(GatewayError) as refused:
        await h.stage.before(blue_again)
    assert f"for user:alice in team:blue cannot pay for this request: spent {usd(blue_first.cost)} of $0.18;" in \
        refused.value.message


def test_budgets_set_at_run_time_replace_the_configs_of_the_same_scope_and_period():
    merged = merge([budget("team:a", "1"), budget("team:b", "1")], [budget("team:a", "5"), budget("team:c", "3")])
    assert sorted((b.scope, b.amount_usd) for b in merged) == [("team:a", 5), ("team:b", 1), ("team:c", 3)]


# -- what it may cost

def test_worst_case_prices_the_dearest_target_that_may_serve():
    prices = PriceBook(config_with([]))
    assert worst_case(prices, [PossibleCall(("big",))], 10, 40) == Decimal("0.17")
    assert worst_case(prices, [PossibleCall(("big", "dear"))], 10, 40) == Decimal("0.34")


def test_worst_case_counts_input_at_the_cache_write_price_when_that_is_dearer():
    raw = {**RAW, "models": {"m": {"upstream": "u", "price": {"input_per_mtok": 1000, "output_per_mtok": 0,
                                                                   "cache_write_per_mtok": 1250}}}}
    assert PriceBook(parse_config(raw)).worst_case("m", 1000, 0) == Decimal("1.25")


def test_clamp_keeps_the_most_output_the_granted_amount_pays_for_rounding_down():
    prices = PriceBook(config_with([]))
    # $0.01 of input leaves $0.0899 for output at $0.004 a token: 22 tokens ($0.088), not 23.
    big, big_then_dear = [PossibleCall(("big",))], [PossibleCall(("big", "dear"))]
    assert affordable_output(prices, big, 10, Decimal("0.0999"), 1000) == 22
    assert affordable_output(prices, big, 10, Decimal("0.098"), 1000) == 22
    assert affordable_output(prices, big, 10, Decimal("5"), 40) == 40
    assert affordable_output(prices, big_then_dear, 10, Decimal("0.0999"), 1000) == 9  # at $0.008 a token


def test_money_is_shown_to_the_cent_and_to_every_nano_dollar_present():
    assert [usd(Decimal(v)) for v in ("49.98", "20", "0.0000042", "0.1234567891")] == \
        ["$49.98", "$20.00", "$0.0000042", "$0.123456789"]


def test_a_refusal_names_the_budget_its_spend_the_need_and_the_reset():
    from tokenbrake.limits import CounterStatus

    [applied] = applicable([budget("team:search", "50")], VALUES, "UTC")
    status = CounterStatus("team:search", Window("month"), Decimal(50), Decimal("49.99"), Decimal("0.005"),
                           Decimal("0.005"), datetime(2026, 11, 1, tzinfo=UTC))
    error = refusal(applied, status, Decimal("0.03"), datetime(2026, 10, 31, 23, 0, tzinfo=UTC))
    assert error.status == 429 and error.headers == {"retry-after": "3600"}
    assert error.message == (
        "Budget team:search (month) for team:search cannot pay for this request: spent $49.99 of $50.00, "
        "$0.005 held by requests in flight; this request needs at least $0.03; "
        "it resets at 2026-11-01T00:00:00+00:00 (in 3600s).")


# -- the stage

class Harness:
    def __init__(self, budgets: list[dict], **budgeting) -> None:
        self.config = config_with(budgets, **budgeting)
        self.clock = FakeClock()
        self.store = MemoryStore(self.clock)
        self.alerts = Alerts(AlertsConfig(), self.store, self.clock)
        self.prices = PriceBook(self.config)
        self.stage = Budgets(self.config, self.prices, self.store, self.alerts, clock=self.clock)
        self.downgrade = ThresholdDowngrade(self.stage)  # ahead of it in the pipeline
        self.targets = build_targets(self.config)

    def request(self, model: str = "big", max_tokens: int = 40, team: str = "search") -> RequestContext:
        ctx = RequestContext(format=Format.OPENAI, endpoint=Endpoint.CHAT, headers={},
                             body={"model": model, "max_tokens": max_tokens, "messages": [{"role": "user", "content": "hi"}]})
        ctx.who = Attribution(key_name="k1", team=team)
        ctx.requested_model, ctx.targets = model, list(self.targets[model])
        return ctx

    async def call(self, ctx: RequestContext, output_tokens: int | None = None) -> RequestContext:
        """Before, then a call that produced `output_tokens` (None: it failed), then after."""
        await self.downgrade.before(ctx)
        await self.stage.before(ctx)
        if output_tokens is not None:
            ctx.served = ctx.targets[0]
            ctx.usage = Usage(input_tokens=request_size.input_tokens(ctx), output_tokens=output_tokens)
            ctx.cost = self.prices.cost(ctx.served.name, ctx.usage)
        await self.stage.after(ctx)
        return ctx

    async def held(self, scope: str = "team:search", period: str = "month") -> Decimal:
        """Reserved by requests in flight on the budget."""
        [a] = applicable([budget(scope, period=period)], {"team": ["search"]}, "UTC")
        return (await self.store.status([a.counter]))[0].reserved

    async def spent(self, scope: str = "team:search", period: str = "month") -> Decimal:
        [a] = applicable([budget(scope, period=period)], {"team": ["search"]}, "UTC")
        return (await self.store.status([a.counter]))[0].spent


class NoStore:
    def __getattr__(self, name):
        raise AssertionError(f"the store was used ({name}) though no budget applies")


async def test_a_request_no_budget_applies_to_never_touches_the_store():
    h = Harness([{"scope": "team:ads", "amount_usd": 1}])
    h.stage.limits = NoStore()
    ctx = await h.call(h.request(), output_tokens=5)
    assert ctx.body["max_tokens"] == 40


async def test_the_actual_cost_is_settled_and_a_failed_call_settles_nothing():
    h = Harness([{"scope": "team:search", "amount_usd": 1}])
    ctx = await h.call(h.request(), output_tokens=10)
    assert await h.spent() == ctx.cost > 0
    await h.call(h.request(), output_tokens=None)
    assert await h.spent() == ctx.cost
    [status] = await h.store.status([applicable(h.stage.budgets.current, {"team": ["search"]}, "UTC")[0].counter])
    assert status.reserved == 0


async def test_a_worst_case_that_does_not_fit_is_clamped_to_what_remains():
    h = Harness([{"scope": "team:search", "amount_usd": "0.10"}])
    ctx = h.request(max_tokens=1000)
    await h.stage.before(ctx)
    input_cost = Decimal(ctx.input_tokens) / 1000
    assert ctx.body["max_tokens"] == int((Decimal("0.10") - input_cost) / Decimal("0.004"))


async def test_a_request_with_no_output_cap_is_held_to_the_one_its_reservation_paid_for():
    """Left uncapped, the upstream could answer at the model's own limit, past the worst case
    reserved at default_max_tokens; the cap goes in OpenAI's current field."""
    h = Harness([{"scope": "team:search", "amount_usd": 1000}])
    ctx = h.request()
    del ctx.body["max_tokens"]
    await h.stage.before(ctx)
    assert ctx.body["max_completion_tokens"] == h.config.models["big"].default_max_tokens
    assert "max_tokens" not in ctx.body


async def test_several_answers_reserve_their_output_each_and_share_a_clamp():
    """OpenAI's `n` answers may each use the whole cap: n=3 at 40 tokens reserves 120 tokens of
    output, and a clamp divides what the budget still pays for between the answers."""
    h = Harness([{"scope": "team:search", "amount_usd": 1000}])
    one, three = h.request(max_tokens=40), h.request(max_tokens=40)
    three.body["n"] = 3
    await h.stage.before(one)
    reserved_one = await h.held()
    await h.stage.before(three)
    output_price = Decimal(4000) / 1_000_000
    assert await h.held() - reserved_one == reserved_one + 2 * 40 * output_price

    tight = Harness([{"scope": "team:search", "amount_usd": "0.30"}])
    ctx = tight.request(max_tokens=1000)
    ctx.body["n"] = 3
    await tight.stage.before(ctx)
    input_cost = Decimal(ctx.input_tokens) / 1000
    assert ctx.body["max_tokens"] == int((Decimal("0.30") - input_cost) / output_price) // 3


async def test_below_the_floor_the_request_is_refused_with_a_rate_limit_error():
    h = Harness([{"scope": "team:search", "amount_usd": "0.01"}])
    with pytest.raises(GatewayError, match=r"Budget team:search \(month\)") as refused:
        await h.stage.before(h.request())
    assert refused.value.status == 429 and refused.value.limit == "budget:team:search"


async def test_the_budget_of_a_model_a_request_may_fall_back_to_is_reserved_on_and_charged():
    h = Harness([{"scope": "model:dear", "amount_usd": 1}])
    ctx = h.request("big-then-dear")
    await h.stage.before(ctx)
    [a] = applicable(h.stage.budgets.current, {"model": ["dear"]}, "UTC")
    assert (await h.store.status([a.counter]))[0].reserved > 0
    ctx.served, ctx.cost = h.targets["dear"][0], Decimal("0.1")  # big failed; dear answered
    await h.stage.after(ctx)
    assert (await h.store.status([a.counter]))[0].spent == Decimal("0.1")


async def test_a_soft_budget_never_refuses_but_is_charged():
    h = Harness([{"scope": "team:search", "amount_usd": "0.01", "mode": "soft"}])
    for _ in range(3):
        ctx = await h.call(h.request(), output_tokens=40)
        assert ctx.body["max_tokens"] == 40
    assert await h.spent() == 3 * ctx.cost


async def test_a_downgrade_budget_serves_its_cheaper_model_once_the_remainder_is_low():
    h = Harness([{"scope": "team:search", "amount_usd": "1", "mode": "downgrade", "downgrade_to": "cheap",
                  "downgrade_below_usd": "0.5"}])
    first = await h.call(h.request(), output_tokens=40)
    assert first.targets[0].name == "big" and not first.response_headers
    for _ in range(3):
        await h.call(h.request(), output_tokens=40)  # $0.16+ each: $0.5 remains no longer
    downgraded = await h.call(h.request(), output_tokens=40)
    assert downgraded.targets[0].name == "cheap"
    assert downgraded.response_headers == {"x-tokenbrake-downgraded": "team:search"}


async def test_a_downgrade_budget_that_cannot_pay_for_the_model_downgrades_instead_of_refusing():
    h = Harness([{"scope": "team:search", "amount_usd": "0.02", "mode": "downgrade", "downgrade_to": "cheap",
                  "downgrade_below_usd": "0"}])
    ctx = await h.call(h.request(max_tokens=40), output_tokens=40)
    assert ctx.targets[0].name == "cheap" and ctx.body["max_tokens"] == 40


async def test_a_downgraded_request_that_still_does_not_fit_is_refused():
    h = Harness([{"scope": "team:search", "amount_usd": "0.001", "mode": "downgrade", "downgrade_to": "cheap",
                  "downgrade_below_usd": "0.5"}])
    with pytest.raises(GatewayError, match="Budget team:search"):
        await h.stage.before(h.request())


async def test_a_request_waits_for_requests_in_flight_instead_of_being_clamped():
    h = Harness([{"scope": "team:search", "amount_usd": "0.2"}], max_wait_s=2)
    holder = h.request()
    await h.stage.before(holder)  # holds ~$0.17 of $0.20
    waiter = h.request()
    waiting = asyncio.create_task(h.stage.before(waiter))
    await asyncio.sleep(0.05)
    assert not waiting.done()
    holder.served, holder.cost = holder.targets[0], Decimal("0.02")
    await h.stage.after(holder)
    await asyncio.wait_for(waiting, 2)
    assert waiter.body["max_tokens"] == 40  # whole, not clamped


async def test_a_period_ends_at_the_calendar_boundary_in_the_configured_zone():
    h = Harness([{"scope": "team:search", "amount_usd": "0.18", "period": "day"}], timezone="America/New_York")
    h.clock.set(datetime(2026, 10, 16, 3, 58, tzinfo=UTC))  # 23:58 in New York
    await h.call(h.request(), output_tokens=40)
    with pytest.raises(GatewayError, match=r"resets at 2026-10-16T00:00:00-04:00 \(in 120s\)"):
        await h.stage.before(h.request())
    h.clock.advance(120)  # midnight in New York: a new day, an empty budget
    ctx = await h.call(h.request(), output_tokens=40)
    assert ctx.body["max_tokens"] == 40


async def test_alert_thresholds_fire_once_per_period():
    h = Harness([{"scope": "team:search", "amount_usd": "1", "alert_at": [0.5, 1.0], "period": "month"}])
    fired: list[tuple[str, float]] = []

    async def send(payload, what):  # the webhook, after the alert was claimed in the shared state
        fired.append((payload["period_key"], payload["threshold"]))

    h.alerts.config = AlertsConfig(webhook_url="http://127.0.0.1:9/hook")
    h.alerts._send = send
    h.clock.set(datetime(2026, 10, 30, tzinfo=UTC))
    for _ in range(8):  # ~$0.17 each: crosses 50% on the 3rd; the 6th is clamped, the rest refused
        with contextlib.suppress(GatewayError):
            await h.call(h.request(), output_tokens=40)
        await asyncio.sleep(0)
    assert fired == [("budget:team:search:2026-10-01T00:00+00:00", 0.5),
                     ("budget:team:search:2026-10-01T00:00+00:00", 1.0)]
    h.clock.set(datetime(2026, 11, 2, tzinfo=UTC))  # a new month
    for _ in range(4):
        await h.call(h.request(), output_tokens=40)
        await asyncio.sleep(0)
    assert fired[2:] == [("budget:team:search:2026-11-01T00:00+00:00", 0.5)]


async def test_an_alert_claimed_by_another_replica_is_not_sent_again():
    h = Harness([{"scope": "team:search", "amount_usd": "1", "alert_at": [0.1]}])
    other = Alerts(AlertsConfig(), h.store, h.clock)  # a second replica, sharing the state
    sent: list[str] = []
    for alerts in (h.alerts, other):
        alerts.config = AlertsConfig(webhook_url="http://127.0.0.1:9/hook")

        async def send(payload, what):
            sent.append(payload["counter"])

        alerts._send = send
    [applied] = applicable(h.stage.budgets.current, {"team": ["search"]}, "UTC")
    [status] = await h.store.status([applied.counter])
    for alerts in (h.alerts, other):
        alerts.observe(applied.budget, status, Decimal("0.5"))
        await alerts.aclose()
    assert sent == ["team:search"]


class SlowAnswer(MemoryStore):
    """The store's reservation is made, but its answer is slow to reach the gateway, as a
    Redis reply is: a client that leaves then cancels the request mid-reserve."""

    async def reserve(self, *args, **kwargs):
        grant = await super().reserve(*args, **kwargs)
        await asyncio.sleep(10)
        return grant


async def test_a_request_cancelled_mid_reserve_leaves_nothing_held():
    h = Harness([{"scope": "team:search", "amount_usd": 1}])
    h.store = h.stage.limits = SlowAnswer(h.clock)
    task = asyncio.create_task(h.stage.before(h.request()))
    await asyncio.sleep(0.05)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    [status] = await h.store.status([applicable(h.stage.budgets.current, {"team": ["search"]}, "UTC")[0].counter])
    assert status.reserved == 0 and status.spent == 0
