"""`tokenbrake forecast` prints global and every budget as a table, or one scope; --json prints
what the API answers; a scope that is not one is a usage error naming --scope."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from click.testing import CliRunner
from insight_rows import ledger_config
from storage_backends import ledger_row

from tokenbrake.cli import main
from tokenbrake.storage.rollups import floor

TOP = floor(datetime.now(UTC), "hour")
ROWS = [ledger_row(request_id=f"r-{k}", ts=TOP - timedelta(hours=k, minutes=-5), cost_usd=Decimal("0.5"),
                   team="search") for k in range(1, 24 * 5 + 1)]


@pytest.fixture(scope="module")
def config(tmp_path_factory) -> str:
    return ledger_config(tmp_path_factory.mktemp("forecast"), ROWS,
                         "budgets:\n  - {scope: 'team:search', amount_usd: 72, period: total}\n")


def forecast(config: str, *args: str):
    return CliRunner().invoke(main, ["forecast", "--config", config, *args])


def test_the_table_has_global_then_each_budget_with_when_it_runs_out(config):
    result = forecast(config)
    assert result.exit_code == 0, result.output
    header, first, second = result.output.splitlines()
    assert header.split()[:3] == ["scope", "/", "counter"] and "runs out" in header
    assert first.startswith("global ") and first.split()[1] == "month" and first.rstrip().endswith("-")
    assert second.startswith("team:search ") and " total " in second and "$60.00" in second  # spent so far
    assert second.split()[-2:][0] == (TOP + timedelta(hours=24)).strftime("%Y-%m-%d")  # $12 more at $0.50 an hour


def test_json_answers_as_the_api_does(config):
    result = forecast(config, "--scope", "team:search", "--json")
    assert result.exit_code == 0, result.output
    (view,) = json.loads(result.output)
    assert view["status"] == "ok" and view["spent_usd"] == "60" and view["budget_usd"] == "72"
    assert abs(datetime.fromisoformat(view["runs_out_at"]) - (datetime.now(UTC) + timedelta(hours=24))) < timedelta(hours=1)


def test_a_scope_with_too_little_history_says_why_on_its_line(config):
    result = forecast(config, "--scope", "model:nothing")
    assert result.exit_code == 0, result.output
    assert "no spend recorded yet" in result.output.splitlines()[1]


@pytest.mark.parametrize("scope", ["colour:red", "user:*"])
def test_a_scope_that_is_not_one_is_a_usage_error_naming_the_option(config, scope):
    result = forecast(config, "--scope", scope)
    assert result.exit_code == 2 and "--scope" in result.output
