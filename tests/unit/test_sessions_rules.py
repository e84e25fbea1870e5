"""Which session rules apply to a request: limits (smallest wins) and the loop action (most
specific scope wins), and what the config accepts."""

from __future__ import annotations

from decimal import Decimal

import pytest

from tokenbrake.admission.session_rules import Rules
from tokenbrake.config import ConfigError, parse_config
from tokenbrake.core import Attribution, Endpoint, Format, RequestContext

RAW = {
    "upstreams": {"u": {"kind": "openai", "base_url": "http://127.0.0.1:9/v1"}},
    "models": {"m": {"upstream": "u", "free": True}},
}


def rules(*entries: dict) -> Rules:
    return Rules(parse_config({**RAW, "sessions": {"rules": list(entries)}}).sessions)


def request(key: str = "k1", team: str | None = "t1") -> RequestContext:
    return RequestContext(format=Format.OPENAI, endpoint=Endpoint.CHAT, body={}, headers={},
                          who=Attribution(key_name=key, team=team, session="s"))


def test_no_rule_or_rules_that_set_nothing_mean_no_work():
    assert not rules()
    assert not rules({"scope": "global"})


def test_each_limit_takes_the_smallest_value_of_the_rules_in_scope_and_names_its_rule():
    r = rules({"scope": "global", "max_calls": 100, "max_cost_usd": "5"},
              {"scope": "team:t1", "max_calls": 50, "max_duration_s": 60},
              {"scope": "key:other", "max_calls": 1})
    policy = r.policy(request())
    assert (policy.caps.max_calls, policy.caps.max_cost_nanos, policy.caps.max_duration_s) == (50, 5_000_000_000, 60)
    assert policy.scopes == {"max_calls": "team:t1", "max_cost_usd": "global", "max_duration_s": "team:t1"}
    assert policy.on_loop == "off" and not policy.watches_loops


def test_the_loop_action_comes_from_the_most_specific_rule_that_sets_it():
    r = rules({"scope": "global", "on_loop": "stop"}, {"scope": "team:t1", "on_loop": "throttle"},
              {"scope": "key:k1", "on_loop": "warn"}, {"scope": "key:k9", "max_calls": 3})
    assert r.policy(request()).on_loop == "warn"
    assert r.policy(request(key="k2")).on_loop == "throttle"
    assert r.policy(request(key="k9", team=None)).on_loop == "stop"


def test_off_turns_detection_off_for_a_key_and_a_session_out_of_every_scope_has_no_policy():
    r = rules({"scope": "global", "on_loop": "stop"}, {"scope": "key:ci", "on_loop": "off"})
    assert r.policy(request(key="ci")) is None
    assert rules({"scope": "team:t1", "max_calls": 3}).policy(request(team="t2")) is None


@pytest.mark.parametrize("scope", ["user:alice", "model:m", "key:*", "team:*", "tag:a=b"])
def test_session_rules_are_scoped_globally_or_to_a_key_or_a_team(scope):
    with pytest.raises(ConfigError, match=r"sessions.rules.0: .*global, key:NAME or team:NAME"):
        parse_config({**RAW, "sessions": {"rules": [{"scope": scope, "max_calls": 3}]}})


def test_unknown_session_keys_and_bad_values_are_named():
    with pytest.raises(ConfigError, match=r"sessions.rules.0.max_call: unknown key"):
        parse_config({**RAW, "sessions": {"rules": [{"max_call": 3}]}})
    with pytest.raises(ConfigError, match=r"sessions.rules.0.on_loop"):
        parse_config({**RAW, "sessions": {"rules": [{"on_loop": "kill"}]}})
    assert parse_config({**RAW, "sessions": {"rules": [{"max_cost_usd": "0.5"}]}}).sessions.rules[0].max_cost_usd == Decimal("0.5")


def test_a_policy_is_worked_out_once_per_key_and_team():
    r = rules({"scope": "team:t1", "max_calls": 3}, {"scope": "key:k1", "on_loop": "warn"})
    first = r.policy(request())
    other_user = request()
    other_user.who.user = "bob"
    assert r.policy(other_user) is first
    assert r.policy(request(key="k2")).on_loop == "off" and r.policy(request(key="k2")).caps.max_calls == 3
    assert r.policy(request(key="k2", team="t2")) is None
