"""The in-process store: the embedded default, persisted to a snapshot file.

Every operation runs without an `await` between reading and writing, so on one event loop
each is atomic. State lives in plain dicts:

- budget counters by storage key (windows.py): spent, reserved, the reservations held on it
  (request -> amount, expiry) with a heap of their expiries, and for a rolling window the
  settled spend as a time-ordered deque;
- open reservations by request id: the amount and the counters it holds, so `settle` knows
  what to move. Settling deletes the record, which makes a second settle a no-op;
- rate-limit logs (time-ordered hits in the window) and concurrency slots (request -> expiry).

Expired reservations are reconciled lazily: each operation that reads a counter first pops
the reservations whose expiry has passed off its heap and takes them out of `reserved`,
never adding them to spent. The same pass drops a rolling window's spend older than the
window.

With a snapshot path, a background task writes the whole state every `save_every_s` when
something changed (serialised on the loop, written in a thread), and `close` writes it a
last time; `open` loads it. A crash loses at most the last interval of changes.
"""

from __future__ import annotations

import asyncio
import heapq
import logging
import math
from collections import deque
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

from tokenbrake.limits import snapshot
from tokenbrake.limits.decide import amount_to_reserve, build_grant, check_reservation, counter_status, tightest
from tokenbrake.limits.memory_sessions import MemorySessions
from tokenbrake.limits.types import (
    Admission,
    BudgetCounter,
    Clock,
    CounterStatus,
    Grant,
    HitAsk,
    RateDecision,
    SlotAsk,
    system_clock,
    to_nanos,
)
from tokenbrake.limits.windows import KEEP_AFTER_S, Placement, Placements

log = logging.getLogger(__name__)


@dataclass
class _Counter:
    spent: int = 0
    reserved: int = 0
    holds: dict[str, tuple[int, float]] = field(default_factory=dict)  # request -> (amount, expiry)
    expiries: list[tuple[float, str]] = field(default_factory=list)  # heap over holds
    spend_log: deque[tuple[float, int]] = field(default_factory=deque)  # rolling windows only
    keep_until: float | None = 0.0  # forgotten after this (epoch seconds); None: kept forever

    def reconcile(self, now: float, rolling_s: float) -> None:
        while self.expiries and self.expiries[0][0] <= now:
            expiry, request_id = heapq.heappop(self.expiries)
            hold = self.holds.get(request_id)
            if hold is not None and hold[1] == expiry:
                del self.holds[request_id]
                self.reserved -= hold[0]
        if rolling_s:
            while self.spend_log and self.spend_log[0][0] <= now - rolling_s:
                self.spent -= self.spend_log.popleft()[1]

    def hold(self, request_id: str, amount: int, expiry: float) -> None:
        self.holds[request_id] = (amount, expiry)
        self.reserved += amount
        heapq.heappush(self.expiries, (expiry, request_id))

    def trim_expiries(self) -> None:
        """Drops the heap's entries of settled holds once they are most of it, so a settled
        reservation leaves nothing behind for long: memory follows what is in flight."""
        if len(self.expiries) > 2 * len(self.holds) + 8:
            self.expiries = [(expiry, rid) for rid, (_, expiry) in self.holds.items()]
            heapq.heapify(self.expiries)

    def keep(self, until: float | None) -> None:
        """Keeps the counter at least `until` (epoch seconds); None: forever."""
        if until is None or self.keep_until is None:
            self.keep_until = None
        else:
            self.keep_until = max(self.keep_until, until)


@dataclass
class _Reservation:
    amount: int
    expiry: float
    counters: list[tuple[str, float, float | None]]  # storage key, rolling_s, keep_until


@dataclass
class _RateLog:
    window_s: float
    hits: deque[tuple[float, int]] = field(default_factory=deque)  # (time, amount), oldest first
    used: int = 0

    def trim(self, now: float) -> None:
        while self.hits and self.hits[0][0] <= now - self.window_s:
            self.used -= self.hits.popleft()[1]


