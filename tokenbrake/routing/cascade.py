"""The cascade: a cheaper tier answers first; its answer is kept only if the checks pass.

Wraps the pipeline's upstream call. A request whose route decided on a cascade (and whose
targets no later stage replaced, as a budget's downgrade does) tries its tiers in order: each
cheaper tier is called without streaming, even for a client that streams, so the checks run
before the first byte goes out; the first answer that passes is sent, as a stream in the
client's format when it asked for one (replay.py). The last tier is called as any request is,
streamed straight through. Every call made on the way (a rejected answer, a grader's verdict,
a tier that failed) cost money or may have: each is priced into `ctx.prior_calls`, which the
budgets settle and the ledger records, one row each.
"""

from __future__ import annotations

import time
from dataclasses import replace
from typing import Any

from tokenbrake.core import Endpoint, Format, GatewayError, PriorCall, Reply, RequestContext, Target, Usage
from tokenbrake.routing import checks
from tokenbrake.routing.outcomes import OutcomeRecorder, example
from tokenbrake.routing.prompt import prompt_text
from tokenbrake.routing.replay import replay, replay_responses
from tokenbrake.routing.strategies import targets_from
from tokenbrake.routing.virtual import RouteDecision
from tokenbrake.settlement.pricing import PriceBook
from tokenbrake.upstream.bodies import answer_text
from tokenbrake.upstream.call import UpstreamCall
from tokenbrake.wire.responses_api.answers import from_chat

ASK_LOGPROBS = {"logprobs": True}


class CascadeCall:
    def __init__(self, call: UpstreamCall, prices: PriceBook, targets: dict[str, list[Target]],
                 examples: OutcomeRecorder | None) -> None:
        self.call = call
        self.prices = prices
        self.targets = targets
        self.examples = examples

    async def __call__(self, ctx: RequestContext) -> Reply:
        route: RouteDecision | None = ctx.route
        if route is None or route.cascade is None or ctx.targets is not route.cascade:
            return await self.call(ctx)
        model, prompt = route.model, prompt_text(ctx.body)
        for tier in model.tiers[:-1]:
            reply = await self._try(ctx, route, tier, prompt)
            if reply is not None:
                route.outcome = f"accepted: {tier[0].name}"
                return reply
        route.outcome = "escalated"
        ctx.targets = targets_from(model, len(model.tiers) - 1)
        return await self.call(ctx)

    async def _try(self, ctx: RequestContext, route: RouteDecision, tier: list[Target], prompt: str) -> Reply | None:
        """The tier's answer as the client's reply if it passes the checks; else None, with
        the call kept in `ctx.prior_calls`."""
        trial = trial_context(ctx, tier, any(c.min_mean_logprob is not None for c in route.model.checks))
        started = time.perf_counter()
        try:
            answer, reply = await self.call.complete(trial)
        except GatewayError as error:
            ctx.attempts.extend(trial.attempts)
            self._prior(ctx, trial, started, error.status, error.message)
            return None
        ctx.attempts.extend(trial.attempts)
        verdict = await self._check(ctx, route, trial, answer, prompt)
        self._learn(ctx, route, tier[0].name, prompt, verdict.passed)
        if not verdict.passed:
            self._prior(ctx, trial, started, 200, f"not kept by the cascade ({verdict.reason})")
            return None
        ctx.served, ctx.usage, ctx.completion_text = trial.served, trial.usage, trial.completion_text
        body = reply.body if ctx.body.get("logprobs") else without_logprobs(reply.body)
        assert body is not None  # a complete call's reply has its body
        if (ex := ctx.responses) is not None:  # the tier answered the chat completion it amounts to
            if ctx.stream:
                return Reply(stream=replay_responses(ex, body, ctx.usage or Usage()))
            ex.final = from_chat(ex, body, ctx.usage or Usage())
            return Reply(body=ex.final)
        if ctx.stream:
            include_usage = bool((ctx.body.get("stream_options") or {}).get("include_usage"))
            return Reply(stream=replay(ctx.format, body, include_usage))
        return Reply(body=body)

    async def _check(self, ctx: RequestContext, route: RouteDecision, trial: RequestContext,
                     answer: dict[str, Any], prompt: str) -> checks.CheckResult:
        """Checks that need no model first; a grader only for an answer they let through."""
        assert trial.served is not None
        text = answer_text(trial.served.kind, answer)
        verdict = checks.CheckResult(True, "no checks")
        for check in route.model.checks:
            if check.grader is None:
                verdict = checks.local_check(check, text, answer)
                if not verdict.passed:
                    return verdict
        for check in route.model.checks:
            if check.grader is not None:
                verdict = await self._grade(ctx, check.grader, prompt, text)
                if not verdict.passed:
                    return verdict
        return verdict

    async def _grade(self, ctx: RequestContext, grader: str, prompt: str, text: str) -> checks.CheckResult:
        body = {"model": grader, "messages": checks.grader_request(prompt, text),
                "max_tokens": checks.GRADER_MAX_TOKENS}
        call = RequestContext(format=Format.OPENAI, endpoint=Endpoint.CHAT, body=body, headers={},
                              request_id=ctx.request_id, who=ctx.who, targets=list(self.targets[grader]))
        started = time.perf_counter()
        try:
            _, reply = await self.call.complete(call)
        except GatewayError as error:
            ctx.attempts.extend(call.attempts)
            self._prior(ctx, call, started, error.status, f"grader failed: {error.message}")
            return checks.CheckResult(False, f"grader {grader} failed")
        ctx.attempts.extend(call.attempts)
        verdict = checks.grader_verdict(grader, answer_text(Format.OPENAI, reply.body or {}))
        self._prior(ctx, call, started, 200, f"the cascade's {verdict.reason}")
        return verdict

    def _prior(self, ctx: RequestContext, call: RequestContext, started: float, status: int, note: str) -> None:
        if not call.attempts:
            return  # refused before reaching an upstream: nothing spent
        target = call.served or call.attempts[-1].target
        usage = call.usage or Usage()
        cost = self.prices.cost(target.name, usage)
        ctx.prior_calls += (PriorCall(target, usage, cost, status, time.perf_counter() - started, note),)

    def _learn(self, ctx: RequestContext, route: RouteDecision, tier_model: str, prompt: str, good: bool) -> None:
        """The cheapest tier's outcome, kept as a labelled example when the route allows."""
        if self.examples is None or not route.model.keep_examples or tier_model != route.model.tiers[0][0].name:
            return
        self.examples.add(example(route.model.name, tier_model, ctx.who.key_name, ctx.who.team, prompt, good))


def trial_context(ctx: RequestContext, tier: list[Target], logprobs: bool) -> RequestContext:
    """A non-streamed copy of the request for one cheaper tier, a chat completion whatever its
    front door (a Responses request too: its checks read a chat answer)."""
    body = {key: value for key, value in ctx.body.items() if key not in ("stream", "stream_options")}
    return replace(ctx, body=body, stream=False, targets=list(tier), attempts=[], served=None, usage=None,
                   completion_text=None, upstream_extra=ASK_LOGPROBS if logprobs else None, route=None,
                   prior_calls=(), response_headers={}, responses=None)


def without_logprobs(body: dict[str, Any] | None) -> dict[str, Any] | None:
    """An OpenAI answer without the logprobs the cascade asked for on the client's behalf."""
    if not body or not body.get("choices"):
        return body
    return {**body, "choices": [{**choice, "logprobs": None} for choice in body["choices"]]}
