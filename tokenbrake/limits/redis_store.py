"""The Redis store: any number of gateway replicas share budgets and limits exactly.

Each operation is one Lua script (scripts.py, run by EVALSHA through redis-py's
`register_script`), so Redis applies it whole, in one order across every replica. Expired
reservations are reconciled inside every script that reads a counter (reserve, status): the
script pops the expired request ids off the counter's expiry set and takes their amounts out
of `reserved`, without adding them to spent.
"""

from __future__ import annotations

import json
import math
import secrets
from collections.abc import Awaitable, Callable
from decimal import Decimal
from typing import Any

import redis.asyncio as aioredis
from redis import exceptions as redis_errors

from tokenbrake.limits import scripts
from tokenbrake.limits.decide import build_grant, check_reservation, counter_status, tightest
from tokenbrake.limits.redis_leases import Leases, LedgerSpend, Record
from tokenbrake.limits.redis_sessions import RedisSessions
from tokenbrake.limits.types import (
    Admission,
    BudgetCounter,
    Clock,
    CounterStatus,
    Grant,
    HitAsk,
    LimitStoreUnavailable,
    RateDecision,
    SlotAsk,
    system_clock,
    to_nanos,
)
from tokenbrake.limits.windows import KEEP_AFTER_S, Placement, Placements

DEFAULT_PREFIX = "tokenbrake:"


class RedisStore(RedisSessions):
    shared = True  # several gateways may hold state here at once

    def __init__(self, client: aioredis.Redis, prefix: str = DEFAULT_PREFIX, clock: Clock = system_clock) -> None:
        self._client = client
        self._prefix = prefix
        self._clock = clock
        self._placements = Placements()
        self._reserve = _guarded(client.register_script(scripts.RESERVE))
        self._settle = _guarded(client.register_script(scripts.SETTLE))
        self._status = _guarded(client.register_script(scripts.STATUS))
        self._admit = _guarded(client.register_script(scripts.ADMIT))
        self._mark = _guarded(client.register_script(scripts.MARK_ONCE))
        self.leases = Leases(client, prefix, clock)
        self._register_session_scripts(_guarded)  # agent sessions (redis_sessions.py)

    @classmethod
    async def open(cls, url: str, *, prefix: str = DEFAULT_PREFIX, clock: Clock = system_clock,
                   max_connections: int = 64, wait_s: float = 5.0, timeout_s: float = 2.0) -> RedisStore:
        """Connects to `url` (redis://host:port/db, rediss://, unix://) and checks it answers.

        Past `max_connections` calls in flight, a call waits (up to `wait_s`) for a free
        connection rather than failing: each script is short, so the queue moves fast. A
        Redis that does not answer within `timeout_s` fails the call (LimitStoreUnavailable)."""
        pool = aioredis.BlockingConnectionPool.from_url(url, max_connections=max_connections, timeout=wait_s,
                                                        socket_timeout=timeout_s, socket_connect_timeout=timeout_s)
        client = aioredis.Redis.from_pool(pool)
        try:
            await client.ping()
        except BaseException:
            await client.aclose()
            raise
        return cls(client, prefix, clock)

    async def keep_in_step(self, ledger_spend: LedgerSpend, record: Record) -> None:
        """A serving gateway's: counters raised to the ledger's spend, then leases renewed and
        dead gateways' reservations charged and handed to `record` (redis_leases.py)."""
        await self.leases.start(ledger_spend, record)

    async def close(self) -> None:
        await self.leases.stop()
        await self._client.aclose()

    # -- budgets

    async def reserve(self, request_id: str, counters: list[BudgetCounter], want: Decimal,
                      floor: Decimal = Decimal(0), ttl_s: float = 600.0, note: str = "") -> Grant:
        check_reservation(counters, want, floor, ttl_s)
        now = self._clock()
        places = [self._placements.place(counter, now) for counter in counters]
        keys = [self._prefix + p.key for p in places]
        held_on = [[key, p.rolling_s, None if p.keep_s is None else now + p.keep_s] for key, p in zip(keys, places)]
        args: list[str | int] = [repr(now), request_id, to_nanos(want), to_nanos(floor), repr(now + ttl_s),
                                 math.ceil((ttl_s + KEEP_AFTER_S) * 1000), json.dumps(held_on)]
        for counter, p in zip(counters, places):
            args += [counter.limit_nanos if counter.hard else "", repr(p.rolling_s),
                     "" if p.keep_s is None else math.ceil(p.keep_s * 1000)]
        args += [repr(self.leases.until()), note]
        try:
            reply = await self._reserve(keys=[*keys, self._prefix + "reservation:" + request_id, self.leases.zset],
                                        args=args)
        except LimitStoreUnavailable:
            # Redis may still run it (a paused server runs what it was sent once it resumes):
            # undo it, or refuse it in advance, once Redis answers.
            tombstone_ms = math.ceil((ttl_s + KEEP_AFTER_S) * 1000)
            self.leases.retry(lambda: self._settle_now(request_id, Decimal(0), tombstone_ms))
            raise
        if reply[0] >= 0:
            self.leases.reservations.add(request_id)
        rows = _rows(reply[1:])
        return build_grant(reply[0] if reply[0] >= 0 else None, want, _statuses(counters, places, rows),
                           tightest(counters, [(spent, reserved) for spent, reserved, _ in rows]), tuple(places), now)

    async def settle(self, request_id: str, actual: Decimal) -> bool:
        """Settles now, or, while Redis does not answer, once it does: the settlement is
        queued and retried until it lands, its reservation's lease renewed meanwhile, so the
        spend is neither lost nor charged at the worst case."""
        if actual < 0:
            raise ValueError("a cost is never negative")
        try:
            return await self._settle_now(request_id, actual)
        except LimitStoreUnavailable:
            self.leases.retry(lambda: self._settle_now(request_id, actual))
            return True

    async def _settle_now(self, request_id: str, actual: Decimal, tombstone_ms: int | None = None) -> bool:
        reply = await self._settle(keys=[self._prefix + "reservation:" + request_id, self.leases.zset],
                                   args=[repr(self._clock()), request_id, to_nanos(actual), int(KEEP_AFTER_S * 1000),
                                         "" if tombstone_ms is None else tombstone_ms])
        self.leases.reservations.discard(request_id)
        return reply == 1

    async def release(self, request_id: str) -> bool:
        return await self.settle(request_id, Decimal(0))

    async def status(self, counters: list[BudgetCounter]) -> list[CounterStatus]:
        now = self._clock()
        places = [self._placements.place(counter, now) for counter in counters]
        reply = await self._status(keys=[self._prefix + p.key for p in places],
                                   args=[repr(now), *(repr(p.rolling_s) for p in places)])
        return _statuses(counters, places, _rows(reply))

    # -- rate limits and concurrency

    async def release_slot(self, key: str, request_id: str) -> None:
        """Frees the slot now, or once Redis answers again (its lease is no longer renewed,
        so it lapses by itself within the lease in any case)."""
        slots = self._prefix + "slots:" + key
        self.leases.free_slot(slots, request_id)
        try:
            await self._client.zrem(slots, request_id)
        except REDIS_FAILURES:
            self.leases.retry(lambda: self._client.zrem(slots, request_id))

    async def admit(self, request_id: str, slots: list[SlotAsk], hits: list[HitAsk], slot_ttl_s: float) -> Admission:
        now = self._clock()
        keys = [self._prefix + "slots:" + slot.key for slot in slots]
        # A slot is held until its lease ends, which this gateway renews while the request runs.
        until = min(now + slot_ttl_s, self.leases.until())
        args: list[str | int] = [repr(now), request_id, repr(until), math.ceil(slot_ttl_s * 1000),
                                 secrets.token_hex(8), len(slots), *(int(slot.limit) for slot in slots)]
        for ask in hits:
            keys += [self._prefix + "rate:" + ask.key, self._prefix + "rate:" + ask.key + ":used"]
            args += [int(ask.limit), repr(float(ask.window_s)), int(ask.amount)]
        reply = await self._admit(keys=keys, args=args)
        if _text(reply[0]) == "slot":
            return Admission(int(reply[1]) - 1, [])
        admission = Admission(None, [_decision(*reply[i:i + 4]) for i in range(1, len(reply), 4)])
        if admission.allowed and slots:
            self.leases.hold_slots(keys[:len(slots)], request_id)
        return admission

    async def mark_once(self, key: str, ttl_s: float | None) -> bool:
        now = self._clock()
        expiry, ttl_ms = ("", "") if ttl_s is None else (repr(now + ttl_s), max(1, math.ceil(ttl_s * 1000)))
        return await self._mark(keys=[self._prefix + "mark:" + key], args=[repr(now), expiry, ttl_ms]) == 1


