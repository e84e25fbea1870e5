"""Agent sessions through real gateways and the official SDKs: session limits, loop detection
and its actions, the admin API and the CLI, and two gateways sharing one session in Redis.

Each test uses its own session id (and, where the rule is per key, its own key), so tests on
the module's gateway do not count against each other."""

from __future__ import annotations

import json
import secrets
import sqlite3
import subprocess
import sys
import time
import uuid

import anthropic
import httpx
import openai
import pytest
import redis
from agent_turns import SYSTEM, looping, messages, progressing, tools
from gateway_setup import MASTER_KEY, create_key, gateway_config, write_config
from services import redis_url
from test_budgets import Receiver

from tokenbrake.core import Format
from tokenbrake.tools.launch import ChildServer

REDIS_URL = redis_url()
RULES = [
    {"scope": "key:capped", "max_calls": 3},
    {"scope": "key:spender", "max_cost_usd": "0.002"},
    {"scope": "key:watched", "on_loop": "stop"},
    {"scope": "key:warned", "on_loop": "warn"},
    {"scope": "key:throttled", "on_loop": "throttle"},
]
THROTTLE = {"throttle_initial_s": 0.2, "throttle_max_s": 0.4}


class Setup:
    """A running gateway with RULES and a key per rule."""

    def __init__(self, emulator: ChildServer, folder, state: str, rules: list[dict], keys: list[str],
                 webhook_url: str | None = None) -> None:
        config = gateway_config(emulator.url, f"sqlite:///{folder / 'ledger.db'}")
        config["state"] = state
        config["sessions"] = {"rules": rules, **THROTTLE}
        config["alerts"] = {"webhook_url": webhook_url, "timeout_s": 2}
        self.path = write_config(folder, config)
        self.keys = {name: create_key(self.path, name, "--team", "agents") for name in keys}
        self.gateway = self.start()

    def start(self) -> ChildServer:
        return ChildServer(["serve", "--config", str(self.path)], quiet=True, env={"TOKENBRAKE_MASTER_KEY": MASTER_KEY})

    def openai(self, key: str, session: str, url: str | None = None) -> openai.OpenAI:
        return openai.OpenAI(base_url=(url or self.gateway.url) + "/v1", api_key=self.keys[key], max_retries=0,
                             default_headers={"X-Tokenbrake-Session": session})

    def anthropic(self, key: str) -> anthropic.Anthropic:
        return anthropic.Anthropic(base_url=self.gateway.url, api_key=self.keys[key], max_retries=0)

    def admin(self, method: str, path: str, **params) -> httpx.Response:
        return httpx.request(method, self.gateway.url + path, params=params,
                             headers={"Authorization": f"Bearer {MASTER_KEY}"})

    def cli(self, *args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "tokenbrake.cli", "sessions", *args, "--config", str(self.path)],
                              capture_output=True, text=True, timeout=60)


@pytest.fixture(scope="module")
def setup(emulator, tmp_path_factory):
    receiver = Receiver()
    built = Setup(emulator, tmp_path_factory.mktemp("sessions"), "memory://", RULES,
                  ["capped", "spender", "watched", "warned", "throttled"], webhook_url=receiver.url)
    built.alerts = receiver.received
    yield built
    built.gateway.stop()
    receiver.close()


def session_id() -> str:
    return f"run-{uuid.uuid4().hex[:10]}"


def agent_call(client: openai.OpenAI, steps, raw: bool = False):
    create = client.chat.completions.with_raw_response.create if raw else client.chat.completions.create
    return create(model="gpt-4o", messages=[{"role": "system", "content": SYSTEM}, *messages(Format.OPENAI, steps)],
                  tools=tools(Format.OPENAI, ["read_file", "search_files"]), max_tokens=32)


def run_agent(client: openai.OpenAI, steps) -> tuple[int, openai.RateLimitError | None]:
    """The agent's calls, one per prefix of its steps, until one is refused: (calls made, refusal)."""
    for n in range(len(steps) + 1):
        try:
            agent_call(client, steps[:n])
        except openai.RateLimitError as refused:
            return n, refused
    return len(steps) + 1, None


def test_a_session_over_its_call_limit_is_refused_with_a_message_naming_it(setup):
    session = session_id()
    with setup.openai("capped", session) as client:
        for _ in range(3):
            client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "hi"}])
        with pytest.raises(openai.RateLimitError) as refused:
            client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "hi"}])
    assert refused.value.status_code == 429
    assert refused.value.body["code"] == "session_limit_exceeded"
    assert (f"Session '{session}' of key 'capped' reached its max_calls limit (sessions rule key:capped): "
            f"3 calls made, limit 3.") in refused.value.message
    with setup.openai("capped", session_id()) as client:  # a new session starts afresh
        client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "hi"}])


