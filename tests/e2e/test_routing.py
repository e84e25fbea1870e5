"""Virtual models through a real gateway and the official SDKs: the router sends an easy
prompt to the cheap tier and a hard one to the strong tier; a cascade keeps a cheap answer
that passes its check and escalates one that fails (streamed and not, both front doors); a
tier that fails or times out falls through to the next; a downgrade budget caps the router's
choice; a key's requests for gpt-4o are rerouted; the ledger has a row per upstream call with
the cost saved, and the cascade's outcomes become training examples."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
import uuid
from decimal import Decimal

import anthropic
import httpx
import openai
import pytest
from gateway_setup import MASTER_KEY, UPSTREAM_KEYS, create_key, gateway_config, write_config

from tokenbrake.router.classifier import train_router
from tokenbrake.routing.outcomes import labelled_examples
from tokenbrake.storage import open_database
from tokenbrake.tools.launch import ChildServer

EASY = ["hi", "thanks!", "What is 2+2?", "Say hello in French.", "What colour is the sky?", "Name a fruit."]
HARD = [
    "Prove that the square root of 2 is irrational, step by step, then generalise the proof to every prime "
    "and write a Python function that checks it.",
    "Design a distributed rate limiter across regions; explain the consistency trade-offs, write the Lua "
    "script for Redis, and analyse its complexity.",
    "Derive the closed form of the Fibonacci sequence using generating functions, prove it by induction, "
    "and implement it in Rust with big integers.",
    "Write a lock-free queue in C++ and prove it is linearizable; explain each memory ordering you use and why.",
]
EASY_PROMPT = "hello there"
HARD_PROMPT = ("Prove that there are infinitely many primes, then write a Python function implementing the sieve "
               "and analyse its complexity step by step.")
SCHEMA = {"type": "object", "required": ["city"], "properties": {"city": {"type": "string"}}}


def user(text: str) -> list[dict]:
    return [{"role": "user", "content": text}]


def say(text: str) -> str:
    """An emulator directive making every upstream answer exactly `text`."""
    return "[[emulator: text=" + json.dumps(text) + "]]"


@pytest.fixture(scope="module")
def routed(emulator, tmp_path_factory):
    """A gateway with virtual models of every strategy; yields (gateway, config path, database url)."""
    folder = tmp_path_factory.mktemp("routing")
    router_path = folder / "toy-router.json"
    train_router([(p, True) for p in EASY] + [(p, False) for p in HARD], embedding=False, l2=0.1).save(router_path)
    database = f"sqlite:///{folder / 'ledger.db'}"
    config = gateway_config(emulator.url, database)
    config["ledger"] = {"flush_interval_s": 0.05}
    config["models"]["frontier"] = {"upstream": "emu-anthropic", "model": "claude-opus-4",
                                    "price": {"input_per_mtok": 15, "output_per_mtok": 75}}
    config["routes"] = {
        "auto": {"tiers": ["small", "gpt-4o"], "router": str(router_path)},
        "json-first": {"tiers": ["small", "gpt-4o"], "strategy": "cascade", "keep_examples": True,
                       "checks": [{"json_schema": SCHEMA}]},
        "regex-first": {"tiers": ["small", "frontier"], "strategy": "cascade", "checks": [{"regex": r"^OK\b"}]},
        "sure-first": {"tiers": ["small", "gpt-4o"], "strategy": "cascade", "checks": [{"min_mean_logprob": -0.5}]},
        "graded": {"tiers": ["small", "gpt-4o"], "strategy": "cascade", "checks": [{"grader": "small"}]},
        "sturdy": {"tiers": ["slow", "small"], "strategy": "fallback"},
        "reroute": {"tiers": ["small", "gpt-4o"], "router": str(router_path),
                    "reroute": [{"scope": "key:rerouted", "models": ["gpt-4o"]}]},
    }
    config["budgets"] = [{"scope": "team:frugal", "amount_usd": "1", "mode": "downgrade", "downgrade_to": "small",
                          "downgrade_below_usd": "5"},  # always below: every request is downgraded
                         {"scope": "team:cascading", "amount_usd": "10", "period": "month"}]
    path = write_config(folder, config)
    keys = {name: create_key(path, name, "--team", team)
            for name, team in [("router-app", "apps"), ("rerouted", "apps"), ("frugal-app", "frugal"),
                               ("cascade-app", "cascading")]}
    env = {**UPSTREAM_KEYS, "TOKENBRAKE_MASTER_KEY": MASTER_KEY}
    with ChildServer(["serve", "--config", str(path)], quiet=True, env=env) as gateway:
        yield gateway, path, database, keys


@pytest.fixture
def oa(routed):
    gateway, _, _, keys = routed
    with openai.OpenAI(base_url=gateway.url + "/v1", api_key=keys["router-app"], max_retries=0) as client:
        yield client


@pytest.fixture
def an(routed):
    gateway, _, _, keys = routed
    with anthropic.Anthropic(base_url=gateway.url, api_key=keys["router-app"], max_retries=0) as client:
        yield client


def read(database: str, query):
    """`await query(db)` on the gateway's database, from the test's side."""
    async def go():
        db = await open_database(database)
        try:
            return await query(db)
        finally:
            await db.close()

    return asyncio.run(go())


def waiting(read_once, enough, timeout_s: float = 5.0):
    """What `read_once()` returns once `enough` of it is there (the writers work in batches)."""
    deadline = time.monotonic() + timeout_s
    while not enough(found := read_once()) and time.monotonic() < deadline:
        time.sleep(0.05)
    return found


def ledger_rows(database: str, request_id: str, count: int) -> list:
    """The ledger rows of one request (its own and its earlier calls'), once the writer has them."""
    async def mine(db):
        return [r for r in await db.ledger.rows(limit=500) if r.request_id.split(".")[0] == request_id]

    return sorted(waiting(lambda: read(database, mine), lambda rows: len(rows) >= count), key=lambda r: r.request_id)


def test_models_lists_the_virtual_models(oa):
    names = {model.id for model in oa.models.list()}
    assert {"auto", "json-first", "sturdy", "small", "gpt-4o"} <= names


def test_router_sends_an_easy_prompt_to_the_cheap_tier(oa):
    raw = oa.chat.completions.with_raw_response.create(model="auto", messages=user(EASY_PROMPT))
    assert raw.headers["x-tokenbrake-served-by"] == "small"
    assert raw.parse().model == "qwen2.5-3b-instruct"  # the served model's own name
    assert "strategy=router; tier=0" in raw.headers["x-tokenbrake-route"]


def test_router_sends_a_hard_prompt_to_the_strong_tier_on_both_front_doors(oa, an):
    raw = oa.chat.completions.with_raw_response.create(model="auto", messages=user(HARD_PROMPT))
    assert raw.headers["x-tokenbrake-served-by"] == "gpt-4o"
    assert raw.parse().model == "gpt-4o"
    raw = an.messages.with_raw_response.create(model="auto", max_tokens=50, messages=user(HARD_PROMPT))
    assert raw.headers["x-tokenbrake-served-by"] == "gpt-4o"
    assert raw.parse().model == "gpt-4o"


def test_a_routed_stream_says_which_model_served_it(an):
    with an.messages.stream(model="auto", max_tokens=50, messages=user(EASY_PROMPT)) as stream:
        assert stream.response.headers["x-tokenbrake-served-by"] == "small"
        assert stream.get_final_message().model == "qwen2.5-3b-instruct"


def test_routed_calls_record_the_cost_saved_against_the_strongest_tier(routed, oa):
    _, _, database, _ = routed
    raw = oa.chat.completions.with_raw_response.create(model="auto", messages=user(EASY_PROMPT))
    [row] = ledger_rows(database, raw.headers["x-request-id"], 1)
    usage = raw.parse().usage
    # gpt-4o's catalog price is $2.50 / $10 per million; small's $0.02 / $0.06
    at_gpt4o = (Decimal(usage.prompt_tokens) * Decimal("2.5") + Decimal(usage.completion_tokens) * 10) / 10**6
    assert (row.requested_model, row.served_model) == ("auto", "small")
    assert row.saved_usd == at_gpt4o - row.cost_usd > 0


def test_cascade_keeps_a_cheap_answer_that_passes_the_schema(routed, oa):
    _, _, database, _ = routed
    raw = oa.chat.completions.with_raw_response.create(
        model="json-first", messages=user("Where is the Louvre? " + say('{"city": "Paris"}')))
    assert raw.headers["x-tokenbrake-served-by"] == "small"
    assert json.loads(raw.parse().choices[0].message.content) == {"city": "Paris"}
    [row] = ledger_rows(database, raw.headers["x-request-id"], 1)
    assert row.served_model == "small" and row.saved_usd > 0


def test_cascade_escalates_an_answer_that_fails_the_schema_and_records_both_calls(routed, oa):
    _, _, database, _ = routed
    raw = oa.chat.completions.with_raw_response.create(
        model="json-first", messages=user("Where is the Louvre? " + say('{"town": "Paris"}')))
    assert raw.headers["x-tokenbrake-served-by"] == "gpt-4o"
    final, rejected = ledger_rows(database, raw.headers["x-request-id"], 2)
    assert (final.served_model, rejected.served_model) == ("gpt-4o", "small")
    assert rejected.request_id == final.request_id + ".1"
    assert rejected.cost_usd > 0 and rejected.saved_usd == -rejected.cost_usd
    assert "json_schema" in rejected.error
    assert final.saved_usd == 0  # served by the reference model itself


def test_a_budget_is_charged_for_every_call_a_cascade_makes(routed):
    gateway, _, database, keys = routed
    with openai.OpenAI(base_url=gateway.url + "/v1", api_key=keys["cascade-app"], max_retries=0) as client:
        raw = client.chat.completions.with_raw_response.create(model="json-first", messages=user("Where? " + say("?")))
    rows = ledger_rows(database, raw.headers["x-request-id"], 2)
    budgets = httpx.get(gateway.url + "/admin/budgets", headers={"authorization": f"Bearer {MASTER_KEY}"}).json()
    [counter] = next(b for b in budgets["data"] if b["scope"] == "team:cascading")["counters"]
    assert len(rows) == 2 and Decimal(counter["spent_usd"]) == sum(row.cost_usd for row in rows)


def cost_metric(url: str, model: str) -> float:
    """tokenbrake_cost_usd_total for one model, from /metrics."""
    prefix = f'tokenbrake_cost_usd_total{{model="{model}"}} '
    lines = [line for line in httpx.get(url + "/metrics").text.splitlines() if line.startswith(prefix)]
    return float(lines[0][len(prefix):]) if lines else 0.0


def attempts_metric(url: str) -> float:
    """tokenbrake_upstream_attempts_total, summed over upstreams and outcomes."""
    return sum(float(line.rsplit(" ", 1)[1]) for line in httpx.get(url + "/metrics").text.splitlines()
               if line.startswith("tokenbrake_upstream_attempts_total{"))


def test_the_metrics_count_a_cascades_rejected_call_once(routed, oa):
    gateway, _, database, _ = routed
    before, attempts = cost_metric(gateway.url, "small"), attempts_metric(gateway.url)
    raw = oa.chat.completions.with_raw_response.create(
        model="json-first", messages=user("Where is the Prado? " + say('{"town": "Madrid"}')))
    _, rejected = ledger_rows(database, raw.headers["x-request-id"], 2)
    assert cost_metric(gateway.url, "small") - before == pytest.approx(float(rejected.cost_usd), rel=1e-6)
    assert attempts_metric(gateway.url) - attempts == 2  # the rejected call and the one that served


def test_cascade_streams_a_kept_answer_to_an_openai_client(oa):
    stream = oa.chat.completions.create(model="json-first", stream=True, stream_options={"include_usage": True},
                                        messages=user("Where? " + say('{"city": "Rome"}')))
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert json.loads(text) == {"city": "Rome"}
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens > 0
    assert {c.model for c in chunks} == {"qwen2.5-3b-instruct"}


def test_cascade_streams_an_escalated_answer_to_an_openai_client(oa):
    with oa.chat.completions.with_streaming_response.create(
            model="json-first", stream=True, messages=user("Where? " + say("somewhere"))) as raw:
        assert raw.headers["x-tokenbrake-served-by"] == "gpt-4o"
        chunks = list(raw.parse())
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "somewhere"


def test_cascade_regex_on_the_anthropic_front_door_kept_and_escalated_streams(routed, an):
    _, _, database, _ = routed
    with an.messages.stream(model="regex-first", max_tokens=50, messages=user("Status? " + say("OK all good"))) as s:
        assert s.get_final_text() == "OK all good"
        assert s.response.headers["x-tokenbrake-served-by"] == "small"
        assert s.get_final_message().usage.output_tokens > 0
    with an.messages.stream(model="regex-first", max_tokens=50, messages=user("Status? " + say("not sure"))) as s:
        assert s.get_final_text() == "not sure"
        assert s.get_final_message().model == "claude-opus-4"
        request_id = s.response.headers["x-request-id"]
    final, rejected = ledger_rows(database, request_id, 2)
    assert (final.served_model, final.stream, rejected.served_model, rejected.stream) == ("frontier", True, "small", False)


def test_cascade_regex_on_the_anthropic_front_door_not_streamed(an):
    kept = an.messages.with_raw_response.create(model="regex-first", max_tokens=50,
                                                messages=user("Status? " + say("OK fine")))
    assert kept.headers["x-tokenbrake-served-by"] == "small"
    assert kept.parse().content[0].text == "OK fine"
    escalated = an.messages.with_raw_response.create(model="regex-first", max_tokens=50,
                                                     messages=user("Status? " + say("hmm")))
    assert escalated.headers["x-tokenbrake-served-by"] == "frontier"


def test_cascade_keeps_a_confident_answer_and_escalates_an_unsure_one(oa, an):
    sure = oa.chat.completions.with_raw_response.create(model="sure-first", messages=user("Hi [[emulator: confidence=0.9]]"))
    assert sure.headers["x-tokenbrake-served-by"] == "small"
    assert sure.parse().choices[0].logprobs is None  # asked for by the cascade, not by the client
    unsure = oa.chat.completions.with_raw_response.create(model="sure-first",
                                                          messages=user("Hi [[emulator: confidence=0.2]]"))
    assert unsure.headers["x-tokenbrake-served-by"] == "gpt-4o"
    # Anthropic client, OpenAI-style upstream: the logprobs are asked for all the same
    sure = an.messages.with_raw_response.create(model="sure-first", max_tokens=50,
                                                messages=user("Hi [[emulator: confidence=0.9]]"))
    assert sure.headers["x-tokenbrake-served-by"] == "small"


def test_cascade_grader_decides_and_its_call_is_in_the_ledger(routed, oa):
    _, _, database, _ = routed
    yes = oa.chat.completions.with_raw_response.create(model="graded", messages=user("Q " + say("yes")))
    assert yes.headers["x-tokenbrake-served-by"] == "small"
    no = oa.chat.completions.with_raw_response.create(model="graded", messages=user("Q " + say("no")))
    assert no.headers["x-tokenbrake-served-by"] == "gpt-4o"
    final, *earlier = ledger_rows(database, no.headers["x-request-id"], 3)
    assert final.served_model == "gpt-4o"
    assert sorted(row.error for row in earlier) == ["not kept by the cascade (grader small: 'no')",
                                                    "the cascade's grader small: 'no'"]
    assert all(row.served_model == "small" and row.cost_usd > 0 for row in earlier)


def test_fallback_strategy_moves_on_after_a_503(routed, oa):
    marker = f"fb-{uuid.uuid4().hex[:8]}"
    # the first tier's upstream answers 503 to its first try and both retries; the next tier serves
    raw = oa.chat.completions.with_raw_response.create(
        model="sturdy", messages=user(f"hi [[emulator: status=503 fail_first=3 id={marker}]]"))
    assert raw.headers["x-tokenbrake-served-by"] == "small"


def test_fallback_strategy_moves_on_after_a_timeout(oa):
    raw = oa.chat.completions.with_raw_response.create(model="sturdy", messages=user("hi [[emulator: hang=1.3]]"))
    assert raw.headers["x-tokenbrake-served-by"] == "small"


def test_a_downgrade_budget_caps_the_routers_choice(routed):
    gateway, _, _, keys = routed
    with openai.OpenAI(base_url=gateway.url + "/v1", api_key=keys["frugal-app"], max_retries=0) as client:
        raw = client.chat.completions.with_raw_response.create(model="auto", messages=user(HARD_PROMPT))
    assert "tier=1" in raw.headers["x-tokenbrake-route"]  # the router wanted the strong tier…
    assert raw.headers["x-tokenbrake-served-by"] == "small"  # …the team's budget served the cheap one
    assert raw.headers["x-tokenbrake-downgraded"] == "team:frugal"


def test_a_keys_requests_for_gpt4o_are_rerouted(routed, oa):
    gateway, _, database, keys = routed
    with openai.OpenAI(base_url=gateway.url + "/v1", api_key=keys["rerouted"], max_retries=0) as client:
        raw = client.chat.completions.with_raw_response.create(model="gpt-4o", messages=user(EASY_PROMPT))
    assert raw.headers["x-tokenbrake-served-by"] == "small"
    [row] = ledger_rows(database, raw.headers["x-request-id"], 1)
    assert (row.requested_model, row.served_model) == ("gpt-4o", "small") and row.saved_usd > 0
    # another key asking for gpt-4o gets gpt-4o
    other = oa.chat.completions.with_raw_response.create(model="gpt-4o", messages=user(EASY_PROMPT))
    assert other.headers["x-tokenbrake-served-by"] == "gpt-4o" and "x-tokenbrake-route" not in other.headers


def test_cascade_outcomes_become_training_examples(routed, oa):
    _, path, database, _ = routed
    marker = uuid.uuid4().hex[:8]
    oa.chat.completions.create(model="json-first", messages=user(f"kept {marker} " + say('{"city": "Oslo"}')))
    oa.chat.completions.create(model="json-first", messages=user(f"escalated {marker} " + say("Oslo")))

    examples = waiting(lambda: read(database, labelled_examples),
                       lambda found: sum(marker in prompt for prompt, _ in found) == 2)
    mine = {prompt.split()[0]: good for prompt, good in examples if marker in prompt}
    assert mine == {"kept": True, "escalated": False}
    out = path.parent / "from-ledger.json"
    result = subprocess.run([sys.executable, "-m", "tokenbrake.cli", "router", "train", "--from-ledger",
                             "--out", str(out), "--config", str(path)], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert f"on {len(read(database, labelled_examples))} examples" in result.stderr and out.exists()


def test_usage_report_shows_the_saved_column(routed, oa):
    _, path, _, _ = routed
    oa.chat.completions.create(model="auto", messages=user(EASY_PROMPT))
    time.sleep(0.3)
    result = subprocess.run([sys.executable, "-m", "tokenbrake.cli", "usage", "--by", "model", "--json",
                             "--config", str(path)], capture_output=True, text=True, check=True, timeout=60)
    rows = {row["model"]: row for row in json.loads(result.stdout)["data"]}
    assert Decimal(rows["small"]["saved_usd"]) > 0


def test_cascade_serves_a_responses_client_kept_and_escalated_answers(routed, oa):
    kept = oa.responses.create(model="json-first", input="Where? " + say('{"city": "Rome"}'))
    assert json.loads(kept.output_text) == {"city": "Rome"} and kept.usage.output_tokens > 0
    raw = oa.responses.with_raw_response.create(model="json-first", input="Where? " + say("somewhere"))
    assert raw.headers["x-tokenbrake-served-by"] == "gpt-4o" and raw.parse().output_text == "somewhere"
    with oa.responses.stream(model="json-first", input="Where? " + say('{"city": "Oslo"}')) as stream:
        events = list(stream)
        final = stream.get_final_response()
    assert events[0].type == "response.created" and events[-1].type == "response.completed"
    assert [e.sequence_number for e in events] == list(range(len(events)))
    assert json.loads(final.output_text) == {"city": "Oslo"}
    assert oa.responses.retrieve(final.id).output_text == final.output_text  # kept like any other response
