"""The test run's PostgreSQL and Redis (`services.py`): where none answers, throwaway ones are
started and stopped after; a server that answers is used as it is; missing binaries are named
with the Debian package to install."""

from __future__ import annotations

import os
from pathlib import Path

import psycopg
import pytest
import redis
import services

from tokenbrake.tools.launch import free_port


def test_servers_that_do_not_answer_are_replaced_by_throwaway_ones_stopped_after(monkeypatch):
    dead_postgres, dead_redis = f"postgresql://postgres@127.0.0.1:{free_port()}/test", f"redis://127.0.0.1:{free_port()}/0"
    monkeypatch.setenv(services.POSTGRES_VAR, dead_postgres)
    monkeypatch.setenv(services.REDIS_VAR, dead_redis)
    started = services.provide()
    try:
        assert [server.name for server in started] == ["PostgreSQL", "Redis"]
        assert services.postgres_url() == started[0].url != dead_postgres
        assert services.redis_url() == started[1].url != dead_redis
        with psycopg.connect(services.postgres_url()) as conn:
            assert conn.execute("SELECT current_database()").fetchone() == ("test",)
        with redis.Redis.from_url(services.redis_url()) as client:
            assert client.set("tb-services-check", "1") and client.get("tb-services-check") == b"1"
    finally:
        services.stop(started)
    assert services.postgres_answers(started[0].url) is not None
    assert services.redis_answers(started[1].url) is not None
    assert not any(Path(server.folder).exists() for server in started)


def test_servers_that_answer_are_used_as_they_are():
    before = services.postgres_url(), services.redis_url()
    assert services.provide() == []
    assert (services.postgres_url(), services.redis_url()) == before
    assert (os.environ[services.POSTGRES_VAR], os.environ[services.REDIS_VAR]) == before


def test_missing_postgresql_binaries_name_the_debian_package_in_one_line():
    with pytest.raises(services.MissingServer) as missing:
        services.postgres_binaries("/nonexistent/*/bin")
    assert "\n" not in str(missing.value)
    assert "apt-get install postgresql" in str(missing.value) and services.POSTGRES_VAR in str(missing.value)


def test_a_missing_redis_server_names_the_debian_package_in_one_line():
    with pytest.raises(services.MissingServer) as missing:
        services.redis_binary(search_path="/nonexistent")
    assert "\n" not in str(missing.value)
    assert "apt-get install redis-server" in str(missing.value) and services.REDIS_VAR in str(missing.value)
