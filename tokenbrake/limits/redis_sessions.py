"""Agent sessions in the Redis store (a mixin of RedisStore): every replica sees one record
per session. The scripts and the key layout are in session_scripts.py."""

from __future__ import annotations

import json
import math
import secrets
from decimal import Decimal
from typing import Any, cast, overload

import redis.asyncio as aioredis

from tokenbrake.limits import session_scripts as scripts
from tokenbrake.limits.types import (
    SESSION_MINUTE_S,
    Clock,
    SessionAdmission,
    SessionCaps,
    SessionLimit,
    SessionRecord,
    SessionStatus,
    from_nanos,
    to_nanos,
)

INDEX = "sessions"


@overload
def _text(value: bytes | str) -> str: ...
@overload
def _text(value: None) -> None: ...
@overload
def _text(value: bytes | str | None) -> str | None: ...
def _text(value: bytes | str | None) -> str | None:
    return value.decode() if isinstance(value, bytes) else value


def _blank(value: float | int | None) -> str:
    return "" if value is None else repr(value)


def parse_record(flat: list, calls_last_minute: int = 0, now: float | None = None) -> SessionRecord | None:
    """A record from a hash as HGETALL (or a script) returns it; None for an empty one, or
    one idle past its TTL at `now`."""
    if not flat:
        return None
    h = {_text(flat[i]): _text(flat[i + 1]) for i in range(0, len(flat), 2)}
    if "first" not in h or (now is not None and float(h.get("expires") or "inf") <= now):
        return None
    return SessionRecord(
        key_name=h["key"], session=h["session"], first_seen=float(h["first"]), last_seen=float(h.get("last") or h["first"]),
        calls=int(h.get("calls") or 0), tokens=int(h.get("tokens") or 0), cost=from_nanos(int(h.get("cost") or 0)),
        calls_last_minute=calls_last_minute, status=cast("SessionStatus", h.get("status") or "active"), reason=h.get("reason"),
        evidence=h.get("evidence"), stopped_at=float(h["stopped_at"]) if h.get("stopped_at") else None,
        trace=json.loads(h["trace"]) if h.get("trace") else None, version=int(h.get("version") or 0),
        verdicts=json.loads(h["verdicts"]) if h.get("verdicts") else [], loop_calls=int(h.get("loops") or 0))


class RedisSessions:
    _client: aioredis.Redis
    _prefix: str
    _clock: Clock

    def _register_session_scripts(self, guarded) -> None:
        self._session_admit = guarded(self._client.register_script(scripts.ADMIT))
        self._session_observe = guarded(self._client.register_script(scripts.OBSERVE))
        self._session_settle = guarded(self._client.register_script(scripts.SETTLE))
        self._session_status = guarded(self._client.register_script(scripts.SET_STATUS))
        self._guard = guarded

    def _session_key(self, key_name: str, session: str) -> str:
        return f"{self._prefix}session:{len(key_name)}:{key_name}:{session}"

    async def session_admit(self, key_name: str, session: str, caps: SessionCaps,
                            idle_ttl_s: float) -> SessionAdmission:
        base = self._session_key(key_name, session)
        reply = await self._session_admit(
            keys=[base, base + ":min", self._prefix + INDEX],
            args=[repr(self._clock()), key_name, session, math.ceil(idle_ttl_s * 1000), repr(float(idle_ttl_s)),
                  _blank(caps.max_calls), _blank(caps.max_tokens), _blank(caps.max_cost_nanos),
                  _blank(caps.max_duration_s), _blank(caps.calls_per_minute), secrets.token_hex(8),
                  json.dumps([key_name, session])])
        refused, retry, minute, flat = _text(reply[0]), float(reply[1]), int(reply[2]), reply[3]
        record = parse_record(flat, minute)
        assert record is not None  # the script answers with the session's record
        return SessionAdmission(record, cast("SessionLimit | None", refused or None), round(retry, 6))

    async def session_observe(self, record: SessionRecord, idle_ttl_s: float) -> tuple[bool, SessionRecord | None]:
        stopping = record.status == "stopped"
        reply = await self._session_observe(
            keys=[self._session_key(record.key_name, record.session)],
            args=[record.version, json.dumps(record.trace, separators=(",", ":")),
                  json.dumps(record.verdicts, separators=(",", ":")), record.loop_calls,
                  record.reason or "" if stopping else "", record.evidence or "" if stopping else "",
                  _blank(record.stopped_at) if stopping else ""])
        if reply[0] == -1:
            return False, None
        if reply[0] == 0:
            return False, parse_record(reply[1], record.calls_last_minute)
        record.version = int(reply[1])
        return True, record

    async def session_settle(self, key_name: str, session: str, tokens: int, cost: Decimal,
                             uncount: bool = False) -> None:
        base = self._session_key(key_name, session)
        await self._session_settle(keys=[base, base + ":min"],
                                   args=[int(tokens), to_nanos(cost), 1 if uncount else 0])

    async def session_get(self, key_name: str, session: str) -> SessionRecord | None:
        found = await self._read_sessions([(key_name, session)])
        return found[0] if found else None

    async def session_list(self, key_name: str | None = None, limit: int = 1000) -> list[SessionRecord]:
        async def newest_first(*, keys: list[str], args: list[Any]) -> list:
            return await self._client.zrevrange(keys[0], 0, -1)

        members = await self._guard(newest_first)(keys=[self._prefix + INDEX], args=[])
        idents = [tuple(json.loads(member)) for member in members]
        return await self._read_sessions([(k, s) for k, s in idents if key_name in (None, k)][:limit])

    async def session_set_status(self, key_name: str, session: str, stop: bool, reason: str | None = None,
                                 evidence: str | None = None,
                                 trace: dict[str, Any] | None = None) -> SessionRecord | None:
        flat = await self._session_status(keys=[self._session_key(key_name, session)],
                                          args=["stop" if stop else "resume", reason or "", evidence or "",
                                                repr(self._clock()), "" if trace is None else json.dumps(trace)])
        return await self.session_get(key_name, session) if flat else None

    async def _read_sessions(self, idents: list[tuple[str, str]]) -> list[SessionRecord]:
        """The records (those still there), with their calls in the last minute: one round
        trip, several commands, not atomic (a view for operators)."""
        async def read(*, keys: list[str], args: list[Any]) -> list:
            async with self._client.pipeline(transaction=False) as pipe:
                for base in keys:
                    pipe.hgetall(base)
                    pipe.zcount(base + ":min", f"({self._clock() - SESSION_MINUTE_S!r}", "+inf")
                return await pipe.execute()

        replies = await self._guard(read)(keys=[self._session_key(k, s) for k, s in idents], args=[])
        records = []
        for found, minute in zip(replies[::2], replies[1::2]):
            record = parse_record([item for pair in found.items() for item in pair], int(minute), self._clock())
            if record is not None:
                records.append(record)
        return records
