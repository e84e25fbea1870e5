"""The values crossing the limits interface, and the interface itself.

Money crosses it as `Decimal` USD and is stored as integer nano-USD (1e-9 USD) in every
backend, so sums are exact. Redis scripts compute in Lua doubles, exact below 2**53 nano-USD
(about 9 million USD per counter). Amounts a request may cost are rounded up to the next
nano-USD (never undercount), limits down (never overspend).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal
from typing import Any, Literal, Protocol

Clock = Callable[[], float]  # epoch seconds, like time.time
system_clock: Clock = time.time

WindowKind = Literal["minute", "hour", "day", "week", "month", "total", "rolling"]
CALENDAR: tuple[str, ...] = ("minute", "hour", "day", "week", "month")


def to_nanos(usd: Decimal | int | str, *, up: bool = True) -> int:
    """Integer nano-USD: rounded up (a cost) or down (`up=False`, a limit)."""
    return int(Decimal(usd).scaleb(9).to_integral_value(ROUND_CEILING if up else ROUND_FLOOR))


def from_nanos(nanos: int) -> Decimal:
    return Decimal(int(nanos)).scaleb(-9)


@dataclass(frozen=True, slots=True)
class Window:
    """A budget's period: calendar-aligned in `tz`, `total` (never resets), or `rolling`
    over the last `seconds`."""

    kind: WindowKind
    tz: str = "UTC"
    seconds: float | None = None  # rolling only

    def __post_init__(self) -> None:
        if self.kind == "rolling":
            if not self.seconds or self.seconds <= 0:
                raise ValueError("a rolling window needs a positive length in seconds")
        elif self.kind not in CALENDAR and self.kind != "total":
            raise ValueError(f"unknown window {self.kind!r}: use {', '.join(CALENDAR)}, total or rolling")
        elif self.seconds is not None:
            raise ValueError(f"a {self.kind} window has no length in seconds")

    @classmethod
    def rolling(cls, seconds: float) -> Window:
        return cls("rolling", seconds=seconds)


@dataclass(frozen=True, slots=True)
class BudgetCounter:
    """One budget a request counts against. A soft counter (`hard=False`) never refuses or
    clamps, but is reserved on and charged like the others, so its spend is known."""

    key: str  # the budget's scope, e.g. "team:search"
    limit: Decimal  # USD per window
    window: Window
    hard: bool = True
    # The limit in nano-USD (rounded down), worked out once: every reservation reads it,
    # several times, and converting a Decimal costs more than the rest of that arithmetic.
    limit_nanos: int = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "limit_nanos", to_nanos(self.limit, up=False))


@dataclass(frozen=True, slots=True)
class CounterStatus:
    key: str
    window: Window
    limit: Decimal
    spent: Decimal
    reserved: Decimal  # held by requests in flight
    remaining: Decimal  # limit - spent - reserved, never below zero
    resets_at: datetime | None  # calendar: period end; rolling: when the oldest spend drops out
    hard: bool = True


@dataclass(frozen=True, slots=True)
class Grant:
    """The outcome of a reservation. `amount` is what was reserved: the whole want, or less
    (clamped to the tightest budget's headroom), or None (refused: nothing was reserved).
    `counters` are the statuses after the reservation, in the order asked; `tightest` is the
    hard counter with the least headroom (None without hard counters), so a refusal or clamp
    can name the budget, what it has spent and when it resets. `held_on`: where each counter
    is stored (windows.Placement), as placed at `placed_at`, so the settled cost can be
    recorded against the same counters."""

    amount: Decimal | None
    want: Decimal
    counters: list[CounterStatus]
    tightest: CounterStatus | None
    held_on: tuple[Any, ...] = ()
    placed_at: float = 0.0

    @property
    def granted(self) -> bool:
        return self.amount is not None

    @property
    def clamped(self) -> bool:
        return self.amount is not None and self.amount < self.want


@dataclass(frozen=True, slots=True)
class RateDecision:
    allowed: bool
    remaining: int  # what may still be taken in the window (after this hit, if allowed)
    retry_after_s: float  # 0 when allowed; else when `amount` would fit again
    reset_s: float  # until the window holds nothing (is fully free again)


class LimitStoreUnavailable(Exception):
    """The shared state cannot be reached (Redis down or not answering). Budgets and limits
    cannot be checked, so the request is refused: the gateway fails closed."""


@dataclass(frozen=True, slots=True)
class SlotAsk:
    key: str
    limit: int  # requests in flight at most


@dataclass(frozen=True, slots=True)
class HitAsk:
    key: str
    limit: int
    window_s: float
    amount: int = 1


@dataclass(frozen=True, slots=True)
class Admission:
    """The outcome of `LimitStore.admit`. `full_slot`: the index of the slot set that was
    full (nothing is held then); `decisions`: one per window hit, in order, up to and
    including the first that refused (then no slot is held)."""

    full_slot: int | None
    decisions: list[RateDecision]

    @property
    def allowed(self) -> bool:
        return self.full_slot is None and all(d.allowed for d in self.decisions)


SessionStatus = Literal["active", "stopped"]
SessionLimit = Literal["stopped", "max_calls", "max_tokens", "max_cost_usd", "max_duration_s", "calls_per_minute"]
SESSION_MINUTE_S = 60.0  # the window of calls_per_minute


@dataclass(frozen=True, slots=True)
class SessionCaps:
    """A session's limits (None: none). Cost in nano-USD, like every amount in the store."""

    max_calls: int | None = None
    max_tokens: int | None = None
    max_cost_nanos: int | None = None
    max_duration_s: float | None = None
    calls_per_minute: int | None = None


@dataclass(slots=True)
class SessionRecord:
    """One agent session of one key, as the store holds it. `version` changes with every
    write of the detector's `trace` (and on resume): the compare-and-set token."""

    key_name: str
    session: str
    first_seen: float  # epoch seconds of its first admitted call
    last_seen: float  # of its latest call, admitted or refused
    calls: int = 0
    tokens: int = 0
    cost: Decimal = Decimal(0)
    calls_last_minute: int = 0
    status: SessionStatus = "active"
    reason: str | None = None  # why it was stopped
    evidence: str | None = None
    stopped_at: float | None = None
    trace: dict[str, Any] | None = None  # the loop detector's state
    version: int = 0
    verdicts: list[dict[str, Any]] = field(default_factory=list)  # the latest loop verdicts, oldest first
    loop_calls: int = 0  # calls the detector judged looping


@dataclass(frozen=True, slots=True)
class SessionAdmission:
    """`refused`: the limit that refused the call (nothing was counted), or None (counted).
    `retry_after_s`: for calls_per_minute, when a call fits again."""

    record: SessionRecord
    refused: SessionLimit | None = None
    retry_after_s: float = 0.0


class LimitStore(Protocol):
    """Budgets, rate limits and concurrency slots. Every operation is atomic: concurrent
    callers, in one process or across replicas sharing Redis, see a single order."""

    shared: bool  # several gateways may hold state in it at once

    async def reserve(self, request_id: str, counters: list[BudgetCounter], want: Decimal,
                      floor: Decimal = Decimal(0), ttl_s: float = 600.0, note: str = "") -> Grant: ...
    # `note`: who the request is for (a journal start line), kept with a shared reservation so
    # a live gateway can record it should this one die mid-call

    async def settle(self, request_id: str, actual: Decimal) -> bool: ...  # False: nothing open

    async def release(self, request_id: str) -> bool: ...

    async def status(self, counters: list[BudgetCounter]) -> list[CounterStatus]: ...

    async def release_slot(self, key: str, request_id: str) -> None: ...

    # A request's slots and windows at once (one round trip): the slots in order, all or
    # none; then the windows in order, stopping at the first that refuses, which also gives
    # the slots back (the windows before it stay counted).
    async def admit(self, request_id: str, slots: list[SlotAsk], hits: list[HitAsk], slot_ttl_s: float) -> Admission: ...

    # True for the first caller to mark `key` (until it expires after `ttl_s`; None: never),
    # False for every later one: "once per period" across replicas (budget alerts).
    async def mark_once(self, key: str, ttl_s: float | None) -> bool: ...

    # -- agent sessions (key name + session id): limits checked and the call counted at once;
    # the loop detector's trace written by compare-and-set on `version` (False and the
    # current record when another call wrote it first; None when the session is gone).
    async def session_admit(self, key_name: str, session: str, caps: SessionCaps,
                            idle_ttl_s: float) -> SessionAdmission: ...

    async def session_observe(self, record: SessionRecord, idle_ttl_s: float) -> tuple[bool, SessionRecord | None]: ...

    async def session_settle(self, key_name: str, session: str, tokens: int, cost: Decimal,
                             uncount: bool = False) -> None: ...

    async def session_get(self, key_name: str, session: str) -> SessionRecord | None: ...

    async def session_list(self, key_name: str | None = None, limit: int = 1000) -> list[SessionRecord]: ...

    # stop (with reason and evidence) or resume (with the detector's trace replaced by `trace`).
    async def session_set_status(self, key_name: str, session: str, stop: bool, reason: str | None = None,
                                 evidence: str | None = None,
                                 trace: dict[str, Any] | None = None) -> SessionRecord | None: ...

    async def keep_in_step(self, ledger_spend: Any, record: Any) -> None: ...
    # A serving gateway's, once: counters raised to the ledger's spend (`await ledger_spend()`),
    # and, for shared state, what dead gateways held charged and handed to `record`

    async def close(self) -> None: ...
