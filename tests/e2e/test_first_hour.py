"""The first hour of a new user: one default-config rule for every command, paths relative to
the config file, start-up failures as one line naming the port or URL and the cause (quickly,
no traceback), check-config refusing what serve would, and the access log's line per request."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import openai
import pytest
import yaml
from gateway_setup import create_key
from services import postgres_url

from tokenbrake.tools.launch import free_port, wait_healthy

CLI = [sys.executable, "-m", "tokenbrake.cli"]


def config_text(emulator_url: str, **extra) -> str:
    return yaml.safe_dump({
        "database": "sqlite:///ledger.db",
        "upstreams": {"emu": {"kind": "openai", "base_url": emulator_url + "/v1", "provider": "openai"}},
        "models": {"gpt-4o": {"upstream": "emu"}},
        **extra,
    })


def tokenbrake(*args: str, cwd: Path, env: dict | None = None, timeout: float = 30) -> subprocess.CompletedProcess:
    environ = {k: v for k, v in os.environ.items() if k != "TOKENBRAKE_CONFIG"} | (env or {})
    return subprocess.run([*CLI, *args], capture_output=True, text=True, timeout=timeout, cwd=cwd, env=environ)


@pytest.fixture
def folders(tmp_path: Path, emulator) -> tuple[Path, Path]:
    """A config folder holding tokenbrake.yaml (with a relative sqlite path), and another folder."""
    conf, elsewhere = tmp_path / "conf", tmp_path / "elsewhere"
    conf.mkdir()
    elsewhere.mkdir()
    (conf / "tokenbrake.yaml").write_text(config_text(emulator.url))
    return conf, elsewhere


def test_a_relative_database_is_the_config_files_whatever_the_current_directory(folders):
    conf, elsewhere = folders
    create_key(conf / "tokenbrake.yaml", "made-from-the-test-folder")
    listed = tokenbrake("keys", "list", "--json", "--config", str(conf / "tokenbrake.yaml"), cwd=elsewhere)
    assert [key["name"] for key in json.loads(listed.stdout)] == ["made-from-the-test-folder"]
    assert (conf / "ledger.db").exists() and not (elsewhere / "ledger.db").exists()


@pytest.mark.parametrize("how", ["cwd", "env"])
def test_check_config_finds_the_config_as_every_command_does(folders, how):
    conf, elsewhere = folders
    cwd, env = (conf, {}) if how == "cwd" else (elsewhere, {"TOKENBRAKE_CONFIG": str(conf / "tokenbrake.yaml")})
    result = tokenbrake("check-config", cwd=cwd, env=env)
    assert result.returncode == 0, result.stderr
    assert "1 models" in result.stdout


def test_serve_without_a_config_says_how_to_give_one(folders):
    _, elsewhere = folders
    result = tokenbrake("serve", "--port", str(free_port()), cwd=elsewhere)
    assert result.returncode != 0
    assert "no config file tokenbrake.yaml: give one with --config FILE or TOKENBRAKE_CONFIG" in result.stderr


def test_check_config_refuses_a_state_url_serve_could_not_open(folders):
    conf, _ = folders
    (conf / "tokenbrake.yaml").write_text(config_text("http://127.0.0.1:9", state="localhost:6379"))
    result = tokenbrake("check-config", cwd=conf)
    assert result.returncode == 1 and "state: expected memory://" in result.stderr


def failed_start(conf: Path, *args: str, env: dict | None = None) -> tuple[subprocess.CompletedProcess, float]:
    started = time.monotonic()
    result = tokenbrake("serve", *args, cwd=conf, env=env, timeout=15)
    return result, time.monotonic() - started


def assert_one_line(result: subprocess.CompletedProcess, *parts: str) -> None:
    lines = result.stderr.strip().splitlines()
    assert result.returncode != 0
    assert len(lines) == 1, result.stderr
    assert all(part in lines[0] for part in parts), lines[0]
    assert "gateway on http" not in result.stderr  # no banner for a gateway that is not up


def test_a_port_in_use_fails_before_the_banner_naming_the_port(folders):
    conf, _ = folders
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        result, took = failed_start(conf, "--port", str(port))
    assert_one_line(result, f"port {port} on 127.0.0.1 is already in use", "--port")
    assert took < 5


NO_DATABASE = postgres_url().rsplit("/", 1)[0] + "/tb_no_such_database"
NO_REDIS = f"redis://127.0.0.1:{free_port()}/0"


@pytest.mark.parametrize(("variable", "url", "expected"), [
    ("TOKENBRAKE_DATABASE", NO_DATABASE, ("cannot open the database " + NO_DATABASE,
                                          'database "tb_no_such_database" does not exist')),
    ("TOKENBRAKE_STATE", NO_REDIS, ("cannot open the state backend (state:) " + NO_REDIS, "Connect")),
], ids=["database", "redis"])
def test_a_store_that_cannot_be_reached_is_one_line_with_the_url_and_cause(folders, variable, url, expected):
    conf, _ = folders
    result, took = failed_start(conf, "--port", str(free_port()), env={variable: url})
    assert_one_line(result, *expected)
    assert took < 5


@pytest.mark.parametrize("variable", ["TOKENBRAKE_DATABASE", "TOKENBRAKE_STATE"])
def test_a_store_whose_host_never_answers_fails_within_5_s_naming_it(folders, variable):
    """A host that takes the connection and says nothing (a frozen server, a firewall that
    swallows packets): the start does not hang, and the line says what did not answer."""
    conf, _ = folders
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(16)  # the kernel completes each handshake; nobody ever reads or answers
        port = silent.getsockname()[1]
        url = (f"postgresql://postgres@127.0.0.1:{port}/test" if variable == "TOKENBRAKE_DATABASE"
               else f"redis://127.0.0.1:{port}/0")
        result, took = failed_start(conf, "--port", str(free_port()), env={variable: url})
    assert_one_line(result, url, "timeout" if variable == "TOKENBRAKE_DATABASE" else "Timeout")
    assert took < 5, f"took {took:.1f} s"


def test_a_router_file_that_cannot_be_loaded_fails_serve_before_the_banner(folders, emulator):
    conf, _ = folders
    (conf / "tokenbrake.yaml").write_text(config_text(emulator.url, routes={
        "auto": {"tiers": ["gpt-4o"], "router": "routers/missing.json"}}))
    result, _ = failed_start(conf, "--port", str(free_port()))
    assert_one_line(result, f"routes.auto.router: cannot load {conf / 'routers' / 'missing.json'}")


def test_a_command_on_a_database_that_does_not_exist_is_one_line(folders):
    conf, _ = folders
    result = tokenbrake("keys", "list", cwd=conf, env={"TOKENBRAKE_DATABASE": NO_DATABASE})
    assert result.returncode == 1 and len(result.stderr.strip().splitlines()) == 1
    assert 'database "tb_no_such_database" does not exist' in result.stderr


def test_with_log_level_debug_a_failed_start_shows_its_traceback(folders):
    conf, _ = folders
    url = f"redis://127.0.0.1:{free_port()}/0"
    result, _ = failed_start(conf, "--port", str(free_port()), "--log-level", "debug", env={"TOKENBRAKE_STATE": url})
    assert result.returncode != 0 and "Traceback" in result.stderr


class Gateway:
    """`tokenbrake serve` started in the config's folder (no --config), its stderr in a file."""

    def __init__(self, conf: Path, env: dict | None = None) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = conf / "serve.log"
        self.log = self.log_path.open("w")
        self.process = subprocess.Popen([*CLI, "serve", "--port", str(self.port)], cwd=conf, stderr=self.log,
                                        stdout=subprocess.DEVNULL, env={**os.environ, **(env or {})})
        wait_healthy(self.url + "/healthz", self.process)

    def stop(self) -> list[str]:
        """Stops it; its stderr lines."""
        self.process.terminate()
        self.process.wait(timeout=15)
        self.log.close()
        return self.log_path.read_text().splitlines()


