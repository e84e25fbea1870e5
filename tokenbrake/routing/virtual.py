"""Virtual models: a name clients ask for (`auto`) standing for an ordered list of tiers.

Each tier is a configured model (cheapest first) with the fallbacks the model already has. A
strategy (strategies.py) picks where a request starts; the decision travels with the request
as `ctx.route`, so later stages can read it: the budgets stage may still cap it at a cheaper
model, the cascade call (cascade.py) runs its tiers, and the route stage's after step prices
what the choice saved against the reference model.

The reference is the model the client asked for when its request for a concrete model was
rerouted, and otherwise the route's last (strongest, dearest) tier: what the request would
have cost without routing.
"""

from __future__ import annotations

from dataclasses import dataclass

from tokenbrake.config import CheckConfig, Config, RouteConfig
from tokenbrake.core import Target


@dataclass(frozen=True, slots=True)
class VirtualModel:
    name: str
    strategy: str  # router | cascade | fallback
    tiers: list[list[Target]]  # per tier: its model, then that model's fallbacks
    thresholds: list[float]  # router: a score at or above thresholds[i] starts at tier i+1
    strong_share: float  # router, without thresholds: the share sent above the cheapest tier
    checks: list[CheckConfig]  # cascade
    escalate_on_error: bool
    keep_examples: bool
    router_path: str | None  # None: the router shipped in the package

    @property
    def strongest(self) -> str:
        return self.tiers[-1][0].name


@dataclass(slots=True)
class RouteDecision:
    """What routing decided for one request (`ctx.route`)."""

    model: VirtualModel
    reference: str  # the model the saving is measured against
    tier: int  # where the request starts
    score: float | None = None  # the router's score, when a router decided
    # cascade: the tiers' first targets, as put in `ctx.targets`. A stage that replaces
    # `ctx.targets` (a budget's downgrade) thereby turns the cascade into a plain call.
    cascade: list[Target] | None = None
    outcome: str | None = None  # cascade: accepted (by tier N) or escalated

    def header(self) -> str:
        """`x-tokenbrake-route`: which route, strategy, starting tier and score."""
        parts = [self.model.name, f"strategy={self.model.strategy}", f"tier={self.tier}"]
        if self.score is not None:
            parts.append(f"score={self.score:.3f}")
        return "; ".join(parts)


DEFAULT_STRONG_SHARE = 0.3


def share_thresholds(router, tiers: int, share: float) -> list[float]:
    """Thresholds that send `share` of traffic like the router's training prompts above the
    cheapest tier, split evenly between the tiers above it (ascending)."""
    above = tiers - 1
    return [router.threshold_for_share(share * (above - i) / above) for i in range(above)]


def build_virtual_models(config: Config, targets: dict[str, list[Target]]) -> dict[str, VirtualModel]:
    return {name: _virtual(name, route, targets) for name, route in config.routes.items()}


def _virtual(name: str, route: RouteConfig, targets: dict[str, list[Target]]) -> VirtualModel:
    return VirtualModel(
        name=name,
        strategy=route.strategy,
        tiers=[list(targets[tier]) for tier in route.tiers],
        thresholds=list(route.thresholds or []),  # empty: from strong_share once the router is loaded
        strong_share=DEFAULT_STRONG_SHARE if route.strong_share is None else route.strong_share,
        checks=list(route.checks),
        escalate_on_error=route.escalate_on_error,
        keep_examples=route.keep_examples,
        router_path=route.router,
    )


def reroute_rules(config: Config, models: dict[str, VirtualModel]) -> dict[str, list[tuple[str, VirtualModel]]]:
    """Concrete model name → the (scope, virtual model) rules that reroute requests for it."""
    rules: dict[str, list[tuple[str, VirtualModel]]] = {}
    for name, route in config.routes.items():
        for rule in route.reroute:
            for model in rule.models:
                rules.setdefault(model, []).append((rule.scope, models[name]))
    return rules
