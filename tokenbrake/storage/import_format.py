"""The import file: past calls, one a line, read into ledger rows (`tokenbrake ledger import`).

JSONL holds one JSON object a line; CSV, a header row naming its columns, then one call a row.
Both carry the fields of `FIELDS`, of which `time`, `model` and `cost_usd` are required:

    {"time": "2026-10-01T12:00:00Z", "key": "app", "team": "search", "user": "ana",
     "session": "s-1", "model": "gpt-4o", "input_tokens": 1200, "output_tokens": 80,
     "cost_usd": 0.0038, "status": 200, "tags": {"feature": "search"}}

In CSV each tag is a column of its own, `tag.NAME` (`tag.feature`), as reports name tags, so a
spreadsheet's export needs no JSON in its cells; an empty cell is a field left out. A time
without a UTC offset is UTC, as everywhere in the ledger. Numbers may be written as text
(`"0.0038"`); money is read as a decimal, never a float. A field not in `FIELDS` is an error, as
a config's unknown key is: a misspelt `input_token` would otherwise import as no tokens.

An imported row has `front_door` and `endpoint` "import"; it asked for and was served `model`,
names no upstream, has no latency and no cached or reasoning tokens, and charged no budget.
Its request id is the line's `request_id` (or `id`) where it has one. Otherwise it is
`import-` and a hash of the call's fields as read (so spacing, key order, and JSONL or CSV do
not change it) and of how many identical calls came before it in the file: two identical calls
(the same second, the same tokens) stay two, and the file read again gives each the id it had.
That recipe is part of the format: changing it would make a file imported again count twice.

A bad line is a `LineError` naming its line, the field and what to write instead; reading goes
on after it, so one pass finds every bad line.
"""

from __future__ import annotations

import csv
import difflib
import hashlib
import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from tokenbrake.storage.backend import utc
from tokenbrake.storage.ledger import LedgerRow
from tokenbrake.storage.rollups import units

FORMATS = ("jsonl", "csv")
FIELDS = ("time", "key", "team", "user", "session", "model", "input_tokens", "output_tokens", "cost_usd", "status",
          "tags", "request_id", "id")
REQUIRED = ("time", "model", "cost_usd")
COLUMNS = tuple(name for name in FIELDS if name != "tags")  # CSV: and tag.NAME
TAG_COLUMN = "tag."  # CSV: a tag's column, `tag.NAME`
IMPORTED = "import"  # an imported row's front door and endpoint
ID_PREFIX = "import-"
EARLIEST = datetime(2000, 1, 1, tzinfo=UTC)  # before it, a time is a unit mistake (epoch seconds?)
MAX_COST_USD = Decimal(1_000_000)  # more, for one call, is a unit mistake (cents? micro-dollars?)
MAX_TOKENS = 10**12
# As the gateway bounds the names a client asserts (stages/identify.py).
MAX_TEXT = 256
MAX_TAGS = 20
EXAMPLE_TIME = "2026-10-01T12:00:00Z"
EXAMPLE = '{"time": "2026-10-01T12:00:00Z", "model": "gpt-4o", "cost_usd": 0.0038}'


@dataclass(frozen=True, slots=True)
class LineError:
    line: int
    field: str | None  # None: the line as a whole
    problem: str  # what is wrong, and what to write instead

    def __str__(self) -> str:
        return f"line {self.line}" + (f", {self.field}" if self.field else "") + f": {self.problem}"


class _Bad(Exception):
    def __init__(self, field: str | None, problem: str) -> None:
        super().__init__(problem)
        self.field, self.problem = field, problem


def format_of(name: str) -> str:
    """The format a file's name implies: csv for `.csv`, else jsonl."""
    return "csv" if name.lower().endswith(".csv") else "jsonl"


def read_calls(lines: Iterable[str], form: str, now: datetime) -> Iterator[LedgerRow | LineError]:
    """Each call of the file (`lines` as read, line ends kept) as a ledger row, or its line's
    error, in file order. `now`: a later time is an error."""
    if form not in FORMATS:
        raise ValueError(f"unknown format {form!r}: use {' or '.join(FORMATS)}")
    ids = _Ids()
    for number, record in (_jsonl(lines) if form == "jsonl" else _csv(lines)):
        if isinstance(record, LineError):
            yield record
            continue
        try:
            yield _row(record, now, ids)
        except _Bad as bad:
            yield LineError(number, bad.field, bad.problem)


def _jsonl(lines: Iterable[str]) -> Iterator[tuple[int, dict[str, Any] | LineError]]:
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line, parse_float=Decimal, parse_constant=Decimal)
        except json.JSONDecodeError as exc:
            yield number, LineError(number, None, f"not JSON ({exc.msg} at column {exc.colno}): write one object "
                                                  f"a line, e.g. {EXAMPLE}")
            continue
        except (ValueError, RecursionError):  # a number of thousands of digits, nesting thousands deep
            yield number, LineError(number, None, f"not a call: write one object a line, e.g. {EXAMPLE}")
            continue
        if not isinstance(record, dict):
            yield number, LineError(number, None, f"a JSON {type(record).__name__}, not an object: write one "
                                                  f"object a line, e.g. {EXAMPLE}")
            continue
        yield number, record


