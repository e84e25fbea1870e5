"""The connection guard, driven in-process through uvicorn's protocol with a recording
transport: a request that arrives whole arms no timer; a head over the size or count limit
is answered 431 in the caller's format before the parser holds much more than the limit;
a refused connection is half-closed, then closed; the connection cap follows the process's
limit on open files."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys

import uvicorn
from uvicorn.server import ServerState

from tokenbrake.config import ServerConfig
from tokenbrake.core import Format
from tokenbrake.server.guard import LINGER_S, GuardedHttpToolsProtocol, door_format

REQUEST = b"POST /v1/chat/completions HTTP/1.1\r\nhost: gw\r\ncontent-length: 2\r\n\r\n{}"


async def answer_ok(scope, receive, send) -> None:
    await receive()
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"2")]})
    await send({"type": "http.response.body", "body": b"ok"})


class Recorder:
    """A transport that keeps what was written and whether it was half-closed or closed."""

    def __init__(self) -> None:
        self.written = b""
        self.eof = self.closed = False

    def write(self, data: bytes) -> None:
        self.written += data

    def write_eof(self) -> None:
        self.eof = True

    def close(self) -> None:
        self.closed = True

    def is_closing(self) -> bool:
        return self.closed

    def get_extra_info(self, name: str, default=None):
        return ("127.0.0.1", 4000) if name in ("sockname", "peername") else default

    def pause_reading(self) -> None: ...

    def resume_reading(self) -> None: ...


def connection(**bounds) -> tuple[GuardedHttpToolsProtocol, Recorder]:
    config = uvicorn.Config(app=answer_ok, lifespan="off", ws="none", access_log=False)
    protocol = GuardedHttpToolsProtocol(config=config, server_state=ServerState(), app_state={},
                                        bounds=ServerConfig(**bounds))
    transport = Recorder()
    protocol.connection_made(transport)  # type: ignore[arg-type]
    return protocol, transport


def another_connection(first: GuardedHttpToolsProtocol) -> tuple[GuardedHttpToolsProtocol, Recorder]:
    """A second connection to the same server as `first`."""
    protocol = GuardedHttpToolsProtocol(config=first.config, server_state=first.server_state, app_state={},
                                        bounds=first.bounds)
    transport = Recorder()
    protocol.connection_made(transport)  # type: ignore[arg-type]
    return protocol, transport


def answer(transport: Recorder) -> tuple[int, dict]:
    head, _, body = transport.written.partition(b"\r\n\r\n")
    assert b"connection: close" in head
    return int(head.split(b" ")[1]), json.loads(body)


async def test_a_request_that_arrives_whole_is_answered_and_arms_no_timer():
    protocol, transport = connection()
    protocol.data_received(REQUEST)
    assert protocol.deadline is None
    await asyncio.sleep(0.01)
    assert transport.written.startswith(b"HTTP/1.1 200") and transport.written.endswith(b"ok")


async def test_a_head_still_arriving_is_on_the_clock_and_its_end_stops_it():
    protocol, _ = connection()
    protocol.data_received(REQUEST[:20])
    assert protocol.deadline is not None
    protocol.data_received(REQUEST[20:])
    assert protocol.deadline is None


async def test_a_head_over_the_size_limit_is_refused_431_before_it_ends():
    protocol, transport = connection(max_header_bytes=4096)
    protocol.data_received(b"POST /v1/messages HTTP/1.1\r\nanthropic-version: 2023-06-01\r\nx-giant: ")
    for _ in range(3):
        protocol.data_received(b"a" * 1024)
    assert transport.written == b""  # 3.1 KiB in: not over yet
    protocol.data_received(b"a" * 1024)
    await asyncio.sleep(0)
    status, body = answer(transport)
    assert status == 431 and body["error"]["type"] == "request_too_large"  # Anthropic's shape
    assert transport.eof and not transport.closed
    protocol.data_received(b"a" * (1 << 20))  # what still comes is dropped, not parsed
    assert transport.written.count(b"HTTP/1.1") == 1


async def test_a_long_header_that_arrives_in_one_piece_is_refused_431_too():
    protocol, transport = connection(max_header_bytes=4096)
    protocol.data_received(REQUEST.replace(b"host: gw", b"host: " + b"g" * 5000))
    await asyncio.sleep(0)
    status, body = answer(transport)
    assert status == 431 and body["error"]["code"] == "server.max_header_bytes"


async def test_too_many_headers_are_refused_431_in_openai_format():
    protocol, transport = connection(max_headers=10)
    extra = b"".join(b"x-%d: 1\r\n" % n for n in range(10))
    protocol.data_received(REQUEST.replace(b"host: gw\r\n", b"host: gw\r\n" + extra))
    await asyncio.sleep(0)
    status, body = answer(transport)
    assert status == 431 and body["error"]["code"] == "server.max_headers"


async def test_a_refused_connection_is_closed_after_lingering():
    protocol, transport = connection(max_headers=1)
    protocol.data_received(REQUEST)
    await asyncio.sleep(LINGER_S + 0.1)
    assert transport.closed


async def test_a_connection_past_the_cap_is_answered_503_once_its_headers_are_in():
    first, _ = connection(max_connections=1)
    second, transport = another_connection(first)
    second.data_received(REQUEST)
    await asyncio.sleep(0)
    status, body = answer(transport)
    assert status == 503 and body["error"]["code"] == "server.max_connections"


async def test_an_upgrade_request_is_answered_as_plain_http_and_ends_its_connection():
    protocol, transport = connection()
    protocol.data_received(b"GET /healthz HTTP/1.1\r\nhost: gw\r\nconnection: upgrade\r\nupgrade: websocket\r\n\r\n")
    await asyncio.sleep(0.01)
    assert transport.written.startswith(b"HTTP/1.1 200") and b"connection: close" in transport.written
    assert transport.closed
    protocol.data_received(b"more bytes that nothing reads")  # and they change nothing


async def test_a_connection_opened_past_the_cap_is_served_if_others_closed_before_its_headers_came():
    first, _ = connection(max_connections=1)
    second, transport = another_connection(first)
    first.connection_lost(None)
    second.data_received(REQUEST)
    await asyncio.sleep(0.01)
    assert transport.written.startswith(b"HTTP/1.1 200")


async def test_a_keep_alive_connections_next_head_counts_from_its_first_byte():
    protocol, transport = connection(max_header_bytes=4096)
    protocol.data_received(REQUEST)
    await asyncio.sleep(0.01)
    protocol.data_received(b"POST /v1/chat/completions HTTP/1.1\r\nx-giant: " + b"a" * 5000)
    assert transport.written.count(b"HTTP/1.1 431") == 1


def test_the_door_is_told_by_the_anthropic_version_header():
    assert door_format([(b"anthropic-version", b"2023-06-01")]) is Format.ANTHROPIC
    assert door_format([(b"authorization", b"Bearer x")]) is Format.OPENAI


def fitted_under(soft: int, hard: int, max_connections: int) -> list[str]:
    """In a child process whose open-files limit is (soft, hard): fit_to_open_files's
    answer, and the soft limit after it."""
    script = (
        f"import resource; resource.setrlimit(resource.RLIMIT_NOFILE, ({soft}, {hard}));"
        "from tokenbrake.config import ServerConfig; from tokenbrake.server.guard import fit_to_open_files;"
        f"bounds, warning = fit_to_open_files(ServerConfig(max_connections={max_connections}));"
        "print(resource.getrlimit(resource.RLIMIT_NOFILE)[0]); print(bounds.max_connections); print(warning)"
    )
    return subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True, timeout=30).stdout.splitlines()


def test_the_connection_cap_is_lowered_to_what_the_open_files_limit_allows():
    _, cap, warning = fitted_under(400, 400, 4096)
    assert cap == "100" and "limit of 400 open files" in warning and "ulimit -n" in warning


def test_a_soft_open_files_limit_is_raised_to_the_hard_one():
    assert fitted_under(256, 2048, 500) == ["2048", "500", "None"]
