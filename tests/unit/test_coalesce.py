"""The client transport joins the writes of one loop turn into one, keeps their order, and
sends what was written before a close."""

from __future__ import annotations

import asyncio

from tokenbrake.server.coalesce import CoalescingTransport


class SocketLike:
    """What the real transport was asked to do, in order."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, bytes | None]] = []
        self.closing = False

    def write(self, data: bytes) -> None:
        self.calls.append(("write", data))

    def close(self) -> None:
        self.calls.append(("close", None))
        self.closing = True

    def is_closing(self) -> bool:
        return self.closing

    def get_extra_info(self, name: str, default=None):
        return ("127.0.0.1", 1234) if name == "peername" else default


async def test_writes_of_one_turn_leave_in_one_write_in_order():
    real = SocketLike()
    transport = CoalescingTransport(real, asyncio.get_running_loop())
    transport.write(b"HTTP/1.1 200 OK\r\n\r\n")
    transport.write(b"{}")
    assert real.calls == []  # nothing until the turn ends
    await asyncio.sleep(0)
    assert real.calls == [("write", b"HTTP/1.1 200 OK\r\n\r\n{}")]


async def test_writes_of_different_turns_are_not_held_back():
    real = SocketLike()
    transport = CoalescingTransport(real, asyncio.get_running_loop())
    transport.write(b"data: 1\n\n")
    await asyncio.sleep(0)
    transport.write(b"data: 2\n\n")
    await asyncio.sleep(0)
    assert real.calls == [("write", b"data: 1\n\n"), ("write", b"data: 2\n\n")]


async def test_close_sends_what_was_written_first_and_nothing_after():
    real = SocketLike()
    transport = CoalescingTransport(real, asyncio.get_running_loop())
    transport.write(b"HTTP/1.1 400 Bad Request\r\n\r\n")
    transport.close()
    transport.write(b"late")
    await asyncio.sleep(0)
    assert real.calls == [("write", b"HTTP/1.1 400 Bad Request\r\n\r\n"), ("close", None)]


async def test_everything_else_is_the_real_transports():
    real = SocketLike()
    transport = CoalescingTransport(real, asyncio.get_running_loop())
    assert transport.get_extra_info("peername") == ("127.0.0.1", 1234)
    assert transport.is_closing() is False
