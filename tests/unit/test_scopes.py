"""The scope grammar, and the one way budgets, limit entries and session rules apply to a
request: every rule whose scope it is in, and of those naming one counter the smallest."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from tokenbrake.scopes import (
    ByScopeValues,
    check_across_tenants,
    check_scope,
    check_session_scope,
    counts_per_tenant,
    in_scope,
    smallest,
    together,
)

VALUES = {"key": ["k1"], "team": ["search"], "user": ["ana"], "tag": ["feature=chat", "env=prod"],
          "tenant": ["team:search"]}


@dataclass(frozen=True)
class Rule:
    scope: str
    value: int | None = 1
    across_tenants: bool = False


def value(rule: Rule) -> int | None:
    return rule.value


@pytest.mark.parametrize("scope", ["global", "key:k1", "team:*", "user:ana", "model:big", "tag:*", "tag:env=prod"])
def test_a_well_formed_scope_is_accepted(scope):
    assert check_scope(scope) == scope


@pytest.mark.parametrize(("scope", "says"), [
    ("everyone", "expected global or key|team|user|model|tag:NAME"), ("user:", "expected global"),
    ("org:acme", "expected global"), ("tag:chat", "a tag scope is tag:name=value")])
def test_a_malformed_scope_is_refused_with_what_was_expected(scope, says):
    with pytest.raises(ValueError, match=says):
        check_scope(scope)


def test_only_user_and_tag_scopes_count_per_tenant():
    assert counts_per_tenant("user:*", False) and counts_per_tenant("tag:env=prod", False)
    assert not counts_per_tenant("user:*", True) and not counts_per_tenant("team:search", False)
    check_across_tenants("user:*", True)
    with pytest.raises(ValueError, match="only user: and tag: scopes count per tenant"):
        check_across_tenants("team:search", True)


@pytest.mark.parametrize("scope", ["global", "key:k1", "team:search"])
def test_a_session_rule_is_scoped_globally_or_to_one_key_or_team(scope):
    assert check_session_scope(scope) == scope


@pytest.mark.parametrize("scope", ["key:*", "user:ana", "bad"])
def test_a_session_rule_on_another_scope_is_refused(scope):
    with pytest.raises(ValueError):
        check_session_scope(scope)


def test_in_scope_pairs_each_rule_with_each_counter_it_names_for_the_request():
    rules = [Rule("global"), Rule("team:ads"), Rule("tag:*"), Rule("user:*", across_tenants=True), Rule("user:ana")]
    assert [(rule.scope, key) for rule, key in in_scope(rules, VALUES)] == [
        ("global", "global"), ("tag:*", "team:search/tag:feature=chat"), ("tag:*", "team:search/tag:env=prod"),
        ("user:*", "user:ana"), ("user:ana", "team:search/user:ana")]


def test_of_the_rules_naming_one_counter_the_smallest_value_wins_the_first_of_equals():
    star, named, same, other = Rule("user:*", 10), Rule("user:ana", 3), Rule("user:ana", 3), Rule("team:search", 7)
    assert smallest(in_scope([star, other, named, same], VALUES), value) == [
        (named, "team:search/user:ana"), (other, "team:search")]  # in the order each counter was first found


def test_a_rule_that_does_not_set_the_value_is_left_out():
    assert smallest(in_scope([Rule("global", None), Rule("team:search", None)], VALUES), value) == []


def test_grouped_together_one_rule_wins_over_every_counter():
    rules = [Rule("global", 5), Rule("key:k1", 2), Rule("team:search", 2)]
    assert smallest(in_scope(rules, VALUES), value, per=together) == [(rules[1], "key:k1")]


def test_by_scope_values_remembers_every_answer_none_included():
    calls = []

    def work(values: dict[str, list[str]]) -> None:
        calls.append(values)

    remembered = ByScopeValues(work)
    assert remembered({"key": ["k1"]}) is None and remembered({"key": ["k1"]}) is None
    assert len(calls) == 1
