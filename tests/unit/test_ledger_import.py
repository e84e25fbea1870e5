"""`import_file` on SQLite and PostgreSQL: a file's calls land in the ledger as written, with
their own times, and in the rollups (by team and model, by tag, by day) exactly; JSONL and
CSV of the same calls are the same calls; a second import, or an import picked up after it
was cut short, adds nothing twice; a bad line anywhere writes nothing."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from import_files import NOW, csv_text, jsonl, past_calls, sums, value
from storage_backends import db, place  # noqa: F401

from tokenbrake.storage.import_format import IMPORTED
from tokenbrake.storage.insight_queries import Query
from tokenbrake.storage.ledger_import import ImportRefused, import_file

CALLS = past_calls(400)
SPAN = Query(NOW - timedelta(days=60), datetime.now(UTC))


def written(tmp_path, name: str, text: str):
    path = tmp_path / name
    path.write_text(text)
    return path


def as_written(call: dict) -> tuple:
    tags = call.get("tags", {})
    return (datetime.fromisoformat(call["time"]), call.get("key"), call.get("team"), call.get("user"),
            call.get("session"), call["model"], call.get("input_tokens", 0), call.get("output_tokens", 0),
            call["cost_usd"], call.get("status", 200), tags)


async def test_a_jsonl_file_puts_every_call_in_the_ledger_as_written(db, tmp_path):
    imported = await import_file(db.ledger, written(tmp_path, "calls.jsonl", jsonl(CALLS)), "jsonl", batch_rows=64)
    assert (imported.read, imported.inserted, imported.already_there) == (len(CALLS), len(CALLS), 0)
    times = [datetime.fromisoformat(c["time"]) for c in CALLS]
    assert (imported.first, imported.last) == (min(times), max(times))
    assert imported.cost_usd == sum(c["cost_usd"] for c in CALLS)
    rows = await db.ledger.rows(limit=1000)
    assert sorted((r.ts, r.key_name, r.team, r.user, r.session, r.served_model, r.input_tokens, r.output_tokens,
                   r.cost_usd, r.status, r.tags) for r in rows) == sorted(map(as_written, CALLS))
    assert {(r.front_door, r.endpoint, r.requested_model == r.served_model, r.provider) for r in rows} == {
        (IMPORTED, IMPORTED, True, None)}


@pytest.mark.parametrize("form", ["jsonl", "csv"])
async def test_the_rollups_hold_the_file_by_team_and_model_by_tag_and_by_day(db, tmp_path, form):
    text = jsonl(CALLS) if form == "jsonl" else csv_text(CALLS)
    await import_file(db.ledger, written(tmp_path, f"calls.{form}", text), form, batch_rows=150)
    by_team_model = await db.insight.breakdown(SPAN, ["team", "model"])
    assert {group: (m.requests, m.cost_usd, m.input_tokens, m.output_tokens) for group, m in by_team_model.rows} == \
        sums(CALLS, lambda c: (value(c, "team"), value(c, "model")))
    by_feature = await db.insight.breakdown(SPAN, ["tag.feature"])
    assert {group[0]: m.requests for group, m in by_feature.rows} == {
        k: v[0] for k, v in sums(CALLS, lambda c: value(c, "tag.feature")).items() if k is not None}
    daily = await db.insight.series(SPAN, "day")
    ((_, line),) = daily.series
    assert {t.date(): (m.requests, m.cost_usd) for t, m in zip(daily.times, line) if m.requests} == {
        day: (n, cost) for day, (n, cost, _, _) in sums(CALLS, lambda c: value(c, "day")).items()}
    _, _, total = await db.insight.total(SPAN)
    assert (total.requests, total.cost_usd) == (len(CALLS), sum(c["cost_usd"] for c in CALLS))


async def test_importing_a_file_twice_inserts_nothing_the_second_time(db, tmp_path):
    path = written(tmp_path, "calls.jsonl", jsonl(CALLS))
    await import_file(db.ledger, path, "jsonl", batch_rows=128)
    before = (await db.insight.breakdown(SPAN, ["team", "model"])).rows
    again = await import_file(db.ledger, path, "jsonl", batch_rows=128)
    assert (again.read, again.inserted, again.already_there, again.cost_usd, again.first) == (
        len(CALLS), 0, len(CALLS), Decimal(0), None)
    assert (await db.insight.breakdown(SPAN, ["team", "model"])).rows == before
    assert (await db.ledger.totals()).requests == len(CALLS)


async def test_the_same_calls_as_csv_and_as_jsonl_are_the_same_calls(db, tmp_path):
    await import_file(db.ledger, written(tmp_path, "calls.csv", csv_text(CALLS)), "csv")
    again = await import_file(db.ledger, written(tmp_path, "calls.jsonl", jsonl(CALLS)), "jsonl")
    assert (again.inserted, again.already_there) == (0, len(CALLS))


async def test_an_import_cut_short_writes_only_the_rest_when_run_again(db, tmp_path):
    await import_file(db.ledger, written(tmp_path, "part.jsonl", jsonl(CALLS[:150])), "jsonl")
    rest = await import_file(db.ledger, written(tmp_path, "calls.jsonl", jsonl(CALLS)), "jsonl", batch_rows=100)
    assert (rest.inserted, rest.already_there) == (len(CALLS) - 150, 150)
    _, _, total = await db.insight.total(SPAN)
    assert (total.requests, total.cost_usd) == (len(CALLS), sum(c["cost_usd"] for c in CALLS))


async def test_identical_calls_in_one_file_are_each_kept(db, tmp_path):
    line = '{"time": "2026-01-05T10:00:00Z", "model": "text-embedding-3-small", "input_tokens": 512, "cost_usd": 0.00001}\n'
    imported = await import_file(db.ledger, written(tmp_path, "calls.jsonl", line * 3), "jsonl")
    assert imported.inserted == 3 and (await db.ledger.totals()).requests == 3


async def test_a_line_naming_its_request_id_is_imported_once_under_that_id(db, tmp_path):
    line = '{"request_id": "chatcmpl-1", "time": "2026-01-05T10:00:00Z", "model": "gpt-4o", "cost_usd": 0.01}\n'
    imported = await import_file(db.ledger, written(tmp_path, "calls.jsonl", line + line.replace("0.01", "0.02")),
                                 "jsonl")
    assert (imported.inserted, imported.already_there, imported.cost_usd) == (1, 1, Decimal("0.01"))
    assert [row.request_id for row in await db.ledger.rows()] == ["chatcmpl-1"]


async def test_a_bad_line_anywhere_writes_nothing_and_every_bad_line_is_named(db, tmp_path):
    lines = jsonl(CALLS).splitlines(keepends=True)
    lines[10] = '{"model": "gpt-4o", "cost_usd": 0.1}\n'
    lines[350] = '{"time": "2026-01-05T10:00:00Z", "model": "gpt-4o", "cost_usd": -0.1}\n'
    with pytest.raises(ImportRefused) as refused:
        await import_file(db.ledger, written(tmp_path, "calls.jsonl", "".join(lines)), "jsonl", batch_rows=50)
    assert [(e.line, e.field) for e in refused.value.errors] == [(11, "time"), (351, "cost_usd")]
    assert (await db.ledger.totals()).requests == 0
    _, _, total = await db.insight.total(SPAN)
    assert total.requests == 0
