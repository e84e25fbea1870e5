"""Per-request caps without a network: refuse input over the cap, clamp output to it."""

from __future__ import annotations

import pytest

from tokenbrake.config import parse_config
from tokenbrake.core import Attribution, Endpoint, ErrorKind, Format, GatewayError, RequestContext, Target
from tokenbrake.stages.caps import RequestCaps
from tokenbrake.wire.errors import error_body

RAW = {
    "upstreams": {"u": {"kind": "openai", "base_url": "http://127.0.0.1:9/v1"}},
    "models": {"big": {"upstream": "u", "free": True, "default_max_tokens": 2000},
               "small": {"upstream": "u", "free": True}},
}
LONG = "word " * 300  # about 300 tokens


def caps(*limits: dict) -> RequestCaps:
    return RequestCaps(parse_config({**RAW, "limits": list(limits)}))


def chat(body: dict, fmt: Format = Format.OPENAI, endpoint: Endpoint = Endpoint.CHAT, model: str = "big",
         **who) -> RequestContext:
    ctx = RequestContext(format=fmt, endpoint=endpoint, body={"model": model, **body}, headers={},
                         who=Attribution(key_name="k1", team="search", **who))
    ctx.requested_model, ctx.targets = model, [Target(model, "u", Format.OPENAI, model)]
    return ctx


def said(text: str) -> dict:
    return {"messages": [{"role": "user", "content": text}]}


async def test_input_over_the_cap_is_refused_stating_the_count_the_cap_and_the_scope():
    ctx = chat(said(LONG))
    with pytest.raises(GatewayError) as refused:
        await caps({"scope": "team:search", "max_input_tokens": 100}).before(ctx)
    error = refused.value
    assert (error.kind, error.status, error.code) == (ErrorKind.INVALID_REQUEST, 400, "context_length_exceeded")
    assert f"has {ctx.input_tokens} input tokens" in error.message and ctx.input_tokens > 100
    assert "more than the 100 allowed per request for team:search (max_input_tokens)" in error.message
    assert error_body(Format.OPENAI, error)["error"]["code"] == "context_length_exceeded"


async def test_the_tightest_input_cap_wins_and_names_its_scope():
    with pytest.raises(GatewayError, match=r"the 50 allowed per request for user:ana in team:search \(limit user:\*\)"):
        await caps({"scope": "team:search", "max_input_tokens": 100},
                   {"scope": "user:*", "max_input_tokens": 50}).before(chat(said("word " * 80), user="ana"))


async def test_input_within_the_cap_passes_untouched():
    ctx = chat({**said("hello"), "max_tokens": 10})
    await caps({"scope": "global", "max_input_tokens": 100}).before(ctx)
    assert ctx.body["max_tokens"] == 10


async def test_an_output_cap_above_the_limit_is_clamped_to_the_tightest():
    ctx = chat({**said("hi"), "max_tokens": 1000})
    await caps({"scope": "key:k1", "max_output_tokens": 300}, {"scope": "model:big", "max_output_tokens": 200},
               {"scope": "model:small", "max_output_tokens": 10}).before(ctx)
    assert ctx.body["max_tokens"] == 200


async def test_a_request_without_an_output_cap_gets_the_limit_when_the_models_default_is_higher():
    ctx = chat(said("hi"), fmt=Format.ANTHROPIC)
    await caps({"scope": "global", "max_output_tokens": 500}).before(ctx)
    assert ctx.body["max_tokens"] == 500


async def test_an_output_cap_at_or_below_the_limit_is_left_alone():
    ctx = chat({**said("hi"), "max_completion_tokens": 300})
    await caps({"scope": "global", "max_output_tokens": 300}).before(ctx)
    assert ctx.body == {"model": "big", **said("hi"), "max_completion_tokens": 300}


async def test_the_openai_max_completion_tokens_field_is_the_one_clamped():
    ctx = chat({**said("hi"), "max_completion_tokens": 900})
    await caps({"scope": "global", "max_output_tokens": 300}).before(ctx)
    assert ctx.body["max_completion_tokens"] == 300 and "max_tokens" not in ctx.body


async def test_caps_of_other_scopes_do_nothing_and_nothing_is_counted():
    ctx = chat({**said(LONG), "max_tokens": 1000})
    await caps({"scope": "team:ads", "max_input_tokens": 1, "max_output_tokens": 1}).before(ctx)
    assert ctx.body["max_tokens"] == 1000 and ctx.input_tokens is None


async def test_counting_tokens_is_never_capped():
    ctx = chat(said(LONG), fmt=Format.ANTHROPIC, endpoint=Endpoint.COUNT_TOKENS)
    await caps({"scope": "global", "max_input_tokens": 1}).before(ctx)


async def test_an_output_cap_above_the_model_s_own_limit_is_clamped_to_it():
    config = parse_config({**RAW, "models": {**RAW["models"], "small": {"upstream": "u", "free": True,
                                                                        "max_output_tokens": 8192}}})
    asked_too_much = chat({**said("hi"), "max_tokens": 128000}, model="small")
    await RequestCaps(config).before(asked_too_much)
    assert asked_too_much.body["max_tokens"] == 8192
    within = chat({**said("hi"), "max_completion_tokens": 500}, model="small")
    await RequestCaps(config).before(within)
    assert within.body["max_completion_tokens"] == 500
    anthropic = chat({**said("hi"), "max_tokens": 64000}, fmt=Format.ANTHROPIC, model="small")
    await RequestCaps(config).before(anthropic)
    assert anthropic.body["max_tokens"] == 8192
