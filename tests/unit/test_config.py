from pathlib import Path

import pytest

from tokenbrake.config import ConfigError, load_config, parse_config, unset_key_envs

ISSUE_EXAMPLE = """
upstreams:
  openai:    {kind: openai, base_url: https://api.openai.com/v1, api_key_env: OPENAI_API_KEY}
  anthropic: {kind: anthropic, base_url: https://api.anthropic.com, api_key_env: ANTHROPIC_API_KEY}
  local:     {kind: openai, base_url: http://127.0.0.1:8000/v1}
models:
  gpt-4o:      {upstream: openai}
  claude-fast: {upstream: anthropic, model: claude-3-5-haiku-latest}
  small:       {upstream: local, model: qwen2.5-3b-instruct,
                price: {input_per_mtok: 0.02, output_per_mtok: 0.06}}
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "config.yaml"
    path.write_text(text)
    return path


def test_the_documented_example_loads(tmp_path):
    config = load_config(write(tmp_path, ISSUE_EXAMPLE), environ={})
    assert config.models["claude-fast"].model == "claude-3-5-haiku-latest"
    assert config.upstreams["local"].kind == "openai"
    assert str(config.models["small"].price.input_per_mtok) == "0.02"


def test_unknown_key_is_refused_and_named(tmp_path):
    path = write(tmp_path, ISSUE_EXAMPLE.replace("{upstream: openai}", "{upstream: openai, upstraem: x}"))
    with pytest.raises(ConfigError, match=r"models\.gpt-4o\.upstraem: unknown key"):
        load_config(path, environ={})


def test_bad_value_is_refused_and_named():
    raw = {"upstreams": {"u": {"kind": "grpc", "base_url": "http://x"}}, "models": {}}
    with pytest.raises(ConfigError, match=r"upstreams\.u\.kind"):
        parse_config(raw)


def test_model_on_a_missing_upstream_is_refused():
    raw = {"upstreams": {}, "models": {"m": {"upstream": "nowhere"}}}
    with pytest.raises(ConfigError, match="no upstream named 'nowhere'"):
        parse_config(raw)


def test_fallback_to_an_unknown_model_is_refused():
    raw = {"upstreams": {"u": {"kind": "openai", "base_url": "http://x"}},
           "models": {"m": {"upstream": "u", "fallbacks": ["ghost"]}}}
    with pytest.raises(ConfigError, match=r"models\.m\.fallbacks: no model named 'ghost'"):
        parse_config(raw)


def test_base_url_must_be_http():
    raw = {"upstreams": {"u": {"kind": "openai", "base_url": "ftp://x"}}, "models": {}}
    with pytest.raises(ConfigError, match="base_url must start with http"):
        parse_config(raw)


def test_env_override_reaches_nested_keys_case_insensitively(tmp_path):
    environ = {"TOKENBRAKE_SERVER__PORT": "9001", "TOKENBRAKE_MODELS__GPT-4O__UPSTREAM": "local"}
    config = load_config(write(tmp_path, ISSUE_EXAMPLE), environ=environ)
    assert config.server.port == 9001
    assert config.models["gpt-4o"].upstream == "local"


def test_env_override_with_an_unknown_key_is_refused(tmp_path):
    with pytest.raises(ConfigError, match=r"server\.prot: unknown key"):
        load_config(write(tmp_path, ISSUE_EXAMPLE), environ={"TOKENBRAKE_SERVER__PROT": "1"})


def test_reserved_env_names_are_not_overrides(tmp_path):
    config = load_config(write(tmp_path, ISSUE_EXAMPLE), environ={"TOKENBRAKE_CONFIG": "/x.yaml"})
    assert config.server.port == 4000


def test_the_evaluation_data_variable_is_not_an_override(tmp_path):
    config = load_config(write(tmp_path, ISSUE_EXAMPLE), environ={"TOKENBRAKE_SHARED_DATA": "/data"})
    assert config.server.port == 4000


def test_invalid_yaml_is_reported(tmp_path):
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(write(tmp_path, "models: [unclosed"), environ={})


def test_missing_file_is_reported(tmp_path):
    with pytest.raises(ConfigError, match="cannot read config file"):
        load_config(tmp_path / "absent.yaml", environ={})


@pytest.mark.parametrize(("database", "state", "used"), [
    ("sqlite:///tokenbrake.db", None, "memory:///tokenbrake.db.state.json"),  # relative, beside the ledger
    ("sqlite:////var/lib/tb/ledger.db", None, "memory:////var/lib/tb/ledger.db.state.json"),  # absolute
    ("postgresql://tb@db:5432/tb", None, "memory://"),
    ("sqlite:///tokenbrake.db", "redis://127.0.0.1:6379/0", "redis://127.0.0.1:6379/0"),
])
def test_the_state_is_kept_beside_an_sqlite_ledger_unless_named(database, state, used):
    raw = {"database": database, "upstreams": {"u": {"kind": "openai", "base_url": "http://x/v1"}},
           "models": {"m": {"upstream": "u", "free": True}}}
    if state:
        raw["state"] = state
    assert parse_config(raw).state_url == used


def test_output_cap_field_is_for_openai_compatible_upstreams_only():
    raw = {"upstreams": {"a": {"kind": "anthropic", "base_url": "https://api.anthropic.com",
                               "output_cap_field": "max_tokens"}}, "models": {}}
    with pytest.raises(ConfigError, match="output_cap_field applies to kind: openai upstreams"):
        parse_config(raw)
    raw["upstreams"]["a"]["kind"] = "openai"
    raw["upstreams"]["a"]["output_cap_field"] = "max_output"
    with pytest.raises(ConfigError, match=r"upstreams\.a\.output_cap_field"):
        parse_config(raw)


def test_an_upstream_whose_key_variable_is_unset_is_warned_of(tmp_path):
    config = load_config(write(tmp_path, ISSUE_EXAMPLE), environ={})
    assert unset_key_envs(config, {"OPENAI_API_KEY": "sk-1", "ANTHROPIC_API_KEY": ""}) == [
        "upstreams.anthropic.api_key_env names ANTHROPIC_API_KEY, which is not set: requests to anthropic go without a key"]
    assert unset_key_envs(config, {"OPENAI_API_KEY": "sk-1", "ANTHROPIC_API_KEY": "sk-2"}) == []  # local needs none
