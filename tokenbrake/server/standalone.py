"""`tokenbrake dashboard`: the dashboard, the insight API and the admin reads, on their own port.

It opens only what reading needs: the database, the keys (reloaded as the gateways' are, on
the change channel) and the state backend read-only; no ledger writer, no journal, no
upstreams. So it runs beside the gateways of one database without touching what they do.
In-process state (memory://) is read from the gateway's snapshot file, reopened when it is
more than a few seconds old, since the gateway rewrites it every few seconds.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass

from starlette.applications import Starlette
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from tokenbrake.admission.auth import KeyCache
from tokenbrake.changes import KEYS, Refresher, open_channel
from tokenbrake.config import Config
from tokenbrake.dashboard import pages as dashboard
from tokenbrake.limits import LimitStore, open_limit_store
from tokenbrake.server import admin, insight
from tokenbrake.server.front_doors import JSONBytes
from tokenbrake.storage import Database, open_database

SNAPSHOT_REOPEN_S = 3.0
READS = {"/admin/budgets", "/admin/sessions", "/admin/sessions/{session:path}"}


class NothingQueued:
    """The ledger writer's place: this process queues no rows, so there is nothing to flush."""

    async def flush(self) -> None:
        return None


@dataclass
class ReadState:
    """What the read endpoints use of a gateway's state."""

    config: Config
    database: Database
    limits: LimitStore
    keys: KeyCache
    refresher: Refresher
    writer: NothingQueued
    opened_at: float = 0.0

    async def fresh(self, lock: asyncio.Lock) -> None:
        """Reopens an in-process store's snapshot once it is older than SNAPSHOT_REOPEN_S."""
        if not self.config.state_url.startswith("memory://") or time.monotonic() - self.opened_at < SNAPSHOT_REOPEN_S:
            return
        async with lock:
            if time.monotonic() - self.opened_at >= SNAPSHOT_REOPEN_S:
                old, self.limits = self.limits, await open_limit_store(self.config.state_url, read_only=True)
                self.opened_at = time.monotonic()
                await old.close()

    async def aclose(self) -> None:
        await self.refresher.stop()
        await self.limits.close()
        await self.database.close()


async def open_read_state(config: Config) -> ReadState:
    database = await open_database(config.database)
    keys = KeyCache(database)
    await keys.reload()
    refresher = Refresher(open_channel(config, database))
    refresher.follow(KEYS, keys.reload, config.auth.refresh_s)
    await refresher.start()
    limits = await open_limit_store(config.state_url, read_only=True)
    return ReadState(config, database, limits, keys, refresher, NothingQueued(), time.monotonic())


class FreshSnapshot:
    """Has each request read a snapshot at most SNAPSHOT_REOPEN_S old."""

    def __init__(self, app: Starlette) -> None:
        self.app = app
        self.lock = asyncio.Lock()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        state = getattr(self.app.state, "tokenbrake", None)
        if scope["type"] == "http" and state is not None:
            await state.fresh(self.lock)
        await self.app(scope, receive, send)


def build_dashboard_app(config: Config) -> ASGIApp:
    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        app.state.tokenbrake = await open_read_state(config)
        try:
            yield
        finally:
            await app.state.tokenbrake.aclose()

    reads = [route for route in admin.routes if route.path in READS and "GET" in (route.methods or ())]
    routes = [Route("/healthz", healthz, methods=["GET"]), *reads, *insight.routes, *dashboard.routes]
    app = Starlette(routes=routes, lifespan=lifespan)
    app.state.dashboard = dashboard.Dashboard(actions=False)
    return FreshSnapshot(app)


async def healthz(request) -> ASGIApp:
    return JSONBytes({"status": "ok"})