class MemoryStore(MemorySessions):
    shared = False  # several gateways may hold state here at once

    def __init__(self, clock: Clock = system_clock, path: Path | None = None, save_every_s: float = 2.0) -> None:
        super().__init__()  # agent sessions (memory_sessions.py)
        self._clock = clock
        self._path = path
        self._save_every_s = save_every_s
        self._counters: dict[str, _Counter] = {}
        self._reservations: dict[str, _Reservation] = {}
        self._rates: dict[str, _RateLog] = {}
        self._slots: dict[str, dict[str, float]] = {}
        self._marks: dict[str, float | None] = {}  # key -> expiry (None: never)
        self._placements = Placements()
        self._dirty = False
        self._save_lock = asyncio.Lock()
        self._task: asyncio.Task | None = None

    @classmethod
    async def open(cls, path: str | Path | None = None, *, clock: Clock = system_clock,
                   save_every_s: float = 2.0, read_only: bool = False,
                   settled: dict[str, Any] | None = None) -> MemoryStore:
        """`read_only`: load the snapshot but never write it (a CLI looking at a running
        gateway's state must not overwrite it with its own copy). `settled`: each counter's
        spend as the ledger has it (storage/spend.SettledSpend by storage key); a gateway
        starting takes it where the snapshot holds less, and lets go of what the snapshot
        held in flight: that process is gone, and its journal recorded those calls."""
        store = cls(clock, Path(path) if path else None, save_every_s)
        if store._path is not None:
            state = await asyncio.to_thread(snapshot.load, store._path)
            if state is not None:
                store._restore(state)
        if settled is not None:
            store._take_settled(settled)
        if store._path is not None:
            if read_only:
                store._path = None
            else:
                store._task = asyncio.create_task(store._autosave(), name="tokenbrake-limits-snapshot")
        return store

    # -- budgets

    def _counter(self, placement: Placement, now: float) -> _Counter:
        counter = self._counters.get(placement.key)
        if counter is None:
            counter = _Counter()  # stored once something is held or spent on it
        counter.reconcile(now, placement.rolling_s)
        return counter

    async def reserve(self, request_id: str, counters: list[BudgetCounter], want: Decimal,
                      floor: Decimal = Decimal(0), ttl_s: float = 600.0, note: str = "") -> Grant:
        check_reservation(counters, want, floor, ttl_s)
        now = self._clock()
        places = [self._placements.place(counter, now) for counter in counters]
        stored = [self._counter(p, now) for p in places]
        open_one = self._reservations.get(request_id)
        amount: int | None
        if open_one is not None:
            amount = open_one.amount
        else:
            rooms = [c.limit_nanos - s.spent - s.reserved for c, s in zip(counters, stored) if c.hard]
            amount = amount_to_reserve(to_nanos(want), to_nanos(floor), min(rooms) if rooms else None)
            if amount is not None:
                self._hold(request_id, amount, now + ttl_s, places, stored, now)
        rows = [(s.spent, s.reserved) for s in stored]
        return build_grant(amount, want, self._statuses(counters, places, stored), tightest(counters, rows),
                           tuple(places), now)

    def _hold(self, request_id: str, amount: int, expiry: float, places: list[Placement],
              stored: list[_Counter], now: float) -> None:
        keeps = [None if p.keep_s is None else now + p.keep_s for p in places]
        for p, counter, keep_until in zip(places, stored, keeps):
            counter.hold(request_id, amount, expiry)
            counter.keep(keep_until)
            self._counters[p.key] = counter
        self._reservations[request_id] = _Reservation(
            amount, expiry, [(p.key, p.rolling_s, keep) for p, keep in zip(places, keeps)])
        self._dirty = True

    async def settle(self, request_id: str, actual: Decimal) -> bool:
        if actual < 0:
            raise ValueError("a cost is never negative")
        reservation = self._reservations.pop(request_id, None)
        if reservation is None:
            return False
        now, cost = self._clock(), to_nanos(actual)
        for key, rolling_s, keep_until in reservation.counters:
            counter = self._counters.setdefault(key, _Counter())
            hold = counter.holds.pop(request_id, None)
            if hold is not None:  # else it expired and was reconciled already
                counter.reserved -= hold[0]
                counter.trim_expiries()
            counter.spent += cost
            if rolling_s and cost:
                counter.spend_log.append((now, cost))
            if rolling_s:
                keep_until = now + rolling_s + KEEP_AFTER_S
            counter.keep(keep_until)
        self._dirty = True
        return True

    async def release(self, request_id: str) -> bool:
        return await self.settle(request_id, Decimal(0))

    async def status(self, counters: list[BudgetCounter]) -> list[CounterStatus]:
        now = self._clock()
        places = [self._placements.place(counter, now) for counter in counters]
        return self._statuses(counters, places, [self._counter(p, now) for p in places])

    @staticmethod
    def _statuses(counters: list[BudgetCounter], places: list[Placement],
                  stored: list[_Counter]) -> list[CounterStatus]:
        return [counter_status(c, p, s.spent, s.reserved, s.spend_log[0][0] if s.spend_log else None)
                for c, p, s in zip(counters, places, stored)]

    # -- rate limits and concurrency

    def _hit(self, key: str, limit: int, window_s: float, amount: int, now: float) -> RateDecision:
        rate = self._rates.get(key)
        if rate is None:
            rate = self._rates[key] = _RateLog(window_s)
        rate.window_s = window_s
        rate.trim(now)
        allowed = rate.used + amount <= limit
        retry_after = 0.0
        if allowed:
            rate.hits.append((now, amount))
            rate.used += amount
            self._dirty = True
        elif amount > limit:
            retry_after = math.inf
        else:
            need, freed = rate.used + amount - limit, 0
            for at, taken in rate.hits:
                freed += taken
                if freed >= need:
                    retry_after = at + window_s - now
                    break
        reset = rate.hits[-1][0] + window_s - now if rate.hits else 0.0
        return RateDecision(allowed, max(0, limit - rate.used), round(retry_after, 6), round(reset, 6))

    def _take_slot(self, key: str, limit: int, request_id: str, ttl_s: float, now: float) -> bool:
        slots = self._slots.setdefault(key, {})
        for holder in [r for r, expiry in slots.items() if expiry <= now]:
            del slots[holder]
        if request_id not in slots and len(slots) >= limit:
            return False
        slots[request_id] = now + ttl_s
        self._dirty = True
        return True

    async def release_slot(self, key: str, request_id: str) -> None:
        self._free_slot(key, request_id)

    def _free_slot(self, key: str, request_id: str) -> None:
        if self._slots.get(key, {}).pop(request_id, None) is not None:
            self._dirty = True

    async def admit(self, request_id: str, slots: list[SlotAsk], hits: list[HitAsk], slot_ttl_s: float) -> Admission:
        now = self._clock()  # no await below: atomic, as one Redis script is
        for i, slot in enumerate(slots):
            if not self._take_slot(slot.key, slot.limit, request_id, slot_ttl_s, now):
                for taken in slots[:i]:
                    self._free_slot(taken.key, request_id)
                return Admission(i, [])
        decisions = []
        for ask in hits:
            decisions.append(self._hit(ask.key, ask.limit, ask.window_s, ask.amount, now))
            if not decisions[-1].allowed:
                for taken in slots:
                    self._free_slot(taken.key, request_id)
                break
        return Admission(None, decisions)

    async def mark_once(self, key: str, ttl_s: float | None) -> bool:
        now = self._clock()
        expiry = self._marks.get(key, 0.0)
        if expiry is None or expiry > now:
            return False
        self._marks[key] = None if ttl_s is None else now + ttl_s
        self._dirty = True
        return True

    # -- persistence

    async def keep_in_step(self, ledger_spend, record) -> None:
        """Nothing to do in process: the spend was taken from the ledger at `open`, and what a
        dead process held went with it (its journal recorded it)."""

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
            await self.save()

    async def save(self) -> None:
        """Writes the snapshot now (nothing without a path)."""
        if self._path is None:
            return
        async with self._save_lock:
            self._forget(self._clock())
            state, self._dirty = self._dump(), False
            try:
                await asyncio.to_thread(snapshot.save, self._path, state)
            except BaseException:
                self._dirty = True
                raise

    async def _autosave(self) -> None:
        while True:
            await asyncio.sleep(self._save_every_s)
            if self._dirty:
                try:
                    await self.save()
                except Exception:
                    log.exception("could not write the limits snapshot %s; will retry", self._path)

    def _forget(self, now: float) -> None:
        """Drops what nothing will read again: past periods, long-expired reservations, idle logs."""
        for key in [k for k, c in self._counters.items() if c.keep_until is not None and c.keep_until < now]:
            del self._counters[key]
        for rid in [r for r, res in self._reservations.items() if res.expiry + KEEP_AFTER_S < now]:
            del self._reservations[rid]
        for key in [k for k, rate in self._rates.items() if not rate.hits or rate.hits[-1][0] + rate.window_s <= now]:
            del self._rates[key]
        for key in [k for k, slots in self._slots.items() if all(expiry <= now for expiry in slots.values())]:
            del self._slots[key]
        for key in [k for k, expiry in self._marks.items() if expiry is not None and expiry <= now]:
            del self._marks[key]
        self._forget_sessions(now)

    def _dump(self) -> dict[str, Any]:
        return {
            "counters": {key: {"spent": c.spent, "holds": c.holds, "spend_log": list(c.spend_log),
                               "keep_until": c.keep_until} for key, c in self._counters.items()},
            "reservations": {rid: {"amount": r.amount, "expiry": r.expiry, "counters": r.counters}
                             for rid, r in self._reservations.items()},
            "rates": {key: {"window_s": r.window_s, "hits": list(r.hits)} for key, r in self._rates.items()},
            "slots": {key: dict(slots) for key, slots in self._slots.items()},
            "marks": dict(self._marks),
            "sessions": self._dump_sessions(),
        }

    def _take_settled(self, settled: dict[str, Any]) -> None:
        for counter in self._counters.values():
            counter.holds.clear()
            counter.expiries.clear()
            counter.reserved = 0
        self._reservations.clear()
        self._slots.clear()
        for key, spend in settled.items():
            counter = self._counters.setdefault(key, _Counter())
            if spend.nanos > counter.spent:
                counter.spent = spend.nanos
                counter.spend_log = deque(spend.log)
            counter.keep(spend.keep_until)
        self._dirty = True

    def _restore(self, state: dict[str, Any]) -> None:
        for key, saved in state["counters"].items():
            counter = self._counters[key] = _Counter(spent=saved["spent"], keep_until=saved["keep_until"],
                                                      spend_log=deque((at, n) for at, n in saved["spend_log"]))
            for rid, (amount, expiry) in saved["holds"].items():
                counter.hold(rid, amount, expiry)
        for rid, saved in state["reservations"].items():
            self._reservations[rid] = _Reservation(saved["amount"], saved["expiry"],
                                                   [(k, rolling, keep) for k, rolling, keep in saved["counters"]])
        for key, saved in state["rates"].items():
            hits = deque((at, n) for at, n in saved["hits"])
            self._rates[key] = _RateLog(saved["window_s"], hits, sum(n for _, n in hits))
        self._slots = {key: dict(slots) for key, slots in state["slots"].items()}
        self._marks = dict(state.get("marks", {}))  # snapshots written before marks existed have none
        self._restore_sessions(state.get("sessions", []))  # nor before sessions did
