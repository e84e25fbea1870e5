"""A gateway's leases on what it holds in Redis, so that what a dead gateway held is dealt
with within seconds by any live one, and a Redis that lost its data is noticed.

- Concurrency slots are taken until `LEASE_S` from now, and the gateway that holds them moves
  that on every `RENEW_S` while the request runs: a gateway killed mid-request frees its
  slots within `LEASE_S`, not after `reservation_ttl_s`.
- Budget reservations are entered in `leases:reservations` likewise. One that lapses (its
  gateway stopped renewing it) is charged at its reserved amount — its usage was never seen,
  so the worst case — never released (SWEEP), and queued in `unseen`, which a live gateway
  writes to its ledger as an unseen row.
- `alive` is set once Redis holds the ledger's settled spend; found missing (Redis restarted
  without persistence, or a failover lost writes), every counter is raised again to what the
  ledger says it has spent (TAKE_SETTLED), logged once.

One pipeline a gateway every `RENEW_S`; nothing on the request path but set bookkeeping.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, cast

import redis.asyncio as aioredis

from tokenbrake.limits import lease_scripts
from tokenbrake.limits.types import LimitStoreUnavailable
from tokenbrake.limits.windows import KEEP_AFTER_S

log = logging.getLogger(__name__)

LEASE_S = 10.0
RENEW_S = 2.0
SWEEP_BATCH = 200
MAX_RETRIES = 100_000


@dataclass(frozen=True, slots=True)
class Lapsed:
    """A reservation charged because its gateway stopped renewing it."""

    request_id: str
    nanos: int
    note: str  # what the gateway said of the request when it reserved (journal start line)
    counters: list[tuple[str, float, float | None]]  # storage key (no prefix), rolling s, keep until


LedgerSpend = Callable[[], Awaitable[dict[str, Any]]]  # storage/spend.SettledSpend by storage key
Record = Callable[[list[Lapsed]], None]


class Leases:
    def __init__(self, client: aioredis.Redis, prefix: str, clock: Callable[[], float]) -> None:
        self._client = client
        self._prefix = prefix
        self._clock = clock
        self.slots: dict[str, set[str]] = {}  # slot set key (prefixed) -> request ids held here
        self.reservations: set[str] = set()
        self.zset = prefix + "leases:reservations"
        self._sweep = client.register_script(lease_scripts.SWEEP)
        self._take = client.register_script(lease_scripts.TAKE_SETTLED)
        self._task: asyncio.Task | None = None
        self._down_since: float | None = None
        self._retries: deque[Callable[[], Awaitable[Any]]] = deque()  # settlements and releases that failed

    @property
    def waiting(self) -> int:
        """Settlements and releases waiting for Redis."""
        return len(self._retries)

    def retry(self, operation: Callable[[], Awaitable[Any]]) -> None:
        """Keeps `operation` (a settlement or a release that Redis did not take) to try again
        every tick until it lands. Bounded: past MAX_RETRIES the oldest is dropped, said loudly
        (a dropped settlement's reservation lapses and is charged at its worst case; the
        ledger has the real cost either way)."""
        if len(self._retries) >= MAX_RETRIES:
            self._retries.popleft()
            log.critical("more than %d settlements wait for Redis; dropping the oldest", MAX_RETRIES)
        self._retries.append(operation)

    def until(self) -> float:
        return self._clock() + LEASE_S

    def hold_slots(self, keys: list[str], request_id: str) -> None:
        for key in keys:
            self.slots.setdefault(key, set()).add(request_id)

    def free_slot(self, key: str, request_id: str) -> None:
        held = self.slots.get(key)
        if held is not None:
            held.discard(request_id)
            if not held:
                del self.slots[key]

    async def start(self, ledger_spend: LedgerSpend, record: Record) -> None:
        """Raises the counters to the ledger's spend (at start the shared state may have lost
        it), says if Redis persists nothing, and starts renewing and sweeping."""
        await self._warn_if_not_persisted()
        await self._take_settled(await ledger_spend())
        self._task = asyncio.create_task(self._run(ledger_spend, record), name="tokenbrake-redis-leases")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None

    async def _run(self, ledger_spend: LedgerSpend, record: Record) -> None:
        while True:
            await asyncio.sleep(RENEW_S if not self._retries else RENEW_S / 4)
            try:
                await self.tick(ledger_spend, record)
            except (aioredis.RedisError, OSError, LimitStoreUnavailable) as exc:
                self._note_down(exc)
            except Exception:
                log.exception("renewing the gateway's leases on Redis failed")

    async def tick(self, ledger_spend: LedgerSpend, record: Record) -> None:
        """Renews this gateway's leases, charges what dead gateways left, records it, and
        rebuilds the spend if Redis lost it."""
        until = self.until()
        async with self._client.pipeline(transaction=False) as pipe:
            for key, holders in self.slots.items():
                pipe.zadd(key, dict.fromkeys(holders, until), xx=True)
            if self.reservations:
                pipe.zadd(self.zset, dict.fromkeys(self.reservations, until), xx=True)
            pipe.exists(self._prefix + "alive")
            alive = (await pipe.execute())[-1]
        self._note_up()
        while self._retries:
            await self._retries[0]()
            self._retries.popleft()
        if not alive:
            log.warning("Redis holds no budget state (restarted without persistence, or a failover lost it): "
                        "rebuilding every budget's spend from the ledger")
            await self._take_settled(await ledger_spend())
        lapsed = await self._sweep(keys=[self.zset, self._prefix + "unseen"],
                                   args=[repr(self._clock()), self._prefix, int(KEEP_AFTER_S * 1000), SWEEP_BATCH])
        if lapsed:
            log.warning("charged %d reservations of a gateway that stopped renewing them at their worst case", lapsed)
        entries = await self._client.lpop(self._prefix + "unseen", SWEEP_BATCH)
        if entries:  # with a count, LPOP answers a list (redis-py's types do not say so)
            record([self._lapsed(entry) for entry in cast("list[bytes | str]", entries)])

    def _lapsed(self, entry: bytes | str) -> Lapsed:
        rid, amount, note, counters = json.loads(entry)
        cut = len(self._prefix)
        return Lapsed(rid, int(amount), note, [(key[cut:], float(rolling), keep) for key, rolling, keep in json.loads(counters)])

    async def _take_settled(self, spend: dict[str, Any]) -> None:
        now = self._clock()
        keys: list[str] = []
        args: list[str | int] = [repr(now)]
        for key, settled in spend.items():
            keys.append(self._prefix + key)
            keep_ms = "" if settled.keep_until is None else max(1000, int((settled.keep_until - now) * 1000))
            args += [settled.nanos, keep_ms, json.dumps(settled.log) if settled.log else ""]
        raised = 0
        for start in range(0, len(keys), 500):
            raised += await self._take(keys=keys[start:start + 500], args=[args[0], *args[1 + 3 * start:1 + 3 * (start + 500)]])
        await self._client.set(self._prefix + "alive", "1")
        if raised:
            log.warning("raised %d budget counters in Redis to the spend the ledger records", raised)

    async def _warn_if_not_persisted(self) -> None:
        try:
            save = (await self._client.config_get("save")).get("save", "")
            aof = (await self._client.config_get("appendonly")).get("appendonly", "no")
        except aioredis.RedisError:
            return  # a managed Redis may not allow CONFIG; nothing to say then
        if not save and aof == "no":
            log.warning("Redis persists nothing (save '' and appendonly no): when it restarts, budgets are rebuilt "
                        "from the ledger, but rate-limit windows and agent sessions start again empty")

    def _note_down(self, exc: Exception) -> None:
        if self._down_since is None:
            self._down_since = self._clock()
            log.error("Redis does not answer (%s): requests that need budgets or limits are refused until it does", exc)

    def _note_up(self) -> None:
        if self._down_since is not None:
            log.warning("Redis answers again after %.1fs", self._clock() - self._down_since)
            self._down_since = None
