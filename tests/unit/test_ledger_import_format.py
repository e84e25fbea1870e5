"""Reading an import file: each kind of bad line is named by its line number and field with
the fix; a CSV's header is checked before its rows; the same call read from JSONL or CSV is
the same row with the same id; identical calls keep distinct ids that a second read gives
again; the id's recipe is pinned, so no upgrade imports a file twice; checking reports every
bad line, up to a limit."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest

from tokenbrake.storage.import_format import LineError, format_of, read_calls
from tokenbrake.storage.ledger import LedgerRow
from tokenbrake.storage.ledger_import import MAX_REPORTED, ImportRefused, check

NOW = datetime(2026, 11, 1, tzinfo=UTC)
GOOD = '{"time": "2026-10-01T12:00:00Z", "model": "gpt-4o", "cost_usd": 0.0038}'


def read(text: str, form: str = "jsonl") -> list[LedgerRow | LineError]:
    return list(read_calls(text.splitlines(keepends=True), form, NOW))


def ids(text: str) -> list[str]:
    return [found.request_id for found in read(text) if isinstance(found, LedgerRow)]


def errors(text: str, form: str = "jsonl") -> list[tuple[int, str | None]]:
    return [(found.line, found.field) for found in read(text, form) if isinstance(found, LineError)]


@pytest.mark.parametrize(("line", "field", "fix"), [
    ('{"model": "gpt-4o", "cost_usd": 1}', "time", "every call needs time, model, cost_usd"),
    ('{"time": "", "model": "gpt-4o", "cost_usd": 1}', "time", "every call needs"),
    ('{"time": "2026-10-01T12:00:00Z", "cost_usd": 1}', "model", "every call needs"),
    ('{"time": "2026-10-01T12:00:00Z", "model": "gpt-4o"}', "cost_usd", "every call needs"),
    ('{"time": "last tuesday", "model": "gpt-4o", "cost_usd": 1}', "time", "write ISO 8601, e.g. 2026-10-01T12:00:00Z"),
    ('{"time": 1759320000, "model": "gpt-4o", "cost_usd": 1}', "time", "write ISO 8601"),
    ('{"time": "2027-01-01T00:00:00Z", "model": "gpt-4o", "cost_usd": 1}', "time", "in the future"),
    ('{"time": "1970-01-21T00:00:00Z", "model": "gpt-4o", "cost_usd": 1}', "time", "before 2000"),
    ('{"time": "2026-10-01T12:00:00Z", "model": "gpt-4o", "cost_usd": -0.5}', "cost_usd", "a call costs 0 or more"),
    ('{"time": "2026-10-01T12:00:00Z", "model": "gpt-4o", "cost_usd": "a dollar"}', "cost_usd", "in US dollars"),
    ('{"time": "2026-10-01T12:00:00Z", "model": "gpt-4o", "cost_usd": 2e7}', "cost_usd", "not cents"),
    ('{"time": "2026-10-01T12:00:00Z", "model": "gpt-4o", "cost_usd": NaN}', "cost_usd", "not a number"),
    ('{"time": "2026-10-01T12:00:00Z", "model": "gpt-4o", "cost_usd": 1, "input_tokens": 1.5}', "input_tokens",
     "a whole number of tokens"),
    ('{"time": "2026-10-01T12:00:00Z", "model": "gpt-4o", "cost_usd": 1, "output_tokens": -3}', "output_tokens",
     "0 or more"),
    ('{"time": "2026-10-01T12:00:00Z", "model": "gpt-4o", "cost_usd": 1, "status": 700}', "status", "an HTTP status"),
    ('{"time": "2026-10-01T12:00:00Z", "model": "gpt-4o", "cost_usd": 1, "team": ["a"]}', "team", "write a string"),
    ('{"time": "2026-10-01T12:00:00Z", "model": "gpt-4o", "cost_usd": 1, "tags": "feature=x"}', "tags",
     '{"feature": "search"}'),
    ('{"time": "2026-10-01T12:00:00Z", "model": "gpt-4o", "cost_usd": 1, "tags": {"a=b": "x"}}', "tag.a=b",
     "without '=' or ','"),
    ('{"time": "2026-10-01T12:00:00Z", "model": "gpt-4o", "cost_usd": 1, "input_token": 5}', "input_token",
     "did you mean input_tokens?"),
    ('{"time": "2026-10-01T12:00:00Z", "model": "gpt-4o", "cost_usd": 1, "id": "a", "request_id": "b"}', "id",
     "give one of them"),
    ('{"time": "2026-10-01T12:00:00Z", "model": "gpt-4o", "cost_usd": 1,}', None, "not JSON"),
    ('["2026-10-01T12:00:00Z", "gpt-4o", 1]', None, "not an object"),
    ('{"time": "2026-10-01T12:00:00Z", "model": "gpt-4o", "input_tokens": 1' + "0" * 5000 + ', "cost_usd": 1}', None,
     "not a call"),
    (r'{"time": "2026-10-01T12:00:00Z", "model": "gpt-4o", "cost_usd": 1, "team": "a\u0000b"}', "team", "NUL"),
    (r'{"time": "2026-10-01T12:00:00Z", "model": "gpt-4o", "cost_usd": 1, "user": "\ud800"}', "user", "surrogate"),
])
def test_a_bad_jsonl_line_is_named_with_its_field_and_the_fix(line, field, fix):
    found = read(f"{GOOD}\n\n{line}\n{GOOD}\n")
    (error,) = [f for f in found if isinstance(f, LineError)]
    assert (error.line, error.field) == (3, field) and fix in error.problem
    assert str(error).startswith(f"line 3{', ' + field if field else ''}: ")
    assert len(found) == 3  # the good lines on either side are read all the same


@pytest.mark.parametrize(("header", "field", "fix"), [
    ("time,model,cost_usd,coast", "coast", "unknown column"),
    ("time,model,cost_usd,tags", "tags", "tag.NAME"),
    ("time,model,cost_usd,tag.", "tag.", "names its tag"),
    ("time,model,cost,team", "cost", "did you mean cost_usd?"),
    ("time,model,team,team", "team", "a second column"),
])
def test_a_bad_csv_header_is_named_and_no_row_is_read(header, field, fix):
    found = read(f"{header}\n2026-10-01T12:00:00Z,gpt-4o,1,x\n", "csv")
    assert all(isinstance(f, LineError) and f.line == 1 for f in found)
    assert any(f.field == field and fix in f.problem for f in found if isinstance(f, LineError))


def test_a_csv_header_without_a_required_column_says_which():
    assert errors("time,model\n2026-10-01T12:00:00Z,gpt-4o\n", "csv") == [(1, "cost_usd")]


def test_a_csv_row_with_too_few_cells_is_named_by_the_line_it_starts_on():
    text = 'time,model,cost_usd,team\n2026-10-01T12:00:00Z,"gpt\n4o",1,a\n2026-10-01T12:00:00Z,gpt-4o,1\n'
    assert errors(text, "csv") == [(4, None)]


def test_the_same_call_as_a_jsonl_line_and_a_csv_row_is_the_same_row():
    line = ('{"cost_usd": "0.0038", "model": "gpt-4o", "time": "2026-10-01T14:00:00+02:00", "team": " search ",'
            ' "input_tokens": "1200", "status": 429, "tags": {"feature": "search", "env": "prod"}}\n')
    csv = ("time,model,cost_usd,team,input_tokens,status,tag.env,tag.feature,user\n"
           "2026-10-01T12:00:00,gpt-4o,0.00380,search,1200,429,prod,search,\n")
    (from_jsonl,), (from_csv,) = read(line), read(csv, "csv")
    assert from_jsonl == from_csv
    assert isinstance(from_jsonl, LedgerRow)
    assert (from_jsonl.ts, from_jsonl.cost_usd, from_jsonl.user) == (
        datetime(2026, 10, 1, 12, tzinfo=UTC), Decimal("0.0038"), None)


def test_identical_calls_get_distinct_ids_and_the_same_ids_when_read_again():
    first = ids(f"{GOOD}\n{GOOD}\n{GOOD}\n")
    assert len(set(first)) == 3 and ids(f"{GOOD}\n{GOOD}\n{GOOD}\n") == first


def test_a_calls_id_is_pinned_so_no_upgrade_imports_a_file_twice():
    # sha256 of ["2026-10-01T12:00:00+00:00",null,null,null,null,"gpt-4o",0,0,38000000,200,[]]; the second,
    # of that digest and "#1"
    first, second = read(f"{GOOD}\n{GOOD}\n")
    assert isinstance(first, LedgerRow) and first.request_id == "import-0eeb13a70f0f26ddccd8e5419bbb1509"
    assert isinstance(second, LedgerRow) and second.request_id == "import-ec71c99cfeab79667549b7bb76f6aca2"


def test_a_given_request_id_or_id_is_the_rows_id():
    assert ids(GOOD.replace("{", '{"id": "a", ') + "\n" + GOOD.replace("{", '{"request_id": "b", ') + "\n") == ["a", "b"]


def test_a_csv_name_means_csv_and_anything_else_jsonl():
    assert [format_of(name) for name in ("usage.csv", "USAGE.CSV", "usage.jsonl", "-")] == ["csv", "csv", "jsonl", "jsonl"]


def test_checking_names_every_bad_line_up_to_the_limit(tmp_path):
    path = tmp_path / "calls.jsonl"
    path.write_text("\n".join([GOOD] + ['{"model": "m", "cost_usd": 1}'] * (MAX_REPORTED + 5)) + "\n")
    with pytest.raises(ImportRefused) as refused:
        check(path, "jsonl", NOW)
    assert [e.line for e in refused.value.errors] == list(range(2, MAX_REPORTED + 2))
    assert refused.value.bad_lines == MAX_REPORTED + 5
    assert str(refused.value).startswith(f"{MAX_REPORTED + 5} bad lines, nothing imported:\nline 2, time: missing")
    assert str(refused.value).endswith("... and 5 more bad lines")


def test_a_line_that_is_not_utf8_is_named(tmp_path):
    path = tmp_path / "calls.csv"
    path.write_bytes(b"\xef\xbb\xbftime,model,cost_usd,team\n2026-10-01T12:00:00Z,gpt-4o,1,M\xfcnchen\n")
    with pytest.raises(ImportRefused) as refused:
        check(path, "csv", NOW)
    (error,) = refused.value.errors
    assert error.line == 2 and "save the file as UTF-8" in error.problem
