"""Last before the call: what the request is and what it reserved, appended to the journal
before any money can be spent, so a gateway killed mid-call leaves a record of it."""

from __future__ import annotations

import time

from tokenbrake.core import RequestContext
from tokenbrake.journal import Journal
from tokenbrake.journal.records import Held, Start
from tokenbrake.limits.types import to_nanos


class JournalStart:
    def __init__(self, journal: Journal) -> None:
        self.journal = journal

    async def before(self, ctx: RequestContext) -> None:
        self.journal.started(start_of(ctx, time.time()))


def start_of(ctx: RequestContext, now: float) -> Start:
    who, target, hold = ctx.who, ctx.targets[0] if ctx.targets else None, ctx.budget_hold
    grant = hold.grant if hold is not None else None
    return Start(
        request_id=ctx.request_id, at=now, key_name=who.key_name, team=who.team, user=who.user,
        session=who.session, tags=dict(who.tags), requested_model=ctx.requested_model or None,
        model=target.name if target else "", upstream=target.upstream if target else "", stream=ctx.stream,
        endpoint=ctx.endpoint.value, front_door=ctx.format.value,
        reserved_nanos=to_nanos(grant.amount) if grant is not None else 0,
        held_on=tuple(Held(p.key, p.rolling_s, p.keep_s) for p in grant.held_on) if grant is not None else (),
        placed_at=grant.placed_at if grant is not None else now,
    )
