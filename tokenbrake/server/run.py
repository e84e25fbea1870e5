"""Running an ASGI app on uvicorn with the fast stack (uvloop, httptools, coalesced writes)."""

from __future__ import annotations

import importlib.util
import socket
import sys

import uvicorn

from tokenbrake.server.coalesce import CoalescingHttpToolsProtocol
from tokenbrake.server.shutdown import CUT_GRACE_S, GracefulServer

STARTUP_FAILURE = 3  # uvicorn.run's exit status when the server never started


def run(app, host: str, port: int, *, graceful_shutdown_s: float = 30.0, log_level: str = "warning",
        cut=None, sock: socket.socket | None = None) -> None:
    """Serves until SIGINT/SIGTERM; then stops accepting, lets requests in flight finish
    (up to `graceful_shutdown_s`), cuts the rest (`cut()`, see shutdown.py) and runs the
    app's shutdown. `sock`: a socket already listening on host:port (server/startup.py),
    else uvicorn binds one."""
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        loop="uvloop" if importlib.util.find_spec("uvloop") else "asyncio",
        http=CoalescingHttpToolsProtocol,  # httptools, one write per loop turn (coalesce.py)
        lifespan="on",
        log_level=log_level,
        access_log=False,
        # Nothing here reads the client's address or scheme, which is all the X-Forwarded-*
        # headers would change; uvicorn would otherwise look for them in every request.
        proxy_headers=False,
        timeout_graceful_shutdown=graceful_shutdown_s + (CUT_GRACE_S if cut is not None else 0),
        timeout_keep_alive=30,
    )
    server = uvicorn.Server(config) if cut is None else GracefulServer(config, graceful_shutdown_s, cut)
    server.run(sockets=[sock] if sock is not None else None)
    if not server.started:  # it never served: a port in use, a start-up that failed
        sys.exit(STARTUP_FAILURE)
