"""What `serve` writes to stderr: the gateway's messages and its access log, off the event loop.

Every `tokenbrake.*` logger hands its records to a queue (a QueueHandler, which only appends
to it); a QueueListener's thread formats them and writes them, so a slow terminal or a full
pipe never stalls a request. The access log skips even the logger: its stage appends the
time and its fields to the same queue (`Enqueue.access`, about 0.1 µs), and the listener's
thread makes the record (building one costs several µs of the event loop's time). Lines are text or JSON (`log.format`). An error that repeats
(the same logger and message template) is written once per `log.repeat_s`; the next one
written says how many were held back, so an upstream that is down fills no disk.
"""

from __future__ import annotations

import json
import logging
import queue
import re
import sys
import time
from logging.handlers import QueueHandler, QueueListener
from typing import Any, TextIO

import orjson

from tokenbrake.config import LogConfig

ACCESS_LOGGER = "tokenbrake.access"


class HoldRepeats(logging.Filter):
    """Passes a warning or error once per `every_s` per logger and message template, and
    counts the ones it holds back on the next one it passes (as `record.held`)."""

    def __init__(self, every_s: float) -> None:
        super().__init__()
        self.every_s = every_s
        self.seen: dict[tuple[str, Any], list] = {}  # (logger, template) -> [when passed, held since]

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno < logging.WARNING or self.every_s == 0:
            return True
        key = (record.name, record.msg)  # the template: the request ids in its arguments differ
        now = time.monotonic()
        seen = self.seen.get(key)
        if seen is not None and now - seen[0] < self.every_s:
            seen[1] += 1
            return False
        if seen is not None and seen[1]:
            record.held = (seen[1], self.every_s)
        self.seen[key] = [now, 0]
        return True


class Enqueue(QueueHandler):
    """Appends the record as it is: formatting waits for the listener's thread."""

    def prepare(self, record: logging.LogRecord) -> logging.LogRecord:
        return record

    def access(self, fields: dict[str, Any]) -> None:
        """An access line's fields (a dict built for it alone, so nothing changes it meanwhile)."""
        self.queue.put_nowait((time.time(), fields))


class Listener(QueueListener):
    """Turns the access log's (time, fields) entries into records, on its own thread."""

    def prepare(self, entry: Any) -> logging.LogRecord:
        if not isinstance(entry, tuple):
            return entry
        created, fields = entry
        record = logging.LogRecord(ACCESS_LOGGER, logging.INFO, __file__, 0, "%s", (fields,), None)
        record.created = created
        return record

    def stop(self) -> None:
        """Writes what is queued and ends the thread; once stopped, stopping again does nothing."""
        if self._thread is not None:
            super().stop()


def access_writer() -> Enqueue | None:
    """Where the access log appends its lines once `start_logging` has run; None before."""
    return next((h for h in logging.getLogger("tokenbrake").handlers if isinstance(h, Enqueue)), None)


def _time(record: logging.LogRecord) -> str:
    created = record.created
    return f"{time.strftime('%Y-%m-%dT%H:%M:%S', time.gmtime(created))}.{int(created * 1000) % 1000:03d}Z"


def _held(record: logging.LogRecord) -> str | None:
    held = getattr(record, "held", None)
    return None if held is None else f"{held[0]} more like it held back in the last {held[1]:g} s"


class TextFormatter(logging.Formatter):
    """`TIME LEVEL LOGGER: message`; an access line is `key=value` pairs, unset ones left out."""

    def format(self, record: logging.LogRecord) -> str:
        head = f"{_time(record)} {record.levelname} {record.name}:"
        if record.name == ACCESS_LOGGER and isinstance(record.args, dict):
            return head + "".join(f" {name}={_text(value)}" for name, value in record.args.items() if value is not None)
        line = f"{head} {record.getMessage()}"
        if (held := _held(record)) is not None:
            line += f" ({held})"
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return line


_QUOTE = re.compile(r'[\s"=\\]|^$')


def _text(value: Any) -> str:
    if type(value) is not str:  # numbers and booleans the gateway made
        return str(value)
    # Client-chosen values (user, session) must not forge fields or lines.
    return json.dumps(value) if _QUOTE.search(value) else value


class JsonFormatter(logging.Formatter):
    """One JSON object a line: time, level, logger, and the access log's fields or a message."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {"time": _time(record), "level": record.levelname, "logger": record.name}
        if record.name == ACCESS_LOGGER and isinstance(record.args, dict):
            line.update((name, value) for name, value in record.args.items() if value is not None)
        else:
            line["message"] = record.getMessage()
            if (held := _held(record)) is not None:
                line["held_back"] = held
            if record.exc_info:
                line["exception"] = self.formatException(record.exc_info)
        return orjson.dumps(line, default=str).decode()


def start_logging(settings: LogConfig, level: str, stream: TextIO | None = None) -> QueueListener:
    """Routes the `tokenbrake` loggers through a queue to `stream` (stderr) at `level`;
    returns the listener, to be stopped (which writes what is queued) at exit."""
    records: queue.SimpleQueue = queue.SimpleQueue()
    writer = logging.StreamHandler(stream or sys.stderr)
    writer.setFormatter(JsonFormatter() if settings.format == "json" else TextFormatter())
    handler = Enqueue(records)
    handler.addFilter(HoldRepeats(settings.repeat_s))
    root = logging.getLogger("tokenbrake")
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    root.propagate = False
    # The PostgreSQL driver's pool warns at each failed reconnection, unformatted; the ledger
    # writer says the same once, in our format. Its errors still show, and all of it at debug.
    driver = logging.getLogger("psycopg")
    driver.handlers[:] = [handler]
    driver.setLevel(logging.DEBUG if level.upper() == "DEBUG" else logging.ERROR)
    driver.propagate = False
    listener = Listener(records, writer)
    listener.start()
    return listener