def _csv(lines: Iterable[str]) -> Iterator[tuple[int, dict[str, Any] | LineError]]:
    reader = csv.reader(lines)
    try:
        columns = [name.strip() for name in next(reader, [])]
        problems = _header_problems(columns)
        if problems:
            yield from ((1, problem) for problem in problems)
            return
        start = reader.line_num + 1
        for cells in reader:
            number, start = start, reader.line_num + 1
            if any(cell.strip() for cell in cells):
                yield number, _cells(number, columns, cells)
    except csv.Error as exc:
        number = max(1, reader.line_num)
        yield number, LineError(number, None, f"not CSV ({exc}): quote a cell that holds a comma, a quote or a "
                                              f"line break")


def _header_problems(columns: list[str]) -> list[LineError]:
    if not any(columns):
        return [LineError(1, None, f"no header: the first line names the columns, e.g. {','.join(REQUIRED)}")]
    problems = []
    for n, name in enumerate(columns, start=1):
        if name == "tags":
            problems.append(LineError(1, name, "in CSV each tag is a column of its own: tag.NAME (tag.feature)"))
        elif name.startswith(TAG_COLUMN):
            if not name[len(TAG_COLUMN):].strip():
                problems.append(LineError(1, name, "a tag column names its tag: tag.NAME (tag.feature)"))
        elif name not in COLUMNS:
            problems.append(LineError(1, name or f"column {n}",
                                      f"unknown column: {_known(name, COLUMNS)}, tags as tag.NAME"))
        if name and columns.index(name) < n - 1:
            problems.append(LineError(1, name, "a second column of that name: keep one"))
    problems += [LineError(1, name, f"no such column: every call needs {', '.join(REQUIRED)}")
                 for name in REQUIRED if name not in columns]
    return problems


def _cells(number: int, columns: list[str], cells: list[str]) -> dict[str, Any] | LineError:
    if len(cells) != len(columns):
        return LineError(number, None, f"{len(cells)} cells, where the header names {len(columns)} columns: "
                                       f"give each column a cell (empty for none), quote a cell holding a comma")
    record: dict[str, Any] = {}
    tags = {}
    for name, cell in zip(columns, cells, strict=True):
        if not cell.strip():
            continue
        if name.startswith(TAG_COLUMN):
            tags[name[len(TAG_COLUMN):].strip()] = cell
        else:
            record[name] = cell
    if tags:
        record["tags"] = tags
    return record


def _known(name: str, known: tuple[str, ...]) -> str:
    close = difflib.get_close_matches(name, known, n=1)
    return (f"did you mean {close[0]}? " if close else "") + f"the fields are {', '.join(known)}"


def _row(record: dict[str, Any], now: datetime, ids: _Ids) -> LedgerRow:
    for name in record:
        if name not in FIELDS:
            raise _Bad(name, f"unknown field: {_known(name, FIELDS)}")
    for name in REQUIRED:
        if _absent(record.get(name)):
            raise _Bad(name, f"missing: every call needs {', '.join(REQUIRED)}, e.g. {EXAMPLE}")
    model = _text(record, "model")
    call = LedgerRow(
        request_id="", ts=_time(record["time"], now), key_name=_text(record, "key"), team=_text(record, "team"),
        user=_text(record, "user"), session=_text(record, "session"), tags=_tags(record.get("tags")),
        requested_model=model, served_model=model, provider=None,
        input_tokens=_count(record, "input_tokens"), cached_input_tokens=0, cache_write_tokens=0,
        output_tokens=_count(record, "output_tokens"), reasoning_tokens=0, cost_usd=_cost(record["cost_usd"]),
        latency_ms=0.0, status=_status(record.get("status")), error=None, stream=False, endpoint=IMPORTED,
        front_door=IMPORTED)
    call.request_id = _given_id(record) or ids.of(call)
    return call


def _time(value: Any, now: datetime) -> datetime:
    if not isinstance(value, str):
        raise _Bad("time", f"{_shown(value)} is not a time: write ISO 8601, e.g. {EXAMPLE_TIME}")
    try:
        ts = utc(datetime.fromisoformat(value.strip()))
    except (ValueError, OverflowError):
        raise _Bad("time", f"cannot read {value!r} as a time: write ISO 8601, e.g. {EXAMPLE_TIME} "
                           f"(without an offset: UTC)") from None
    if ts > now:
        raise _Bad("time", f"{value} is in the future (now is {now:%Y-%m-%dT%H:%M:%SZ}): import past calls only")
    if ts < EARLIEST:
        raise _Bad("time", f"{value} is before {EARLIEST:%Y}: write the call's own time, e.g. {EXAMPLE_TIME}")
    return ts


def _text(record: dict[str, Any], name: str) -> str | None:
    value = record.get(name)
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    if value is not None and not isinstance(value, str):
        raise _Bad(name, f"{_shown(value)} is not text: write a string, e.g. \"search\"")
    return _bounded(name, value)


