"""The reservation rule and the values both backends build from their raw integers.

The rule (the Redis script spells the same in Lua): the headroom is the least, over the hard
counters, of limit - spent - reserved. Reserve the whole want if it fits; else the headroom
if that is at least the floor (the caller clamps the request to it); else nothing.
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

from tokenbrake.limits.types import BudgetCounter, CounterStatus, Grant, from_nanos
from tokenbrake.limits.windows import Placement


def check_reservation(counters: list[BudgetCounter], want: Decimal, floor: Decimal, ttl_s: float) -> None:
    """ValueError for a reservation no backend should attempt."""
    if want < 0 or floor < 0:
        raise ValueError("want and floor must not be negative")
    if ttl_s <= 0:
        raise ValueError("a reservation needs a positive ttl_s")
    budgets = [(counter.key, counter.window) for counter in counters]
    if len(set(budgets)) != len(budgets):
        raise ValueError(f"a budget counts once per request: duplicates in {[c.key for c in counters]}")


def amount_to_reserve(want: int, floor: int, headroom: int | None) -> int | None:
    """Nano-USD to reserve; None to refuse. `headroom` None: no hard counter."""
    if headroom is None or want <= headroom:
        return want
    if headroom >= floor and headroom > 0:
        return headroom
    return None


def tightest(counters: list[BudgetCounter], rows: list[tuple[int, int]]) -> int | None:
    """Index of the hard counter with the least headroom (the first on a tie)."""
    best: tuple[int, int] | None = None
    for index, (counter, (spent, reserved)) in enumerate(zip(counters, rows)):
        if counter.hard:
            room = counter.limit_nanos - spent - reserved
            if best is None or room < best[0]:
                best = (room, index)
    return None if best is None else best[1]


def counter_status(counter: BudgetCounter, placement: Placement, spent: int, reserved: int,
                   oldest: float | None = None) -> CounterStatus:
    """`oldest`: a rolling window's oldest spend still inside it (epoch seconds)."""
    resets_at = placement.resets_at
    if placement.rolling_s:
        resets_at = None if oldest is None else datetime.fromtimestamp(oldest + placement.rolling_s, UTC)
    remaining = max(0, counter.limit_nanos - spent - reserved)
    return CounterStatus(key=counter.key, window=counter.window, limit=counter.limit, spent=from_nanos(spent),
                         reserved=from_nanos(reserved), remaining=from_nanos(remaining), resets_at=resets_at,
                         hard=counter.hard)


def build_grant(amount: int | None, want: Decimal, counters: list[CounterStatus], tight: int | None,
                held_on: tuple = (), placed_at: float = 0.0) -> Grant:
    return Grant(amount=None if amount is None else from_nanos(amount), want=want, counters=counters,
                 tightest=None if tight is None else counters[tight], held_on=held_on, placed_at=placed_at)
