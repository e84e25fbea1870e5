"""The access log's fields: who, door, model asked and served, the route's decision, the
outcome with the limit that tripped, tokens, cost and flags; never the prompt or the key."""

import logging
from decimal import Decimal

from tokenbrake.core import Attempt, Endpoint, ErrorKind, Format, GatewayError, RequestContext, Target, Usage
from tokenbrake.gateway.access_log import AccessLog, access_fields
from tokenbrake.routing.virtual import RouteDecision, VirtualModel

SMALL = Target(name="small", upstream="local", kind=Format.OPENAI, upstream_model="qwen")
PROMPT = "the contract text nobody may log"


def context() -> RequestContext:
    ctx = RequestContext(format=Format.ANTHROPIC, endpoint=Endpoint.CHAT, stream=True,
                         body={"model": "auto", "messages": [{"role": "user", "content": PROMPT}]},
                         headers={"authorization": "Bearer tb-secret-key"})
    ctx.who.key_name, ctx.who.team, ctx.who.user, ctx.who.session = "search-app", "search", "alice", "run-7"
    ctx.requested_model, ctx.served, ctx.usage, ctx.cost = "auto", SMALL, Usage(10, 20, cached_input_tokens=5), Decimal("0.002")
    ctx.attempts = [Attempt(SMALL, status=200)]
    return ctx


def test_a_routed_stream_is_described_without_its_prompt_or_key():
    ctx = context()
    route = VirtualModel(name="auto", strategy="router", tiers=[[SMALL]], thresholds=[0.5], strong_share=0.3,
                         checks=[], escalate_on_error=True, keep_examples=False, router_path=None)
    ctx.route, ctx.saved = RouteDecision(model=route, reference="gpt-4o", tier=0, score=0.21234), Decimal("0.01")
    fields = {k: v for k, v in access_fields(ctx).items() if v is not None}
    assert fields | {"request_id": None, "ms": None} == {
        "request_id": None, "key": "search-app", "team": "search", "user": "alice", "session": "run-7",
        "door": "anthropic", "endpoint": "chat", "model": "auto", "served": "small", "route": "auto", "tier": 0,
        "score": 0.212, "status": 200, "input_tokens": 15, "output_tokens": 20, "cost_usd": "0.002",
        "saved_usd": "0.01", "ms": None, "stream": True}
    assert PROMPT not in repr(fields) and "tb-secret" not in repr(fields)


def test_a_refusal_names_its_kind_and_the_limit_that_tripped():
    ctx = context()
    ctx.usage, ctx.cost, ctx.served, ctx.attempts = None, None, None, []
    ctx.status, ctx.error = 429, GatewayError(ErrorKind.RATE_LIMIT, "no", limit="team:search requests_per_minute")
    fields = access_fields(ctx)
    assert (fields["status"], fields["error"], fields["limit"]) == (429, "rate_limit", "team:search requests_per_minute")
    assert fields["cost_usd"] is None and fields["served"] is None


async def test_the_stage_logs_one_line_at_info_and_none_above(caplog):
    stage = AccessLog()
    with caplog.at_level(logging.INFO, logger="tokenbrake.access"):
        await stage.after(context())
    assert [record.args["key"] for record in caplog.records] == ["search-app"]
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="tokenbrake.access"):
        await stage.after(context())
    assert caplog.records == []
