"""Scoring on the request path: the embedding router's prompts go to one worker thread in
batches, each request gets its own prompt's score, and a request that leaves harms no other."""

import asyncio

from tokenbrake.router.classifier import train_router
from tokenbrake.router.scoring import BatchedScorer, InlineScorer, scorer_for

EXAMPLES = [("hi", True), ("thanks", True), ("What is 2+2?", True),
            ("Prove the prime number theorem step by step and implement a sieve in C.", False),
            ("Design and prove a lock-free queue, then write it in Rust with tests.", False)]


class CountingRouter:
    """A real router, counting how many batches it is asked to score."""

    uses_embedding = True

    def __init__(self) -> None:
        self.router = train_router(EXAMPLES, embedding=False, l2=0.1)
        self.batches: list[int] = []

    def score_many(self, prompts: list[str]) -> list[float]:
        self.batches.append(len(prompts))
        return self.router.score_many(prompts)


async def test_concurrent_prompts_are_scored_in_batches_each_getting_its_own_score():
    router = CountingRouter()
    scorer = BatchedScorer(router)
    prompts = [f"{text} ({n})" for n in range(10) for text, _ in EXAMPLES]
    scores = await asyncio.gather(*(scorer.score(p) for p in prompts))
    assert scores == [router.router.score(p) for p in prompts]
    assert sum(router.batches) == len(prompts) and len(router.batches) < len(prompts)


async def test_a_cancelled_request_does_not_disturb_the_others_in_its_batch():
    scorer = BatchedScorer(CountingRouter())
    leaving = asyncio.ensure_future(scorer.score("hi"))
    staying = asyncio.ensure_future(scorer.score("Prove the Riemann hypothesis step by step."))
    await asyncio.sleep(0)
    leaving.cancel()
    assert 0 <= await staying <= 1
    assert await scorer.score("thanks") < 0.5  # and the scorer still works


def test_the_features_router_is_scored_inline():
    assert isinstance(scorer_for(train_router(EXAMPLES, embedding=False, l2=0.1)), InlineScorer)
