"""Training, saving, loading and scoring routers (features only, and with the embedding)."""

import json

import pytest

from tokenbrake.router.classifier import Router, train_router

EASY = [f"Say hello to {name}." for name in ("Ann", "Bob", "Cy", "Dee", "Eve", "Flo", "Gus", "Hal", "Ida", "Jo")]
HARD = [
    f"Prove that the sum of the first {n} odd numbers is {n}^2, then write a Python function\n"
    f"```python\ndef check(n):\n    return sum(range(1, 2 * n, 2)) == n ** 2\n```\nand derive its complexity step by step."
    for n in range(3, 13)
]
TOY = [(p, True) for p in EASY] + [(p, False) for p in HARD]


@pytest.mark.parametrize("use_embedding", [False, pytest.param(True, marks=pytest.mark.embedding)],
                         ids=["features", "embedding"])
def test_a_router_trained_on_a_separable_set_ranks_hard_prompts_above_easy_ones(use_embedding):
    router = train_router(TOY, embedding=use_embedding, l2=1.0, l2_embedding=1.0)
    assert router.uses_embedding is use_embedding
    easy = router.score_many(["Say hello to Kim.", "Say hello to Lou."])
    hard = router.score_many([HARD[0].replace("3", "21"), HARD[1].replace("Python", "C")])
    assert max(easy) < 0.5 < min(hard)


@pytest.mark.parametrize("use_embedding", [False, pytest.param(True, marks=pytest.mark.embedding)],
                         ids=["features", "embedding"])
def test_save_then_load_gives_identical_scores(tmp_path, use_embedding):
    router = train_router(TOY, embedding=use_embedding)
    path = tmp_path / "router.json"
    router.save(path)
    loaded = Router.load(path)
    prompts = EASY[:3] + HARD[:3] + ["Something else entirely: translate 'chat' into German."]
    assert loaded.score_many(prompts) == router.score_many(prompts)
    assert loaded.uses_embedding is use_embedding
    assert json.loads(path.read_text())["format"] == "tokenbrake-router"


def test_scores_stay_within_zero_and_one_for_extreme_inputs():
    router = train_router(TOY, embedding=False, l2=0.001)
    for prompt in ("", "x" * 100_000, "1+" * 5000, HARD[0] * 50):
        assert 0.0 <= router.score(prompt) <= 1.0


def test_the_saved_file_holds_only_names_and_numbers(tmp_path):
    path = tmp_path / "router.json"
    train_router(TOY, embedding=False).save(path)
    data = json.loads(path.read_text())
    assert all(isinstance(w, float) for w in data["weights"] + data["mean"] + data["scale"])
    assert data["embedding"] is None and data["info"]["examples"] == len(TOY)


def test_loading_rejects_files_that_are_not_routers(tmp_path):
    path = tmp_path / "other.json"
    path.write_text(json.dumps({"format": "something", "version": 1}))
    with pytest.raises(ValueError, match="not a tokenbrake-router"):
        Router.load(path)
    data = train_router(TOY, embedding=False).to_dict()
    data["features"] = ["no_such_feature"] + data["features"][1:]
    with pytest.raises(ValueError, match="unknown features"):
        Router.from_dict(data)


def test_training_needs_both_labels():
    with pytest.raises(ValueError, match="both labels"):
        train_router([(p, True) for p in EASY], embedding=False)


def test_example_weights_shift_the_model_toward_the_heavier_examples():
    conflicting = [("Solve 2+2.", True), ("Solve 2+2.", False)] + TOY
    light = train_router(conflicting, embedding=False, weights=[1, 1] + [1] * len(TOY))
    heavy_good = train_router(conflicting, embedding=False, weights=[50, 1] + [1] * len(TOY))
    assert heavy_good.score("Solve 2+2.") < light.score("Solve 2+2.")


def test_percentiles_keep_the_order_of_the_scores_and_stay_within_zero_and_one():
    router = train_router(TOY, embedding=False, l2=1.0)
    prompts = EASY[:2] + HARD[:2] + ["", "x" * 50_000, "Explain 2+2."]
    scores = router.score_many(prompts)
    ranks = [router.percentile(s) for s in scores]
    assert sorted(range(len(prompts)), key=ranks.__getitem__) == sorted(range(len(prompts)), key=scores.__getitem__)
    assert all(0.0 <= r <= 1.0 for r in ranks)
    assert router.percentile(0.0) == 0.0 and router.percentile(1.0) == 1.0
    assert router.threshold_for_share(0.0) >= max(router.score_many([p for p, _ in TOY])) - 1e-12
