"""Every call that reached an upstream becomes one ledger row, whatever its outcome.

The row carries what the request's settled cost charged each budget counter, so a restart
rebuilds the counters' spend from the ledger. It is appended to the journal (a few
microseconds, into the page cache: a kill -9 cannot lose it) and queued for the batched
writer, before the response ends.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from decimal import Decimal

import orjson

from tokenbrake.core import BudgetHold, PriorCall, RequestContext, Usage
from tokenbrake.journal import Journal
from tokenbrake.limits.types import to_nanos
from tokenbrake.storage import LedgerRow, LedgerWriter
from tokenbrake.storage.ledger import Charge


class RecordCall:
    def __init__(self, writer: LedgerWriter, store_prompts: bool, journal: Journal | None = None) -> None:
        self.writer = writer
        self.store_prompts = store_prompts
        self.journal = journal

    async def after(self, ctx: RequestContext) -> None:
        if not ctx.attempts:  # refused before any upstream call: nothing was spent
            if self.journal is not None:
                self.journal.ended(ctx.request_id)
            return
        row = ledger_row(ctx, self.store_prompts)
        rows = [row, *(prior_row(row, prior, n) for n, prior in enumerate(ctx.prior_calls, 1))]  # a cascade's earlier calls
        if self.journal is not None:
            self.journal.recorded(ctx.request_id, rows)  # in the order the writer writes them
        for each in rows:
            self.writer.add(each)


def charges(hold: BudgetHold | None, cost: Decimal) -> tuple[Charge, ...]:
    """What a settled request charged each counter its reservation was held on (as the store
    settles it: the whole cost on each)."""
    if hold is None or hold.settled_at is None or not (nanos := to_nanos(cost)):
        return ()
    grant, at = hold.grant, hold.settled_at
    return tuple(Charge(p.key, nanos, at, p.kept_until(grant.placed_at, at)) for p in grant.held_on)


def ledger_row(ctx: RequestContext, store_prompts: bool) -> LedgerRow:
    served = ctx.served or ctx.attempts[-1].target
    usage = ctx.usage or Usage()
    who = ctx.who
    return LedgerRow(
        request_id=ctx.request_id,
        ts=datetime.now(UTC),
        key_name=who.key_name,
        team=who.team,
        user=who.user,
        session=who.session,
        tags=dict(who.tags),
        requested_model=ctx.requested_model or None,
        served_model=served.name,
        provider=served.upstream,
        input_tokens=usage.input_tokens,
        cached_input_tokens=usage.cached_input_tokens,
        cache_write_tokens=usage.cache_write_tokens,
        output_tokens=usage.output_tokens,
        reasoning_tokens=usage.reasoning_tokens,
        cost_usd=ctx.cost if ctx.cost is not None else Decimal(0),
        latency_ms=ctx.elapsed_s * 1000,
        status=ctx.status,
        error=ctx.error.message if ctx.error else None,
        stream=ctx.stream,
        endpoint=ctx.endpoint_name,
        front_door=ctx.format.value,
        prompt=_prompt(ctx) if store_prompts else None,
        completion=ctx.completion_text if store_prompts else None,
        saved_usd=ctx.saved,
        loop_suspected=ctx.loop_suspected,
        usage_unseen=ctx.usage_unseen,
        charges=charges(ctx.budget_hold, ctx.total_cost),
    )


def prior_row(row: LedgerRow, prior: PriorCall, number: int) -> LedgerRow:
    """The row of a call made before the one that served (its request id: the request's,
    then `.1`, `.2`…). It saved nothing: without routing it would not have been made."""
    usage = prior.usage
    return replace(
        row, request_id=f"{row.request_id}.{number}", served_model=prior.target.name, provider=prior.target.upstream,
        input_tokens=usage.input_tokens, cached_input_tokens=usage.cached_input_tokens,
        cache_write_tokens=usage.cache_write_tokens, output_tokens=usage.output_tokens,
        reasoning_tokens=usage.reasoning_tokens, cost_usd=prior.cost, latency_ms=prior.latency_s * 1000,
        status=prior.status, error=prior.error, stream=False, completion=None, saved_usd=-prior.cost, charges=(),
    )


def _prompt(ctx: RequestContext) -> str:
    body = ctx.body
    kept = {k: body[k] for k in ("system", "messages", "input", "tools") if k in body}
    return orjson.dumps(kept).decode()
