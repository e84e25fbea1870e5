"""Shared state for budgets, rate limits and concurrency: in process or in Redis.

`open_limit_store(url)` picks the backend from the URL; both implement `LimitStore` (types.py)
with the same behaviour, and the same tests run against both:

- `memory://` keeps everything in this process (memory.py). `memory:///relative/state.json`
  or `memory:////absolute/state.json` (or `snapshot=`) persists it to that file, so a
  restart keeps the period's spend and the open reservations.
- `redis://host:port/db` (also `rediss://`, `unix://`) keeps it in Redis (redis_store.py),
  every operation one atomic script, so any number of replicas share limits exactly. Keys
  start with `prefix` (or `?prefix=` in the URL), default `tokenbrake:`.

Budgets are reserved before a call and settled after it (reserve / settle / release);
rate limits are sliding windows (`hit`); concurrency is counted in slots that expire.
Agent sessions (key name + session id) are records whose limits are checked and whose
call is counted in one step (`session_admit`), whose tokens and cost are added after the
call (`session_settle`), and whose loop-detector trace is written by compare-and-set
(`session_observe`); memory_sessions.py and redis_sessions.py hold them.

May import: the package root, wire/ and storage/.
"""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from tokenbrake.limits.types import (
    Admission,
    BudgetCounter,
    Clock,
    CounterStatus,
    Grant,
    HitAsk,
    LimitStore,
    LimitStoreUnavailable,
    RateDecision,
    SlotAsk,
    Window,
    from_nanos,
    system_clock,
    to_nanos,
)

if TYPE_CHECKING:
    from tokenbrake.storage.spend import SettledSpend

MEMORY_SCHEME = "memory://"
REDIS_SCHEMES = ("redis://", "rediss://", "unix://")

__all__ = [
    "Admission", "BudgetCounter", "Clock", "CounterStatus", "Grant", "HitAsk", "LimitStore", "RateDecision",
    "SlotAsk", "LimitStoreUnavailable", "Window", "from_nanos",
    "open_limit_store", "system_clock", "to_nanos",
]


async def open_limit_store(url: str = MEMORY_SCHEME, *, clock: Clock = system_clock, snapshot: str | Path | None = None,
                     save_every_s: float = 2.0, prefix: str | None = None, read_only: bool = False,
                     settled: dict[str, SettledSpend] | None = None) -> LimitStore:
    """The store `url` names, opened (a snapshot loaded, a Redis connection checked).
    `read_only` keeps an in-process store from ever writing its snapshot. `settled`: the
    counters' spend as the ledger has it (storage/spend.py), which a gateway's store takes at
    start where it holds less: in process, what the previous process held in flight is gone
    with it (its journal recorded those calls)."""
    if url.startswith(MEMORY_SCHEME):
        from tokenbrake.limits.memory import MemoryStore

        path = url[len(MEMORY_SCHEME) + 1:] if url.startswith(MEMORY_SCHEME + "/") else url[len(MEMORY_SCHEME):]
        if path and snapshot is not None:
            raise ValueError("give the snapshot path in the URL or as snapshot=, not both")
        return await MemoryStore.open(snapshot or path or None, clock=clock, save_every_s=save_every_s,
                                      read_only=read_only, settled=settled)
    if url.startswith(REDIS_SCHEMES):
        from tokenbrake.limits.redis_store import DEFAULT_PREFIX, RedisStore

        url, url_prefix = split_prefix(url)
        return await RedisStore.open(url, prefix=prefix or url_prefix or DEFAULT_PREFIX, clock=clock)
    raise ValueError(f"unsupported state URL {url.split('://')[0]!r}: use memory://[/PATH] or redis://HOST:PORT/DB")


def split_prefix(url: str) -> tuple[str, str | None]:
    """The Redis URL without its `prefix` query parameter, and that prefix."""
    parts = urlsplit(url)
    query = parse_qsl(parts.query, keep_blank_values=True)
    prefix = next((value for name, value in query if name == "prefix"), None)
    rest = urlencode([(name, value) for name, value in query if name != "prefix"])
    return urlunsplit(parts._replace(query=rest)), prefix
