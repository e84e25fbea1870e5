"""Agent sessions: per-session limits, and loop detection with its actions.

Before the call, for a request with a session that a `session_rules.rules` entry limits or
watches (session_rules.py):

1. One store operation checks the session's limits and counts the call (atomic, shared by
   replicas): a stopped session, or one at a limit, is refused with a 429 that names it.
2. When the session is watched (`on_loop` warn, throttle or stop), the loop detector reads
   the request against the session's trace, and the new trace (with the verdict, when it
   says loop) is written back by compare-and-set: a replica that lost the race reruns the
   detector on the trace that won, so concurrent calls of one session are each observed once.
3. A loop verdict sets `X-Tokenbrake-Loop: suspected; kind=...; repetitions=N`, flags the
   call in the ledger and alerts (once per session and kind). `throttle` also sleeps before
   the call, doubling with each repetition past the detector's threshold, up to
   `session_rules.throttle_max_s`. `stop` stops the session in the same write and refuses the
   call with the evidence; every later call is refused until an operator resumes it.

After the call: its tokens and cost (PriceCall's, whose after step runs before this one) are
added to the session. A call that never reached an upstream (refused by a later stage) is
taken back out of the session's count.

Nothing is done, no store call at all, when no rule limits or watches sessions, or the
request has no session.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from decimal import Decimal

from tokenbrake.admission import session_rules
from tokenbrake.config import Config
from tokenbrake.core import Endpoint, RequestContext
from tokenbrake.limits import LimitStore
from tokenbrake.limits.types import SessionRecord
from tokenbrake.loops import LoopDetector, LoopVerdict
from tokenbrake.settlement.alerts import Alerts
from tokenbrake.uncancellable import finish

log = logging.getLogger(__name__)

# Compare-and-set rounds before a call's observation is given up (logged). Each round one of
# the racing calls wins, so up to this many calls of one session in flight at once are all
# observed; an agent rarely has more than a few.
MAX_OBSERVE_ATTEMPTS = 32


class Sessions:
    def __init__(self, config: Config, limits: LimitStore, alerts: Alerts,
                 sleep: Callable[[float], Awaitable[None]] = asyncio.sleep) -> None:
        self.settings = config.sessions
        self.rules = session_rules.Rules(config.sessions)
        self.store = limits
        self.alerts = alerts
        self.sleep = sleep
        self.detector = LoopDetector(config.sessions.loops) if config.sessions.loops.enabled else None

    async def before(self, ctx: RequestContext) -> None:
        if not self.rules or ctx.who.session is None or ctx.endpoint not in (Endpoint.CHAT, Endpoint.EMBEDDINGS):
            return
        policy = self.rules.policy(ctx)
        if policy is None:
            return
        key_name, session = ctx.who.key_name or session_rules.ANONYMOUS, ctx.who.session
        admission = await self.store.session_admit(key_name, session, policy.caps, self.settings.idle_ttl_s)
        if admission.refused is not None:
            raise session_rules.refusal(admission, policy)
        try:
            if policy.watches_loops and self.detector is not None and ctx.endpoint is Endpoint.CHAT:
                await self._watch(ctx, admission.record, policy.on_loop)
        except BaseException:  # refused, or the client left: the call does not count
            await finish(self._uncount(key_name, session))
            raise
        ctx.session_counted = (key_name, session)

    async def after(self, ctx: RequestContext) -> None:
        counted, ctx.session_counted = ctx.session_counted, None
        if counted is None:
            return
        if not ctx.attempts:
            await self._uncount(*counted)
            return
        await self.store.session_settle(*counted, ctx.total_tokens, ctx.total_cost)  # a cascade's earlier calls too

    async def _uncount(self, key_name: str, session: str) -> None:
        try:
            await self.store.session_settle(key_name, session, 0, Decimal(0), uncount=True)
        except Exception:
            log.exception("could not take a refused call back out of session %s of key %s", session, key_name)

    # -- loops

    async def _watch(self, ctx: RequestContext, record: SessionRecord, action: str) -> None:
        record, verdict = await self._observe(ctx, record, action)
        if verdict is None or not verdict.looping:
            return
        ctx.loop_suspected = verdict.kind
        ctx.response_headers[session_rules.LOOP_HEADER] = f"suspected; kind={verdict.kind}; repetitions={verdict.repetitions}"
        self._alert(record, verdict, action)
        if action == "stop":  # `_remember` has stopped the record
            raise session_rules.stopped(record, calls=record.calls - 1)  # this one is not made
        if action == "throttle":
            await self.sleep(self.throttle_s(verdict))

    async def _observe(self, ctx: RequestContext, record: SessionRecord,
                       action: str) -> tuple[SessionRecord, LoopVerdict | None]:
        """Runs the detector on the request and writes the new trace by compare-and-set,
        rerunning it on the current record when another call wrote first. The record as
        written, and the verdict (None: not observed)."""
        assert self.detector is not None, "observed only with loop detection on"
        for _ in range(MAX_OBSERVE_ATTEMPTS):
            if record.status == "stopped":  # stopped meanwhile (a loop seen by a concurrent call, or an operator)
                raise session_rules.stopped(record, calls=record.calls - 1)
            trace, verdict = self.detector.observe(record.trace, ctx.format, ctx.body)
            record.trace = trace
            if verdict.looping:
                self._remember(record, verdict, action)
            written, current = await self.store.session_observe(record, self.settings.idle_ttl_s)
            if written or current is None:
                return record, verdict
            record = current
        log.warning("session %s of key %s: the loop detector's trace kept changing under it; this call is not "
                    "observed", record.session, record.key_name)
        return record, None

    def _remember(self, record: SessionRecord, verdict: LoopVerdict, action: str) -> None:
        record.loop_calls += 1
        record.verdicts = [*record.verdicts, {"at": time.time(), "call": verdict.call or record.calls,
                                              "kind": verdict.kind, "repetitions": verdict.repetitions,
                                              "evidence": verdict.evidence, "action": action}][-self.settings.history:]
        if action == "stop":
            record.status, record.stopped_at = "stopped", time.time()
            record.reason, record.evidence = stop_reason(verdict), verdict.evidence

    def throttle_s(self, verdict: LoopVerdict) -> float:
        past = max(0, verdict.repetitions - self.settings.loops.repetitions)
        return min(self.settings.throttle_max_s, self.settings.throttle_initial_s * 2 ** min(past, 30))

    def _alert(self, record: SessionRecord, verdict: LoopVerdict, action: str) -> None:
        message = (f"{session_rules.named(record)}: loop suspected ({verdict.kind}, {verdict.repetitions} repetitions), "
                   f"action {action}: {verdict.evidence}")
        payload = {"type": "session_loop", "key": record.key_name, "session": record.session, "kind": verdict.kind,
                   "repetitions": verdict.repetitions, "evidence": verdict.evidence, "action": action,
                   "calls": record.calls, "cost_usd": str(record.cost), "at": time.time()}
        mark = f"alert:session:{len(record.key_name)}:{record.key_name}:{record.session}:{verdict.kind}"
        self.alerts.notify(mark, self.settings.idle_ttl_s, message, payload)


def stop_reason(verdict: LoopVerdict) -> str:
    return f"stopped by loop detection ({verdict.kind}, {verdict.repetitions} repetitions)"
