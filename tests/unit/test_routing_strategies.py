"""Where a request on a virtual model starts: thresholds, targets and each strategy's choice."""

import pytest

from tokenbrake.config import parse_config
from tokenbrake.router.classifier import default_router
from tokenbrake.routing.strategies import decide, targets_from, tier_for_score
from tokenbrake.routing.targets import build_targets
from tokenbrake.routing.virtual import build_virtual_models, share_thresholds

RAW = {
    "upstreams": {"u": {"kind": "openai", "base_url": "http://127.0.0.1:9/v1"}},
    "models": {"local": {"upstream": "u", "free": True, "fallbacks": ["local-b"]}, "local-b": {"upstream": "u", "free": True},
               "mid": {"upstream": "u", "free": True}, "frontier": {"upstream": "u", "free": True}},
}


def virtual(**route):
    config = parse_config({**RAW, "routes": {"auto": {"tiers": ["local", "mid", "frontier"], **route}}})
    return build_virtual_models(config, build_targets(config))["auto"]


class FixedRouter:
    """A scorer that answers one score (the real ones are tested with the classifier)."""

    def __init__(self, value: float) -> None:
        self.value = value

    async def score(self, prompt: str) -> float:
        return self.value


def test_strong_share_sets_thresholds_that_send_that_share_of_the_training_prompts_up():
    router = default_router()
    [threshold] = share_thresholds(router, 2, 0.3)
    scored = router.info["examples"]
    assert scored > 1000
    # 30% of prompts like the training ones score at or above it: the router's percentiles
    assert router.percentile(threshold) == pytest.approx(0.7, abs=0.02)
    low, high = share_thresholds(router, 3, 0.4)  # 40% above the cheapest: 20% to the top tier
    assert low < high and router.percentile(low) == pytest.approx(0.6, abs=0.02)
    assert router.percentile(high) == pytest.approx(0.8, abs=0.02)


def test_strong_share_and_thresholds_exclude_each_other():
    with pytest.raises(Exception, match="strong_share or thresholds"):
        virtual(strong_share=0.3, thresholds=[0.3, 0.7])


@pytest.mark.parametrize(("score", "tier"), [(0.0, 0), (0.29, 0), (0.3, 1), (0.69, 1), (0.7, 2), (1.0, 2)])
def test_a_score_at_a_threshold_goes_up_a_tier(score, tier):
    assert tier_for_score(score, [0.3, 0.7]) == tier


def test_targets_are_the_chosen_tier_then_the_stronger_ones_each_once():
    model = virtual()
    assert [t.name for t in targets_from(model, 0)] == ["local", "local-b", "mid", "frontier"]
    assert [t.name for t in targets_from(model, 1)] == ["mid", "frontier"]


def test_without_escalation_only_the_chosen_tier_and_its_fallbacks():
    assert [t.name for t in targets_from(virtual(escalate_on_error=False), 0)] == ["local", "local-b"]


async def test_router_strategy_picks_the_tier_of_the_score():
    decision, targets = await decide(virtual(thresholds=[0.3, 0.7]), FixedRouter(0.5), "anything", "frontier")
    assert (decision.tier, decision.score, targets[0].name) == (1, 0.5, "mid")
    assert decision.header() == "auto; strategy=router; tier=1; score=0.500"


async def test_cascade_starts_at_the_cheapest_tier_with_every_tier_as_its_targets():
    decision, targets = await decide(virtual(strategy="cascade", checks=[{"regex": "x"}]), None, "q", "frontier")
    assert [t.name for t in targets] == ["local", "mid", "frontier"] and decision.cascade is targets


async def test_fallback_starts_cheapest_and_falls_through_every_tier_even_without_escalation():
    decision, targets = await decide(virtual(strategy="fallback", escalate_on_error=False), None, "q", "frontier")
    assert decision.tier == 0 and [t.name for t in targets] == ["local", "local-b", "mid", "frontier"]


def test_the_shipped_router_scores_a_hard_prompt_above_an_easy_one():
    router = default_router()
    easy = router.score("What is the capital of France?")
    hard = router.score("Prove that there are infinitely many primes, then implement the sieve of Eratosthenes "
                        "in Python and analyse its time and memory complexity step by step.")
    assert 0 <= easy < hard <= 1
