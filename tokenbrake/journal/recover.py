"""Recovering the journals of gateways that are gone: their rows written, their calls in
flight recorded as unseen and charged at what they reserved.

A journal is one process's segments (files named `PROCESS-SEQ.journal`), read together, since
a call's start and its row can sit in two of them. A segment locked by a live process is
left alone. What it held is written to the ledger (writing a request id already there does
nothing, so a journal recovered twice, or whose rows the dead process had partly written,
charges nothing twice), and only then are its files removed.
"""

from __future__ import annotations

import logging
import os
from collections import defaultdict
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path

from tokenbrake.journal import records
from tokenbrake.journal.segments import SUFFIX, open_locked
from tokenbrake.limits.types import from_nanos
from tokenbrake.limits.windows import Placement
from tokenbrake.storage.ledger import Charge, Ledger, LedgerRow

log = logging.getLogger(__name__)

UNSEEN_STATUS = 0  # the gateway never saw the call end
BATCH = 500


@dataclass
class Recovered:
    journals: int = 0
    rows: int = 0  # rows the dead gateways had not confirmed written (some may have been)
    unseen: list[LedgerRow] = field(default_factory=list)  # calls in flight, charged at their worst case
    bad_lines: int = 0


def unseen_row(start: records.Start, now: float) -> LedgerRow:
    """The ledger row of a call whose end nobody saw: no usage, its reserved worst case as its
    cost, charged on every counter it was held on."""
    worst = from_nanos(start.reserved_nanos)
    charges = tuple(
        Charge(held.key, start.reserved_nanos, now,
               Placement(held.key, held.rolling_s, None, held.keep_s).kept_until(start.placed_at, now))
        for held in start.held_on)
    return LedgerRow(
        request_id=start.request_id, ts=datetime.fromtimestamp(start.at, UTC), key_name=start.key_name,
        team=start.team, user=start.user, session=start.session, tags=start.tags,
        requested_model=start.requested_model, served_model=start.model, provider=start.upstream,
        input_tokens=0, cached_input_tokens=0, cache_write_tokens=0, output_tokens=0, reasoning_tokens=0,
        cost_usd=worst, latency_ms=0.0, status=UNSEEN_STATUS,
        error=f"the gateway stopped before this call ended, so its usage was not seen; "
              f"charged at its reserved worst case (${worst})",
        stream=start.stream, endpoint=start.endpoint, front_door=start.front_door, usage_unseen=True,
        charges=charges,
    )


def lapsed_row(request_id: str, nanos: int, note: str, counters: list[tuple[str, float, float | None]],
               now: float) -> LedgerRow:
    """The unseen row of a reservation shared state charged because its gateway stopped
    renewing it (limits/redis_leases.py): who it was for from the note its gateway left."""
    try:
        kind, _, start = records.parse(note.encode())
    except ValueError:
        kind, start = "", None
    if kind != records.START or not isinstance(start, records.Start):
        start = records.Start(request_id, now, None, None, None, None, {}, None, "", "", False, "chat", "openai", 0,
                              (), now)
    held = tuple(records.Held(key, rolling, None if keep is None else keep - start.placed_at)
                 for key, rolling, keep in counters)
    return unseen_row(replace(start, reserved_nanos=nanos, held_on=held), now)


async def recover_folder(folder: str | Path, ledger: Ledger, now: float) -> Recovered:
    """Writes what every dead gateway's journal in `folder` holds to the ledger; removes those
    journals. Raises (leaving them in place) when the ledger cannot be written."""
    folder, recovered = Path(folder), Recovered()
    if not folder.is_dir():
        return recovered
    for process, paths in sorted(_journals(folder).items()):
        locked = [(path, open_locked(path, os.O_RDONLY)) for path in paths]
        try:
            if any(fd is None for _, fd in locked):
                continue  # its process is alive
            rows, unseen, bad = _read([fd for _, fd in locked if fd is not None], now)
            for start in range(0, len(rows + unseen), BATCH):
                await ledger.write((rows + unseen)[start:start + BATCH])
            for path, _ in locked:
                path.unlink(missing_ok=True)
        finally:
            for _, fd in locked:
                if fd is not None:
                    os.close(fd)
        recovered.journals += 1
        recovered.rows += len(rows)
        recovered.unseen += unseen
        recovered.bad_lines += bad
        log.warning("recovered the journal of gateway %s: %d rows written, %d calls in flight recorded as unseen "
                    "and charged at their reserved worst case", process, len(rows), len(unseen))
    return recovered


def _journals(folder: Path) -> dict[str, list[Path]]:
    found: dict[str, list[Path]] = defaultdict(list)
    for path in sorted(folder.glob("*" + SUFFIX)):
        found[path.name.rsplit("-", 1)[0]].append(path)
    return found


def _read(fds: list[int], now: float) -> tuple[list[LedgerRow], list[LedgerRow], int]:
    """(rows, unseen rows, lines that could not be read) of one process's segments."""
    starts: dict[str, records.Start] = {}
    rows: dict[str, LedgerRow] = {}
    ended: set[str] = set()
    bad = 0
    for fd in fds:
        for line in _contents(fd).splitlines():
            try:
                _, request_id, value = records.parse(line)
            except ValueError:
                bad += 1  # a line cut short by the kill, at the end of a segment
                continue
            if isinstance(value, records.Start):  # kind START
                starts[request_id] = value
            else:
                ended.add(request_id)
                if isinstance(value, LedgerRow):  # kind ROW (END holds nothing)
                    rows[value.request_id] = value
    unseen = [unseen_row(start, now) for request_id, start in starts.items() if request_id not in ended]
    return list(rows.values()), unseen, bad


def _contents(fd: int) -> bytes:
    chunks = []
    while chunk := os.read(fd, 1 << 20):
        chunks.append(chunk)
    return b"".join(chunks)
