"""/metrics for operators: behind a bearer token when `server.metrics_token_env` names one
(401 without it, and closed when the variable is unset); each budget counter's spent,
reserved and limit as gauges; routing savings and loop counters from real requests."""

from __future__ import annotations

import re

import httpx
import openai
import pytest
from gateway_setup import create_key, gateway_config, write_config

from tokenbrake.tools.launch import ChildServer

TOKEN = "metrics-secret-e2e"


def sample(text: str, name: str, **labels: str) -> float:
    """The value of the one sample of `name` whose labels include `labels`."""
    for line in text.splitlines():
        match = re.fullmatch(rf"{name}\{{(.*)\}} (\S+)", line)
        if match and all(f'{k}="{v}"' in match.group(1) for k, v in labels.items()):
            return float(match.group(2))
    raise AssertionError(f"no {name} {labels} in /metrics")


@pytest.fixture
def gateway(emulator, tmp_path):
    config = gateway_config(emulator.url, f"sqlite:///{tmp_path / 'ledger.db'}")
    config["server"]["metrics_token_env"] = "TEST_METRICS_TOKEN"
    config["budgets"] = [{"scope": "team:ops", "amount_usd": 5, "period": "day"}]
    config["routes"] = {"auto": {"tiers": ["small", "gpt-4o"], "thresholds": [1.0]}}  # every prompt to `small`
    path = write_config(tmp_path, config)
    key = create_key(path, "ops-app", "--team", "ops")
    with ChildServer(["serve", "--config", str(path)], quiet=True, env={"TEST_METRICS_TOKEN": TOKEN}) as server:
        yield server, key


def test_metrics_without_the_token_is_refused(gateway):
    server, _ = gateway
    for headers in ({}, {"authorization": "Bearer wrong"}):
        refused = httpx.get(server.url + "/metrics", headers=headers)
        assert refused.status_code == 401 and "TEST_METRICS_TOKEN" in refused.text


def test_metrics_shows_budget_gauges_and_routing_savings(gateway):
    server, key = gateway
    with openai.OpenAI(base_url=server.url + "/v1", api_key=key, max_retries=0) as client:
        client.chat.completions.create(model="auto", messages=[{"role": "user", "content": "hi"}])
    text = httpx.get(server.url + "/metrics", headers={"authorization": f"Bearer {TOKEN}"}).text
    labels = {"scope": "team:ops", "period": "day", "source": "config", "counter": "team:ops"}
    assert sample(text, "tokenbrake_budget_limit_usd", **labels) == 5.0
    assert sample(text, "tokenbrake_budget_spent_usd", **labels) > 0
    assert sample(text, "tokenbrake_budget_reserved_usd", **labels) == 0
    assert sample(text, "tokenbrake_saved_usd", model="auto", by="routing") > 0


def test_metrics_is_closed_when_its_token_variable_is_unset(emulator, tmp_path):
    config = gateway_config(emulator.url, f"sqlite:///{tmp_path / 'ledger.db'}")
    config["server"]["metrics_token_env"] = "TEST_METRICS_TOKEN_UNSET"
    with ChildServer(["serve", "--config", str(write_config(tmp_path, config))], quiet=True) as server:
        refused = httpx.get(server.url + "/metrics")
    assert refused.status_code == 401 and "TEST_METRICS_TOKEN_UNSET is not set" in refused.text
