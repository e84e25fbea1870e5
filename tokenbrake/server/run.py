"""Running an ASGI app on uvicorn with the fast stack (uvloop, httptools, coalesced writes),
each connection bounded in size and time (guard.py)."""

from __future__ import annotations

import functools
import importlib.util
import socket
import sys
from collections.abc import Callable

import uvicorn

from tokenbrake.config import ServerConfig
from tokenbrake.server.guard import GuardedHttpToolsProtocol
from tokenbrake.server.shutdown import CUT_GRACE_S, GracefulServer

STARTUP_FAILURE = 3  # uvicorn.run's exit status when the server never started


def run(app, host: str, port: int, *, graceful_shutdown_s: float = 30.0, log_level: str = "warning",
        cut=None, sock: socket.socket | None = None, bounds: ServerConfig | None = None,
        before_exit: Callable[[], None] | None = None) -> None:
    """Serves until SIGINT/SIGTERM; then stops accepting, lets requests in flight finish
    (up to `graceful_shutdown_s`), cuts the rest (`cut()`, see shutdown.py) and runs the
    app's shutdown. `sock`: a socket already listening on host:port (server/startup.py),
    else uvicorn binds one. `bounds`: what one client connection may hold (the `server:`
    settings; their defaults if not given). `before_exit`: called once the shutdown is done,
    before the process ends on the signal it caught."""
    bounds = bounds or ServerConfig()
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        loop="uvloop" if importlib.util.find_spec("uvloop") else "asyncio",
        # httptools, one write per loop turn (coalesce.py), bounded per connection (guard.py).
        # uvicorn's types ask for a protocol class; it only calls it, as it calls a partial.
        http=functools.partial(GuardedHttpToolsProtocol, bounds=bounds),  # type: ignore[arg-type]
        ws="none",  # no endpoint takes a WebSocket: an upgrade request is answered as plain HTTP
        lifespan="on",
        log_level=log_level,
        access_log=False,
        # Nothing here reads the client's address or scheme, which is all the X-Forwarded-*
        # headers would change; uvicorn would otherwise look for them in every request.
        proxy_headers=False,
        # uvicorn's types say int for these; it hands them to asyncio, which takes any seconds.
        timeout_graceful_shutdown=graceful_shutdown_s + (CUT_GRACE_S if cut is not None else 0),  # type: ignore[arg-type]
        timeout_keep_alive=bounds.idle_timeout_s,  # type: ignore[arg-type]
    )
    server = uvicorn.Server(config) if cut is None else GracefulServer(config, graceful_shutdown_s, cut, before_exit)
    server.run(sockets=[sock] if sock is not None else None)
    if not server.started:  # it never served: a port in use, a start-up that failed
        sys.exit(STARTUP_FAILURE)
