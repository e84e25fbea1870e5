"""Budgets: reserve the worst case before the call, settle the actual cost after it.

Before: the request's worst-case cost (counted input plus its output cap, at the dearest of
its targets' prices; for a cascade, each tier's and each grader's call in turn) is reserved
on every budget in its scope at once (all or none), a model's budget for each model the
request may be served or charged by. When requests in flight hold what it needs, it waits
for them to settle (they mostly settle below their worst case) for up to
`budgeting.max_wait_s`; when the budgets' settled spend leaves too little, its `max_tokens`
is clamped to what the tightest budget still pays for, and it is refused only below
`budgeting.min_output_tokens`. A `downgrade` budget whose remainder is below its threshold
has the request served by its cheaper model, decided ahead of the caps and rate limits
(`ThresholdDowngrade`); one that would refuse the reservation, here.
After: the reservation is settled to the actual cost (0 for a call that cost nothing), and
the spend seen is handed to the alerts.

A request no budget applies to costs nothing here: no shared-state call at all.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal

from tokenbrake.admission.budget_rules import (
    DOWNGRADED_HEADER,
    ApplicableMemo,
    Applied,
    BudgetCache,
    PossibleCall,
    affordable_output,
    refusal,
    worst_case,
)
from tokenbrake.config import BudgetConfig, Config
from tokenbrake.core import BudgetHold, Endpoint, RequestContext, Target
from tokenbrake.journal import records
from tokenbrake.limits import Clock, CounterStatus, Grant, LimitStore, system_clock
from tokenbrake.routing.targets import build_targets
from tokenbrake.scopes import budget_values
from tokenbrake.settlement.alerts import Alerts
from tokenbrake.settlement.pricing import PriceBook
from tokenbrake.uncancellable import finish
from tokenbrake.wire import request_size

log = logging.getLogger(__name__)



@dataclass(frozen=True, slots=True)
class Size:
    calls: list[PossibleCall]  # the upstream calls the request may make
    input_tokens: int
    cap: int  # output tokens, per answer
    answers: int  # OpenAI's `n`: each answer may use the whole cap
    want: Decimal  # worst case at the cap
    floor: Decimal  # worst case at the least output worth serving

    @property
    def output(self) -> int:
        """The most output tokens of all its answers together."""
        return self.cap * self.answers


class Budgets:
    def __init__(self, config: Config, prices: PriceBook, limits: LimitStore, alerts: Alerts,
                 budgets: BudgetCache | None = None, clock: Clock = system_clock) -> None:
        self.config = config
        self.settings = config.budgeting
        self.prices = prices
        self.limits = limits
        self.alerts = alerts
        self.budgets = budgets or BudgetCache(config)
        self.clock = clock
        self.targets = build_targets(config)
        self._applicable = ApplicableMemo(self.settings.timezone)

    async def before(self, ctx: RequestContext) -> None:
        budgets = self.budgets.current
        if not budgets or ctx.endpoint is Endpoint.COUNT_TOKENS or not ctx.targets:
            return
        calls = self._calls(ctx)
        applied = self._applied(ctx, budgets, calls)
        if not applied:
            return
        size = self._size(ctx, calls)
        grant = await self._reserve(ctx, applied, size)
        if not grant.granted and (downgrade := self._downgrade_refused(ctx, applied, grant)):
            calls, applied = self._switch(ctx, downgrade, budgets)
            size = self._size(ctx, calls)
            grant = await self._reserve(ctx, applied, size)
        self._observe(applied, grant.counters, Decimal(0))
        if not grant.granted:
            assert grant.tightest is not None  # only a hard counter refuses
            tight = _owner(applied, grant.tightest)
            raise refusal(tight, grant.tightest, size.floor, datetime.fromtimestamp(self.clock(), UTC))
        ctx.budget_hold = BudgetHold(grant, applied)
        tokens = size.cap
        if grant.clamped:
            assert grant.amount is not None  # clamped: granted, less than wanted
            affordable = affordable_output(self.prices, size.calls, size.input_tokens, grant.amount, size.output)
            tokens = affordable // size.answers
        if tokens < size.cap or request_size.asked_output(ctx) is None:
            # The upstream is held to the output the reservation paid for, also when the client
            # set no cap: left to itself, a model may answer at its own (much larger) limit.
            request_size.clamp_output(ctx, tokens)

    async def downgrade_below_threshold(self, ctx: RequestContext) -> None:
        """`ThresholdDowngrade`'s step: the request served by the cheaper model of the first
        downgrade budget (in its scope) whose settled remainder is below its threshold."""
        budgets = self.budgets.current
        if ctx.endpoint is Endpoint.COUNT_TOKENS or not ctx.targets:
            return
        if not any(budget.mode == "downgrade" for budget in budgets):
            return  # the usual case: `before` works out what applies, once
        applied = self._applied(ctx, budgets, self._calls(ctx))
        downgrade = await self._downgrade_below_threshold(ctx, applied)
        if downgrade is not None:
            self._switch(ctx, downgrade, budgets)

    async def after(self, ctx: RequestContext) -> None:
        hold = ctx.budget_hold
        if hold is None or hold.settled_at is not None:
            return
        cost = ctx.total_cost  # a cascade's earlier calls too
        # One reservation settles every counter it holds at one amount, so a model's budget is
        # charged the whole request, also the calls other models made for it. That over-counts
        # a model the request could reach but did not, and never under-counts one it did.
        hold.settled_at = self.clock()  # the ledger row charges it, whether or not the store answers
        await self.limits.settle(ctx.request_id, cost)
        self._observe(hold.applied, hold.grant.counters, cost)  # spent then, plus this call: a floor under the spend now

    # -- what applies, and what it may cost

    def _applied(self, ctx: RequestContext, budgets: list[BudgetConfig], calls: list[PossibleCall]) -> list[Applied]:
        models = list(dict.fromkeys(model for call in calls for model in call.models))
        return self._applicable(budgets, budget_values(ctx, models))

    def _calls(self, ctx: RequestContext) -> list[PossibleCall]:
        """The upstream calls the request may make: one, answered by any of its targets; for a
        cascade (routing/cascade.py), each tier's in turn, and each grader's on every answer
        but the last tier's."""
        route = ctx.route
        if route is None or route.cascade is not ctx.targets:
            return [PossibleCall(_model_names(ctx.targets))]
        tiers = [PossibleCall(_model_names(tier)) for tier in route.model.tiers]
        graders = [PossibleCall(_model_names(self.targets[check.grader]), grader=True)
                   for check in route.model.checks if check.grader is not None]
        return tiers + graders * (len(tiers) - 1)

    def _size(self, ctx: RequestContext, calls: list[PossibleCall]) -> Size:
        input_tokens = request_size.input_tokens(ctx)
        cap, answers = request_size.output_cap(ctx, self.config), request_size.choices(ctx)
        least = min(cap, self.settings.min_output_tokens)
        return Size(calls, input_tokens, cap, answers,
                    want=worst_case(self.prices, calls, input_tokens, cap * answers),
                    floor=worst_case(self.prices, calls, input_tokens, least * answers))

    async def _reserve(self, ctx: RequestContext, applied: list[Applied], size: Size) -> Grant:
        """Reserve the whole worst case, waiting while requests in flight hold it; once their
        settling cannot make it fit, accept a clamp down to the floor (waiting likewise)."""
        try:
            return await self._reserve_waiting(ctx, applied, size)
        except BaseException:  # the client left (or the store failed) mid-reserve: drop what may be held
            try:
                await finish(self.limits.release(ctx.request_id))
            except Exception:  # it expires after reservation_ttl_s
                log.exception("could not release the reservation of request %s", ctx.request_id)
            raise

    async def _reserve_waiting(self, ctx: RequestContext, applied: list[Applied], size: Size) -> Grant:
        counters = [a.counter for a in applied]
        deadline = time.monotonic() + self.settings.max_wait_s
        floor, attempt = (size.want if self.settings.max_wait_s > 0 else size.floor), 0
        # Shared state keeps who the request is for with its reservation: should this gateway
        # die mid-call, a live one records it (limits/redis_leases.py).
        note = records.start_line(records.start_of(ctx, self.clock())).decode() if self.limits.shared else ""
        while True:
            grant = await self.limits.reserve(ctx.request_id, counters, size.want, floor,
                                              self.settings.reservation_ttl_s, note)
            if grant.granted:
                return grant
            waiting = time.monotonic() < deadline and settling_frees(grant.counters, floor)
            if not waiting and floor == size.floor:
                return grant
            if waiting:
                await asyncio.sleep(backoff(attempt))
                attempt += 1
            else:
                floor = size.floor

    # -- downgrade

    async def _downgrade_below_threshold(self, ctx: RequestContext, applied: list[Applied]) -> BudgetConfig | None:
        """The first downgrade budget whose settled remainder is below its threshold."""
        watched = [a for a in applied if a.budget.mode == "downgrade" and self._downgrades(ctx, a.budget)]
        if not watched:
            return None
        for a, status in zip(watched, await self.limits.status([a.counter for a in watched])):
            assert a.budget.downgrade_below_usd is not None  # the config requires it in downgrade mode
            if status.limit - status.spent < a.budget.downgrade_below_usd:
                return a.budget
        return None

    def _downgrade_refused(self, ctx: RequestContext, applied: list[Applied], grant: Grant) -> BudgetConfig | None:
        assert grant.tightest is not None  # only a hard counter refuses
        budget = _owner(applied, grant.tightest).budget
        if budget.mode == "downgrade" and self._downgrades(ctx, budget):
            return budget
        return None

    def _downgrades(self, ctx: RequestContext, budget: BudgetConfig) -> bool:
        """Whether serving the request by `budget.downgrade_to` changes what it may call: not
        for a request for that model, but for one that starts with it and may go on to others
        (its fallbacks, a cascade's stronger tiers)."""
        assert budget.downgrade_to is not None  # the config requires it in downgrade mode
        return _model_names(self.targets[budget.downgrade_to]) != _model_names(ctx.targets)

    def _switch(self, ctx: RequestContext, budget: BudgetConfig,
                budgets: list[BudgetConfig]) -> tuple[list[PossibleCall], list[Applied]]:
        """Serves the request by the budget's cheaper model: the calls it may now make, and the
        budgets those are in."""
        assert budget.downgrade_to is not None  # the config requires it in downgrade mode
        ctx.targets = list(self.targets[budget.downgrade_to])
        ctx.response_headers[DOWNGRADED_HEADER] = budget.scope
        calls = self._calls(ctx)
        return calls, self._applied(ctx, budgets, calls)

    def _observe(self, applied: list[Applied], statuses: list[CounterStatus], cost: Decimal) -> None:
        for a, status in zip(applied, statuses):
            self.alerts.observe(a.budget, status, status.spent + cost)