REDIS_FAILURES = (redis_errors.ConnectionError, redis_errors.TimeoutError, OSError)


def _guarded(script: Callable[..., Awaitable[Any]]) -> Callable[..., Awaitable[Any]]:
    """A script call whose connection failures are LimitStoreUnavailable (a refusal the client
    understands), not an internal error."""
    async def call(*, keys: list[str], args: list[Any]) -> Any:
        try:
            return await script(keys=keys, args=args)
        except REDIS_FAILURES as exc:
            raise LimitStoreUnavailable(f"Redis: {exc}") from exc

    return call


def _decision(allowed, remaining, retry, reset) -> RateDecision:
    """A window's decision from a script's four values."""
    retry_after = math.inf if float(retry) < 0 else round(float(retry), 6)
    return RateDecision(int(allowed) == 1, max(0, int(remaining)), retry_after, round(float(reset), 6))


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _rows(flat: list) -> list[tuple[int, int, float | None]]:
    """(spent, reserved, oldest rolling spend) per counter, from a script's flat reply."""
    return [(int(flat[i]), int(flat[i + 1]), float(flat[i + 2]) if flat[i + 2] else None)
            for i in range(0, len(flat), 3)]


def _statuses(counters: list[BudgetCounter], places: list[Placement],
              rows: list[tuple[int, int, float | None]]) -> list[CounterStatus]:
    return [counter_status(c, p, spent, reserved, oldest)
            for c, p, (spent, reserved, oldest) in zip(counters, places, rows)]
