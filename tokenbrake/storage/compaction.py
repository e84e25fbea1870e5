"""Folding the rollups upward: each closed hour's minutes into hours, days and weeks.

A ledger batch writes only its minutes (rollups.py); the minutes of each hour are added into
`rollup_hour`, `rollup_day` and `rollup_week` once, after the hour has closed, by
`RollupCompactor.compact`: one transaction that folds the minutes from the old mark to the
new one and moves the mark (`rollup_compacted.folded_until`). Every coarser table then holds
exactly the rows before the mark (today's day row and this week's row hold the day and week
so far), the minutes everything from it on; a reader tiles a span by the mark
(insight_queries.py), so an answer is exact whether compaction ran a minute ago or has not
run for days: it only reads more rows.

On PostgreSQL the fold holds an advisory lock that every batch also takes, shared: a batch in
flight commits before the fold reads the minutes, and a batch after it sees the new mark and
adds its late rows (older than the mark) to the coarser tables itself. Several replicas may
compact at once; the second finds the mark moved and folds nothing. The minutes are kept
(`MINUTES_KEPT`), so a reader that saw the old mark still reads a whole span.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

from tokenbrake.storage.backend import Backend, to_datetime
from tokenbrake.storage.rollups import COARSER, EXCLUSIVE_LOCK, MARKS, floor, fold

# An hour is folded this long after it ends: the rows of calls still settling then are late
# rows (correct, and a little dearer to write).
FOLD_AFTER = timedelta(minutes=1)
CHECK_EVERY_S = 15.0  # how often the ledger writer asks whether a fold is due


async def folded_until(backend: Backend) -> datetime:
    """The mark: the hour, day and week tables hold every row before it."""
    ((until,),) = await backend.fetch(f"SELECT folded_until FROM {MARKS}")
    return to_datetime(until)


def due(now: datetime) -> datetime:
    """The mark once every hour closed by `now` is folded."""
    return floor(now - FOLD_AFTER, "hour")


class RollupCompactor:
    def __init__(self, backend: Backend) -> None:
        self._backend = backend
        self._known: datetime | None = None  # the mark after this process's last look
        self._checked_at = float("-inf")

    def is_due(self, now: datetime | None = None) -> bool:
        """Whether an hour has closed since the mark was last seen (no I/O): the writer asks
        after every batch."""
        if time.monotonic() - self._checked_at < CHECK_EVERY_S:
            return False
        self._checked_at = time.monotonic()
        return self._known is None or due(now or datetime.now(UTC)) > self._known

    async def compact(self, now: datetime | None = None) -> datetime:
        """Folds the hours closed by `now`; returns the mark."""
        target = due(now or datetime.now(UTC))
        dialect = self._backend.dialect
        async with self._backend.transaction() as tx:
            if dialect.name == "postgresql":
                await tx.execute(EXCLUSIVE_LOCK)
            ((until,),) = await tx.fetch(f"SELECT folded_until FROM {MARKS}")
            mark = to_datetime(until)
            if target > mark:
                for granularity in COARSER:
                    await tx.execute(fold(dialect, granularity, "minute", "?", "?"), (target, mark))
                await tx.execute(f"UPDATE {MARKS} SET folded_until = ?", (target,))
                mark = target
        self._known = mark
        return mark
