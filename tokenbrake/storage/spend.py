"""Budget counters' settled spend, rebuilt from the charges written with the ledger rows.

The ledger is the truth for settled spend: each row carries what its request charged each
budget counter (`budget_charges`, one row per request and counter, written in the row's own
transaction, so a retried batch charges nothing twice). At start the state backend takes its
counters' spend from here, so neither a crash nor a restart nor a shared state that lost its
data lowers what a budget has spent.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from tokenbrake.storage.backend import Backend

ROLLING_MARK = ":rolling:"  # a rolling window's storage key (limits/windows.py)


@dataclass(slots=True)
class SettledSpend:
    """One counter's settled spend in nano-USD; for a rolling window, its charges in time
    order too (`log`, (epoch seconds, nanos)), since they drop out of the window one by one."""

    nanos: int = 0
    log: list[tuple[float, int]] = field(default_factory=list)
    keep_until: float | None = 0.0


async def settled_spend(backend: Backend, now: float) -> dict[str, SettledSpend]:
    """Every live counter's spend (by storage key): calendar and total windows summed, rolling
    windows' charges listed (those still inside a window are at most a window old)."""
    spend: dict[str, SettledSpend] = {}
    summed = await backend.fetch(
        "SELECT counter_key, SUM(nanos), MAX(keep_until), COUNT(keep_until), COUNT(*) FROM budget_charges "
        "WHERE (keep_until IS NULL OR keep_until > ?) AND counter_key NOT LIKE ? GROUP BY counter_key",
        (now, f"%{ROLLING_MARK}%"))
    for key, nanos, keep_until, kept, count in summed:
        spend[key] = SettledSpend(int(nanos), keep_until=None if kept < count else float(keep_until))
    rolling = await backend.fetch(
        "SELECT counter_key, at, nanos, keep_until FROM budget_charges "
        "WHERE keep_until > ? AND counter_key LIKE ? ORDER BY counter_key, at", (now, f"%{ROLLING_MARK}%"))
    for key, at, nanos, keep_until in rolling:
        entry = spend.setdefault(key, SettledSpend())
        entry.nanos += int(nanos)
        entry.log.append((float(at), int(nanos)))
        entry.keep_until = max(entry.keep_until or 0.0, float(keep_until))
    return spend


async def forget_spent(backend: Backend, now: float) -> int:
    """Deletes charges no counter reads again (their period and its grace ended); returns how many."""
    async with backend.transaction() as tx:
        return await tx.execute("DELETE FROM budget_charges WHERE keep_until IS NOT NULL AND keep_until < ?", (now,))
