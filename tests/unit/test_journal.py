"""The journal: what a process killed with SIGKILL had in flight and had not yet written
reaches the ledger at the next start — rows as they were, calls in flight as unseen rows
charged at their reserved worst case — and a live process's journal is never touched."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

from storage_backends import db, ledger_row, place  # noqa: F401

from tokenbrake.journal import Journal, recover_folder
from tokenbrake.journal.records import Held, Start, parse, row_line, start_line
from tokenbrake.storage.ledger import Charge

NOW = 1_764_000_000.0


def start(request_id: str, reserved_nanos: int = 0, held_on: tuple[Held, ...] = (), **fields) -> Start:
    values = dict(request_id=request_id, at=NOW - 5, key_name="app", team="search", user="alice", session=None,
                  tags={"feature": "chat"}, requested_model="auto", model="gpt-4o", upstream="openai",
                  stream=True, endpoint="chat", front_door="openai", reserved_nanos=reserved_nanos,
                  held_on=held_on, placed_at=NOW - 5)
    return Start(**(values | fields))


def killed_writer(folder: Path, script: str) -> None:
    """Runs `script` with a Journal `j` open in `folder`, then the process kills itself."""
    code = textwrap.dedent(f"""
        import os, signal
        from datetime import UTC, datetime
        from decimal import Decimal
        from tokenbrake.journal import Journal
        from tokenbrake.journal.records import Held, Start
        from tokenbrake.storage.ledger import Charge, LedgerRow
        j = Journal({str(folder)!r}).open()
    """) + textwrap.dedent(script) + "\nos.kill(os.getpid(), signal.SIGKILL)\n"
    result = subprocess.run([sys.executable, "-c", code], timeout=60, capture_output=True)
    assert result.returncode == -9, result.stderr.decode()


def test_every_kind_of_line_reads_back_as_written():
    held = (Held("budget:team:search:2026-12-01T00:00+00:00", 0.0, 3600.0), Held("budget:global:rolling:60s", 60.0, 3660.0))
    assert parse(start_line(start("r1", 5000, held))) == ("s", "r1", start("r1", 5000, held))
    row = ledger_row(1, tags={"a": "b"}, cost_usd=Decimal("0.0012345"), saved_usd=Decimal("-0.5"),
                     ts=datetime(2026, 12, 1, 10, 0, 0, 1234, tzinfo=UTC))
    row.charges = (Charge("budget:global:total", 1_234_500, NOW, None),)
    assert parse(row_line("r1", row)) == ("r", "r1", row)


async def test_a_killed_gateways_rows_and_calls_in_flight_reach_the_ledger(db, tmp_path):
    held = "(Held('budget:team:search:total', 0.0, None),)"
    killed_writer(tmp_path, f"""
        j.started(Start('done', {NOW}, 'app', 'search', 'alice', None, {{}}, 'gpt-4o', 'gpt-4o', 'openai', False,
                        'chat', 'openai', 9000, {held}, {NOW}))
        j.recorded('done', [LedgerRow('done', datetime.now(UTC), 'app', 'search', 'alice', None, {{}}, 'gpt-4o',
                                      'gpt-4o', 'openai', 10, 0, 0, 5, 0, Decimal('0.000003'), 12.0, 200, None,
                                      False, 'chat', 'openai',
                                      charges=(Charge('budget:team:search:total', 3000, {NOW}, None),))])
        j.started(Start('in-flight', {NOW}, 'app', 'search', 'bob', 's-1', {{'f': 'x'}}, 'auto', 'small', 'local',
                        True, 'chat', 'anthropic', 7000, {held}, {NOW}))
        j.started(Start('no-upstream', {NOW}, 'app', 'search', 'bob', None, {{}}, 'gpt-4o', 'gpt-4o', 'openai',
                        False, 'count_tokens', 'anthropic', 0, (), {NOW}))
        j.ended('no-upstream')
    """)
    recovered = await recover_folder(tmp_path, db.ledger, NOW)
    assert (recovered.journals, recovered.rows, [r.request_id for r in recovered.unseen]) == (1, 1, ["in-flight"])
    rows = {row.request_id: row for row in await db.ledger.rows()}
    assert set(rows) == {"done", "in-flight"}
    assert rows["done"].cost_usd == Decimal("0.000003") and not rows["done"].usage_unseen
    unseen = rows["in-flight"]
    assert unseen.usage_unseen and unseen.status == 0 and unseen.cost_usd == Decimal("0.000007")
    assert (unseen.user, unseen.session, unseen.tags, unseen.served_model, unseen.front_door) == \
        ("bob", "s-1", {"f": "x"}, "small", "anthropic")
    assert "reserved worst case" in unseen.error
    charged = await db.backend.fetch("SELECT request_id, nanos FROM budget_charges ORDER BY request_id")
    assert charged == [("done", 3000), ("in-flight", 7000)]
    assert list(tmp_path.glob("*.journal")) == []  # recovered once: gone


async def test_recovering_the_same_journal_twice_charges_nothing_twice(db, tmp_path):
    killed_writer(tmp_path, f"""
        j.started(Start('r', {NOW}, None, None, None, None, {{}}, 'm', 'm', 'u', False, 'chat', 'openai', 500,
                        (Held('budget:global:total', 0.0, None),), {NOW}))
    """)
    copy = tmp_path / "copy"
    copy.mkdir()
    for path in tmp_path.glob("*.journal"):
        (copy / path.name).write_bytes(path.read_bytes())
    await recover_folder(tmp_path, db.ledger, NOW)
    await recover_folder(copy, db.ledger, NOW)
    assert await db.backend.fetch("SELECT COUNT(*), SUM(nanos) FROM budget_charges") == [(1, 500)]
    assert len(await db.ledger.rows()) == 1


async def test_a_live_gateways_journal_is_left_alone(db, tmp_path):
    live = Journal(tmp_path).open()
    live.started(start("mine", 100))
    recovered = await recover_folder(tmp_path, db.ledger, NOW)
    assert recovered.journals == 0 and await db.ledger.rows() == []
    assert live.current.exists()
    live.close()


async def test_a_line_cut_short_by_the_kill_is_skipped(db, tmp_path):
    journal = Journal(tmp_path).open()
    journal.started(start("whole", 100))
    os.write(journal._segments[-1].fd, start_line(start("cut", 100))[:-20])  # the kill came mid-write
    os.close(journal._segments[-1].fd)  # dies: its lock goes with the descriptor
    recovered = await recover_folder(tmp_path, db.ledger, NOW)
    assert [row.request_id for row in recovered.unseen] == ["whole"] and recovered.bad_lines == 1


def test_old_segments_go_once_their_calls_ended_and_their_rows_are_written(tmp_path):
    journal = Journal(tmp_path, segment_bytes=50).open()
    journal.started(start("a"))  # a start line is over 50 bytes: the next append opens segment 2
    journal.started(start("b"))
    assert len(list(tmp_path.glob("*.journal"))) == 2
    journal.recorded("a", [ledger_row(1)])  # in segment 3: segment 1 holds nothing needed now
    journal.ended("b")  # in segment 4: nor does segment 2; segment 3 holds a row not yet written
    assert sorted(p.name[-14:] for p in tmp_path.glob("*.journal")) == ["000002.journal", "000003.journal"]
    journal.written(1)
    assert len(list(tmp_path.glob("*.journal"))) == 1  # only the one being appended to
    assert journal.settled
    journal.close()
    assert list(tmp_path.glob("*.journal")) == []


def test_a_journal_with_rows_not_written_is_kept_at_close(tmp_path):
    journal = Journal(tmp_path).open()
    journal.started(start("a"))
    journal.recorded("a", [ledger_row(1)])
    journal.close()  # the writer never confirmed the row
    assert len(list(tmp_path.glob("*.journal"))) == 1