def access_lines(lines: list[str]) -> list[str]:
    return [line for line in lines if " INFO tokenbrake.access: " in line]


def test_the_access_log_has_a_line_per_request_and_no_prompt_or_key(folders):
    conf, _ = folders
    key = create_key(conf / "tokenbrake.yaml", "search-app", "--team", "search")
    gateway = Gateway(conf)
    try:
        with openai.OpenAI(base_url=gateway.url + "/v1", api_key=key, max_retries=0) as client:
            reply = client.chat.completions.with_raw_response.create(
                model="gpt-4o", user="alice", messages=[{"role": "user", "content": "a secret prompt"}],
                extra_headers={"X-Tokenbrake-Session": "run-7"})
            with pytest.raises(openai.NotFoundError):
                client.chat.completions.create(model="nope", messages=[{"role": "user", "content": "hi"}])
    finally:
        lines = gateway.stop()
    served, refused = access_lines(lines)
    assert f"request_id={reply.headers['x-request-id']} key=search-app team=search user=alice session=run-7 " \
           "door=openai endpoint=chat model=gpt-4o served=gpt-4o status=200 input_tokens=" in served
    assert " cost_usd=" in served and " ms=" in served
    assert "model=nope status=404 error=not_found" in refused
    assert not any("secret prompt" in line or key in line or key[:12] in line for line in lines)


