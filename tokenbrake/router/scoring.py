"""Scoring prompts on the request path without holding up the event loop.

The features-only router costs ~20-50 µs of Python per prompt: it is scored inline, as a
thread hop would cost more. The embedding router costs milliseconds (one MiniLM forward
pass): it runs on one worker thread of its own, and prompts that arrive while a batch is
being scored wait and go together in the next one, so under load the model runs one batched
forward pass instead of one per request, and concurrent requests never run several torch
computations against each other on a small machine.
"""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor

MAX_BATCH = 32


class InlineScorer:
    def __init__(self, router) -> None:
        self.router = router

    async def score(self, prompt: str) -> float:
        return self.router.score(prompt)


class BatchedScorer:
    def __init__(self, router) -> None:
        self.router = router
        self.executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="tokenbrake-router",
                                           initializer=_one_compute_thread)
        self.waiting: list[tuple[str, asyncio.Future]] = []
        self.draining = False

    async def score(self, prompt: str) -> float:
        future = asyncio.get_running_loop().create_future()
        self.waiting.append((prompt, future))
        if not self.draining:
            self.draining = True
            asyncio.ensure_future(self._drain())
        return await future

    async def _drain(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            while self.waiting:
                batch, self.waiting = self.waiting[:MAX_BATCH], self.waiting[MAX_BATCH:]
                try:
                    scores = await loop.run_in_executor(self.executor, self.router.score_many, [p for p, _ in batch])
                except Exception as exc:  # every request in the batch gets the error
                    for _, future in batch:
                        if not future.done():
                            future.set_exception(exc)
                    continue
                for (_, future), value in zip(batch, scores):
                    if not future.done():  # its request may have been cancelled meanwhile
                        future.set_result(value)
        finally:
            self.draining = False


def _one_compute_thread() -> None:
    """torch would spread one forward pass over every core, fighting the event loop for them:
    the scoring thread gets one core's worth, the loop keeps the others."""
    try:
        import torch
    except ImportError:
        return
    torch.set_num_threads(1)


def scorer_for(router) -> InlineScorer | BatchedScorer:
    return BatchedScorer(router) if router.uses_embedding else InlineScorer(router)
