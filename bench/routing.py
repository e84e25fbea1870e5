"""How well does the router pick the cheap model? RouteLLM's APGR and CPT on data it did not see.

Reads `../shared/data/routing/` (GSM8K: weak/strong correctness; MT-Bench: judge scores per
turn; contaminated prompts dropped), and for the features-only router and, when the `router`
extra is installed, the embedding router, reports:
- cross-dataset: trained on GSM8K, evaluated on MT-Bench, and the other way round;
- k-fold cross-validation within GSM8K, within MT-Bench, and on the pooled set (scored on
  each dataset's held-out prompts; an MT-Bench question's two turns stay in one fold);
next to random routing (seeded random scores, averaged over many draws). Then the latency of
`Router.score()` on single prompts (p50, p95) for each router.

    .venv/bin/python bench/routing.py [--data ../shared/data/routing] [--folds 5] [--no-embedding]
"""

from __future__ import annotations

import argparse
import platform
import random
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tokenbrake.evaluation import routing_quality
from tokenbrake.evaluation.router import (
    cross_validated,
    held_out,
    score_latency_ms,
    train,
)
from tokenbrake.evaluation.shared_data import shared_data
from tokenbrake.router import embedding
from tokenbrake.router.training_data import Example, load_all

DEFAULT_DATA = shared_data("routing")


def random_routing(examples: list[Example]) -> routing_quality.RoutingQuality:
    return routing_quality.random_baseline([e.weak for e in examples], [e.strong for e in examples], draws=500)


def row(label: str, kind: str, measured: routing_quality.RoutingQuality, baseline: routing_quality.RoutingQuality) -> str:
    return (f"{label:<34} {kind:<10} {measured.apgr:6.3f} {measured.cpt50:8.1%} {measured.cpt80:8.1%}"
            f"   | {baseline.apgr:6.3f} {baseline.cpt50:8.1%} {baseline.cpt80:8.1%}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--no-embedding", action="store_true", help="only the features-only router")
    args = parser.parse_args()

    data = load_all(args.data)
    pooled = data["gsm8k"] + data["mt_bench"]
    kinds = [False] + ([True] if embedding.available() and not args.no_embedding else [])
    print(f"# router quality on {args.data} ({len(data['gsm8k'])} GSM8K prompts, {len(data['mt_bench'])} MT-Bench turns,"
          f" contaminated dropped); {platform.processor() or platform.machine()}, python {platform.python_version()}")
    print(f"{'evaluation':<34} {'router':<10} {'APGR':>6} {'CPT(50%)':>8} {'CPT(80%)':>8}   | random: APGR CPT(50%) CPT(80%)")
    baselines = {name: random_routing(examples) for name, examples in data.items()}
    for use_embedding in kinds:
        kind = "embedding" if use_embedding else "features"
        print(row("train GSM8K -> eval MT-Bench", kind, held_out(data["gsm8k"], data["mt_bench"], use_embedding), baselines["mt_bench"]))
        print(row("train MT-Bench -> eval GSM8K", kind, held_out(data["mt_bench"], data["gsm8k"], use_embedding), baselines["gsm8k"]))
        for name in ("gsm8k", "mt_bench"):
            measured = cross_validated(data[name], args.folds, use_embedding)[name]
            print(row(f"{args.folds}-fold CV within {name}", kind, measured, baselines[name]))
        for name, measured in cross_validated(pooled, args.folds, use_embedding).items():
            print(row(f"{args.folds}-fold CV pooled, on {name}", kind, measured, baselines[name]))

    prompts = [e.prompt for e in random.Random(1).sample(pooled, 300)]
    print(f"\n# score() latency, one prompt at a time, {len(prompts)} prompts (mean {statistics.fmean(map(len, prompts)):.0f} chars)")
    for use_embedding in kinds:
        router = train(pooled, use_embedding)
        p50, p95 = score_latency_ms(router, prompts)
        print(f"{router.kind:<10} p50 {p50:6.2f} ms   p95 {p95:6.2f} ms")


if __name__ == "__main__":
    main()