def one_anonymous_chat(conf: Path, emulator_url: str, log: dict) -> list[str]:
    """The gateway's stderr after one chat, with keys off and this `log:` section."""
    (conf / "tokenbrake.yaml").write_text(config_text(emulator_url, auth={"require_keys": False}, log=log))
    gateway = Gateway(conf)
    try:
        with openai.OpenAI(base_url=gateway.url + "/v1", api_key="none", max_retries=0) as client:
            client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "hi"}])
    finally:
        lines = gateway.stop()
    return lines


def test_the_access_log_in_json(folders, emulator):
    lines = one_anonymous_chat(folders[0], emulator.url, {"format": "json"})
    records = [json.loads(line) for line in lines if line.startswith("{")]
    access = [record for record in records if record["logger"] == "tokenbrake.access"]
    assert len(access) == 1
    assert access[0]["served"] == "gpt-4o" and access[0]["status"] == 200 and access[0]["output_tokens"] > 0


def test_the_access_log_turned_off(folders, emulator):
    assert access_lines(one_anonymous_chat(folders[0], emulator.url, {"access": False})) == []


def test_keys_create_quiet_prints_only_the_key_for_an_environment_variable(folders):
    conf, _ = folders
    result = tokenbrake("keys", "create", "--name", "quiet-app", "-q", cwd=conf)
    assert result.returncode == 0 and result.stdout.startswith("tb-") and len(result.stdout.splitlines()) == 1
    shown = tokenbrake("keys", "create", "--name", "loud-app", cwd=conf).stdout
    assert "models       all" in shown


def test_a_key_prefix_in_json_is_plain_ascii(folders):
    conf, _ = folders
    create_key(conf / "tokenbrake.yaml", "ascii-app")
    (key,) = json.loads(tokenbrake("keys", "list", "--json", cwd=conf).stdout)
    assert key["key_prefix"].isascii() and key["key_prefix"].startswith("tb-")


def test_revoking_a_revoked_key_fails_saying_so(folders):
    conf, _ = folders
    create_key(conf / "tokenbrake.yaml", "gone-app")
    assert tokenbrake("keys", "revoke", "gone-app", cwd=conf).returncode == 0
    again = tokenbrake("keys", "revoke", "gone-app", cwd=conf)
    assert again.returncode == 1 and "key 'gone-app' is already revoked" in again.stderr


def test_budgets_delete_refuses_an_unknown_period_and_says_where_a_config_budget_lives(folders, emulator):
    conf, _ = folders
    (conf / "tokenbrake.yaml").write_text(config_text(emulator.url, budgets=[
        {"scope": "team:search", "amount_usd": 50, "period": "month"}]))
    fortnight = tokenbrake("budgets", "delete", "--scope", "team:search", "--period", "fortnight", cwd=conf)
    assert fortnight.returncode == 2 and "'fortnight' is not one of" in fortnight.stderr
    configured = tokenbrake("budgets", "delete", "--scope", "team:search", "--period", "month", cwd=conf)
    assert configured.returncode == 1 and "budget team:search (month) is in the config file" in configured.stderr


