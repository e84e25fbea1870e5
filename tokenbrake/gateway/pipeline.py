"""The request pipeline, assembled in one place so its order can be read top to bottom.

Stages' `before` steps run in order; any of them may answer the request itself by raising
`GatewayError`. Then the upstream call. Then the `after` steps in reverse order, only for
the stages the request reached, on success and failure alike; for a stream they run once its
last byte is sent, or when it broke off or the client left. A stage may have only one of the
two steps: looking it up costs less than awaiting a step that does nothing.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import TYPE_CHECKING

from tokenbrake.core import ErrorKind, GatewayError, Reply, ReplyStream, RequestContext, Stage
from tokenbrake.limits.types import LimitStoreUnavailable
from tokenbrake.uncancellable import finish
from tokenbrake.wire.errors import error_body

if TYPE_CHECKING:
    from tokenbrake.gateway.state import AppState

log = logging.getLogger(__name__)

Call = Callable[[RequestContext], Awaitable[Reply]]


def build_stages(state: AppState) -> list[Stage]:
    from tokenbrake.gateway.access_log import AccessLog
    from tokenbrake.settlement.metrics import RecordMetrics
    from tokenbrake.stages.allow_models import AllowModels
    from tokenbrake.stages.caps import RequestCaps
    from tokenbrake.stages.identify import Identify
    from tokenbrake.stages.journal_start import JournalStart
    from tokenbrake.stages.keep_conversation import Conversations
    from tokenbrake.stages.price_call import PriceCall
    from tokenbrake.stages.rate_limits import RateLimits
    from tokenbrake.stages.record_call import RecordCall
    from tokenbrake.stages.reserve_budget import Budgets, ThresholdDowngrade
    from tokenbrake.stages.resolve_model import ResolveModel
    from tokenbrake.stages.route import Route
    from tokenbrake.stages.watch_session import Sessions

    budgets = Budgets(state.config, state.prices, state.limits, state.alerts, state.budgets)
    return [
        RecordMetrics(state.metrics),  # first in, last out: sees every outcome
        *([AccessLog()] if state.config.log.access else []),  # after: a line per request, every outcome
        # after: one ledger row per upstream call, journaled and queued before the response ends
        RecordCall(state.writer, state.config.ledger.store_prompts, state.journal),
        Identify(state.keys),  # virtual key → team; end user, session, tags
        AllowModels(),  # the key's model allow-list
        ResolveModel(state.config),  # model name → targets (model, then its fallbacks)
        # before: a Responses request's `previous_response_id` → the kept conversation, for this
        # key, ahead of everything that counts or reads the prompt; after: the response kept
        Conversations(state.config, state.database.responses),
        # before: a virtual model (or a rerouted one) → a routing decision and its tier's targets,
        # ahead of the budgets, whose downgrade caps it; after: the cost saved, for the ledger
        Route(state.config, state.prices),
        # before: a downgrade budget below its threshold → its cheaper model, ahead of the caps
        # and rate limits, so they count the model that will serve the request
        ThresholdDowngrade(budgets),
        RequestCaps(state.config),  # refuse input over max_input_tokens; clamp max_tokens to max_output_tokens
        # before: requests and tokens per minute (tokens: input + the clamped output cap), and a
        # concurrency slot; after: the slot is given back
        RateLimits(state.config, state.limits),
        # before: the agent session's limits (refused when stopped or at one; else counted), then
        # loop detection and its action (warn, throttle, stop), ahead of the budgets so a stopped
        # session reserves nothing; after: the call's tokens and cost added to the session
        Sessions(state.config, state.limits, state.alerts),
        # before: reserve the worst case on every budget in scope (clamp, downgrade or refuse);
        # after: settle the reservation to the cost PriceCall has just computed
        budgets,
        # Its after step runs first: usage → cost, for the budgets and the ledger row
        PriceCall(state.prices),
        # Last before the call: the request and what it reserved, on disk (the journal), so a
        # gateway killed mid-call still records the call, charged at that worst case
        JournalStart(state.journal),
    ]


class Pipeline:
    def __init__(self, stages: Sequence[Stage], call: Call) -> None:
        self.stages = list(stages)
        self.call = call

    async def run(self, ctx: RequestContext) -> Reply:
        ran: list[Stage] = []
        try:
            for stage in self.stages:
                if (before := getattr(stage, "before", None)) is not None:  # a stage may have only one step
                    await before(ctx)
                ran.append(stage)
            reply = await self.call(ctx)
        except GatewayError as error:
            return await self._refuse(ctx, ran, error)
        except LimitStoreUnavailable as exc:
            # One line per outage comes from the store (limits/redis_leases.py), not one a request.
            log.debug("request %s refused: shared state unavailable: %s", ctx.request_id, exc)
            refusal = GatewayError(ErrorKind.OVERLOADED, "The gateway cannot reach its shared state (budgets, limits, "
                                   "sessions), so it cannot check this request against them and refuses it. "
                                   "Try again shortly.", status=503, code="limit_store_unavailable", headers={"retry-after": "1"})
            return await self._refuse(ctx, ran, refusal)
        except Exception:
            log.exception("request %s failed inside the gateway", ctx.request_id)
            refusal = GatewayError(ErrorKind.INTERNAL, f"internal gateway error (request id {ctx.request_id})")
            return await self._refuse(ctx, ran, refusal)
        if reply.stream is None:
            await self._after(ran, ctx)
            return reply
        reply.stream = SettledStream(reply.stream, lambda: self._after(ran, ctx))
        return reply

    async def _refuse(self, ctx: RequestContext, ran: list[Stage], error: GatewayError) -> Reply:
        ctx.error, ctx.status = error, error.status
        await self._after(ran, ctx)
        return Reply(status=error.status, body=error_body(ctx.format, error), headers=dict(error.headers))

    async def _after(self, ran: list[Stage], ctx: RequestContext) -> None:
        for stage in reversed(ran):
            if (after := getattr(stage, "after", None)) is None:
                continue
            try:
                await after(ctx)
            except Exception:  # one stage's failure must not skip the others' accounting
                log.exception("after step of %s failed for request %s", type(stage).__name__, ctx.request_id)


class SettledStream:
    """A reply stream whose `after` steps run exactly once: at its end, or on `aclose()`."""

    def __init__(self, inner: ReplyStream, settle: Callable[[], Awaitable[None]]) -> None:
        self.inner = inner
        self.settle = settle
        self.closed = False
        self._chunks: AsyncIterator[bytes] | None = None

    def __aiter__(self) -> SettledStream:
        return self

    async def __anext__(self) -> bytes:
        """The inner stream's next chunk. Its last (when the inner stream says it is
        `finished`) comes once settled: the client sees its stream end after the accounting,
        and the server can send the end of the response with it."""
        if self._chunks is None:
            self._chunks = aiter(self.inner)
        try:
            chunk = await anext(self._chunks)
        except BaseException:  # its end, its failure, or the client leaving
            await self.aclose()
            raise
        if getattr(self.inner, "finished", False):
            await self.aclose()
        return chunk

    @property
    def finished(self) -> bool:
        """Settled: no chunk follows."""
        return self.closed

    async def aclose(self) -> None:
        if self.closed:
            return
        self.closed = True
        await finish(self._close_and_settle())  # even when the client leaves meanwhile

    async def _close_and_settle(self) -> None:
        try:
            await self.inner.aclose()
        finally:
            await self.settle()