def test_a_session_over_its_cost_limit_is_refused_anthropic_metadata_naming_it(setup):
    session = session_id()
    with setup.anthropic("spender") as client:
        client.messages.create(model="claude-fast", max_tokens=1000, metadata={"session_id": session},
                               messages=[{"role": "user", "content": "write at length [[emulator: tokens=800]]"}])
        with pytest.raises(anthropic.RateLimitError) as refused:
            client.messages.create(model="claude-fast", max_tokens=10, metadata={"session_id": session},
                                   messages=[{"role": "user", "content": "more"}])
    assert refused.value.body["error"]["type"] == "rate_limit_error"
    assert f"Session '{session}' of key 'spender' reached its max_cost_usd limit" in refused.value.message
    assert "limit $0.002." in refused.value.message


def test_a_tool_call_loop_is_stopped_within_the_configured_repetitions(setup):
    session = session_id()
    with setup.openai("watched", session) as client:
        made, refused = run_agent(client, looping(30))
    assert refused is not None and made <= 1 + 4 + 1  # the first call, then at most 4 repetitions and the stop
    assert refused.body["code"] == "session_stopped"
    assert "stopped by loop detection (repeated_tool_call" in refused.message
    assert "Evidence: search_files(query=…) called" in refused.message
    assert "midnight rollover" not in refused.message  # no prompt content kept unless configured
    shown = setup.admin("GET", f"/admin/sessions/{session}", key="watched").json()
    assert (shown["status"], shown["calls"]) == ("stopped", made)
    assert shown["verdicts"][-1]["kind"] == "repeated_tool_call"


def test_a_tool_call_loop_through_the_anthropic_door_is_stopped_too(setup):
    session, steps = session_id(), looping(30)
    with setup.anthropic("watched") as client:
        for n in range(len(steps) + 1):
            try:
                client.messages.create(model="claude-fast", max_tokens=32, system=SYSTEM,
                                       metadata={"session_id": session}, tools=tools(Format.ANTHROPIC, ["search_files"]),
                                       messages=messages(Format.ANTHROPIC, steps[:n]))
            except anthropic.RateLimitError as refused:
                assert "stopped by loop detection (repeated_tool_call" in refused.message
                break
    assert n <= 5


def test_a_streamed_call_adds_its_tokens_and_cost_to_the_session(setup):
    session = session_id()
    with setup.openai("capped", session) as client:
        chunks = list(client.chat.completions.create(model="gpt-4o", stream=True,
                                                     messages=[{"role": "user", "content": "hi [[emulator: tokens=50]]"}]))
    assert chunks
    shown = setup.admin("GET", f"/admin/sessions/{session}", key="capped").json()
    assert shown["calls"] == 1 and shown["tokens"] > 50 and float(shown["cost_usd"]) > 0


def test_a_progressing_agent_of_65_calls_is_not_stopped(setup):
    with setup.openai("watched", session_id()) as client:
        made, refused = run_agent(client, progressing(64))
    assert (made, refused) == (65, None)


def test_warn_sets_the_loop_header_flags_the_ledger_and_lets_the_calls_through(setup):
    session = session_id()
    with setup.openai("warned", session) as client:
        headers = [agent_call(client, looping(n), raw=True).headers.get("x-tokenbrake-loop") for n in range(8)]
    assert headers[:4] == [None] * 4
    assert headers[-1].startswith("suspected; kind=repeated_tool_call; repetitions=")
    flags = ledger_flags(setup, session, expect=8)
    assert flags == [None if h is None else "repeated_tool_call" for h in headers]
    deadline = time.monotonic() + 5
    while not any(a["session"] == session for a in setup.alerts) and time.monotonic() < deadline:
        time.sleep(0.05)  # alerts are sent in the background
    alerts = [a for a in setup.alerts if a["session"] == session]  # once per session and kind, not per call
    assert [(a["type"], a["key"], a["kind"], a["action"]) for a in alerts] == [
        ("session_loop", "warned", "repeated_tool_call", "warn")]
    assert "search_files" in alerts[0]["evidence"]


def test_throttle_slows_a_looping_session_down_more_with_each_repetition_up_to_its_bound(setup):
    timings = []
    with setup.openai("throttled", session_id()) as client:
        for n in range(9):
            started = time.monotonic()
            raw = agent_call(client, looping(n), raw=True)
            timings.append((time.monotonic() - started, raw.headers.get("x-tokenbrake-loop")))
    assert all(flag is None for _, flag in timings[:4])
    looping_calls = timings[4:]
    assert all(flag and flag.startswith("suspected; kind=repeated_tool_call") for _, flag in looping_calls)
    # throttle_initial_s, then doubled and held at throttle_max_s (the upper bounds leave room for a loaded machine)
    assert 0.2 <= looping_calls[0][0] < 0.4 + 0.5
    assert all(0.4 <= seconds < 0.4 + 0.5 for seconds, _ in looping_calls[1:])


def ledger_flags(setup: Setup, session: str, expect: int) -> list[str | None]:
    """The loop flag of each of the session's ledger rows, oldest first, once all are written."""
    database = setup.path.parent / "ledger.db"
    deadline = time.monotonic() + 10
    while True:
        with sqlite3.connect(database) as db:
            rows = db.execute("SELECT loop_suspected FROM ledger WHERE session_id = ? ORDER BY id", (session,)).fetchall()
        if len(rows) >= expect or time.monotonic() > deadline:
            return [flag for (flag,) in rows]
        time.sleep(0.1)