def _bounded(name: str, value: str | None) -> str | None:
    value = value.strip() if value is not None else None
    if value and len(value) > MAX_TEXT:
        raise _Bad(name, f"longer than {MAX_TEXT} characters")
    if value:
        _storable(name, value)
    return value or None


def _storable(name: str, text: str) -> None:
    """Refuses what neither database can store as text."""
    if "\x00" in text:
        raise _Bad(name, "holds a NUL character: leave it out")
    try:
        text.encode()
    except UnicodeEncodeError:
        raise _Bad(name, "holds half of a surrogate pair (\\ud800 alone): write the character itself") from None


def _number(value: Any, name: str, what: str) -> Decimal:
    try:
        if isinstance(value, bool) or not isinstance(value, int | Decimal | str):
            raise InvalidOperation
        number = Decimal(value.strip() if isinstance(value, str) else value)
    except InvalidOperation:
        raise _Bad(name, f"{_shown(value)} is not a number: write {what}") from None
    if not number.is_finite():
        raise _Bad(name, f"{_shown(value)} is not a number: write {what}")
    return number


def _absent(value: Any) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())


def _count(record: dict[str, Any], name: str) -> int:
    value = record.get(name)
    if _absent(value):
        return 0
    what = "a whole number of tokens, 0 or more"
    number = _number(value, name, what)
    if number != number.to_integral_value() or not 0 <= number <= MAX_TOKENS:
        raise _Bad(name, f"{_shown(value)} is not {what}" + (f" (at most {MAX_TOKENS})" if number > 0 else ""))
    return int(number)


def _cost(value: Any) -> Decimal:
    cost = _number(value, "cost_usd", "the call's cost in US dollars, e.g. 0.0038")
    if cost < 0:
        raise _Bad("cost_usd", f"{_shown(value)} is negative: a call costs 0 or more (leave refunds and credits out)")
    if cost > MAX_COST_USD:
        raise _Bad("cost_usd", f"{_shown(value)} is more than one call costs (at most {MAX_COST_USD}): "
                               f"write US dollars, not cents or another unit")
    return cost


def _status(value: Any) -> int:
    if _absent(value):
        return 200
    what = "an HTTP status (200, 429, 500), or 0 for a call that got no answer"
    number = _number(value, "status", what)
    if number != number.to_integral_value() or not (number == 0 or 100 <= number <= 599):
        raise _Bad("status", f"{_shown(value)} is not {what}")
    return int(number)


def _tags(value: Any) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise _Bad("tags", f"{_shown(value)} is not an object: write names and values, e.g. {{\"feature\": \"search\"}}")
    tags = {}
    for name, tag in value.items():
        field = f"tag.{name}"
        if not name.strip() or "=" in name or "," in name or len(name) > MAX_TEXT:
            raise _Bad(field, f"a tag's name is text without '=' or ',', at most {MAX_TEXT} characters, e.g. feature")
        _storable(field, name)
        if isinstance(tag, int | Decimal) and not isinstance(tag, bool):
            tag = str(tag)
        if not isinstance(tag, str):
            raise _Bad(field, f"{_shown(tag)} is not text: write a string, e.g. \"search\"")
        if (text := _bounded(field, tag)) is not None:
            tags[name.strip()] = text
    if len(tags) > MAX_TAGS:
        raise _Bad("tags", f"{len(tags)} tags: at most {MAX_TAGS}")
    return tags


def _given_id(record: dict[str, Any]) -> str | None:
    if not _absent(record.get("id")) and not _absent(record.get("request_id")):
        raise _Bad("id", "and request_id: give one of them")
    return _text(record, "request_id") or _text(record, "id")


def _shown(value: Any) -> str:
    return str(value) if isinstance(value, Decimal) else json.dumps(value, default=str)[:60]


class _Ids:
    """Request ids for calls that bring none: a hash of what the call says, and of how many
    identical calls came before it in the file."""

    def __init__(self) -> None:
        # Keyed by 8 bytes of the hash, to keep a million calls' worth small: two different
        # calls sharing them (a 1e-7 chance in a million) only give the second another id.
        self._seen: dict[bytes, int] = {}

    def of(self, call: LedgerRow) -> str:
        digest = hashlib.sha256(_canonical(call)).digest()
        before = self._seen.get(digest[:8], 0)
        self._seen[digest[:8]] = before + 1
        if before:
            digest = hashlib.sha256(digest + b"#%d" % before).digest()
        return ID_PREFIX + digest[:16].hex()


def _canonical(call: LedgerRow) -> bytes:
    """What identifies a call: its fields as read, in a fixed order and spelling."""
    fields = [call.ts.isoformat(), call.key_name, call.team, call.user, call.session, call.served_model,
              call.input_tokens, call.output_tokens, units(call.cost_usd), call.status, sorted(call.tags.items())]
    return json.dumps(fields, separators=(",", ":"), ensure_ascii=False).encode()
