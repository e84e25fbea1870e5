"""The `routes:` config: virtual models refer to configured models, and say what they mean."""

import pytest

from tokenbrake.config import ConfigError, parse_config

BASE = {
    "upstreams": {"u": {"kind": "openai", "base_url": "http://127.0.0.1:9/v1"}},
    "models": {"small": {"upstream": "u", "free": True}, "big": {"upstream": "u", "free": True}},
}


def config(**route):
    return parse_config({**BASE, "routes": {"auto": {"tiers": ["small", "big"], **route}}})


def test_a_router_route_defaults_to_the_shipped_router_and_no_thresholds():
    route = config().routes["auto"]
    assert (route.strategy, route.router, route.thresholds, route.keep_examples) == ("router", None, None, False)


def test_an_unknown_tier_is_named():
    with pytest.raises(ConfigError, match=r"routes\.auto\.tiers: no model named 'huge'"):
        config(tiers=["small", "huge"])


def test_a_route_cannot_shadow_a_model():
    with pytest.raises(ConfigError, match=r"routes\.small: a route cannot share its name with a model"):
        parse_config({**BASE, "routes": {"small": {"tiers": ["small", "big"]}}})


def test_thresholds_must_be_one_fewer_than_tiers_and_ascending():
    with pytest.raises(ConfigError, match="2 tiers need 1 thresholds"):
        config(thresholds=[0.3, 0.6])
    with pytest.raises(ConfigError, match="ascending scores between 0 and 1"):
        parse_config({**BASE, "routes": {"auto": {"tiers": ["small", "big", "big"], "thresholds": [0.6, 0.3]}}})


def test_a_cascade_needs_a_check_and_a_check_has_exactly_one_kind():
    with pytest.raises(ConfigError, match="cascade needs at least two tiers and one check"):
        config(strategy="cascade")
    with pytest.raises(ConfigError, match="exactly one of"):
        config(strategy="cascade", checks=[{"regex": "x", "grader": "small"}])
    with pytest.raises(ConfigError, match="regex '\\(': "):
        config(strategy="cascade", checks=[{"regex": "("}])


def test_a_grader_and_rerouted_models_must_exist():
    with pytest.raises(ConfigError, match=r"checks\[0\]\.grader: no model named 'judge'"):
        config(strategy="cascade", checks=[{"grader": "judge"}])
    with pytest.raises(ConfigError, match=r"reroute\[0\]\.models: no model named 'gpt-5'"):
        config(reroute=[{"scope": "team:x", "models": ["gpt-5"]}])
    with pytest.raises(ConfigError, match="scope 'crew:x'"):
        config(reroute=[{"scope": "crew:x", "models": ["big"]}])


def test_a_logprob_threshold_is_a_log_probability():
    with pytest.raises(ConfigError, match="min_mean_logprob"):
        config(strategy="cascade", checks=[{"min_mean_logprob": 0.5}])


def test_a_json_schema_that_is_not_one_is_refused_at_start_up():
    with pytest.raises(ConfigError, match=r"json_schema: not a valid JSON schema"):
        config(strategy="cascade", checks=[{"json_schema": {"type": "objectx"}}])


def test_a_logprob_check_on_a_tier_that_cannot_return_logprobs_is_refused():
    raw = {**BASE, "upstreams": {**BASE["upstreams"], "a": {"kind": "anthropic", "base_url": "http://127.0.0.1:9"}},
           "models": {**BASE["models"], "claude": {"upstream": "a", "free": True}}}
    route = {"tiers": ["claude", "big"], "strategy": "cascade", "checks": [{"min_mean_logprob": -0.3}]}
    with pytest.raises(ConfigError, match=r"tier 'claude' is on an Anthropic upstream"):
        parse_config({**raw, "routes": {"auto": route}})
    route["tiers"] = ["small", "claude"]  # the strongest tier answers unchecked: allowed
    assert parse_config({**raw, "routes": {"auto": route}}).routes["auto"].tiers == ["small", "claude"]