def test_budgets_list_shows_dollars_and_where_each_budget_comes_from(folders, emulator):
    conf, _ = folders
    (conf / "tokenbrake.yaml").write_text(config_text(emulator.url, budgets=[
        {"scope": "team:search", "amount_usd": 50, "period": "month"}]))
    assert tokenbrake("budgets", "set", "--scope", "user:alice", "--amount", "5", cwd=conf).returncode == 0
    lines = tokenbrake("budgets", "list", cwd=conf).stdout.splitlines()
    assert lines[0].split()[:6] == ["scope", "/", "counter", "period", "mode", "from"]
    rows = {line.split()[0]: line.split() for line in lines[1:]}
    assert rows["team:search"][3:5] == ["config", "$50.00"] and rows["user:alice"][3:5] == ["runtime", "$5.00"]


def test_router_train_from_an_empty_ledger_says_which_routes_keep_examples(folders):
    conf, _ = folders
    result = tokenbrake("router", "train", "--from-ledger", "--out", str(conf / "r.json"), cwd=conf)
    assert result.returncode == 1 and "keep_examples: true" in result.stderr


def test_probe_against_nothing_is_one_line(folders):
    _, elsewhere = folders
    result = tokenbrake("probe", "gpt-4o", "--key", "tb-x", "--url", f"http://127.0.0.1:{free_port()}", cwd=elsewhere)
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [result.stderr.strip()] and "no gateway answers at" in result.stderr


def test_an_unknown_model_looked_up_lists_the_models_and_a_client_leaving_mid_body_logs_nothing(folders, emulator):
    conf, _ = folders
    (conf / "tokenbrake.yaml").write_text(config_text(emulator.url, auth={"require_keys": False}))
    gateway = Gateway(conf)
    try:
        with openai.OpenAI(base_url=gateway.url + "/v1", api_key="none", max_retries=0) as client:
            with pytest.raises(openai.NotFoundError, match="Available models: gpt-4o"):
                client.models.retrieve("nope")
        with socket.create_connection(("127.0.0.1", gateway.port)) as sock:
            sock.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n"
                         b"content-length: 1000\r\n\r\n{\"model\": ")
        time.sleep(0.5)
    finally:
        lines = gateway.stop()
    assert not any("Traceback" in line or "ERROR" in line for line in lines), lines


def test_the_admin_api_says_a_config_budget_lives_in_the_config_and_upstream_errors_are_plain(folders, emulator):
    conf, _ = folders
    text = config_text(emulator.url, budgets=[{"scope": "team:search", "amount_usd": 50, "period": "month"}])
    raw = yaml.safe_load(text)
    raw["upstreams"]["dead"] = {"kind": "openai", "base_url": f"http://127.0.0.1:{free_port()}/v1"}
    raw["models"]["dead"] = {"upstream": "dead", "free": True}
    raw["retry"] = {"attempts": 0}
    (conf / "tokenbrake.yaml").write_text(yaml.safe_dump(raw))
    key = create_key(conf / "tokenbrake.yaml", "plain-app")
    gateway = Gateway(conf, env={"TOKENBRAKE_MASTER_KEY": "tb-master-first-hour"})
    try:
        deleted = httpx.delete(gateway.url + "/admin/budgets", params={"scope": "team:search", "period": "month"},
                               headers={"authorization": "Bearer tb-master-first-hour"})
        with openai.OpenAI(base_url=gateway.url + "/v1", api_key=key, max_retries=0) as client:
            with pytest.raises(openai.APIStatusError) as failed:
                client.chat.completions.create(model="dead", messages=[{"role": "user", "content": "hi"}])
    finally:
        gateway.stop()
    assert deleted.status_code == 404 and "is in the config file" in deleted.json()["error"]["message"]
    message = failed.value.message
    assert "could not connect to upstream dead (127.0.0.1:" in message and "connection refused" in message
    assert "ssl:default" not in message
