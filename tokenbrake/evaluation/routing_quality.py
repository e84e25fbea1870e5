"""How good is a router? The RouteLLM paper's measures (arXiv 2406.18665).

Sweeping the threshold sends the highest-scored prompts to the strong model and the rest to
the cheap one. At each share `c` sent to strong, the quality delivered is the mean of the
chosen model's result, and the performance gap recovered is
PGR(c) = (quality(c) - quality(all cheap)) / (quality(all strong) - quality(all cheap)).
- APGR: the area under PGR over c in [0, 1] (0.5 for random routing, 1 for an oracle-like one).
- CPT(x): the smallest share sent to strong at which PGR reaches x.
Prompts with equal scores are sent together, as a threshold would; between such steps the
curve is a straight line (what a random tie-break gives on average).
"""

from __future__ import annotations

import random
import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import pairwise


@dataclass(frozen=True)
class RoutingQuality:
    apgr: float
    cpt50: float
    cpt80: float


def pgr_curve(scores: Sequence[float], weak: Sequence[float], strong: Sequence[float]) -> list[tuple[float, float]]:
    """(share sent to strong, PGR) at every distinct threshold, from 0 to 1."""
    n = len(scores)
    gap = sum(strong) - sum(weak)
    if n == 0 or gap == 0:
        raise ValueError("PGR needs prompts on which the strong model is better on the whole")
    order = sorted(range(n), key=lambda i: -scores[i])
    points = [(0.0, 0.0)]
    gained = 0.0
    for position, index in enumerate(order):
        gained += strong[index] - weak[index]
        last_of_tie = position + 1 == n or scores[order[position + 1]] != scores[index]
        if last_of_tie:
            points.append(((position + 1) / n, gained / gap))
    return points


def apgr(points: list[tuple[float, float]]) -> float:
    return sum((c1 - c0) * (p0 + p1) / 2 for (c0, p0), (c1, p1) in pairwise(points))


def cpt(points: list[tuple[float, float]], target: float) -> float:
    """Smallest share sent to strong with PGR >= target, interpolating within a step."""
    for (c0, p0), (c1, p1) in pairwise(points):
        if p1 >= target:
            return c0 if p0 >= target else c0 + (c1 - c0) * (target - p0) / (p1 - p0)
    return 1.0


def measure(scores: Sequence[float], weak: Sequence[float], strong: Sequence[float]) -> RoutingQuality:
    points = pgr_curve(scores, weak, strong)
    return RoutingQuality(apgr(points), cpt(points, 0.5), cpt(points, 0.8))


def random_baseline(weak: Sequence[float], strong: Sequence[float], draws: int = 200, seed: int = 0) -> RoutingQuality:
    """Random routing, measured: the mean over `draws` seeded random scorings."""
    rng = random.Random(seed)
    results = [measure([rng.random() for _ in weak], weak, strong) for _ in range(draws)]
    return RoutingQuality(*(statistics.fmean(getattr(r, field) for r in results) for field in ("apgr", "cpt50", "cpt80")))
