"""Running an ASGI app on uvicorn with the fast stack (uvloop, httptools, coalesced writes),
each connection bounded in size and time (guard.py)."""

from __future__ import annotations

import functools
import importlib.util

import uvicorn

from tokenbrake.config import ServerConfig
from tokenbrake.server.guard import GuardedHttpToolsProtocol


def run(app, host: str, port: int, *, graceful_shutdown_s: float = 30.0, log_level: str = "warning",
        limits: ServerConfig | None = None) -> None:
    """Serves until SIGINT/SIGTERM; then stops accepting, lets requests in flight finish
    (up to `graceful_shutdown_s`) and runs the app's shutdown. `limits`: what one client
    connection may hold (the `server:` settings; their defaults if not given)."""
    limits = limits or ServerConfig()
    uvicorn.run(
        app,
        host=host,
        port=port,
        loop="uvloop" if importlib.util.find_spec("uvloop") else "asyncio",
        # httptools, one write per loop turn (coalesce.py), bounded per connection (guard.py)
        http=functools.partial(GuardedHttpToolsProtocol, limits=limits),
        ws="none",  # no endpoint takes a WebSocket: an upgrade request is answered as plain HTTP
        lifespan="on",
        log_level=log_level,
        access_log=False,
        # Nothing here reads the client's address or scheme, which is all the X-Forwarded-*
        # headers would change; uvicorn would otherwise look for them in every request.
        proxy_headers=False,
        timeout_graceful_shutdown=graceful_shutdown_s,
        timeout_keep_alive=limits.idle_timeout_s,
    )
