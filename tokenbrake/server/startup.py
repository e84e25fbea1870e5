"""What `serve` checks before it says it is up: the port is free, the database and the state
backend answer. Each failure is one line naming the address or URL and the cause."""

from __future__ import annotations

import errno
import socket
from collections.abc import Awaitable, Callable
from typing import TypeVar

from tokenbrake.config import Config

T = TypeVar("T")


class StartupError(Exception):
    """The gateway cannot start; the message names what is at fault and how to fix it."""


def listen(host: str, port: int) -> socket.socket:
    """A socket bound to host:port and listening, for the server to take over: binding before
    anything is printed means a port in use fails first, not after a banner."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn does: restart over TIME_WAIT
    try:
        sock.bind((host, port))
        sock.listen(2048)
    except OSError as exc:
        sock.close()
        if exc.errno == errno.EADDRINUSE:
            raise StartupError(f"port {port} on {host} is already in use (another tokenbrake serve?): stop what "
                               f"listens there, or give another with --port or server.port") from None
        raise StartupError(f"cannot listen on {host}:{port}: {exc.strerror}") from None
    sock.set_inheritable(True)
    return sock


async def check_reachable(config: Config) -> None:
    """Opens the database and the state backend as the gateway will, and closes them."""
    from tokenbrake.limits import open_limit_store
    from tokenbrake.storage import open_database

    await (await reach("the database", config.database, lambda: open_database(config.database))).close()
    await (await reach("the state backend (state:)", config.state_url,
                       lambda: open_limit_store(config.state_url, read_only=True))).close()


async def reach(what: str, url: str, opening: Callable[[], Awaitable[T]]) -> T:
    """`await opening()`, or StartupError naming `what` at `url` and the driver's reason in
    one line. The drivers give up connecting soon enough (PostgreSQL after 5 s, Redis 2 s); a
    migration, which may take long on a big ledger, is left to finish."""
    from tokenbrake.storage.postgres import redact  # (psycopg only when it is needed)

    shown = redact(url)
    try:
        return await opening()
    except Exception as exc:  # the driver's own reason, on one line
        cause = " ".join(str(exc).split()) or type(exc).__name__
        raise StartupError(f"cannot open {what} {shown}: "
                           f"{cause.removeprefix(f'cannot connect to PostgreSQL at {shown}: ')}") from exc
