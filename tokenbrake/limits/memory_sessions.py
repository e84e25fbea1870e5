"""Agent sessions in the in-process store (a mixin of MemoryStore).

A session is a `SessionRecord` plus the times of its calls in the last minute, keyed by
(key name, session id). As with the rest of MemoryStore, no operation awaits between reading
and writing, so each is atomic on the event loop. A session idle for `idle_ttl_s` is treated
as gone at once and dropped from memory (and the snapshot) at the next save.
"""

from __future__ import annotations

import dataclasses
from collections import deque
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from tokenbrake.limits.types import (
    SESSION_MINUTE_S,
    Clock,
    SessionAdmission,
    SessionCaps,
    SessionLimit,
    SessionRecord,
    from_nanos,
    to_nanos,
)


@dataclass
class _Session:
    record: SessionRecord
    cost_nanos: int = 0
    expires: float = 0.0  # last_seen + idle TTL
    minute: deque[float] = field(default_factory=deque)  # times of the calls admitted in the last minute

    def trim(self, now: float) -> None:
        while self.minute and self.minute[0] <= now - SESSION_MINUTE_S:
            self.minute.popleft()

    def view(self) -> SessionRecord:
        """A copy the caller may change freely."""
        return dataclasses.replace(self.record, cost=from_nanos(self.cost_nanos), calls_last_minute=len(self.minute),
                                   trace=self.record.trace, verdicts=list(self.record.verdicts))


def refusal(session: _Session, caps: SessionCaps, now: float) -> tuple[SessionLimit | None, float]:
    """The limit a next call of `session` is over (and, per minute, when it fits again)."""
    record = session.record
    if record.status == "stopped":
        return "stopped", 0.0
    if caps.max_calls is not None and record.calls >= caps.max_calls:
        return "max_calls", 0.0
    if caps.max_tokens is not None and record.tokens >= caps.max_tokens:
        return "max_tokens", 0.0
    if caps.max_cost_nanos is not None and session.cost_nanos >= caps.max_cost_nanos:
        return "max_cost_usd", 0.0
    if caps.max_duration_s is not None and now - record.first_seen >= caps.max_duration_s:
        return "max_duration_s", 0.0
    if caps.calls_per_minute is not None and len(session.minute) >= caps.calls_per_minute:
        oldest_needed = session.minute[len(session.minute) - caps.calls_per_minute]
        return "calls_per_minute", round(oldest_needed + SESSION_MINUTE_S - now, 6)
    return None, 0.0


MAX_SESSIONS = 100_000  # live sessions kept in one process (Redis bounds them by its own memory policy)


class MemorySessions:
    _clock: Clock
    _dirty: bool

    def __init__(self) -> None:
        self._sessions: dict[tuple[str, str], _Session] = {}

    def _make_room(self, now: float) -> None:
        """At MAX_SESSIONS (a client inventing session ids must not grow memory without end):
        drop the expired, then the tenth least recently seen."""
        self._forget_sessions(now)
        if len(self._sessions) >= MAX_SESSIONS:
            idle_first = sorted(self._sessions, key=lambda k: self._sessions[k].record.last_seen)
            for key in idle_first[: max(1, MAX_SESSIONS // 10)]:
                del self._sessions[key]
        self._dirty = True

    def _session(self, key_name: str, session: str, now: float) -> _Session | None:
        found = self._sessions.get((key_name, session))
        if found is None or found.expires <= now:
            return None
        found.trim(now)
        return found

    async def session_admit(self, key_name: str, session: str, caps: SessionCaps,
                            idle_ttl_s: float) -> SessionAdmission:
        now = self._clock()
        found = self._session(key_name, session, now)
        if found is None:
            if len(self._sessions) >= MAX_SESSIONS:
                self._make_room(now)
            found = self._sessions[(key_name, session)] = _Session(SessionRecord(key_name, session, now, now))
        refused, retry_after = refusal(found, caps, now)
        if refused is None:
            found.record.calls += 1
            found.minute.append(now)
        found.record.last_seen, found.expires = now, now + idle_ttl_s
        self._dirty = True
        return SessionAdmission(found.view(), refused, retry_after)

    async def session_observe(self, record: SessionRecord, idle_ttl_s: float) -> tuple[bool, SessionRecord | None]:
        found = self._session(record.key_name, record.session, self._clock())
        if found is None:
            return False, None
        held = found.record
        if held.version != record.version:
            return False, found.view()
        held.trace, held.verdicts, held.loop_calls = record.trace, list(record.verdicts), record.loop_calls
        held.version += 1
        if record.status == "stopped" and held.status != "stopped":
            held.status, held.reason, held.evidence, held.stopped_at = "stopped", record.reason, record.evidence, \
                record.stopped_at
        self._dirty = True
        return True, found.view()

    async def session_settle(self, key_name: str, session: str, tokens: int, cost: Decimal,
                             uncount: bool = False) -> None:
        found = self._session(key_name, session, self._clock())
        if found is None:
            return
        found.record.tokens += tokens
        found.cost_nanos += to_nanos(cost)
        if uncount:  # out of the calls, and out of the last minute's (the newest: the same count)
            found.record.calls -= 1
            if found.minute:
                found.minute.pop()
        self._dirty = True

    async def session_get(self, key_name: str, session: str) -> SessionRecord | None:
        found = self._session(key_name, session, self._clock())
        return found.view() if found else None

    async def session_list(self, key_name: str | None = None, limit: int = 1000) -> list[SessionRecord]:
        now = self._clock()
        live = [s for (key, _), s in self._sessions.items() if s.expires > now and key_name in (None, key)]
        live.sort(key=lambda s: s.record.last_seen, reverse=True)
        for found in live[:limit]:
            found.trim(now)
        return [found.view() for found in live[:limit]]

    async def session_set_status(self, key_name: str, session: str, stop: bool, reason: str | None = None,
                                 evidence: str | None = None,
                                 trace: dict[str, Any] | None = None) -> SessionRecord | None:
        now = self._clock()
        found = self._session(key_name, session, now)
        if found is None:
            return None
        held = found.record
        if stop:
            held.status, held.reason, held.evidence, held.stopped_at = "stopped", reason, evidence, now
        else:
            held.status, held.reason, held.evidence, held.stopped_at = "active", None, None, None
            held.trace = trace
            held.version += 1
        self._dirty = True
        return found.view()

    # -- persistence (MemoryStore's snapshot)

    def _forget_sessions(self, now: float) -> None:
        for ident in [i for i, s in self._sessions.items() if s.expires <= now]:
            del self._sessions[ident]

    def _dump_sessions(self) -> list[dict[str, Any]]:
        return [{**dataclasses.asdict(s.record), "cost": None, "calls_last_minute": None, "cost_nanos": s.cost_nanos,
                 "expires": s.expires, "minute": list(s.minute)} for s in self._sessions.values()]

    def _restore_sessions(self, saved: list[dict[str, Any]]) -> None:
        for item in saved:
            fields = {k: v for k, v in item.items() if k not in ("cost", "calls_last_minute", "cost_nanos",
                                                                "expires", "minute")}
            record = SessionRecord(**fields)
            self._sessions[(record.key_name, record.session)] = _Session(
                record, item["cost_nanos"], item["expires"], deque(item["minute"]))
