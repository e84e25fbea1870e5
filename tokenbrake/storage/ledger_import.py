"""Importing past calls from a file into the ledger, and so into its rollups.

Two passes over the file. The first reads every line and writes nothing: a bad line refuses
the whole import (`ImportRefused`, naming up to `MAX_REPORTED` of them), so a typo on line
40,000 never leaves a file half imported. The second reads the file again and writes it with
`Ledger.write`, `BATCH_ROWS` calls a transaction, so a gateway writing to the same database
waits for one batch at most. Rows keep their own times: the ledger adds those older than the
compaction mark to the hour, day and week rollups in the same batch (rollups.py), as it does
for a journal replayed after a crash. Afterwards the closed hours are folded (compaction.py),
as the gateway's writer would have done.

Importing a file again adds nothing: each call's request id is fixed by the file
(import_format.py), and the ledger ignores an id it holds. The ids already held are looked up
before each batch only to report how many calls were new; a gateway writing the same ids at
the same moment cannot make a call count twice, only make the report miscount the calls it
raced. An import cut short (killed, the database gone) keeps the batches it wrote; run again,
it writes the rest.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from itertools import islice
from pathlib import Path
from typing import Any

from tokenbrake.storage.import_format import LineError, read_calls
from tokenbrake.storage.ledger import Ledger, LedgerRow
from tokenbrake.storage.reports import plain

BATCH_ROWS = 2_000
MAX_REPORTED = 20


class ImportRefused(ValueError):
    """The file has bad lines, and nothing was written: `errors` holds the first of them."""

    def __init__(self, errors: Sequence[LineError], bad_lines: int) -> None:
        self.errors, self.bad_lines = list(errors), bad_lines
        more = bad_lines - len({e.line for e in errors})
        super().__init__("\n".join([f"{bad_lines} bad line{'s' * (bad_lines != 1)}, nothing imported:",
                                    *map(str, errors), *([f"... and {more} more bad lines"] if more > 0 else [])]))


@dataclass(slots=True)
class Imported:
    """What an import did: calls read, and the span and cost of those it inserted."""

    read: int = 0
    inserted: int = 0
    first: datetime | None = None
    last: datetime | None = None
    cost_usd: Decimal = Decimal(0)

    @property
    def already_there(self) -> int:
        return self.read - self.inserted

    def count(self, batch: Sequence[LedgerRow], fresh: Sequence[LedgerRow]) -> None:
        self.read += len(batch)
        self.inserted += len(fresh)
        for row in fresh:
            self.first = row.ts if self.first is None else min(self.first, row.ts)
            self.last = row.ts if self.last is None else max(self.last, row.ts)
            self.cost_usd += row.cost_usd

    def view(self) -> dict[str, Any]:
        return {"read": self.read, "inserted": self.inserted, "already_there": self.already_there,
                "first": _iso(self.first), "last": _iso(self.last),
                "cost_usd": plain(self.cost_usd)}


def _iso(t: datetime | None) -> str | None:
    return None if t is None else t.isoformat().replace("+00:00", "Z")


async def import_file(ledger: Ledger, path: str | Path, form: str, now: datetime | None = None,
                      batch_rows: int = BATCH_ROWS) -> Imported:
    """Checks every line of the file (`form`: jsonl or csv), then writes its calls; raises
    `ImportRefused`, having written nothing, if a line is bad."""
    now = now or datetime.now(UTC)
    check(path, form, now)
    imported = Imported()
    for batch in _batches(_rows(path, form, now), batch_rows):
        fresh = _new(batch, await ledger.held([row.request_id for row in batch]))
        await ledger.write(fresh)
        imported.count(batch, fresh)
    if ledger.compactor is not None:
        await ledger.compactor.compact()
    return imported


def _new(batch: Sequence[LedgerRow], held: set[str]) -> list[LedgerRow]:
    """The calls of the batch whose ids are not held, each id once."""
    fresh = []
    for row in batch:
        if row.request_id not in held:
            held.add(row.request_id)
            fresh.append(row)
    return fresh


def check(path: str | Path, form: str, now: datetime) -> None:
    """Raises `ImportRefused` if any line of the file is bad."""
    errors: list[LineError] = []
    bad_lines, last = 0, None
    try:
        for found in read_calls(_lines(path), form, now):
            if isinstance(found, LineError):
                bad_lines += found.line != last
                last = found.line
                if len(errors) < MAX_REPORTED:
                    errors.append(found)
    except _NotText as exc:
        raise ImportRefused([*errors, exc.error], bad_lines + 1) from None
    if errors:
        raise ImportRefused(errors, bad_lines)


def _rows(path: str | Path, form: str, now: datetime) -> Iterator[LedgerRow]:
    for found in read_calls(_lines(path), form, now):
        if isinstance(found, LineError):  # checked a moment ago: the file changed since
            raise RuntimeError(f"{path} changed while it was imported ({found}): what was written stays; "
                               f"import the file again once it is complete (nothing is written twice)")
        yield found


class _NotText(Exception):
    def __init__(self, error: LineError) -> None:
        super().__init__(str(error))
        self.error = error


def _lines(path: str | Path) -> Iterator[str]:
    """The file's lines as text, line ends kept (as the csv module reads them); a line that is
    not UTF-8 stops the reading, with its number."""
    with open(path, "rb") as file:
        for number, raw in enumerate(file, start=1):
            try:
                yield raw.decode("utf-8-sig" if number == 1 else "utf-8")  # a spreadsheet's byte-order mark
            except UnicodeDecodeError as exc:
                raise _NotText(LineError(number, None, f"not UTF-8 text (byte {raw[exc.start]:#04x} at column "
                                                       f"{exc.start + 1}): save the file as UTF-8")) from None


def _batches(rows: Iterable[LedgerRow], size: int) -> Iterator[list[LedgerRow]]:
    it = iter(rows)
    while batch := list(islice(it, size)):
        yield batch
