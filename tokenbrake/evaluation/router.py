"""Judging a way of training routers on RouteLLM-style data it was not trained on.

`held_out` trains on one set and measures on another; `cross_validated` trains on all folds
but one, scores the held-out fold, and measures every prompt's out-of-fold score (per dataset,
since GSM8K's 0/1 correctness and MT-Bench's 1-10 scores do not mix). The turns of one
MT-Bench question share a group and so a fold: the second turn repeats the first.
Used by `bench/routing.py`, `bench/overhead.py` and the tests.
"""

from __future__ import annotations

import random
import statistics
import time

from tokenbrake.evaluation.routing_quality import RoutingQuality, measure
from tokenbrake.router import embedding
from tokenbrake.router.classifier import Router, train_router
from tokenbrake.router.training_data import Example


def train(examples: list[Example], use_embedding: bool, **options) -> Router:
    return train_router([(e.prompt, e.good_enough) for e in examples], embedding=use_embedding, **options)


def judged(scores: list[float], examples: list[Example]) -> RoutingQuality:
    return measure(scores, [e.weak for e in examples], [e.strong for e in examples])


def held_out(train_on: list[Example], test_on: list[Example], use_embedding: bool, **options) -> RoutingQuality:
    router = train(train_on, use_embedding, **options)
    return judged(router.score_many([e.prompt for e in test_on]), test_on)


def folds_of(examples: list[Example], folds: int, seed: int = 0) -> list[list[Example]]:
    groups = sorted({e.group for e in examples})
    random.Random(seed).shuffle(groups)
    fold_of = {group: index % folds for index, group in enumerate(groups)}
    return [[e for e in examples if fold_of[e.group] == fold] for fold in range(folds)]


def cross_validated(examples: list[Example], folds: int, use_embedding: bool, **options) -> dict[str, RoutingQuality]:
    """Out-of-fold measures, by dataset."""
    scored: list[tuple[Example, float]] = []
    parts = folds_of(examples, folds)
    for index, held in enumerate(parts):
        rest = [e for j, part in enumerate(parts) if j != index for e in part]
        router = train(rest, use_embedding, **options)
        # Each fold's router has its own scale: its percentiles make the folds comparable.
        scored.extend(zip(held, map(router.percentile, router.score_many([e.prompt for e in held]))))
    results = {}
    for dataset in sorted({e.dataset for e in examples}):
        mine = [(e, s) for e, s in scored if e.dataset == dataset]
        results[dataset] = judged([s for _, s in mine], [e for e, _ in mine])
    return results


def score_latency_ms(router: Router, prompts: list[str]) -> tuple[float, float]:
    """p50 and p95 of `score()` on one prompt at a time, with nothing remembered between calls."""
    router.score(prompts[0])  # loads the embedding model, outside the measurement
    times = []
    for prompt in prompts:
        if router.uses_embedding:
            embedding.shared_embedder().forget()
        start = time.perf_counter()
        router.score(prompt)
        times.append((time.perf_counter() - start) * 1000)
    times.sort()
    return statistics.median(times), times[int(0.95 * (len(times) - 1))]
