"""Routes requests for a virtual model (`auto`) to one of its tiers.

Before: a request for a virtual model, or for a concrete model its scope has rerouted
(`routes.NAME.reroute`), gets a routing decision (`ctx.route`) and the targets its strategy
starts with. It runs before the budgets stage, so a budget's downgrade still caps the choice.
After (once PriceCall and the budgets have settled): the cost saved against the reference
model, for the ledger. A request for any other model costs one dict lookup here.
"""

from __future__ import annotations

from dataclasses import replace
from decimal import Decimal

from tokenbrake.config import Config, ConfigError
from tokenbrake.core import Endpoint, ErrorKind, GatewayError, RequestContext
from tokenbrake.pricing import PriceBook
from tokenbrake.routing import strategies
from tokenbrake.routing.prompt import prompt_text
from tokenbrake.routing.scoring import scorer_for
from tokenbrake.routing.virtual import VirtualModel, build_virtual_models, reroute_rules, share_thresholds
from tokenbrake.scopes import counter_key, request_values
from tokenbrake.stages.resolve_model import build_targets

ROUTE_HEADER = "x-tokenbrake-route"


class Route:
    def __init__(self, config: Config, prices: PriceBook) -> None:
        self.prices = prices
        self.models = build_virtual_models(config, build_targets(config))
        self.reroutes = reroute_rules(config, self.models)
        self.routers = load_routers(self.models)  # also fills in thresholds from strong_share

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


def load_routers(models: dict[str, VirtualModel]) -> dict:
    """The scorer of each virtual model with the router strategy, each router loaded once, at
    start-up (a missing or broken file stops the gateway from starting, not a request). A
    model without thresholds gets those its strong_share calls for, from its router."""
    from tokenbrake.routing.classifier import load_router

    loaded: dict[str | None, tuple] = {}  # router, and its scorer (shared: one worker thread per router)
    scorers = {}
    for name, model in list(models.items()):
        if model.strategy != "router":
            continue
        path = model.router_path
        if path not in loaded:
            try:
                router = load_router(path)
                loaded[path] = (router, scorer_for(router))
            except (OSError, ValueError, KeyError) as exc:
                raise ConfigError(f"routes.{model.name}.router: cannot load {path}: {exc}") from None
        router, scorer = loaded[path]
        if not model.thresholds:
            try:
                thresholds = share_thresholds(router, len(model.tiers), model.strong_share)
            except ValueError as exc:
                raise ConfigError(f"routes.{model.name}: set thresholds: {exc}") from None
            models[name] = replace(model, thresholds=thresholds)
        scorers[name] = scorer
    return scorers
