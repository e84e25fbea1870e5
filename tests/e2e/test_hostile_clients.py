"""Clients that need no key cannot stall or bloat the gateway: a giant header or too many
headers is a 431 and leaves memory where it was; a slow sender of headers or of a body is cut
off after its timeout with a 408 while a good client is served as usual; a crowd of idle
connections does not keep a good client out, and past the connection cap a new connection is
refused with a 503 instead of left hanging; an /admin body over its limit is a 413. Every
refusal is a JSON error in the caller's own format."""

from __future__ import annotations

import threading
import time

import anthropic
import httpx
import openai
import pytest
from gateway_setup import MASTER_KEY, UPSTREAM_KEYS, create_key, gateway_config, write_config
from hostile import CHAT, MESSAGES, giant_header, idle_connections, request, rss_bytes, slow_sender, still_open

from tokenbrake.tools.launch import ChildServer

HEADER_TIMEOUT_S = 1.0
BODY_TIMEOUT_S = 1.5
CAP = 300  # the crowded gateway's server.max_connections


def start(emulator, folder, server: dict) -> tuple[ChildServer, str]:
    config = gateway_config(emulator.url, f"sqlite:///{folder / 'ledger.db'}")
    config["server"] = {"max_body_bytes": 256 * 1024, **server}
    path = write_config(folder, config)
    key = create_key(path, "good-client")
    gateway = ChildServer(["serve", "--config", str(path)], quiet=True,
                          env={**UPSTREAM_KEYS, "TOKENBRAKE_MASTER_KEY": MASTER_KEY})
    return gateway, key


@pytest.fixture(scope="module")
def guarded(emulator, tmp_path_factory):
    """A gateway with short read timeouts (and the default size limits)."""
    gateway, key = start(emulator, tmp_path_factory.mktemp("guarded"),
                         {"header_timeout_s": HEADER_TIMEOUT_S, "body_timeout_s": BODY_TIMEOUT_S})
    yield gateway, key
    gateway.stop()


@pytest.fixture(scope="module")
def crowded(emulator, tmp_path_factory):
    """A gateway with a small connection cap and room for idle connections to stay a while."""
    gateway, key = start(emulator, tmp_path_factory.mktemp("crowded"), {"max_connections": CAP, "header_timeout_s": 15})
    yield gateway, key
    gateway.stop()


def good_request(gateway: ChildServer, key: str) -> float:
    """One OpenAI SDK chat call that must succeed; its latency in seconds."""
    started = time.monotonic()
    with openai.OpenAI(base_url=gateway.url + "/v1", api_key=key, max_retries=0, timeout=5) as client:
        reply = client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "hi"}])
    assert reply.choices[0].message.content
    return time.monotonic() - started


def in_background(work) -> tuple[threading.Thread, list]:
    results: list = []
    thread = threading.Thread(target=lambda: results.append(work()), daemon=True)
    thread.start()
    return thread, results


def test_giant_headers_are_refused_431_and_leave_memory_where_it_was(guarded):
    gateway, key = guarded
    good_request(gateway, key)
    before = rss_bytes(gateway.process.pid)
    attacks = [in_background(lambda: giant_header(gateway.port, 64 << 20)) for _ in range(8)]
    for thread, _ in attacks:
        thread.join(timeout=15)
    answers = [results[0] for _, results in attacks]
    assert [a.status for a in answers] == [431] * 8
    assert answers[0].body["error"]["code"] == "server.max_header_bytes"
    assert "server.max_header_bytes" in answers[0].body["error"]["message"]
    grown = rss_bytes(gateway.process.pid) - before
    assert grown < 32 << 20, f"the gateway grew by {grown >> 20} MiB"  # main grew by 930 MiB
    good_request(gateway, key)


def test_a_giant_header_from_an_anthropic_client_is_refused_in_anthropic_format(guarded):
    gateway, _ = guarded
    answer = giant_header(gateway.port, 1 << 20, head=MESSAGES)
    assert answer.status == 431
    assert answer.body["type"] == "error" and answer.body["error"]["type"] == "request_too_large"


