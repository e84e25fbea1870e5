"""Trains the default routers shipped in `tokenbrake/router/models/`, deterministically.

Both are trained on all of `../shared/data/routing/` (GSM8K and MT-Bench, contaminated prompts
dropped) with the default regularization; Newton's method has no random start, so the same
data gives the same files. The embedding router needs the `router` extra.

    .venv/bin/python bench/train_default_router.py [--data ../shared/data/routing]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tokenbrake.evaluation.shared_data import shared_data
from tokenbrake.router import classifier
from tokenbrake.router.training_data import load_all

DEFAULT_DATA = shared_data("routing")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    args = parser.parse_args()
    data = load_all(args.data)
    examples = [(e.prompt, e.good_enough) for name in ("gsm8k", "mt_bench") for e in data[name]]
    info = {"trained_on": "RouteLLM GSM8K + MT-Bench, contaminated prompts dropped",
            "by": "bench/train_default_router.py"}
    for use_embedding, path in ((False, classifier.DEFAULT_FEATURES_MODEL), (True, classifier.DEFAULT_EMBEDDING_MODEL)):
        router = classifier.train_router(examples, embedding=use_embedding, info=info)
        router.save(path)
        print(f"{router.kind} router: {len(examples)} examples -> {path} ({path.stat().st_size} bytes)")


if __name__ == "__main__":
    main()
