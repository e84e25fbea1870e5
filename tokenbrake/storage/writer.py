"""Batched ledger writes, off the request path.

`add` only appends to an in-memory queue: no I/O, no await, no lock. A background task
writes the queue in batches every `flush_interval_s`, or sooner once `batch_size` rows are
waiting. A batch is removed from the queue only after its transaction committed, so when
the database is down nothing is lost: the rows stay queued, the error is logged, and the
next interval tries again.

The queue is not capped, because a dropped row is money that vanishes from the books. Past
`max_pending` rows the writer logs at CRITICAL and stops keeping prompt and completion text
for new rows (the bulk of a row's memory); the accounting fields are always kept.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections import deque
from collections.abc import Callable
from itertools import islice

from tokenbrake.storage.ledger import Ledger, LedgerRow

log = logging.getLogger("tokenbrake.ledger")

MAX_PENDING = 100_000


class LedgerWriter:
    def __init__(self, ledger: Ledger, flush_interval_s: float = 0.5, batch_size: int = 500,
                 max_pending: int = MAX_PENDING, on_written: Callable[[int], None] | None = None) -> None:
        """`on_written(n)` is told after each batch that `n` more rows, the oldest queued, are
        in the database (the journal then lets go of them)."""
        if flush_interval_s <= 0 or batch_size <= 0 or max_pending <= 0:
            raise ValueError("flush_interval_s, batch_size and max_pending must be positive")
        self.ledger = ledger
        self.flush_interval_s = flush_interval_s
        self.batch_size = batch_size
        self.max_pending = max_pending
        self._pending: deque[LedgerRow] = deque()
        self._write_lock = asyncio.Lock()
        self._wake = asyncio.Event()
        self._task: asyncio.Task | None = None
        self._closed = False
        self._over_limit = False
        self._failing = False
        self._on_written = on_written

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
                batch = list(islice(self._pending, min(remaining, self.batch_size)))
                await self.ledger.write(batch)
                for _ in batch:  # only now: a failed write leaves the batch queued
                    self._pending.popleft()
                remaining -= len(batch)
                if self._on_written is not None:
                    self._on_written(len(batch))
            if len(self._pending) < self.max_pending:
                self._over_limit = False

    async def close(self, timeout_s: float | None = None) -> None:
        """Stops the background task and writes everything still queued, giving up after
        `timeout_s` (a database that is down must not hold the shutdown for ever)."""
        self._closed = True
        try:
            await asyncio.wait_for(self._stop_and_flush(), timeout_s)
        except Exception:
            log.critical("ledger writer closing: %d rows could not be written", len(self._pending), exc_info=True)
            raise

    async def _stop_and_flush(self) -> None:
        if self._task is not None:
            async with self._write_lock:  # never cancel it in the middle of a write
                self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
        await self.flush()

    async def _run(self) -> None:
        while True:
            try:
                await asyncio.wait_for(self._wake.wait(), self.flush_interval_s)
            except TimeoutError:
                pass
            self._wake.clear()
            await self._flush_logged()

    async def _flush_logged(self) -> None:
        try:
            await self.flush()
        except Exception as exc:
            if not self._failing:  # the traceback once, then one line per failed retry
                log.exception("writing %d ledger rows failed; keeping them and retrying", len(self._pending))
            else:
                log.error("writing %d ledger rows failed again: %s", len(self._pending), exc)
            self._failing = True
        else:
            if self._failing:
                log.warning("ledger writes recovered")
            self._failing = False
