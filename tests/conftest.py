"""Shared fixtures: real `tokenbrake emulate` and `tokenbrake serve` processes on loopback.

End-to-end tests talk to them over real sockets with the official SDKs, as a user's
application would. Each process is started once per test session.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from tokenbrake.launch import ChildServer, free_port


def gateway_config(emulator_url: str) -> dict:
    """Models covering every route the tests need, all in front of the one emulator."""
    dead = f"http://127.0.0.1:{free_port()}"  # nothing listens there: connection refused
    return {
        "server": {"max_body_bytes": 256 * 1024},
        "retry": {"attempts": 2, "backoff_initial_s": 0.01, "backoff_max_s": 0.05},
        "upstreams": {
            "emu-openai": {"kind": "openai", "base_url": emulator_url + "/v1", "provider": "openai",
                           "api_key_env": "TEST_UPSTREAM_OPENAI_KEY"},
            "emu-anthropic": {"kind": "anthropic", "base_url": emulator_url, "provider": "anthropic",
                              "api_key_env": "TEST_UPSTREAM_ANTHROPIC_KEY"},
            "emu-local": {"kind": "openai", "base_url": emulator_url + "/v1"},
            "emu-slow": {"kind": "openai", "base_url": emulator_url + "/v1", "timeout_s": 1.0},
            "dead": {"kind": "openai", "base_url": dead + "/v1"},
        },
        "models": {
            "gpt-4o": {"upstream": "emu-openai"},
            "claude-fast": {"upstream": "emu-anthropic", "model": "claude-3-5-haiku-latest"},
            "small": {"upstream": "emu-local", "model": "qwen2.5-3b-instruct",
                      "price": {"input_per_mtok": 0.02, "output_per_mtok": 0.06}},
            "slow": {"upstream": "emu-slow", "free": True},
            "dead": {"upstream": "dead", "free": True},
            "dead-then-small": {"upstream": "dead", "free": True, "fallbacks": ["small"]},
            "text-embedding-3-small": {"upstream": "emu-openai"},
        },
    }


UPSTREAM_KEYS = {"TEST_UPSTREAM_OPENAI_KEY": "sk-upstream-openai", "TEST_UPSTREAM_ANTHROPIC_KEY": "sk-ant-upstream"}


@pytest.fixture(scope="session")
def emulator() -> Iterator[ChildServer]:
    server = ChildServer(["emulate"])
    yield server
    server.stop()


@pytest.fixture(scope="session")
def gateway(emulator: ChildServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ChildServer]:
    path: Path = tmp_path_factory.mktemp("gateway") / "tokenbrake.yaml"
    path.write_text(yaml.safe_dump(gateway_config(emulator.url)))
    server = ChildServer(["serve", "--config", str(path)], env=UPSTREAM_KEYS)
    yield server
    server.stop()


@pytest.fixture
def openai_client(gateway: ChildServer):
    import openai

    with openai.OpenAI(base_url=gateway.url + "/v1", api_key="client-key", max_retries=0) as client:
        yield client


@pytest.fixture
async def async_openai_client(gateway: ChildServer):
    import openai

    async with openai.AsyncOpenAI(base_url=gateway.url + "/v1", api_key="client-key", max_retries=0) as client:
        yield client


@pytest.fixture
def anthropic_client(gateway: ChildServer):
    import anthropic

    with anthropic.Anthropic(base_url=gateway.url, api_key="client-key", max_retries=0) as client:
        yield client


@pytest.fixture
async def async_anthropic_client(gateway: ChildServer):
    import anthropic

    async with anthropic.AsyncAnthropic(base_url=gateway.url, api_key="client-key", max_retries=0) as client:
        yield client
