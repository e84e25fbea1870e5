"""The gateway's log: an error repeated within `repeat_s` is written once, the next one says
how many were held back; client-chosen values cannot forge an access line's fields; lines
are written by the listener's thread, in text or JSON."""

import io
import json
import logging

import pytest

from tokenbrake.config import LogConfig
from tokenbrake.logs import ACCESS_LOGGER, HoldRepeats, TextFormatter, start_logging


def record(message: str, *args, level: int = logging.ERROR, name: str = "tokenbrake.gateway.pipeline") -> logging.LogRecord:
    return logging.LogRecord(name, level, __file__, 1, message, args, None)


def test_a_repeated_error_passes_once_per_window_and_then_counts_those_held(monkeypatch):
    clock = iter([0.0, 1.0, 2.0, 61.0])
    monkeypatch.setattr("tokenbrake.logs.time.monotonic", lambda: next(clock))
    hold = HoldRepeats(60)
    records = [record("request %s failed", request) for request in "abcd"]
    passed = [hold.filter(r) for r in records]
    last = records[-1]
    assert passed == [True, False, False, True]
    assert "(2 more like it held back in the last 60 s)" in TextFormatter().format(last)


def test_info_lines_and_different_errors_are_never_held():
    hold = HoldRepeats(60)
    assert all(hold.filter(record("x %s", n, level=logging.INFO)) for n in range(5))
    assert hold.filter(record("one error")) and hold.filter(record("another error"))


def test_an_access_line_quotes_values_that_would_forge_fields():
    line = TextFormatter().format(record("%s", {"user": "eve status=200\nfake", "team": None, "status": 429},
                                         level=logging.INFO, name=ACCESS_LOGGER))
    assert line.endswith(' user="eve status=200\\nfake" status=429')
    assert "\n" not in line and "team" not in line


@pytest.fixture
def tokenbrake_logger():
    """The `tokenbrake` logger as it was, after start_logging has set it up for serve."""
    logger = logging.getLogger("tokenbrake")
    before = (logger.handlers[:], logger.level, logger.propagate)
    yield
    logger.handlers[:], logger.level, logger.propagate = before


def test_start_logging_writes_json_lines_from_its_own_thread(tokenbrake_logger):
    stream = io.StringIO()
    listener = start_logging(LogConfig(format="json"), "info", stream)
    try:
        logging.getLogger(ACCESS_LOGGER).info("%s", {"request_id": "r1", "status": 200, "key": None})
        logging.getLogger("tokenbrake.storage.writer").debug("not at info")
    finally:
        listener.stop()  # writes what is queued
    (line,) = stream.getvalue().splitlines()
    assert json.loads(line) | {"time": None} == {"time": None, "level": "INFO", "logger": ACCESS_LOGGER,
                                                 "request_id": "r1", "status": 200}


def test_the_log_lines_queued_at_shutdown_are_written_before_the_process_ends_on_its_signal(tokenbrake_logger):
    """uvicorn re-raises the SIGTERM it caught once the shutdown is done, which ends the process
    before serve's own `finally`; so run() stops the listener first (every queued line written),
    and serve's later stop does nothing."""
    stream = io.StringIO()
    listener = start_logging(LogConfig(), "info", stream)
    logging.getLogger("tokenbrake.storage.writer").critical("ledger writer closing: 3 rows could not be written")
    listener.stop()  # run()'s before_exit
    listener.stop()  # serve's finally
    assert "ledger writer closing: 3 rows could not be written" in stream.getvalue()
