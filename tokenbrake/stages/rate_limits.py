"""Rate limits: requests per minute, tokens per minute and requests in flight, per scope.

Every `limits:` entry whose scope the request is in counts it, in one shared counter per
scope (`user:*`: one per user), in the limits store (memory or Redis, so replicas share them):

- `concurrent`: a slot is taken before the call and given back after it (for a stream, once
  it ends or breaks off). Slots of a gateway that died expire after
  `budgeting.reservation_ttl_s`.
- `requests_per_minute`: one hit in a sliding 60-second window.
- `tokens_per_minute`: counted at admission, as OpenAI does: the counted input plus the
  output cap (`max_tokens` after the caps stage, or the model's `default_max_tokens`); an
  embeddings request counts its input. Not corrected after the call: a sliding window
  cannot take back part of a hit without under-counting later, and counting the cap makes
  the limit bound what the requests admitted in a minute can produce. A client that sets a
  tight `max_tokens` gets more requests through.

All of a request's slots and windows are asked for at once (`LimitStore.admit`: one round
trip to Redis). Slots are taken first, being the only thing that can be given back: a
request refused by a later limit releases them, but stays counted by the windows it already
passed.

A refusal is a 429 `rate_limit_exceeded` (RateLimitError in both SDKs) naming the limit, the
scope, what was used and when to retry, with `retry-after` (whole seconds) and
`retry-after-ms`, which both SDKs honour. Every response to a request under a rate limit,
refused or not, carries OpenAI's `x-ratelimit-{limit,remaining,reset}-{requests,tokens}`
for the tightest limit of each kind (the one with the least remaining).

Counter keys start with `rpm:`, `tpm:` and `conc:`, apart from budgets' keys. A request no
limit applies to costs nothing here: no store call at all. Counting tokens is not limited.
"""

from __future__ import annotations

import logging
import math

from tokenbrake.admission.limit_rules import ApplicableLimits, AppliedLimit, setting_in
from tokenbrake.config import Config
from tokenbrake.core import Endpoint, ErrorKind, GatewayError, RequestContext
from tokenbrake.limits import HitAsk, LimitStore, RateDecision, SlotAsk
from tokenbrake.scopes import scope_values
from tokenbrake.uncancellable import finish
from tokenbrake.wire import request_size
from tokenbrake.wire.retry_after import duration, retry_headers

log = logging.getLogger(__name__)

WINDOW_S = 60.0
PREFIX = {"requests_per_minute": "rpm:", "tokens_per_minute": "tpm:", "concurrent": "conc:"}
UNIT = {"requests_per_minute": "requests", "tokens_per_minute": "tokens"}


class RateLimits:
    def __init__(self, config: Config, limits: LimitStore) -> None:
        self.config = config
        self.store = limits
        self.limits = setting_in(config.limits, "requests_per_minute", "tokens_per_minute", "concurrent")
        self._applicable = ApplicableLimits(self.limits, ("concurrent", "requests_per_minute", "tokens_per_minute"))
        self.slot_ttl_s = config.budgeting.reservation_ttl_s

    async def before(self, ctx: RequestContext) -> None:
        if not self.limits or ctx.endpoint is Endpoint.COUNT_TOKENS:
            return
        applied = self._applicable(scope_values(ctx))
        slots = applied["concurrent"]
        windows = [(limit, 1, "") for limit in applied["requests_per_minute"]]
        per_token = applied["tokens_per_minute"]
        if per_token:
            counted, cap = admitted_tokens(ctx, self.config)
            windows += [(limit, counted + cap, f" (counted input {counted} + output cap {cap})") for limit in per_token]
        if not slots and not windows:
            return
        if slots:
            ctx.concurrency_slots = tuple(limit.key for limit in slots)  # first, so a cancelled admit is freed too
        try:
            admission = await self.store.admit(
                ctx.request_id, [SlotAsk(PREFIX["concurrent"] + limit.key, limit.value) for limit in slots],
                [HitAsk(PREFIX[limit.setting] + limit.key, limit.value, WINDOW_S, amount) for limit, amount, _ in windows],
                self.slot_ttl_s)
        except BaseException:  # a store failure, or the client leaving: give the slots back
            await self._free_slots(ctx)
            raise
        if not admission.allowed:
            ctx.concurrency_slots = ()  # the store gave them back
        if admission.full_slot is not None:
            raise concurrency_refusal(slots[admission.full_slot])
        decided = list(zip(windows, admission.decisions))
        for setting in UNIT:
            seen = [(limit, decision) for (limit, _, _), decision in decided if limit.setting == setting]
            if seen:
                ctx.response_headers.update(rate_headers(*min(seen, key=lambda s: (s[1].remaining, s[0].value))))
        if not admission.allowed:
            (limit, amount, detail), decision = decided[-1]
            ctx.response_headers.update(rate_headers(limit, decision))
            raise rate_refusal(limit, decision, amount, detail)

    async def after(self, ctx: RequestContext) -> None:
        await self._free_slots(ctx)

    async def _free_slots(self, ctx: RequestContext) -> None:
        keys, ctx.concurrency_slots = ctx.concurrency_slots, ()
        if not keys:
            return
        await finish(self._release(keys, ctx.request_id))  # even when the client leaves meanwhile

    async def _release(self, keys: tuple[str, ...], request_id: str) -> None:
        for key in keys:
            try:
                await self.store.release_slot(PREFIX["concurrent"] + key, request_id)
            except Exception:  # it expires on its own; the response must not fail for it
                log.exception("could not release concurrency slot %s of request %s", key, request_id)


def admitted_tokens(ctx: RequestContext, config: Config) -> tuple[int, int]:
    """(counted input, output cap): what a request counts against tokens per minute."""
    return request_size.input_tokens(ctx), request_size.output_cap(ctx, config)


def rate_headers(limit: AppliedLimit, decision: RateDecision) -> dict[str, str]:
    unit = UNIT[limit.setting]
    return {
        f"x-ratelimit-limit-{unit}": str(limit.value),
        f"x-ratelimit-remaining-{unit}": str(decision.remaining),
        f"x-ratelimit-reset-{unit}": duration(decision.reset_s),
    }


def rate_refusal(limit: AppliedLimit, decision: RateDecision, amount: int, detail: str = "") -> GatewayError:
    unit = UNIT[limit.setting]
    message = (f"Rate limit reached for {limit.describe()} on {unit} per minute ({limit.setting}): "
               f"Limit {limit.value}, Used {limit.value - decision.remaining}, Requested {amount}{detail}.")
    if math.isinf(decision.retry_after_s):
        return GatewayError(ErrorKind.RATE_LIMIT, f"{message} This request alone is over the limit and will never "
                            f"fit: lower max_tokens or shorten the input.", code="rate_limit_exceeded",
                            limit=f"{limit.scope} {limit.setting}")
    return GatewayError(ErrorKind.RATE_LIMIT, f"{message} Please try again in {duration(decision.retry_after_s)}.",
                        code="rate_limit_exceeded", limit=f"{limit.scope} {limit.setting}",
                        headers=retry_headers(decision.retry_after_s))


def concurrency_refusal(limit: AppliedLimit) -> GatewayError:
    return GatewayError(ErrorKind.RATE_LIMIT,
                        f"Concurrency limit reached for {limit.describe()}: at most {limit.value} requests in flight "
                        f"(concurrent). Please try again when one of them has finished.",
                        code="rate_limit_exceeded", limit=f"{limit.scope} concurrent", headers=retry_headers(1.0))


