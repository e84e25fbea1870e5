"""This gateway's own journal: segment files it appends to and removes once nothing in them
is needed.

A segment is needed while a call it started is still in flight (its row not yet appended,
in any segment) or a row it holds is not yet in the database. The ledger writer writes rows
in the order they were appended, so one count says which are: `written(n)` after each batch.
A new segment begins every `segment_bytes`; the old ones go as soon as they are not needed,
and on a clean shutdown, once every row is written, the last one goes too.

Appends are plain `os.write` calls on an O_APPEND descriptor: a few microseconds, into the
page cache, never a wait on the disk.
"""

from __future__ import annotations

import fcntl
import logging
import os
import secrets
import time
from dataclasses import dataclass, field
from pathlib import Path

from tokenbrake.journal import records
from tokenbrake.storage.ledger import LedgerRow

log = logging.getLogger(__name__)

SUFFIX = ".journal"
SEGMENT_BYTES = 16 * 1024 * 1024


@dataclass(eq=False)
class _Segment:
    path: Path
    fd: int
    in_flight: set[str] = field(default_factory=set)  # calls started here and not yet ended anywhere
    last_row: int = 0  # the number of rows appended (all segments) once its last row was
    size: int = 0


def process_name() -> str:
    """This process's journal name: sorts by start time; unique among processes sharing the folder."""
    return f"{time.time_ns():020d}-{os.getpid()}-{secrets.token_hex(4)}"


def open_locked(path: Path, flags: int) -> int | None:
    """A descriptor on `path` holding its exclusive lock, or None when a live process holds it."""
    fd = os.open(path, flags, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    return fd


class Journal:
    def __init__(self, folder: str | Path, segment_bytes: int = SEGMENT_BYTES) -> None:
        self.folder = Path(folder)
        self.segment_bytes = segment_bytes
        self._segments: list[_Segment] = []
        self._started: dict[str, _Segment] = {}  # request id -> the segment its start is in
        self._rows = 0  # rows appended
        self._written = 0  # of which the database has
        self._failed = False
        self._dropped = 0  # segments removed so far
        self.name = process_name()

    def open(self) -> Journal:
        self.folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        self._begin_segment()
        return self

    @property
    def current(self) -> Path:
        return self._segments[-1].path

    def started(self, start: records.Start) -> None:
        """Before the upstream call: the request and what it reserved."""
        segment = self._append(records.start_line(start))
        segment.in_flight.add(start.request_id)
        self._started[start.request_id] = segment

    def recorded(self, request_id: str, rows: list[LedgerRow]) -> None:
        """Before the response ends: the call's rows (queued for the writer in the same order)."""
        segment = None
        for row in rows:
            segment = self._append(records.row_line(request_id, row))
        self._rows += len(rows)
        if segment is not None:
            segment.last_row = self._rows
        self._end(request_id)

    def ended(self, request_id: str) -> None:
        """The request went no further than the gateway: nothing to recover for it."""
        if request_id in self._started:
            self._append(records.end_line(request_id))
            self._end(request_id)

    def written(self, rows: int) -> None:
        """The ledger writer has written `rows` more, oldest first."""
        self._written += rows
        self._drop_unneeded()

    @property
    def settled(self) -> bool:
        """Nothing in flight, every row written: the journal holds nothing needed."""
        return not self._started and self._written >= self._rows

    def close(self) -> None:
        """Closes every segment; removes them once they hold nothing needed, else leaves them
        for the next start (or another gateway sharing the folder) to recover."""
        keep = not self.settled
        for segment in self._segments:
            os.close(segment.fd)
            if not keep:
                segment.path.unlink(missing_ok=True)
        self._segments.clear()

    # --

    def _append(self, line: bytes) -> _Segment:
        segment = self._segments[-1]
        if segment.size >= self.segment_bytes:
            segment = self._begin_segment()
        try:
            os.write(segment.fd, line)
        except OSError as exc:  # a full disk: the call goes on, unjournaled, and that is said once
            if not self._failed:
                log.critical("cannot append to the journal %s (%s): calls in flight if this process dies "
                             "will be missing from the ledger until it can", segment.path, exc)
            self._failed = True
        else:
            self._failed = False
            segment.size += len(line)
        return segment

    def _end(self, request_id: str) -> None:
        segment = self._started.pop(request_id, None)
        if segment is not None:
            segment.in_flight.discard(request_id)
            self._drop_unneeded()

    def _begin_segment(self) -> _Segment:
        path = self.folder / f"{self.name}-{len(self._segments) + self._dropped:06d}{SUFFIX}"
        fd = open_locked(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_EXCL)
        assert fd is not None, "a new file is locked by nobody"
        segment = _Segment(path, fd, last_row=self._rows)
        self._segments.append(segment)
        return segment

    def _drop_unneeded(self) -> None:
        """Removes the old segments (never the one being appended to) that hold nothing needed."""
        while len(self._segments) > 1:
            oldest = self._segments[0]
            if oldest.in_flight or oldest.last_row > self._written:
                return
            os.close(oldest.fd)
            oldest.path.unlink(missing_ok=True)
            self._segments.pop(0)
            self._dropped += 1
