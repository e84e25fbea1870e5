"""Reading the config file: a key given twice is refused with both lines; relative paths are
the config file's, not the current directory's; env overrides reach any key name and their
errors name the variable; state URLs are checked as `serve` would open them."""

from pathlib import Path

import pytest

from tokenbrake.config import ConfigError, load_config

BASE = """\
upstreams:
  emu: {kind: openai, base_url: http://127.0.0.1:8400/v1, provider: openai}
models:
  gpt-4o: {upstream: emu}
"""


def write(folder: Path, text: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "tokenbrake.yaml"
    path.write_text(text)
    return path


def test_a_section_given_twice_is_refused_naming_the_key_and_both_lines(tmp_path):
    appended = BASE + "models:\n  small: {upstream: emu, free: true}\n"
    with pytest.raises(ConfigError, match=r"line 5: key 'models' is given twice \(first on line 3\)"):
        load_config(write(tmp_path, appended), environ={})


def test_a_nested_key_given_twice_is_refused(tmp_path):
    text = BASE + "server:\n  port: 1\n  port: 2\n"
    with pytest.raises(ConfigError, match=r"line 7: key 'port' is given twice \(first on line 6\)"):
        load_config(write(tmp_path, text), environ={})


def test_a_yaml_merge_key_may_override_what_it_brings(tmp_path):
    text = ("upstreams:\n  emu: &emu {kind: openai, base_url: http://127.0.0.1:8400/v1, provider: openai}\n"
            "  emu2: {<<: *emu, base_url: http://127.0.0.1:8401/v1}\nmodels:\n  gpt-4o: {upstream: emu2}\n")
    config = load_config(write(tmp_path, text), environ={})
    assert config.upstreams["emu2"].base_url == "http://127.0.0.1:8401/v1"


def test_a_relative_sqlite_path_is_relative_to_the_config_file(tmp_path, monkeypatch):
    path = write(tmp_path / "conf", "database: sqlite:///data/tb.db\n" + BASE)
    monkeypatch.chdir(tmp_path)
    config = load_config(path, environ={})
    assert config.database == f"sqlite:///{tmp_path / 'conf' / 'data' / 'tb.db'}"
    assert config.state_url == f"memory:///{tmp_path / 'conf' / 'data' / 'tb.db'}.state.json"


def test_absolute_paths_and_urls_are_left_as_they_are(tmp_path):
    text = "database: sqlite:////var/tb.db\nstate: memory:////var/state.json\n" + BASE
    config = load_config(write(tmp_path, text), environ={})
    assert (config.database, config.state) == ("sqlite:////var/tb.db", "memory:////var/state.json")
    text = "database: postgresql://u@h/db\nstate: redis://127.0.0.1:6379/0\n" + BASE
    config = load_config(write(tmp_path, text), environ={})
    assert (config.database, config.state) == ("postgresql://u@h/db", "redis://127.0.0.1:6379/0")


def test_a_relative_snapshot_and_router_file_are_relative_to_the_config_file(tmp_path):
    text = BASE + "state: memory:///state.json\nroutes:\n  auto: {tiers: [gpt-4o], router: routers/r.json}\n"
    config = load_config(write(tmp_path, text), environ={})
    assert config.state == f"memory:///{tmp_path / 'state.json'}"
    assert config.routes["auto"].router == str(tmp_path / "routers" / "r.json")


def test_a_shipped_router_name_is_not_taken_for_a_path(tmp_path):
    config = load_config(write(tmp_path, BASE + "routes:\n  auto: {tiers: [gpt-4o], router: default}\n"), environ={})
    assert config.routes["auto"].router == "default"


def test_an_env_override_spells_a_dash_in_a_name_as_an_underscore(tmp_path):
    config = load_config(write(tmp_path, BASE + "  small: {upstream: emu, free: true}\n"),
                         environ={"TOKENBRAKE_MODELS__GPT_4O__MODEL": "gpt-4o-2024-08-06"})
    assert config.models["gpt-4o"].model == "gpt-4o-2024-08-06"


def test_an_env_override_sets_a_whole_section_as_json(tmp_path):
    environ = {"TOKENBRAKE_MODELS": '{"gpt-4.1": {"upstream": "emu"}, "small": {"upstream": "emu", "free": true}}'}
    config = load_config(write(tmp_path, BASE), environ=environ)
    assert sorted(config.models) == ["gpt-4.1", "small"]


def test_an_error_in_an_overridden_value_names_the_variable(tmp_path):
    with pytest.raises(ConfigError, match=r"server\.port: .*\(set by the environment variable TOKENBRAKE_SERVER__PORT\)"):
        load_config(write(tmp_path, BASE), environ={"TOKENBRAKE_SERVER__PORT": "lots"})


def test_a_reference_error_from_an_override_names_the_variable(tmp_path):
    with pytest.raises(ConfigError, match=r"no upstream named 'elsewhere'.*TOKENBRAKE_MODELS__GPT_4O__UPSTREAM"):
        load_config(write(tmp_path, BASE), environ={"TOKENBRAKE_MODELS__GPT_4O__UPSTREAM": "elsewhere"})


def test_an_override_whose_value_is_not_yaml_names_the_variable(tmp_path):
    with pytest.raises(ConfigError, match="environment variable TOKENBRAKE_MODELS: its value is not valid YAML"):
        load_config(write(tmp_path, BASE), environ={"TOKENBRAKE_MODELS": '{"gpt-4o": '})


def test_an_override_matching_two_names_is_refused(tmp_path):
    text = BASE + "  gpt.4o: {upstream: emu, free: true}\n"
    with pytest.raises(ConfigError, match=r"TOKENBRAKE_MODELS__GPT_4O__FREE: GPT_4O matches several keys \(gpt-4o, gpt.4o\)"):
        load_config(write(tmp_path, text), environ={"TOKENBRAKE_MODELS__GPT_4O__FREE": "true"})


@pytest.mark.parametrize("state", ["localhost:6379", "redis://127.0.0.1:port/0", "postgresql://h/db"])
def test_a_state_url_serve_could_not_open_is_refused(tmp_path, state):
    with pytest.raises(ConfigError, match=r"state: "):
        load_config(write(tmp_path, f"state: {state}\n" + BASE), environ={})
