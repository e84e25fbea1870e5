"""`tokenbrake ledger import` end to end on a config's database: it says how many calls it
read and inserted and what they span and cost (as text or JSON); a second run inserts
nothing; CSV is read for a .csv name or --format csv; `-` reads stdin; a bad file exits 1
naming its bad lines, with nothing imported."""

from __future__ import annotations

import json
from decimal import Decimal

import pytest
from click.testing import CliRunner
from import_files import csv_text, jsonl, past_calls

from tokenbrake.cli import main

CALLS = past_calls(60, seed=11)
COST = sum(c["cost_usd"] for c in CALLS)


@pytest.fixture
def config(tmp_path) -> str:
    path = tmp_path / "tokenbrake.yaml"
    path.write_text(f"database: sqlite:///{tmp_path / 'ledger.db'}\nupstreams: {{}}\nmodels: {{}}\n")
    return str(path)


def run(config: str, *args: str, stdin: str | None = None):
    return CliRunner().invoke(main, ["ledger", "import", "--config", config, *args], input=stdin)


def test_an_import_says_what_it_read_and_inserted_and_a_second_inserts_nothing(config, tmp_path):
    path = tmp_path / "calls.jsonl"
    path.write_text(jsonl(CALLS))
    first = run(config, str(path))
    assert first.exit_code == 0, first.output
    assert first.output.startswith(f"read {len(CALLS)} calls: {len(CALLS)} inserted, 0 already in the ledger\ninserted ")
    assert first.output.rstrip().endswith(" UTC, $" + format(COST.quantize(Decimal("1e-9")).normalize(), "f"))
    again = run(config, str(path), "--json")
    assert again.exit_code == 0, again.output
    assert json.loads(again.output) == {"read": len(CALLS), "inserted": 0, "already_there": len(CALLS), "first": None,
                                        "last": None, "cost_usd": "0"}


def test_csv_is_read_for_a_csv_name_and_for_format_csv_from_stdin(config, tmp_path):
    path = tmp_path / "calls.csv"
    path.write_text(csv_text(CALLS[:30]))
    by_name = run(config, str(path), "--json")
    assert json.loads(by_name.output)["inserted"] == 30, by_name.output
    from_stdin = run(config, "-", "--format", "csv", "--json", stdin=csv_text(CALLS))
    view = json.loads(from_stdin.output)
    assert (view["read"], view["inserted"], view["already_there"]) == (len(CALLS), len(CALLS) - 30, 30)
    usage = CliRunner().invoke(main, ["usage", "--config", config, "--by", "team", "--json"])
    assert Decimal(json.loads(usage.output)["total_cost_usd"]) == COST


def test_a_bad_file_exits_1_naming_its_bad_lines_and_imports_nothing(config, tmp_path):
    path = tmp_path / "calls.jsonl"
    path.write_text(jsonl(CALLS[:5]) + '{"time": "soon", "model": "gpt-4o", "cost_usd": 1}\n')
    result = run(config, str(path))
    assert result.exit_code == 1
    assert "1 bad line, nothing imported:\nline 6, time: cannot read 'soon' as a time" in result.output
    usage = CliRunner().invoke(main, ["usage", "--config", config, "--json"])
    assert json.loads(usage.output)["data"] == []
