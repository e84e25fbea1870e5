"""APGR and CPT, the RouteLLM measures, on routings whose answer is known."""

import pytest

from tokenbrake.evaluation.routing_quality import measure, pgr_curve, random_baseline

# Four prompts: the strong model gains only on the first two.
WEAK = [0.0, 0.0, 1.0, 1.0]
STRONG = [1.0, 1.0, 1.0, 1.0]


def test_a_perfect_ranking_recovers_the_gap_with_the_fewest_strong_calls():
    result = measure([0.9, 0.8, 0.1, 0.2], WEAK, STRONG)
    # PGR rises 0 -> 0.5 -> 1 over the first half, then stays at 1: area 0.0625 + 0.1875 + 0.5.
    assert result.apgr == pytest.approx(0.75)
    assert result.cpt50 == pytest.approx(0.25)
    assert result.cpt80 == pytest.approx(0.4)


def test_the_worst_ranking_recovers_nothing_until_the_end():
    result = measure([0.1, 0.2, 0.9, 0.8], WEAK, STRONG)
    assert result.apgr == pytest.approx(0.25)
    assert result.cpt50 == pytest.approx(0.75)


def test_equal_scores_are_sent_together_like_a_threshold_would():
    points = pgr_curve([0.5, 0.5, 0.5, 0.5], WEAK, STRONG)
    assert points == [(0.0, 0.0), (1.0, 1.0)]
    assert measure([0.5] * 4, WEAK, STRONG).apgr == pytest.approx(0.5)


def test_random_routing_measures_about_one_half():
    weak = [float(i % 3 == 0) for i in range(300)]
    strong = [1.0] * 300
    baseline = random_baseline(weak, strong, draws=100)
    assert baseline.apgr == pytest.approx(0.5, abs=0.02)
    assert baseline.cpt50 == pytest.approx(0.5, abs=0.03)
    assert baseline.cpt80 == pytest.approx(0.8, abs=0.03)


def test_no_gap_to_recover_is_an_error():
    with pytest.raises(ValueError):
        measure([0.1, 0.2], [1.0, 1.0], [1.0, 1.0])
