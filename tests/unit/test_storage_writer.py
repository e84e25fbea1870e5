import asyncio
import logging
import sqlite3
from decimal import Decimal

import psycopg
import pytest
from storage_backends import PG_URL, Place, db, execute, ledger_row, pg_place, place  # noqa: F401

from tokenbrake.storage import LedgerWriter
from tokenbrake.storage.writer import WriteTimedOut

COST = Decimal("0.0123456789")


async def wait_until(condition, timeout_s: float = 5.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout_s
    while not await condition():
        assert asyncio.get_running_loop().time() < deadline, "timed out"
        await asyncio.sleep(0.02)


async def test_add_only_queues_until_flush(db):
    writer = LedgerWriter(db.ledger, flush_interval_s=60, batch_size=500)
    writer.add(ledger_row(1))
    assert writer.pending == 1
    assert (await db.ledger.totals()).requests == 0
    await writer.flush()
    assert writer.pending == 0
    assert (await db.ledger.totals()).requests == 1


async def test_many_rows_flush_in_batches_with_exact_totals(db):
    writer = LedgerWriter(db.ledger, flush_interval_s=60, batch_size=100)
    for n in range(1234):
        writer.add(ledger_row(n, cost_usd=COST))
    await writer.flush()
    totals = await db.ledger.totals()
    assert totals.requests == 1234
    assert totals.cost_usd == COST * 1234 == Decimal("15.2345677626")
    assert totals.input_tokens == 123_400


async def test_background_task_writes_within_the_interval(db):
    writer = LedgerWriter(db.ledger, flush_interval_s=0.05, batch_size=500)
    await writer.start()
    try:
        writer.add(ledger_row(1))
        await wait_until(lambda: _written(db, 1))
    finally:
        await writer.close()


async def test_a_full_batch_is_written_before_the_interval_ends(db):
    writer = LedgerWriter(db.ledger, flush_interval_s=60, batch_size=10)
    await writer.start()
    try:
        for n in range(10):
            writer.add(ledger_row(n))
        await wait_until(lambda: _written(db, 10))
    finally:
        await writer.close()


async def test_close_writes_everything_still_queued(db):
    writer = LedgerWriter(db.ledger, flush_interval_s=60, batch_size=50)
    await writer.start()
    for n in range(777):
        writer.add(ledger_row(n, cost_usd=COST))
    await writer.close()
    assert writer.pending == 0
    assert (await db.ledger.totals()).cost_usd == COST * 777


async def test_rows_added_after_close_are_refused_loudly(db, caplog):
    writer = LedgerWriter(db.ledger)
    await writer.close()
    writer.add(ledger_row(1))
    assert "not recorded" in caplog.text


async def test_failed_flush_keeps_the_rows_and_a_later_flush_writes_them(db):
    writer = LedgerWriter(db.ledger, flush_interval_s=60, batch_size=3)
    await writer.flush()
    await execute(db, "ALTER TABLE ledger RENAME TO ledger_away")
    for n in range(10):
        writer.add(ledger_row(n, cost_usd=COST))
    with pytest.raises((sqlite3.Error, psycopg.Error)):
        await writer.flush()
    assert writer.pending == 10
    await execute(db, "ALTER TABLE ledger_away RENAME TO ledger")
    await writer.flush()
    assert writer.pending == 0
    assert (await db.ledger.totals()).cost_usd == COST * 10


async def test_background_task_retries_until_the_database_is_back(db, caplog):
    writer = LedgerWriter(db.ledger, flush_interval_s=0.05, batch_size=500)
    await execute(db, "ALTER TABLE ledger RENAME TO ledger_away")
    await writer.start()
    try:
        writer.add(ledger_row(1))
        with caplog.at_level(logging.ERROR, logger="tokenbrake.storage.writer"):
            await wait_until(lambda: _logged(caplog, "failed again"))
        assert writer.pending == 1
        await execute(db, "ALTER TABLE ledger_away RENAME TO ledger")
        await wait_until(lambda: _written(db, 1))
    finally:
        await writer.close()


async def test_postgres_connection_killed_underneath_is_replaced(pg_place: Place):
    db = await pg_place.open()
    try:
        await _survives_a_killed_connection(db)
    finally:
        await db.close()


async def _survives_a_killed_connection(db) -> None:
    writer = LedgerWriter(db.ledger, flush_interval_s=60)
    [(pid,)] = await db.backend.fetch("SELECT pg_backend_pid()")
    async with await psycopg.AsyncConnection.connect(PG_URL, autocommit=True) as admin:
        await admin.execute("SELECT pg_terminate_backend(%s)", (pid,))
    writer.add(ledger_row(1))
    await writer.flush()
    assert (await db.ledger.totals()).requests == 1
    assert await db.backend.fetch("SELECT pg_backend_pid()") != [(pid,)]


async def test_past_the_memory_bound_rows_are_kept_without_their_text(db, caplog):
    writer = LedgerWriter(db.ledger, flush_interval_s=60, max_pending=2)
    for n in range(4):
        writer.add(ledger_row(n, prompt="p" * 1000, completion="c"))
    assert writer.pending == 4
    assert "waiting to be written" in caplog.text
    await writer.flush()
    rows = {row.request_id: row for row in await db.ledger.rows()}
    assert [rows[f"req-{n}"].prompt is not None for n in range(4)] == [True, True, False, False]


async def _written(db, count: int) -> bool:
    return (await db.ledger.totals()).requests == count


async def _logged(caplog, text: str) -> bool:
    return text in caplog.text


async def test_a_write_the_database_holds_times_out_keeps_its_rows_and_lands_once(pg_place: Place):
    """A database that takes a batch and never answers (here: a lock held by another session;
    in production a frozen server or a partition) fails the flush after write_timeout_s, with
    the rows kept; the write in flight is waited on again, not sent twice, and once it lands
    the rows are in the ledger once."""
    db = await pg_place.open()
    writer = LedgerWriter(db.ledger, flush_interval_s=60, batch_size=500, write_timeout_s=0.3)
    try:
        async with await psycopg.AsyncConnection.connect(PG_URL) as locker:
            await locker.execute(f"LOCK TABLE {pg_place.schema}.ledger IN ACCESS EXCLUSIVE MODE")
            writer.add(ledger_row(1))
            writer.add(ledger_row(2))
            for _ in range(2):
                with pytest.raises(WriteTimedOut, match=r"within 0.3 s \(ledger.write_timeout_s\)"):
                    await writer.flush()
                assert writer.pending == 2
            writer.add(ledger_row(3))  # queued behind the write in flight
            await locker.rollback()
        await writer.flush()
        assert writer.pending == 0
        assert sorted(r.request_id for r in await db.ledger.rows()) == ["req-1", "req-2", "req-3"]
    finally:
        await writer.close()
        await db.close()


async def test_the_background_task_folds_closed_hours_and_a_failed_fold_is_retried(db, caplog):
    from datetime import UTC, datetime, timedelta

    from tokenbrake.storage.compaction import due, folded_until

    back = (datetime.now(UTC) - timedelta(hours=3)).replace(minute=0, second=0, microsecond=0)
    async with db.backend.transaction() as tx:
        await tx.execute("UPDATE rollup_compacted SET folded_until = ?", (back,))
    await execute(db, "ALTER TABLE rollup_hour RENAME TO rollup_hour_away")  # the first fold fails

    async def fold_failed() -> bool:
        return "folding the rollups' closed hours failed" in caplog.text

    async def folded() -> bool:
        return await folded_until(db.backend) == due(datetime.now(UTC))

    writer = LedgerWriter(db.ledger, flush_interval_s=0.02)
    await writer.start()
    try:
        await wait_until(fold_failed)
        assert await folded_until(db.backend) == back  # nothing half done
        await execute(db, "ALTER TABLE rollup_hour_away RENAME TO rollup_hour")
        db.ledger.compactor._checked_at = float("-inf")  # the retry, without waiting CHECK_EVERY_S
        await wait_until(folded)
    finally:
        await writer.close()
