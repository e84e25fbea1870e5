"""Where a request on a virtual model starts, per strategy.

- router: the router scores the prompt; the score picks the tier (`tier_for_score`).
- cascade: the cheapest tier first; cascade.py checks its answer and escalates.
- fallback: the cheapest tier first; errors move up the tiers (the dispatcher's fallbacks).

Whatever the strategy, the targets handed to the dispatcher are the chosen tier's (its model,
then its fallbacks) followed, with `escalate_on_error`, by the stronger tiers': an error,
timeout or rate limit of one tier is served by the next.
"""

from __future__ import annotations

from bisect import bisect_right

from tokenbrake.core import Target
from tokenbrake.routing.virtual import RouteDecision, VirtualModel


def tier_for_score(score: float, thresholds: list[float]) -> int:
    """The number of thresholds the score reaches: 0 (cheapest) … len(thresholds)."""
    return bisect_right(thresholds, score)


def targets_from(model: VirtualModel, tier: int) -> list[Target]:
    """The dispatcher's targets for a request starting at `tier`, each model once."""
    tiers = model.tiers[tier:] if model.escalate_on_error or model.strategy == "fallback" else model.tiers[tier:tier + 1]
    seen: set[str] = set()
    targets = []
    for tier_targets in tiers:
        for target in tier_targets:
            if target.name not in seen:
                seen.add(target.name)
                targets.append(target)
    return targets


async def decide(model: VirtualModel, scorer, prompt: str, reference: str) -> tuple[RouteDecision, list[Target]]:
    """The decision for a request on `model`, and the targets it starts with. `scorer` is
    the model's router behind `scoring.scorer_for` (router strategy only)."""
    if model.strategy == "router":
        value = await scorer.score(prompt)
        tier = tier_for_score(value, model.thresholds)
        return RouteDecision(model, reference, tier, score=value), targets_from(model, tier)
    if model.strategy == "cascade":
        firsts = [tier[0] for tier in model.tiers]
        return RouteDecision(model, reference, 0, cascade=firsts), firsts
    return RouteDecision(model, reference, 0), targets_from(model, 0)
