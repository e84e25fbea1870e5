"""Shared fixtures: real `tokenbrake emulate` and `tokenbrake serve` processes on loopback.

End-to-end tests talk to them over real sockets with the official SDKs, as a user's
application would. Each process is started once per test session. PostgreSQL and Redis are
the machine's, or throwaway ones started before collection (`services.py`).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import services
import yaml
from gateway_setup import MASTER_KEY, UPSTREAM_KEYS, create_key, gateway_config

from tokenbrake.tools.launch import ChildServer

THROWAWAY = pytest.StashKey[list[services.Throwaway]]()


def pytest_configure(config: pytest.Config) -> None:
    """Before collection, so that test modules read the URLs of servers that answer."""
    if config.option.collectonly:
        return
    try:
        config.stash[THROWAWAY] = services.provide()
    except services.MissingServer as exc:
        raise pytest.UsageError(str(exc)) from None


def pytest_unconfigure(config: pytest.Config) -> None:
    services.stop(config.stash.get(THROWAWAY, []))


def pytest_report_header(config: pytest.Config) -> list[str]:
    return [f"throwaway {server.name} at {server.url} ({server.replaces})" for server in config.stash.get(THROWAWAY, [])]


@pytest.fixture(scope="session")
def emulator() -> Iterator[ChildServer]:
    server = ChildServer(["emulate"])
    yield server
    server.stop()


@pytest.fixture(scope="session")
def gateway_config_path(emulator: ChildServer, tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("gateway")
    path = folder / "tokenbrake.yaml"
    path.write_text(yaml.safe_dump(gateway_config(emulator.url, f"sqlite:///{folder / 'ledger.db'}")))
    return path


@pytest.fixture(scope="session")
def gateway(gateway_config_path: Path) -> Iterator[ChildServer]:
    server = ChildServer(["serve", "--config", str(gateway_config_path)],
                         env={**UPSTREAM_KEYS, "TOKENBRAKE_MASTER_KEY": MASTER_KEY})
    yield server
    server.stop()


@pytest.fixture(scope="session")
def api_key(gateway_config_path: Path) -> str:
    return create_key(gateway_config_path, "e2e-main", "--team", "e2e")


@pytest.fixture
def make_key(gateway_config_path: Path):
    """Creates a key for the session gateway: make_key(name, *cli_options) -> plaintext."""
    return lambda name, *options: create_key(gateway_config_path, name, *options)


@pytest.fixture(scope="session")
def master_key() -> str:
    return MASTER_KEY


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh database of each kind: a SQLite file, or a new schema on the tests' PostgreSQL."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'ledger.db'}"
        return
    import psycopg

    schema = f"tb_e2e_{uuid.uuid4().hex[:12]}"
    yield f"{services.postgres_url()}?schema={schema}"
    with psycopg.connect(services.postgres_url(), autocommit=True) as conn:
        conn.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")


@pytest.fixture
def openai_client(gateway: ChildServer, api_key: str):
    import openai

    with openai.OpenAI(base_url=gateway.url + "/v1", api_key=api_key, max_retries=0) as client:
        yield client


@pytest.fixture
async def async_openai_client(gateway: ChildServer, api_key: str):
    import openai

    async with openai.AsyncOpenAI(base_url=gateway.url + "/v1", api_key=api_key, max_retries=0) as client:
        yield client


@pytest.fixture
def anthropic_client(gateway: ChildServer, api_key: str):
    import anthropic

    with anthropic.Anthropic(base_url=gateway.url, api_key=api_key, max_retries=0) as client:
        yield client


@pytest.fixture
async def async_anthropic_client(gateway: ChildServer, api_key: str):
    import anthropic

    async with anthropic.AsyncAnthropic(base_url=gateway.url, api_key=api_key, max_retries=0) as client:
        yield client
