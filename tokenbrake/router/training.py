"""Fitting a router: L2-regularized logistic regression by Newton's method, with numpy.

The target is "the strong model is needed" (the cheap model was not good enough). Inputs are
standardized so one regularization strength suits features and embedding dimensions alike;
with a few hundred inputs and a few thousand examples Newton converges in a handful of steps
and the result does not depend on a learning rate or a random seed (training is
deterministic).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from tokenbrake.router import embedding as embedding_model
from tokenbrake.router import features, training_data
from tokenbrake.router.classifier import CLIP, QUANTILES, Router, input_rows

# Regularization strengths chosen by cross-validation on the RouteLLM data (bench/routing.py):
# the 384 embedding dimensions need a much stronger pull to 0 than the few hand-made features,
# or they learn the topics of the training set instead of what makes a prompt hard.
DEFAULT_L2 = 30.0
DEFAULT_L2_EMBEDDING = 3000.0


def fit_router(examples: list[tuple[str, bool]], *, embedding: bool | None = None, l2: float = DEFAULT_L2,
               l2_embedding: float = DEFAULT_L2_EMBEDDING, weights: list[float] | None = None,
               info: dict | None = None) -> Router:
    use_embedding = _resolve_embedding(embedding)
    if not examples:
        raise ValueError("no examples to train the router on")
    prompts = [prompt for prompt, _ in examples]
    needs_strong = np.array([0.0 if good_enough else 1.0 for _, good_enough in examples])
    if needs_strong.min() == needs_strong.max():
        raise ValueError("the examples need both labels: some the cheap model handled and some it did not")
    names = list(features.FEATURE_NAMES)
    x = np.array(input_rows(prompts, names, use_embedding), dtype=float)
    mean = x.mean(axis=0)
    scale = x.std(axis=0)
    scale[scale < 1e-9] = 1.0
    penalty = np.full(x.shape[1], l2_embedding)
    penalty[:len(names)] = l2
    sample = np.ones(len(examples)) if weights is None else np.asarray(weights, dtype=float) * len(examples) / np.sum(weights)
    z = np.clip((x - mean) / scale, -CLIP, CLIP)
    w, b = logistic_regression(z, needs_strong, sample, penalty)
    trained = 1.0 / (1.0 + np.exp(-(z @ w + b)))
    meta = {"examples": len(examples), "needs_strong": int(needs_strong.sum()), "l2": l2, **(info or {})}
    if use_embedding:
        meta["l2_embedding"] = l2_embedding
    return Router(feature_names=names, uses_embedding=use_embedding, mean=mean.tolist(),
                  scale=scale.tolist(), weights=w.tolist(), bias=float(b),
                  quantiles=np.quantile(trained, np.linspace(0, 1, QUANTILES)).tolist(), info=meta)


def logistic_regression(x: np.ndarray, y: np.ndarray, sample: np.ndarray, l2: np.ndarray,
                        steps: int = 50, tolerance: float = 1e-8) -> tuple[np.ndarray, float]:
    """Weights and bias minimizing Σ sample·logloss + Σ l2·w²/2 (one strength per input; the bias is free)."""
    n, d = x.shape
    design = np.hstack([x, np.ones((n, 1))])
    theta = np.zeros(d + 1)
    penalty = np.append(l2, 0.0)
    for _ in range(steps):
        p = 1.0 / (1.0 + np.exp(-np.clip(design @ theta, -30, 30)))
        gradient = design.T @ (sample * (p - y)) + penalty * theta
        curvature = sample * p * (1.0 - p)
        hessian = (design * curvature[:, None]).T @ design + np.diag(penalty + 1e-9)
        step = np.linalg.solve(hessian, gradient)
        theta -= step
        if np.max(np.abs(step)) < tolerance:
            break
    return theta[:-1], float(theta[-1])


def _resolve_embedding(requested: bool | None) -> bool:
    if requested is None:
        return embedding_model.available()
    if requested and not embedding_model.available():
        raise RuntimeError("the embedding router needs the router extra: pip install 'tokenbrake[router]'")
    return requested


def read_examples(path: str | Path) -> list[tuple[str, bool]]:
    """Labelled examples from a JSONL file of {"prompt": ..., "good_enough": true|false} lines,
    or from a directory laid out like RouteLLM's evaluation data (`../shared/data/routing/`)."""
    path = Path(path)
    if path.is_dir():
        return [(e.prompt, e.good_enough) for examples in training_data.load_all(path).values() for e in examples]
    examples = []
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        if not line.strip():
            continue
        record = json.loads(line)
        if not isinstance(record.get("prompt"), str) or not isinstance(record.get("good_enough"), bool):
            # A bad line in the user's file: reported like any other bad data, not as a bug.
            raise ValueError(f"{path}:{number}: expected {{\"prompt\": string, \"good_enough\": true|false}}")  # noqa: TRY004
        examples.append((record["prompt"], record["good_enough"]))
    return examples
