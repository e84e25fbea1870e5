"""Prices what the call consumed, once it is known (also for failed and cut-off calls)."""

from __future__ import annotations

from tokenbrake.core import RequestContext
from tokenbrake.settlement.pricing import PriceBook


class PriceCall:
    def __init__(self, prices: PriceBook) -> None:
        self.prices = prices

    async def after(self, ctx: RequestContext) -> None:
        if ctx.usage is not None and ctx.served is not None:
            ctx.cost = self.prices.cost(ctx.served.name, ctx.usage)
        elif ctx.usage_unseen and ctx.budget_hold is not None:
            ctx.cost = ctx.budget_hold.grant.amount  # cut before its usage came: the worst case it reserved
