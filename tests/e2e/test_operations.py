"""Health, metrics and the CLI's own checks."""

import os
import subprocess
import sys

import httpx
import openai
import pytest
import yaml
from gateway_setup import MASTER_KEY, create_key, write_config

from tokenbrake.tools.launch import ChildServer


def test_healthz(gateway):
    assert httpx.get(gateway.url + "/healthz").json() == {"status": "ok"}


def test_metrics_count_requests_tokens_and_cost_by_model(openai_client, gateway):
    openai_client.chat.completions.create(model="small", messages=[{"role": "user", "content": "[[emulator: tokens=10]]"}])
    text = httpx.get(gateway.url + "/metrics").text
    assert 'tokenbrake_requests_total{endpoint="chat",front_door="openai",model="small",status="200"}' in text
    assert 'tokenbrake_tokens_total{model="small",type="output"}' in text
    assert 'tokenbrake_cost_usd_total{model="small"}' in text
    assert "tokenbrake_request_duration_seconds_bucket" in text


def test_serve_refuses_a_config_with_an_unpriced_model(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump({
        "upstreams": {"local": {"kind": "openai", "base_url": "http://127.0.0.1:9/v1"}},
        "models": {"mystery": {"upstream": "local"}},
    }))
    result = subprocess.run([sys.executable, "-m", "tokenbrake.cli", "serve", "--config", str(path)],
                            capture_output=True, text=True, timeout=30)
    assert result.returncode != 0 and "models.mystery: no price" in result.stderr


def test_check_config_loads_each_routes_router(tmp_path):
    path = tmp_path / "routes.yaml"
    path.write_text("upstreams: {u: {kind: openai, base_url: 'http://127.0.0.1:9/v1'}}\n"
                    "models: {a: {upstream: u, free: true}, b: {upstream: u, free: true}}\n"
                    f"routes: {{auto: {{tiers: [a, b], router: {tmp_path / 'missing.json'}}}}}\n")
    result = subprocess.run([sys.executable, "-m", "tokenbrake.cli", "check-config", str(path)],
                            capture_output=True, text=True, timeout=30)
    assert result.returncode != 0 and "routes.auto.router: cannot load" in result.stderr
    path.write_text(path.read_text().replace(str(tmp_path / "missing.json"), "default"))
    result = subprocess.run([sys.executable, "-m", "tokenbrake.cli", "check-config", str(path)],
                            capture_output=True, text=True, timeout=30)
    assert result.returncode == 0 and "1 routes" in result.stdout


def test_check_config_names_the_bad_key(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("upstreams: {}\nmodels: {}\nserver: {prot: 1}\n")
    result = subprocess.run([sys.executable, "-m", "tokenbrake.cli", "check-config", str(path)],
                            capture_output=True, text=True, timeout=30)
    assert result.returncode != 0 and "server.prot: unknown key" in result.stderr


def test_an_upstream_key_left_unset_is_warned_of_and_named_when_the_provider_refuses(tmp_path):
    env = {"TB_TEST_UNSET_UPSTREAM_KEY": "", "TOKENBRAKE_MASTER_KEY": MASTER_KEY}
    with ChildServer(["emulate", "--api-key", "sk-needed"], quiet=True) as strict:
        path = write_config(tmp_path, {
            "database": f"sqlite:///{tmp_path / 'ledger.db'}",
            "upstreams": {"strict": {"kind": "openai", "base_url": strict.url + "/v1",
                                     "api_key_env": "TB_TEST_UNSET_UPSTREAM_KEY"}},
            "models": {"m": {"upstream": "strict", "free": True}},
        })
        checked = subprocess.run([sys.executable, "-m", "tokenbrake.cli", "check-config", str(path)],
                                 capture_output=True, text=True, timeout=30, env={**os.environ, **env})
        assert checked.returncode == 0
        assert ("warning: upstreams.strict.api_key_env names TB_TEST_UNSET_UPSTREAM_KEY, which is not set: "
                "requests to strict go without a key") in checked.stderr
        key = create_key(path, "k")
        with ChildServer(["serve", "--config", str(path)], quiet=True, env=env) as gateway:
            oa = openai.OpenAI(base_url=gateway.url + "/v1", api_key=key, max_retries=0)
            with pytest.raises(openai.InternalServerError, match=r"upstream strict answered 401: You didn't provide an "
                               r"API key.*\(the gateway sent no key: TB_TEST_UNSET_UPSTREAM_KEY is not set\)"):
                oa.chat.completions.create(model="m", messages=[{"role": "user", "content": "hi"}])
