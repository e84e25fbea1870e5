"""Routes requests for a virtual model (`auto`) to one of its tiers.

Before: a request for a virtual model, or for a concrete model its scope has rerouted
(`routes.NAME.reroute`), gets a routing decision (`ctx.route`) and the targets its strategy
starts with. It runs before the budgets stage, so a budget's downgrade still caps the choice.
After (once PriceCall and the budgets have settled): the cost saved against the reference
model, for the ledger. A request for any other model costs one dict lookup here.
"""

from __future__ import annotations

from decimal import Decimal

from tokenbrake.config import Config
from tokenbrake.core import Endpoint, ErrorKind, GatewayError, RequestContext
from tokenbrake.routing import strategies
from tokenbrake.routing.prompt import prompt_text
from tokenbrake.routing.routers import build_routes
from tokenbrake.routing.virtual import VirtualModel
from tokenbrake.scopes import counter_key, request_values
from tokenbrake.settlement.pricing import PriceBook

ROUTE_HEADER = "x-tokenbrake-route"


class Route:
    def __init__(self, config: Config, prices: PriceBook) -> None:
        self.prices = prices
        routes = build_routes(config)
        self.models, self.reroutes, self.routers = routes.models, routes.reroutes, routes.scorers

    async def before(self, ctx: RequestContext) -> None:
        model = self.models.get(ctx.requested_model)
        if model is not None:
            reference = model.strongest  # what it would have cost without routing
        elif self.reroutes and (model := self._rerouted(ctx)) is not None:
            reference = ctx.requested_model
        else:
            return
        if ctx.endpoint is Endpoint.COUNT_TOKENS:  # counted as the strongest tier would count them
            ctx.targets = list(model.tiers[-1])
            return
        if ctx.endpoint is not Endpoint.CHAT:
            raise GatewayError(ErrorKind.INVALID_REQUEST,
                               f"'{model.name}' is a virtual model for chat requests", param="model")
        prompt = prompt_text(ctx.body) if model.strategy == "router" else ""  # only a router reads it here
        decision, targets = await strategies.decide(model, self.routers.get(model.name), prompt, reference)
        ctx.route, ctx.targets = decision, targets
        ctx.response_headers[ROUTE_HEADER] = decision.header()

    async def after(self, ctx: RequestContext) -> None:
        route = ctx.route
        if route is None or ctx.usage is None or ctx.served is None:
            return
        ctx.saved = self.prices.cost(route.reference, ctx.usage) - (ctx.cost or Decimal(0))

    def _rerouted(self, ctx: RequestContext) -> VirtualModel | None:
        rules = self.reroutes.get(ctx.requested_model)
        if not rules:
            return None
        values = request_values(ctx)
        return next((model for scope, model in rules if counter_key(scope, values) is not None), None)