class ThresholdDowngrade:
    """Ahead of the caps and rate limits: a downgrade budget whose settled remainder is below
    its threshold has the request served by its cheaper model here, so that those stages
    count the model that will serve it (its `model:` caps and limits), not the one asked for.
    A downgrade that only a refused reservation calls for is made by `Budgets`, after them,
    and is not counted in the cheaper model's rate limits."""

    def __init__(self, budgets: Budgets) -> None:
        self.budgets = budgets

    async def before(self, ctx: RequestContext) -> None:
        await self.budgets.downgrade_below_threshold(ctx)


def settling_frees(statuses: list[CounterStatus], need: Decimal) -> bool:
    """Whether `need` would fit once the requests in flight settled at no cost: waiting for
    them can help only then."""
    return all(s.limit - s.spent >= need for s in statuses if s.hard)


def backoff(attempt: int) -> float:
    """Seconds before reserving again: from 5 ms, doubling to 200 ms, jittered so waiting
    requests do not retry in lockstep."""
    return min(0.2, 0.005 * 2 ** attempt) * random.uniform(0.5, 1.5)


def _model_names(targets: list[Target]) -> tuple[str, ...]:
    """The models of `targets`, each once, in order."""
    return tuple(dict.fromkeys(target.name for target in targets))


def _owner(applied: list[Applied], status: CounterStatus) -> Applied:
    return next(a for a in applied if (a.counter.key, a.counter.window) == (status.key, status.window))

