"""Batched ledger writes, off the request path.

`add` only appends to an in-memory queue: no I/O, no await, no lock. A background task
writes the queue in batches every `flush_interval_s`, or sooner once `batch_size` rows are
waiting. A batch is removed from the queue only after its transaction committed, so when
the database is down nothing is lost: the rows stay queued, the error is logged, and the
next interval tries again.

A batch that the database has not committed within `write_timeout_s` (a frozen server, a
network partition: connections open, no answer) fails like any other error and is retried;
retrying is safe because the ledger ignores a row whose request id it holds already.

The queue is not capped, because a dropped row is money that vanishes from the books. Past
`max_pending` rows the writer logs at CRITICAL and stops keeping prompt and completion text
for new rows (the bulk of a row's memory); the accounting fields are always kept.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
from collections import deque
from collections.abc import Callable
from itertools import islice

from tokenbrake.storage.compaction import RollupCompactor
from tokenbrake.storage.ledger import Ledger, LedgerRow

log = logging.getLogger(__name__)

MAX_PENDING = 100_000


class WriteTimedOut(Exception):
    """The database did not commit a batch in time."""


class LedgerWriter:
    def __init__(self, ledger: Ledger, flush_interval_s: float = 0.5, batch_size: int = 500,
                 max_pending: int = MAX_PENDING, on_written: Callable[[int], None] | None = None,
                 write_timeout_s: float = 10.0) -> None:
        """`on_written(n)` is told after each batch that `n` more rows, the oldest queued, are
        in the database (the journal then lets go of them)."""
        if min(flush_interval_s, batch_size, max_pending, write_timeout_s) <= 0:
            raise ValueError("flush_interval_s, batch_size, max_pending and write_timeout_s must be positive")
        self.ledger = ledger
        self.flush_interval_s = flush_interval_s
        self.batch_size = batch_size
        self.max_pending = max_pending
        self.write_timeout_s = write_timeout_s
        self._pending: deque[LedgerRow] = deque()
        self._write_lock = asyncio.Lock()
        self._wake = asyncio.Event()
        self._task: asyncio.Task | None = None
        self._closed = False
        self._over_limit = False
        self._failing = False
        self._on_written = on_written
        self._writing: tuple[asyncio.Future, int] | None = None  # a write in flight, and how many rows it holds
        self._compacting: asyncio.Future | None = None

    @property
    def pending(self) -> int:
        """Rows queued and not yet written."""
        return len(self._pending)

    def add(self, row: LedgerRow) -> None:
        """Queues one row. Never blocks and never does I/O."""
        if self._closed:
            log.error("ledger writer is closed; call %s was not recorded", row.request_id)
            return
        if len(self._pending) >= self.max_pending:
            if not self._over_limit:
                self._over_limit = True
                log.critical("%d ledger rows are waiting to be written (the database is failing?); keeping them, "
                             "without prompt and completion text, until it recovers", len(self._pending))
            if row.prompt is not None or row.completion is not None:
                row = dataclasses.replace(row, prompt=None, completion=None)
        self._pending.append(row)
        if len(self._pending) >= self.batch_size:
            self._wake.set()

    async def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="tokenbrake-ledger-writer")

    async def flush(self) -> None:
        """Writes every row queued before this call; raises if the database fails (rows kept)."""
        async with self._write_lock:
            remaining = len(self._pending)
            while remaining > 0:
                written = await self._write_oldest(min(remaining, self.batch_size))
                for _ in range(written):  # only now: a failed write leaves the batch queued
                    self._pending.popleft()
                remaining -= written
                if self._on_written is not None:
                    self._on_written(written)
            if len(self._pending) < self.max_pending:
                self._over_limit = False

    async def _write_oldest(self, count: int) -> int:
        """Writes the `count` oldest rows; returns how many were written. A write still waiting
        on the database after `write_timeout_s` is left running (cancelling it would wait on
        the database too) and waited on again by the next flush, never started twice."""
        if self._writing is None:
            self._writing = asyncio.ensure_future(self.ledger.write(list(islice(self._pending, count)))), count
        task, written = self._writing
        done, _ = await asyncio.wait({task}, timeout=self.write_timeout_s)
        if not done:
            raise WriteTimedOut(f"the database did not commit them within {self.write_timeout_s:g} s "
                                f"(ledger.write_timeout_s)")
        self._writing = None
        task.result()  # the database's error, if it failed
        return written

    async def close(self, timeout_s: float | None = None) -> bool:
        """Stops the background task and writes everything still queued, giving up after
        `timeout_s` (a database that is down must not hold the shutdown for ever). Returns
        whether every row was written; if not, says so at CRITICAL (the rows stay queued, and
        in the journal)."""
        self._closed = True
        try:
            await asyncio.wait_for(self._stop_and_flush(), timeout_s)
        except Exception as exc:
            reason = f"no commit within {timeout_s:g} s (ledger.shutdown_write_s)" if isinstance(exc, TimeoutError) else exc
            log.critical("ledger writer closing: %d rows could not be written: %s", len(self._pending), reason)
            return False
        return True

    async def _stop_and_flush(self) -> None:
        if self._task is not None:
            async with self._write_lock:  # never cancel it in the middle of a write
                self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
        if self._compacting is not None:  # let a fold finish (never cut it mid-transaction)
            await asyncio.wait({self._compacting}, timeout=self.write_timeout_s)
        await self.flush()

    async def _run(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.flush_interval_s)
            self._wake.clear()
            await self._flush_logged()
            self._compact_when_due()

    def _compact_when_due(self) -> None:
        """Starts folding the rollups' closed hours (compaction.py) when one is due, as a task
        of its own so that a slow fold never holds up the batches."""
        compactor = self.ledger.compactor
        if compactor is None or (self._compacting is not None and not self._compacting.done()):
            return
        if compactor.is_due():
            self._compacting = asyncio.ensure_future(self._compact(compactor))

    @staticmethod
    async def _compact(compactor: RollupCompactor) -> None:
        try:
            await compactor.compact()
        except Exception as exc:  # tried again later; the rollups stay exact meanwhile, only slower to read
            log.error("folding the rollups' closed hours failed: %s; trying again later", exc)

    async def _flush_logged(self) -> None:
        try:
            await self.flush()
        except Exception as exc:
            if not self._failing and not isinstance(exc, WriteTimedOut):  # the traceback once, then a line per retry
                log.exception("writing %d ledger rows failed; keeping them and retrying", len(self._pending))
            elif not self._failing:
                log.error("writing %d ledger rows failed: %s; keeping them and retrying", len(self._pending), exc)
            else:
                log.error("writing %d ledger rows failed again: %s", len(self._pending), exc)
            self._failing = True
        else:
            if self._failing:
                log.warning("ledger writes recovered")
            self._failing = False
