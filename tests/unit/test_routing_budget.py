"""A cascade may call each of its tiers (any of a tier's fallbacks answering) and its grader
on each answer it may reject: a budget reserves for all of those calls, not the dearest alone,
and a model's budget counts every model the request may reach. First the worst case and the
stages alone; then whole cascades through the pipeline against the emulator: a hard budget
is never exceeded."""

import json
from decimal import Decimal

import pytest

from tokenbrake.admission.budget_rules import PossibleCall, affordable_output, window, worst_case
from tokenbrake.config import BudgetConfig, parse_config
from tokenbrake.core import Attribution, Endpoint, Format, RequestContext
from tokenbrake.gateway.pipeline import Pipeline
from tokenbrake.limits import BudgetCounter, CounterStatus, LimitStore
from tokenbrake.limits.memory import MemoryStore
from tokenbrake.routing.cascade import CascadeCall
from tokenbrake.routing.checks import GRADER_MAX_TOKENS, grader_request
from tokenbrake.routing.prompt import prompt_text
from tokenbrake.routing.targets import build_targets
from tokenbrake.settlement.alerts import Alerts
from tokenbrake.settlement.pricing import PriceBook
from tokenbrake.stages.price_call import PriceCall
from tokenbrake.stages.reserve_budget import Budgets
from tokenbrake.stages.resolve_model import ResolveModel
from tokenbrake.stages.route import Route
from tokenbrake.upstream.call import UpstreamCall
from tokenbrake.upstream.dispatch import Dispatcher
from tokenbrake.upstream.providers import build_providers
from tokenbrake.wire.tokens import count_openai_messages, count_text

PRICES = PriceBook(parse_config({
    "upstreams": {"u": {"kind": "openai", "base_url": "http://127.0.0.1:9/v1"}},
    "models": {"small": {"upstream": "u", "price": {"input_per_mtok": 1, "output_per_mtok": 2}},
               "big": {"upstream": "u", "price": {"input_per_mtok": 10, "output_per_mtok": 40}}},
}))


ONE_CALL = [PossibleCall(("small", "big"))]  # big only if small fails
TIERS = [PossibleCall(("small",)), PossibleCall(("big",))]  # small, then big if its answer will not do


def test_fallbacks_cost_the_dearest_a_cascade_the_sum():
    # 1000 in, 100 out: small $0.0012, big $0.014
    assert worst_case(PRICES, ONE_CALL, 1000, 100) == Decimal("0.014")
    assert worst_case(PRICES, TIERS, 1000, 100) == Decimal("0.0152")


def test_a_cascade_affords_fewer_output_tokens_from_the_same_amount():
    amount = Decimal("0.014")
    assert affordable_output(PRICES, ONE_CALL, 1000, amount, 500) == 100
    assert affordable_output(PRICES, TIERS, 1000, amount, 500) == 71  # (0.014 - 0.011) / $42 per M


# -- the stages: what a cascade reserves, and on which budgets

def price(input_per_mtok: float, output_per_mtok: float) -> dict:
    return {"input_per_mtok": input_per_mtok, "output_per_mtok": output_per_mtok}


def cascade(*tiers: str, check: dict) -> dict:
    return {"tiers": list(tiers), "strategy": "cascade", "checks": [check]}


def config(base_url: str, *budgets: dict):
    """Cascades whose cheap answer is graded by a dear judge, checked by a regex, or served
    by a tier whose fallback is dear."""
    return parse_config({
        "upstreams": {"u": {"kind": "openai", "base_url": base_url}},
        "models": {"small": {"upstream": "u", "price": price(1, 2)},
                   "big": {"upstream": "u", "price": price(10, 40)},
                   "dear": {"upstream": "u", "price": price(20, 80)},
                   "small-then-dear": {"upstream": "u", "price": price(1, 2), "fallbacks": ["dear"]},
                   "judge": {"upstream": "u", "price": price(1000, 1000)}},
        "routes": {"graded": cascade("small", "big", check={"grader": "judge"}),
                   "checked": cascade("small", "big", check={"regex": "^OK"}),
                   "shaky": cascade("small-then-dear", "big", check={"regex": "^OK"})},
        "budgets": list(budgets),
        "budgeting": {"max_wait_s": 0},
    })


def request(model: str, text: str = "Is it?", max_tokens: int = 20) -> RequestContext:
    body = {"model": model, "max_tokens": max_tokens, "messages": [{"role": "user", "content": text}]}
    return RequestContext(format=Format.OPENAI, endpoint=Endpoint.CHAT, headers={}, body=body,
                          who=Attribution(key_name="k", team="t"))


async def status(store: LimitStore, scope: str) -> CounterStatus:
    budget = BudgetConfig(scope=scope, amount_usd=Decimal(1))
    [row] = await store.status([BudgetCounter(scope, budget.amount_usd, window(budget, "UTC"))])
    return row