def test_a_stopped_session_flows_again_once_resumed_through_the_admin_api(setup):
    session = session_id()
    steps = looping(30)
    with setup.openai("watched", session) as client:
        made, refused = run_agent(client, steps)
        assert refused is not None
        with pytest.raises(openai.RateLimitError, match="is stopped"):
            agent_call(client, steps[:made] + progressing(1))
        listed = setup.admin("GET", "/admin/sessions", key="watched").json()["data"]
        assert {"session": session, "status": "stopped"}.items() <= next(s for s in listed if s["session"] == session).items()
        resumed = setup.admin("POST", f"/admin/sessions/{session}/resume")
        assert resumed.status_code == 200 and resumed.json()["status"] == "active"
        agent_call(client, steps[:made] + progressing(1))  # unstuck: it reads a file


def test_a_session_id_with_slashes_is_addressed_by_the_admin_api(setup):
    session = "ci/" + session_id()
    with setup.openai("watched", session) as client:
        client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "hi"}])
    quoted = session.replace("/", "%2F")
    assert setup.admin("GET", f"/admin/sessions/{quoted}", key="watched").json()["session"] == session
    assert setup.admin("POST", f"/admin/sessions/{session}/stop", key="watched").json()["status"] == "stopped"
    assert setup.admin("POST", f"/admin/sessions/{quoted}/resume", key="watched").json()["status"] == "active"


def test_the_admin_api_needs_the_master_key_and_names_unknown_sessions(setup):
    assert httpx.get(setup.gateway.url + "/admin/sessions").status_code == 401
    missing = setup.admin("POST", "/admin/sessions/no-such-run/stop")
    assert missing.status_code == 404 and "no live session 'no-such-run'" in missing.json()["error"]["message"]


def test_a_session_of_key_a_is_invisible_to_key_b_with_the_same_id(setup):
    session = session_id()
    with setup.openai("watched", session) as client:
        run_agent(client, looping(30))
    with setup.openai("capped", session) as client:  # the same session id, another tenant
        client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "hi"}])
    listed = {(s["key"], s["status"], s["calls"]) for s in setup.admin("GET", "/admin/sessions").json()["data"]
              if s["session"] == session}
    assert ("capped", "active", 1) in listed and len(listed) == 2
    assert [s["session"] for s in setup.admin("GET", "/admin/sessions", key="capped").json()["data"]].count(session) == 1


@pytest.fixture(scope="module")
def shared(emulator, tmp_path_factory):
    """Two gateways sharing sessions in Redis: a call limit of 4 and loop stop."""
    prefix = f"tbe2e-sess-{secrets.token_hex(6)}:"
    built = Setup(emulator, tmp_path_factory.mktemp("sessions-redis"), f"{REDIS_URL}?prefix={prefix}",
                  [{"scope": "key:twin", "max_calls": 4}, {"scope": "key:watched", "on_loop": "stop"}],
                  ["twin", "watched"])
    second = built.start()
    yield built, second
    second.stop()
    built.gateway.stop()
    client = redis.Redis.from_url(REDIS_URL)
    keys = list(client.scan_iter(match=prefix + "*"))
    if keys:
        client.delete(*keys)
    client.close()


def test_two_gateways_sharing_redis_count_one_session_together(shared):
    setup, second = shared
    session = session_id()
    one, two = setup.openai("twin", session), setup.openai("twin", session, url=second.url)
    for client in (one, two, one, two):
        client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "hi"}])
    for client in (one, two):
        with pytest.raises(openai.RateLimitError, match="4 calls made, limit 4"):
            client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "hi"}])


def test_a_loop_stopped_on_one_gateway_is_stopped_on_the_other_until_the_cli_resumes_it(shared):
    setup, second = shared
    session = session_id()
    steps = looping(30)
    with setup.openai("watched", session) as first, setup.openai("watched", session, url=second.url) as other:
        made, refused = run_agent(first, steps)
        assert refused is not None
        with pytest.raises(openai.RateLimitError, match="is stopped"):
            agent_call(other, steps[:made])
        shown = json.loads(setup.cli("show", session, "--json").stdout)
        assert (shown["status"], shown["key"]) == ("stopped", "watched")
        resumed = setup.cli("resume", session)
        assert resumed.returncode == 0, resumed.stderr
        assert resumed.stdout.strip() == f"resumed session {session} of key watched"
        agent_call(other, steps[:made] + progressing(1))
        stopped = setup.cli("stop", session, "--key", "watched")
        assert stopped.returncode == 0, stopped.stderr
        with pytest.raises(openai.RateLimitError, match="stopped by an operator"):
            agent_call(first, steps[:made] + progressing(2))
    listed = setup.cli("list", "--key", "watched")
    assert session in listed.stdout and "stopped" in listed.stdout
