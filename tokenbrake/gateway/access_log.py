"""The access log: one line per request, written by the `tokenbrake.access` logger at info.

Who asked (key name, team, user, session), through which front door, for which model and
which one served, what routing decided, the outcome, tokens, cost, latency and the flags an
operator looks for (a budget's downgrade, a suspected loop). Never prompt or completion
text, and never key material: a key appears by its name. The record only collects values
already on the request context; formatting and writing happen on the log's own thread
(tokenbrake/logs.py).
"""

from __future__ import annotations

import logging

from tokenbrake.admission.budget_rules import DOWNGRADED_HEADER
from tokenbrake.core import RequestContext
from tokenbrake.logs import ACCESS_LOGGER, access_writer


class AccessLog:
    """First in, last out (beside the metrics): sees every request, refusals included."""

    def __init__(self) -> None:
        self.log = logging.getLogger(ACCESS_LOGGER)
        writer = access_writer()  # serve's log queue; without one (in process), the logger
        self.write = writer.access if writer is not None else lambda fields: self.log.info("%s", fields)

    async def after(self, ctx: RequestContext) -> None:
        if self.log.isEnabledFor(logging.INFO):
            self.write(access_fields(ctx))


def access_fields(ctx: RequestContext) -> dict:
    """The line's fields, in the order written; None is left out of a text line."""
    who, usage, error, route = ctx.who, ctx.usage, ctx.error, ctx.route
    return {
        "request_id": ctx.request_id,
        "key": who.key_name,
        "team": who.team,
        "user": who.user,
        "session": who.session,
        "door": ctx.format.value,
        "endpoint": ctx.endpoint_name,
        "model": ctx.requested_model or None,
        "served": ctx.served.name if ctx.served is not None else None,
        "route": route.model.name if route is not None else None,
        "tier": route.tier if route is not None else None,
        "score": round(route.score, 3) if route is not None and route.score is not None else None,
        "outcome": route.outcome if route is not None else None,
        "status": ctx.status,
        "error": error.kind.value if error is not None else None,
        "limit": error.limit if error is not None else None,
        "input_tokens": (usage.input_tokens + usage.cached_input_tokens + usage.cache_write_tokens) if usage else None,
        "output_tokens": usage.output_tokens if usage is not None else None,
        "cost_usd": str(ctx.total_cost) if ctx.usage is not None or ctx.prior_calls else None,
        "saved_usd": str(ctx.saved) if ctx.saved else None,
        "ms": round(ctx.elapsed_s * 1000, 1),
        "stream": ctx.stream or None,
        "calls": len(ctx.attempts) + len(ctx.prior_calls) if len(ctx.attempts) > 1 or ctx.prior_calls else None,
        "downgraded_by": ctx.response_headers.get(DOWNGRADED_HEADER),
        "loop": ctx.loop_suspected,
    }
