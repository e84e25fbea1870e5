"""SIGTERM loses nothing: requests still running after `graceful_shutdown_s` are cut with an
error in their SDK's format (a 503, or the in-stream error event), each recorded with what
it delivered and its reservation settled; with the ledger database down, the gateway still
exits within a bounded time and the rows it could not write reach the ledger at the next
start."""

from __future__ import annotations

import signal
import time
from decimal import Decimal

from harness import Load, fault_config, ledger_rows, locked, start_gateway, upstream_users, write_config

LONG = "write on [[emulator: tokens=400 ttft_ms=50 tps=40]]"  # ten seconds a call


def test_sigterm_cuts_long_generations_with_an_error_and_records_each(emulator, tmp_path):
    database = f"sqlite:///{tmp_path / 'ledger.db'}"
    config = fault_config(emulator.url, database, tmp_path,
                          budgets=[{"scope": "global", "amount_usd": 5, "period": "month"}])
    gateway = start_gateway(write_config(tmp_path, config))
    with Load(gateway.url, threads=6, body_text=LONG, max_tokens=1000) as load:
        time.sleep(1.5)
        stopping = time.monotonic()
        gateway.process.send_signal(signal.SIGTERM)
        gateway.process.wait(timeout=20)
        took = time.monotonic() - stopping
    assert gateway.process.returncode in (0, -signal.SIGTERM) and took < 8, f"exit {gateway.process.returncode} after {took:.1f}s"
    said = load.messages[:6]
    assert len(said) >= 6 and all("shutting down" in message for message in said), said
    assert any(m.startswith("InternalServerError") for m in said) and any(m.startswith("APIError") for m in said)

    rows = ledger_rows(database)
    assert upstream_users(emulator) <= {row.user for row in rows}
    cut = [row for row in rows if row.status == 503]
    assert len(cut) >= 6
    streamed = [row for row in cut if row.stream]
    assert streamed and all(row.output_tokens > 0 and row.cost_usd > 0 for row in streamed)  # what was delivered
    plain = [row for row in cut if not row.stream]
    assert plain and all(row.usage_unseen and row.cost_usd > Decimal("0.005") for row in plain)  # the worst case


def test_sigterm_with_the_ledger_database_down_exits_and_the_next_start_writes_the_rows(emulator, tmp_path):
    path = tmp_path / "ledger.db"
    config = fault_config(emulator.url, f"sqlite:///{path}", tmp_path)
    config["ledger"]["shutdown_write_s"] = 2
    config_path = write_config(tmp_path, config)
    gateway = start_gateway(config_path)
    with locked(path):  # the database is down for the gateway's writer
        with Load(gateway.url, threads=4, body_text="hi [[emulator: tokens=5]]") as load:
            time.sleep(2.0)
        assert load.answered > 20
        stopping = time.monotonic()
        gateway.process.send_signal(signal.SIGTERM)
        gateway.process.wait(timeout=30)
        assert time.monotonic() - stopping < 12
    assert list((tmp_path / "journal").glob("*.journal")), "the rows it could not write must stay in the journal"
    start_gateway(config_path).stop()
    rows = ledger_rows(f"sqlite:///{path}")
    assert upstream_users(emulator) <= {row.user for row in rows} and len(rows) >= load.answered
    assert not list((tmp_path / "journal").glob("*.journal"))
