"""Getting a first answer from a request's targets: retries with backoff, then fallbacks.

Only failures before the first byte are retried: a 429, a 5xx or a failed connection is
tried again on the same upstream (honouring Retry-After), up to the configured attempts; a
timeout is not (the call may still be running and costing money there), but, like any
exhausted retryable failure, moves on to the next fallback. A 4xx other than 408/409/429 is
the request's own fault and is answered straight away.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

from tokenbrake.config import RetryConfig
from tokenbrake.core import Attempt, ErrorKind, GatewayError, RequestContext, Target
from tokenbrake.upstream.providers import Provider, UpstreamFailure
from tokenbrake.wire.errors import kind_for_status

T = TypeVar("T")
Send = Callable[[Provider, Target], Awaitable[T]]


class Dispatcher:
    def __init__(
        self,
        providers: dict[str, Provider],
        retry_for: Callable[[str], RetryConfig],
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.providers = providers
        self.retry_for = retry_for
        self.sleep = sleep

    async def first_answer(self, ctx: RequestContext, send: Send[T]) -> T:
        """Calls `send` on each target in turn until one answers; records every attempt."""
        last: UpstreamFailure | None = None
        for target in ctx.targets:
            provider = self.providers[target.upstream]
            policy = self.retry_for(target.upstream)
            for retry in range(policy.attempts + 1):
                attempt = Attempt(target)
                ctx.attempts.append(attempt)
                started = time.perf_counter()
                try:
                    answer = await send(provider, target)
                except UpstreamFailure as failure:
                    attempt.status, attempt.error = failure.status, failure.message
                    attempt.latency_s = time.perf_counter() - started
                    last = failure
                    if failure.shutting_down and failure.sent:
                        ctx.usage_unseen = True  # cut mid-call: what it cost is not known
                    if not (failure.retryable or failure.timed_out):
                        raise gateway_error(failure) from None
                    if failure.retryable and retry < policy.attempts:
                        await self.sleep(backoff_s(policy, retry, failure.retry_after_s))
                        continue
                    break  # on to the next fallback
                attempt.status = 200
                attempt.latency_s = time.perf_counter() - started
                ctx.served = target
                return answer
        assert last is not None, "a request always has at least one target"
        raise gateway_error(last)


def backoff_s(policy: RetryConfig, retry: int, retry_after_s: float | None) -> float:
    """Exponential backoff with full jitter; an upstream's Retry-After wins when it is sooner
    than our cap."""
    if retry_after_s is not None:
        return min(retry_after_s, policy.backoff_max_s)
    ceiling = min(policy.backoff_max_s, policy.backoff_initial_s * (2**retry))
    return random.uniform(ceiling / 2, ceiling)


def gateway_error(failure: UpstreamFailure) -> GatewayError:
    """How an upstream failure is reported to the client.

    The upstream's 401/403 means the gateway's own credentials are wrong, not the client's,
    so it is reported as a bad gateway rather than as the client's authentication error.
    """
    if failure.shutting_down:
        return GatewayError(ErrorKind.OVERLOADED, failure.message, status=503, code="gateway_shutting_down",
                            headers={"retry-after": "1"})
    if failure.timed_out:
        return GatewayError(ErrorKind.TIMEOUT, failure.message)
    status = failure.status
    if status is None or status in (401, 403):
        return GatewayError(ErrorKind.UPSTREAM, failure.message, status=502)
    kind = kind_for_status(status)
    if kind is ErrorKind.UPSTREAM:
        return GatewayError(kind, failure.message, status=502)
    headers = {"retry-after": str(int(failure.retry_after_s))} if failure.retry_after_s else None
    return GatewayError(kind, failure.message, status=status, headers=headers)
