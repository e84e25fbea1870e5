"""Usage tables: a total row for every grouping; by tag (a request in several tags' rows) the
total counts each request once, from groups that do."""

from decimal import Decimal

from tokenbrake.storage import UsageGroup
from tokenbrake.storage.reports import usage_table, usage_view


def group(name: str, requests: int, cost: str) -> UsageGroup:
    return UsageGroup(name, requests, 10 * requests, 5 * requests, Decimal(cost), 0)


TAGS = [group("feature=search", 3, "0.3"), group("env=prod", 3, "0.3")]  # the same 3 requests, two tags
MODELS = [group("gpt-4o", 3, "0.3")]


def test_by_tag_the_total_row_counts_each_request_once():
    last = usage_table("tag", TAGS, MODELS).splitlines()[-1].split()
    assert last[:5] == ["total", "(each", "request", "once)", "3"]
    assert "$0.300000" in last


def test_by_tag_the_json_total_counts_each_request_once():
    assert usage_view("tag", TAGS, MODELS)["total_cost_usd"] == "0.3"


def test_other_groupings_total_their_own_rows():
    last = usage_table("model", [group("a", 1, "0.1"), group("b", 2, "0.2")]).splitlines()[-1].split()
    assert last[:2] == ["total", "3"] and "$0.300000" in last
