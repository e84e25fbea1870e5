"""The route stage in-process: what it decides, for whom, and what it leaves alone."""

from decimal import Decimal

import pytest

from tokenbrake.config import ConfigError, parse_config
from tokenbrake.core import Attribution, Endpoint, ErrorKind, Format, GatewayError, RequestContext, Usage
from tokenbrake.router.classifier import train_router
from tokenbrake.settlement.pricing import PriceBook
from tokenbrake.stages.resolve_model import ResolveModel
from tokenbrake.stages.route import Route

PRICES = {"small": (1, 2), "big": (10, 40)}


@pytest.fixture(scope="module")
def router_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("router") / "router.json"
    easy = ["hi", "thanks", "What is 2+2?", "Name a colour."]
    hard = ["Prove Fermat's little theorem step by step and implement modular exponentiation in C with tests.",
            "Design a consensus protocol, prove its safety, and write the state machine in Python."]
    train_router([(p, True) for p in easy] + [(p, False) for p in hard], embedding=False, l2=0.1).save(path)
    return path


@pytest.fixture
def config(router_file):
    models = {name: {"upstream": "u", "price": {"input_per_mtok": i, "output_per_mtok": o}}
              for name, (i, o) in PRICES.items()}
    return parse_config({
        "upstreams": {"u": {"kind": "openai", "base_url": "http://127.0.0.1:9/v1"}},
        "models": models,
        "routes": {"auto": {"tiers": ["small", "big"], "router": str(router_file),
                            "reroute": [{"scope": "team:thrifty", "models": ["big"]}]}},
    })


async def routed(config, model: str, prompt: str, team: str | None = None, endpoint=Endpoint.CHAT) -> RequestContext:
    ctx = RequestContext(format=Format.OPENAI, endpoint=endpoint, headers={}, who=Attribution(team=team),
                         body={"model": model, "messages": [{"role": "user", "content": prompt}]})
    await ResolveModel(config).before(ctx)
    await Route(config, PriceBook(config)).before(ctx)
    return ctx


async def test_an_easy_prompt_on_auto_starts_at_the_cheap_tier(config):
    ctx = await routed(config, "auto", "hello")
    assert [t.name for t in ctx.targets] == ["small", "big"]  # big only if small fails
    assert ctx.route.reference == "big" and ctx.route.tier == 0
    assert ctx.response_headers["x-tokenbrake-route"].startswith("auto; strategy=router; tier=0; score=")


async def test_a_hard_prompt_on_auto_starts_at_the_strong_tier(config):
    ctx = await routed(config, "auto", "Prove the four colour theorem step by step and implement a checker in Python.")
    assert [t.name for t in ctx.targets] == ["big"] and ctx.route.score > 0.5


async def test_a_concrete_model_is_left_alone(config):
    ctx = await routed(config, "big", "hello")
    assert ctx.route is None and [t.name for t in ctx.targets] == ["big"]
    assert "x-tokenbrake-route" not in ctx.response_headers


async def test_a_team_with_a_reroute_rule_has_its_requests_for_big_routed(config):
    ctx = await routed(config, "big", "hello", team="thrifty")
    assert ctx.targets[0].name == "small" and ctx.route.reference == "big"


async def test_a_virtual_model_is_for_chat_only(config):
    with pytest.raises(GatewayError) as refused:
        await routed(config, "auto", "hello", endpoint=Endpoint.EMBEDDINGS)
    assert refused.value.kind is ErrorKind.INVALID_REQUEST


async def test_tokens_of_a_virtual_model_are_counted_as_its_strongest_tier_counts_them(config):
    ctx = await routed(config, "auto", "hello", endpoint=Endpoint.COUNT_TOKENS)
    assert [t.name for t in ctx.targets] == ["big"] and ctx.route is None


async def test_after_prices_the_saving_against_the_reference(config):
    ctx = await routed(config, "auto", "hello")
    ctx.served, ctx.usage = ctx.targets[0], Usage(input_tokens=1000, output_tokens=100)
    ctx.cost = PriceBook(config).cost("small", ctx.usage)
    await Route(config, PriceBook(config)).after(ctx)
    # big: 1000 × $10/M + 100 × $40/M = $0.014; small: $0.001 + $0.0002 = $0.0012
    assert ctx.saved == Decimal("0.0128")


def test_a_router_file_that_cannot_be_read_is_a_config_error_naming_the_route(tmp_path):
    config = parse_config({"upstreams": {"u": {"kind": "openai", "base_url": "http://127.0.0.1:9/v1"}},
                           "models": {"a": {"upstream": "u", "free": True}, "b": {"upstream": "u", "free": True}},
                           "routes": {"auto": {"tiers": ["a", "b"], "router": str(tmp_path / "missing.json")}}})
    with pytest.raises(ConfigError, match=r"routes\.auto\.router: cannot load .*missing\.json"):
        Route(config, PriceBook(config))


async def test_unknown_models_still_list_the_virtual_ones(config):
    with pytest.raises(GatewayError, match="Available models: auto, big, small"):
        await ResolveModel(config).before(RequestContext(format=Format.OPENAI, endpoint=Endpoint.CHAT, headers={},
                                                         body={"model": "nope"}))
