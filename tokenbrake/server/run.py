"""Running an ASGI app on uvicorn with the fast stack (uvloop, httptools, coalesced writes)."""

from __future__ import annotations

import importlib.util
import socket
import sys

import uvicorn

from tokenbrake.server.coalesce import CoalescingHttpToolsProtocol


def run(app, host: str, port: int, *, graceful_shutdown_s: float = 30.0, log_level: str = "warning",
        sock: socket.socket | None = None) -> None:
    """Serves until SIGINT/SIGTERM; then stops accepting, lets requests in flight finish
    (up to `graceful_shutdown_s`) and runs the app's shutdown. `sock`: a socket already
    listening on host:port (server/startup.py), else uvicorn binds one."""
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
        timeout_graceful_shutdown=graceful_shutdown_s,
        timeout_keep_alive=30,
    )
    server = uvicorn.Server(config)
    server.run(sockets=[sock] if sock is not None else None)
    if not server.started:  # as uvicorn.run does: a failed start-up is a failed exit
        sys.exit(3)