class Admission:
    """The stages up to the budgets, in-process, on the in-process store (no upstream)."""

    def __init__(self, *budgets: dict) -> None:
        self.config = config("http://127.0.0.1:9/v1", *budgets)
        self.prices = PriceBook(self.config)
        self.store = MemoryStore()
        self.stages = [ResolveModel(self.config), Route(self.config, self.prices),
                       Budgets(self.config, self.prices, self.store, Alerts(self.config.alerts, self.store))]

    async def admit(self, model: str, max_tokens: int = 20) -> RequestContext:
        ctx = request(model, max_tokens=max_tokens)
        for stage in self.stages:
            await stage.before(ctx)
        return ctx


async def test_a_graded_cascade_reserves_for_its_grader_too():
    a = Admission({"scope": "team:t", "amount_usd": 1})
    ctx = await a.admit("graded", max_tokens=20)
    tiers = a.prices.worst_case("small", ctx.input_tokens, 20) + a.prices.worst_case("big", ctx.input_tokens, 20)
    answer = " word" * 20  # as long as the cheap tier may answer
    assert count_text(answer) == 20
    sent = count_openai_messages(grader_request(prompt_text(ctx.body), answer))
    grader = a.prices.worst_case("judge", sent, GRADER_MAX_TOKENS)
    assert (await status(a.store, "team:t")).reserved >= tiers + grader


async def test_a_cascade_reserves_for_the_dearest_model_that_may_answer_each_tier():
    a = Admission({"scope": "team:t", "amount_usd": 1})
    ctx = await a.admit("shaky", max_tokens=20)
    dearest = a.prices.worst_case("dear", ctx.input_tokens, 20) + a.prices.worst_case("big", ctx.input_tokens, 20)
    assert (await status(a.store, "team:t")).reserved == dearest


async def test_a_model_budget_is_reserved_on_by_a_cascade_that_may_escalate_to_it():
    a = Admission({"scope": "model:big", "amount_usd": 1})
    await a.admit("checked")
    assert (await status(a.store, "model:big")).reserved > 0


async def test_a_model_downgrade_budget_stops_a_cascade_from_escalating_to_its_model():
    a = Admission({"scope": "model:big", "amount_usd": "0.0001", "mode": "downgrade", "downgrade_to": "small",
                   "downgrade_below_usd": "0"})
    ctx = await a.admit("checked")
    assert [t.name for t in ctx.targets] == ["small"]  # a plain call now: no tier to escalate to
    assert ctx.response_headers["x-tokenbrake-downgraded"] == "model:big"


# -- whole cascades against the emulator

def say(text: str) -> str:
    """An emulator directive making every upstream answer exactly `text` (the grader too:
    it is sent the request)."""
    return "[[emulator: text=" + json.dumps(text) + "]]"


class Gateway:
    """The pipeline's stages that decide and settle money, around the cascade's call to the
    emulator."""

    def __init__(self, base_url: str, *budgets: dict) -> None:
        self.config = config(base_url, *budgets)
        prices = PriceBook(self.config)
        self.store = MemoryStore()
        self.providers = build_providers(self.config)
        call = CascadeCall(UpstreamCall(Dispatcher(self.providers, self.config.retry_for)), prices,
                           build_targets(self.config), None)
        self.pipeline = Pipeline([ResolveModel(self.config), Route(self.config, prices),
                                  Budgets(self.config, prices, self.store, Alerts(self.config.alerts, self.store)),
                                  PriceCall(prices)], call)

    async def ask(self, model: str, text: str) -> RequestContext:
        ctx = request(model, text)
        await self.pipeline.run(ctx)
        return ctx

    async def aclose(self) -> None:
        for provider in self.providers.values():
            await provider.aclose()


@pytest.fixture
async def gateway(emulator):
    made: list[Gateway] = []

    def make(*budgets: dict) -> Gateway:
        made.append(Gateway(emulator.url + "/v1", *budgets))
        return made[-1]

    yield make
    for one in made:
        await one.aclose()


async def test_a_graders_cost_never_takes_a_hard_budget_over(gateway):
    # The tiers' worst case fits in $0.002; the judge reading the request and the answer costs more.
    g = gateway({"scope": "team:t", "amount_usd": "0.002"})
    await g.ask("graded", "Is it? " + say("no"))  # the judge says no: the cascade escalates
    assert (await status(g.store, "team:t")).spent <= Decimal("0.002")


async def test_a_cascade_never_takes_the_budget_of_the_model_it_escalates_to_over(gateway):
    g = gateway({"scope": "model:big", "amount_usd": "0.002"})
    on_big = Decimal(0)
    for _ in range(20):  # each escalates to big: about $0.0002 there
        ctx = await g.ask("checked", "Is it? " + say("no"))
        if ctx.served is not None and ctx.served.name == "big":
            on_big += ctx.cost
    assert on_big <= Decimal("0.002")
