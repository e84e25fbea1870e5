"""PostgreSQL failing under a running gateway, on a PostgreSQL server the test starts itself:
frozen (SIGSTOP, as a network partition leaves it: connections open, no answers) and killed
with kill -9 then started again. The gateway keeps answering through the outage (nothing on the
request path waits for the database), the hard budget holds, and once the database is back
every call that reached the upstream is in the ledger, once."""

from __future__ import annotations

import signal
import time
from collections import Counter
from decimal import Decimal

import pytest
from harness import Load, fault_config, ledger_rows, start_gateway, total_cost, upstream_users, write_config
from services import postgres_answers, start_postgres, wait_until

from tokenbrake.tools.launch import ChildServer

CAP = Decimal("0.05")
OUTAGE_S = 6.0


@pytest.fixture
def own_postgres():
    server = start_postgres(durable=True)  # killed -9 here: what it acknowledged must survive
    yield server
    server.stop()


LEDGER = {"flush_interval_s": 0.2, "write_timeout_s": 2, "shutdown_write_s": 2}


def gateway_on(emulator, own_postgres, tmp_path, log_name: str, database: str | None = None) -> ChildServer:
    """A gateway on `own_postgres` (or `database`, a URL on it) with a hard budget."""
    config = fault_config(emulator.url, database or own_postgres.url, tmp_path,
                          ledger=LEDGER | {"journal_dir": str(tmp_path / "journal")},
                          budgets=[{"scope": "global", "amount_usd": float(CAP), "period": "month"}])
    return start_gateway(write_config(tmp_path, config), log=tmp_path / log_name)


def stop_with_database_frozen(gateway: ChildServer, own_postgres) -> float:
    """SIGTERM to a gateway under load whose database froze (SIGSTOP) 1.5 s before; the
    seconds it took to exit. The database is thawed afterwards, whatever happened."""
    try:
        with Load(gateway.url, threads=6):
            time.sleep(2)
            own_postgres.signal_all(signal.SIGSTOP)
            time.sleep(1.5)
        started = time.monotonic()
        gateway.stop(timeout_s=30)
        return time.monotonic() - started
    finally:
        own_postgres.signal_all(signal.SIGCONT)


def through_outage(gateway: ChildServer, begin, end) -> tuple[int, int]:
    """Load before, during and after an outage (`begin()` .. `end()`); the calls answered during
    it, and the calls sent in all."""
    with Load(gateway.url, threads=6) as load:
        time.sleep(2)
        begin()
        answered_before = load.answered
        time.sleep(OUTAGE_S)
        answered_during = load.answered - answered_before
        end()
        time.sleep(2)
    return answered_during, load.sent


def wait_for_ledger(url: str, emulator: ChildServer, before: frozenset[str] = frozenset(),
                    timeout_s: float = 30.0) -> tuple[list, set[str]]:
    """The ledger once it holds every call that reached the upstream, less those `before`
    (or at the timeout); and those calls."""
    upstream = upstream_users(emulator) - before
    deadline = time.monotonic() + timeout_s
    while True:
        rows = ledger_rows(url)
        if upstream <= {r.user for r in rows} or time.monotonic() > deadline:
            return rows, upstream
        time.sleep(0.5)


def assert_books_whole(rows: list, upstream: set[str]) -> None:
    users = Counter(r.user for r in rows if r.user)
    assert upstream - set(users) == set(), "calls that reached the upstream are missing from the ledger"
    assert [u for u, n in users.items() if n > 1] == [], "a call was written twice"
    assert total_cost(rows) <= CAP


def assert_outage_logged(path) -> None:
    """The outage told in our own format, its start and its end, with no driver noise."""
    log = path.read_text()
    assert "ledger rows failed" in log and "ledger writes recovered" in log
    assert "error connecting in" not in log, "the driver's reconnection warnings are not passed on"


def test_a_frozen_database_stops_no_request_and_loses_no_row(emulator, own_postgres, tmp_path):
    gateway = gateway_on(emulator, own_postgres, tmp_path, "gateway.log")
    try:
        answered_during, sent = through_outage(gateway, lambda: own_postgres.signal_all(signal.SIGSTOP),
                                               lambda: own_postgres.signal_all(signal.SIGCONT))
        assert answered_during >= 6, f"only {answered_during} calls answered while the database was frozen"
        rows, upstream = wait_for_ledger(own_postgres.url, emulator)
    finally:
        own_postgres.signal_all(signal.SIGCONT)
        gateway.stop()
    assert len(upstream) > 12 and sent > len(upstream) / 2
    assert_books_whole(rows, upstream)
    assert_outage_logged(tmp_path / "gateway.log")


def test_a_database_killed_and_started_again_gets_every_row(emulator, own_postgres, tmp_path):
    gateway = gateway_on(emulator, own_postgres, tmp_path, "gateway.log")

    def back() -> None:
        own_postgres.start_again()
        wait_until(own_postgres, lambda: postgres_answers(own_postgres.url))

    try:
        answered_during, _ = through_outage(gateway, own_postgres.crash, back)
        assert answered_during >= 6, f"only {answered_during} calls answered while the database was down"
        rows, upstream = wait_for_ledger(own_postgres.url, emulator)
    finally:
        gateway.stop()
    assert_books_whole(rows, upstream)
    assert_outage_logged(tmp_path / "gateway.log")


def test_sigterm_with_the_database_frozen_exits_in_bounded_time_and_the_next_start_writes_the_rows(
        emulator, own_postgres, tmp_path):
    took = stop_with_database_frozen(gateway_on(emulator, own_postgres, tmp_path, "first.log"), own_postgres)
    # graceful_shutdown_s (1) for calls in flight, shutdown_write_s (2) for the queued rows
    assert took < 1 + LEDGER["shutdown_write_s"] + 3, f"SIGTERM took {took:.1f} s with the database frozen"
    assert "rows could not be written" in (tmp_path / "first.log").read_text()
    unwritten = upstream_users(emulator) - {r.user for r in ledger_rows(own_postgres.url)}
    assert unwritten, "the frozen database should have kept some rows from being written"
    second = gateway_on(emulator, own_postgres, tmp_path, "second.log")  # the same journal folder
    try:
        rows, upstream = wait_for_ledger(own_postgres.url, emulator)
    finally:
        second.stop()
    assert_books_whole(rows, upstream)
