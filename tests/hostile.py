"""Hostile HTTP clients over raw loopback sockets: giant headers, slow senders, idle crowds.

The end-to-end tests and bench/faults_hostile.py both play these against a real gateway.
Each call is bounded in time; none needs a key.
"""

from __future__ import annotations

import json
import select
import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

CHAT = b"POST /v1/chat/completions HTTP/1.1\r\nhost: gateway\r\ncontent-type: application/json\r\n"
MESSAGES = b"POST /v1/messages HTTP/1.1\r\nhost: gateway\r\nanthropic-version: 2023-06-01\r\n"


@dataclass
class Answer:
    status: int | None  # None: the connection closed with no response
    body: dict | None
    seconds: float  # from the first byte sent to the answer (or the close)


def rss_bytes(pid: int) -> int:
    """A process's resident memory, from /proc (Linux)."""
    with open(f"/proc/{pid}/status") as status:
        line = next(line for line in status if line.startswith("VmRSS:"))
    return int(line.split()[1]) * 1024


def connect(port: int, timeout_s: float = 10.0) -> socket.socket:
    return socket.create_connection(("127.0.0.1", port), timeout=timeout_s)


def parse_answer(raw: bytes, started: float) -> Answer:
    seconds = time.monotonic() - started
    if not raw:
        return Answer(None, None, seconds)
    head, _, body = raw.partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    try:
        parsed = json.loads(body) if body else None
    except ValueError:
        parsed = {"not_json": body.decode("latin-1")}
    return Answer(status, parsed, seconds)


def read_until_closed(sock: socket.socket, deadline: float) -> bytes:
    chunks = []
    while time.monotonic() < deadline:
        try:
            sock.settimeout(max(0.01, deadline - time.monotonic()))
            chunk = sock.recv(65536)
        except (TimeoutError, ConnectionResetError):
            break
        if not chunk:
            break
        chunks.append(chunk)
    return b"".join(chunks)


def readable(sock: socket.socket, wait_s: float = 0.0) -> bool:
    """Whether the gateway has sent something (or closed). poll, not select: a crowd of
    sockets has descriptors past select's 1024."""
    poller = select.poll()
    poller.register(sock, select.POLLIN)
    return bool(poller.poll(wait_s * 1000))


def giant_header(port: int, size: int, *, head: bytes = CHAT, chunk: int = 1 << 20, timeout_s: float = 10.0) -> Answer:
    """Sends `head` and one header `size` bytes long, in chunks, until the gateway answers."""
    started = time.monotonic()
    deadline = started + timeout_s
    with connect(port, timeout_s) as sock:
        sock.sendall(head + b"x-giant: ")
        block, sent = b"a" * chunk, 0
        while sent < size and not readable(sock) and time.monotonic() < deadline:
            try:
                sock.sendall(block[: size - sent])
            except OSError:
                break  # the gateway stopped reading: its answer (if any) is there to read
            sent += chunk
        else:
            if sent >= size:  # all of it taken in: end the request, to see what it is answered
                sock.sendall(b"\r\ncontent-length: 2\r\n\r\n{}")
        return parse_answer(read_until_closed(sock, deadline), started)


def slow_sender(port: int, start: bytes, *, every_s: float = 0.2, timeout_s: float = 15.0) -> Answer:
    """Sends `start`, then one more byte (of a header, or of a body) every `every_s` seconds,
    until the gateway answers or closes the connection."""
    started = time.monotonic()
    deadline = started + timeout_s
    with connect(port, timeout_s) as sock:
        sock.sendall(start)
        while time.monotonic() < deadline:
            if readable(sock, every_s):
                break
            try:
                sock.sendall(b"a")
            except OSError:
                break
        return parse_answer(read_until_closed(sock, deadline), started)


def request(port: int, raw: bytes, timeout_s: float = 10.0) -> Answer:
    """One whole raw request on a fresh connection, and the gateway's answer."""
    started = time.monotonic()
    with connect(port, timeout_s) as sock:
        sock.sendall(raw)
        return parse_answer(read_until_closed(sock, started + timeout_s), started)


@contextmanager
def idle_connections(port: int, count: int) -> Iterator[list[socket.socket]]:
    """`count` connections that send nothing, open until the block ends."""
    sockets: list[socket.socket] = []
    try:
        for _ in range(count):
            sockets.append(connect(port))
        yield sockets
    finally:
        for sock in sockets:
            sock.close()


def still_open(sockets: list[socket.socket]) -> int:
    """How many of `sockets` the gateway has not closed."""
    return sum(1 for sock in sockets if not readable(sock))