def test_too_many_headers_are_refused_431(guarded):
    gateway, key = guarded
    headers = {f"x-extra-{n}": "1" for n in range(120)}
    response = httpx.post(gateway.url + "/v1/chat/completions", headers={"authorization": f"Bearer {key}", **headers},
                          json={"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}]})
    assert response.status_code == 431
    assert response.json()["error"]["code"] == "server.max_headers"
    assert response.headers["connection"] == "close"


def test_a_slow_header_sender_is_cut_after_the_header_timeout_while_a_good_client_is_served(guarded):
    gateway, key = guarded
    thread, results = in_background(lambda: slow_sender(gateway.port, CHAT + b"x-slow: "))
    latencies = [good_request(gateway, key) for _ in range(5)]
    thread.join(timeout=10)
    answer = results[0]
    assert answer.status == 408 and answer.body["error"]["code"] == "server.header_timeout_s"
    assert HEADER_TIMEOUT_S - 0.1 <= answer.seconds <= HEADER_TIMEOUT_S + 2
    assert max(latencies) < 1.0


def test_a_slow_body_sender_is_cut_after_the_body_timeout_while_a_good_client_is_served(guarded):
    gateway, key = guarded
    head = MESSAGES + b"content-type: application/json\r\ncontent-length: 1000\r\n\r\n"
    thread, results = in_background(lambda: slow_sender(gateway.port, head + b'{"model": "'))
    latencies = [good_request(gateway, key) for _ in range(5)]
    thread.join(timeout=10)
    answer = results[0]
    assert answer.status == 408
    assert answer.body["type"] == "error" and answer.body["error"]["type"] == "timeout_error"
    assert "server.body_timeout_s" in answer.body["error"]["message"]
    assert BODY_TIMEOUT_S - 0.1 <= answer.seconds <= BODY_TIMEOUT_S + 2
    assert max(latencies) < 1.0


def test_a_crowd_of_connections_that_never_send_a_request_is_closed_after_the_header_timeout(guarded):
    gateway, key = guarded
    with idle_connections(gateway.port, 1500) as sockets:
        good_request(gateway, key)
        time.sleep(HEADER_TIMEOUT_S + 1)
        assert still_open(sockets) == 0  # on main they stayed for good, until no descriptor was left
        good_request(gateway, key)


def test_a_malformed_request_is_a_400_in_json(guarded):
    gateway, _ = guarded
    answer = request(gateway.port, b"NOT HTTP AT ALL\r\n\r\n")
    assert answer.status == 400 and "malformed HTTP/1.1 request" in answer.body["error"]["message"]


def test_many_idle_connections_do_not_keep_a_good_client_out(crowded):
    gateway, key = crowded
    with idle_connections(gateway.port, CAP - 20) as sockets:
        latencies = [good_request(gateway, key) for _ in range(5)]
        assert still_open(sockets) == CAP - 20
    assert max(latencies) < 1.0


def test_past_the_connection_cap_a_new_connection_is_refused_503_and_served_again_once_below(crowded):
    gateway, key = crowded
    with idle_connections(gateway.port, CAP):
        with pytest.raises(openai.InternalServerError) as refused:
            good_request(gateway, key)
        assert refused.value.status_code == 503 and "server.max_connections" in refused.value.message
        with anthropic.Anthropic(base_url=gateway.url, api_key=key, max_retries=0) as client:
            with pytest.raises(anthropic.InternalServerError) as refused_a:
                client.messages.create(model="claude-fast", max_tokens=5, messages=[{"role": "user", "content": "hi"}])
        assert refused_a.value.status_code == 503 and refused_a.value.body["error"]["type"] == "overloaded_error"
    time.sleep(0.5)  # the gateway sees the idle ones go
    good_request(gateway, key)


def test_an_admin_body_over_its_limit_is_a_413_in_json(guarded):
    gateway, _ = guarded
    response = httpx.post(gateway.url + "/admin/keys", headers={"authorization": f"Bearer {MASTER_KEY}"},
                          json={"name": "k", "padding": "x" * 100_000})
    assert response.status_code == 413
    assert "server.max_admin_body_bytes" in response.json()["error"]["message"]
