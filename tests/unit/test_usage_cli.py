"""`tokenbrake usage` reads the rollups: one dimension as before (table, --json), two
dimensions, --every, --top and --csv; a combination the rollups do not hold is a usage
error naming the option."""

from __future__ import annotations

import csv
import io
import json
from datetime import timedelta
from decimal import Decimal

import pytest
from click.testing import CliRunner
from insight_rows import ledger_config, summed, value, varied_rows

from tokenbrake.cli import main

ROWS = varied_rows(120, seed=9, spread=timedelta(days=3))


@pytest.fixture(scope="module")
def config(tmp_path_factory) -> str:
    return ledger_config(tmp_path_factory.mktemp("usage"), ROWS)


def usage(config: str, *args: str):
    return CliRunner().invoke(main, ["usage", "--config", config, *args])


def test_one_dimension_reads_as_before_with_every_request_in_the_total(config):
    result = usage(config, "--by", "team", "--json")
    assert result.exit_code == 0, result.output
    view = json.loads(result.output)
    assert {row["team"]: row["requests"] for row in view["data"]} == {
        team or "(none)": len([r for r in ROWS if r.team == team]) for team in {r.team for r in ROWS}}
    assert Decimal(view["total_cost_usd"]) == summed(ROWS).cost_usd


def test_two_dimensions_in_csv_add_up_per_pair(config):
    result = usage(config, "--by", "team,model", "--csv")
    assert result.exit_code == 0, result.output
    records = list(csv.DictReader(io.StringIO(result.output)))
    for record in records:
        mine = [r for r in ROWS if (value(r, "team") or "", value(r, "model")) == (record["team"], record["model"])]
        assert int(record["requests"]) == len(mine) and Decimal(record["cost_usd"]) == summed(mine).cost_usd
    assert sum(int(r["requests"]) for r in records) == len(ROWS)


def test_every_day_with_top_gives_a_row_per_day_and_group_and_the_rest(config):
    result = usage(config, "--by", "user", "--every", "day", "--top", "1", "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)["data"]
    assert {r["user"] for r in data} <= {None, "ana", "bo", "cy", "(other)"} and len({r["user"] for r in data}) == 2
    assert sum(r["requests"] for r in data) == len(ROWS)
    assert all(r["t"].endswith("T00:00:00Z") for r in data)


def test_a_combination_not_rolled_up_is_a_usage_error_naming_the_option(config):
    result = usage(config, "--by", "model", "--filter", "user=ana")
    assert result.exit_code == 2 and "--filter" in result.output and "not rolled up" in result.output
    assert "--filter" in usage(config, "--filter", "team").output
