"""Which `limits:` entries apply to a request, without a network."""

from __future__ import annotations

from tokenbrake.admission.limit_rules import ApplicableLimits, applicable, setting_in, tightest
from tokenbrake.config import LimitRuleConfig
from tokenbrake.core import Attribution, Endpoint, Format, RequestContext, Target
from tokenbrake.scopes import scope_values

VALUES = {"key": ["k1"], "team": ["search"], "user": ["ana"], "model": ["big"], "tag": ["feature=chat", "env=prod"]}


def rpm(scope: str, value: int = 10) -> LimitRuleConfig:
    return LimitRuleConfig(scope=scope, requests_per_minute=value)


def test_a_request_falls_under_the_limits_whose_scope_it_is_in():
    found = applicable([rpm("global"), rpm("team:search"), rpm("team:ads"), rpm("user:*"), rpm("tag:*"),
                        rpm("model:big"), rpm("model:small"), rpm("key:k1")], "requests_per_minute", VALUES)
    assert [a.key for a in found] == ["global", "team:search", "user:ana", "tag:feature=chat", "tag:env=prod",
                                      "model:big", "key:k1"]


def test_a_wildcard_scope_does_not_apply_to_a_request_without_that_name():
    assert applicable([rpm("user:*")], "requests_per_minute", {**VALUES, "user": []}) == []


def test_entries_without_the_setting_do_not_apply():
    caps_only = LimitRuleConfig(scope="global", max_input_tokens=100)
    assert applicable([caps_only], "requests_per_minute", VALUES) == []
    assert setting_in([caps_only, rpm("global")], "requests_per_minute", "concurrent") == [rpm("global")]


def test_two_entries_naming_one_counter_count_once_at_the_smaller_value():
    [found] = applicable([rpm("user:*", 10), rpm("user:ana", 3), rpm("user:*", 7)], "requests_per_minute", VALUES)
    assert (found.key, found.value, found.scope) == ("user:ana", 3, "user:ana")


def test_tightest_is_the_smallest_value_and_describe_names_the_scope():
    found = applicable([rpm("team:search", 5), rpm("user:*", 2)], "requests_per_minute", VALUES)
    assert tightest(found).describe() == "user:ana (limit user:*)"
    assert found[0].describe() == "team:search"
    assert tightest([]) is None


def test_the_model_scope_is_the_model_about_to_be_called():
    ctx = RequestContext(format=Format.OPENAI, endpoint=Endpoint.CHAT, body={}, headers={},
                         who=Attribution(key_name="k1", team="search"), requested_model="alias")
    ctx.targets = [Target("big", "u", Format.OPENAI, "big-upstream")]
    values = scope_values(ctx)
    assert values["model"] == ["big"] and values["key"] == ["k1"] and values["team"] == ["search"]


def test_remembered_limits_are_those_the_request_falls_under_for_each_setting():
    limits = [rpm("team:search"), rpm("user:*", 5), LimitRuleConfig(scope="user:*", tokens_per_minute=900),
              LimitRuleConfig(scope="model:big", concurrent=2), rpm("tag:*"), rpm("user:bob", 2)]
    settings = ("requests_per_minute", "tokens_per_minute", "concurrent")
    memo = ApplicableLimits(limits, settings, max_entries=3)
    requests = [{**VALUES, "user": [name]} for name in ("ana", "bob", "cy", "dee", "ana", "bob")]
    requests += [{**VALUES, "user": [], "tag": []}, {**VALUES, "model": ["small"]}, VALUES]
    for values in requests:  # more distinct requests than the memo keeps, and some again
        assert memo(values) == {s: applicable(limits, s, values) for s in settings}
    bob = memo({**VALUES, "user": ["bob"]})
    assert [(a.key, a.value) for a in bob["requests_per_minute"]] == [
        ("team:search", 10), ("user:bob", 2), ("tag:feature=chat", 10), ("tag:env=prod", 10)]
    assert [a.key for a in bob["concurrent"]] == ["model:big"]


def test_user_and_tag_limits_count_per_tenant_unless_across_tenants():
    red, blue = {**VALUES, "tenant": ["team:red"]}, {**VALUES, "tenant": ["key:bot"]}
    per_tenant = [rpm("user:*"), rpm("tag:env=prod")]
    assert [a.key for a in applicable(per_tenant, "requests_per_minute", red)] == [
        "team:red/user:ana", "team:red/tag:env=prod"]
    assert [a.key for a in applicable(per_tenant, "requests_per_minute", blue)] == [
        "key:bot/user:ana", "key:bot/tag:env=prod"]
    shared = [LimitRuleConfig(scope="user:*", requests_per_minute=10, across_tenants=True)]
    assert [a.key for a in applicable(shared, "concurrent", red)] == []
    assert applicable(shared, "requests_per_minute", red) == applicable(shared, "requests_per_minute", blue)
    assert applicable(shared, "requests_per_minute", red)[0].key == "user:ana"


def test_a_tenants_counter_is_described_with_its_tenant():
    values = {**VALUES, "tenant": ["team:search"]}
    [star] = applicable([rpm("user:*")], "requests_per_minute", values)
    [named] = applicable([rpm("user:ana")], "requests_per_minute", values)
    assert star.describe() == "user:ana in team:search (limit user:*)"
    assert named.describe() == "user:ana in team:search"


def test_the_tenant_of_a_request_is_its_keys_team_or_else_its_key():
    def tenant(**who) -> list[str]:
        return scope_values(RequestContext(format=Format.OPENAI, endpoint=Endpoint.CHAT, body={}, headers={},
                                           who=Attribution(**who)))["tenant"]

    assert tenant(key_name="k1", team="search") == ["team:search"]
    assert tenant(key_name="k1") == ["key:k1"]
    assert tenant() == []
