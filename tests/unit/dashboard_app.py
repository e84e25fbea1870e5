"""An in-process gateway for the dashboard's and the access rules' tests: the real app
(`build_app`) with its real state on an SQLite file, driven through httpx's ASGI transport,
keys made as the CLI makes them. Nothing listens on a socket; no upstream is ever called (the
requests these tests send are refused before one would be)."""

from __future__ import annotations

import contextlib
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import httpx

from tokenbrake.config import parse_config
from tokenbrake.gateway.state import AppState
from tokenbrake.server.app import build_app

MASTER = "tb-master-dashboard-test"
BASE = "http://gateway.test"


@dataclass
class Gateway:
    client: httpx.AsyncClient
    state: AppState
    app: object

    async def key(self, name: str, team: str | None = None, role: str = "app") -> str:
        plaintext, _ = await self.state.database.keys.create(name, team=team, role=role)
        await self.state.keys.reload()
        return plaintext

    async def login(self, key: str = MASTER, **form: str) -> httpx.Response:
        """The login form fetched, then posted with `key` (and any field in `form` instead)."""
        page = await self.client.get("/dashboard/login")
        csrf = re.search(r'name="csrf" value="([^"]+)"', page.text).group(1)
        return await self.client.post("/dashboard/login", data={"csrf": csrf, "next": "/dashboard/overview",
                                                                "key": key, **form})

    async def csrf(self) -> str:
        """The CSRF token the pages of the current login carry."""
        page = await self.client.get("/dashboard/overview")
        return re.search(r'<meta name="csrf-token" content="([^"]+)">', page.text).group(1)


def config(folder: Path, budgets: list[dict] | None = None):
    return parse_config({
        "database": f"sqlite:///{folder / 'ledger.db'}",
        "upstreams": {"nowhere": {"kind": "openai", "base_url": "http://127.0.0.1:9/v1"}},
        "models": {"small": {"upstream": "nowhere", "price": {"input_per_mtok": 0.02, "output_per_mtok": 0.06}}},
        "budgets": budgets or [],
    })


@contextlib.asynccontextmanager
async def gateway_at(folder: Path, budgets: list[dict] | None = None) -> AsyncIterator[Gateway]:
    """The gateway, opened and closed within the test's own coroutine: the state's background
    tasks do not outlive the event loop run that started them (pytest-asyncio runs a
    fixture's setup and teardown apart from the test, and cancelling the change refresher's
    tasks from another run was seen to hang)."""
    cfg = config(folder, budgets)
    app = build_app(cfg)
    state = await AppState.open(cfg)
    app.app.state.tokenbrake = state
    client = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=BASE, follow_redirects=False)
    try:
        yield Gateway(client, state, app)
    finally:
        await client.aclose()
        await state.aclose()
