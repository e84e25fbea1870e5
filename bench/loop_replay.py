"""bench/loops.py through the gateway: the evaluation set replayed with the official SDKs.

Starts `tokenbrake emulate` and `tokenbrake serve` (SQLite ledger, in-process state) with one
sessions rule, `on_loop: stop`, for every key. Each session is replayed with the SDK of its
format (the OpenAI SDK for OpenAI-format sessions, the Anthropic SDK for the others, both to
the catalog-priced model gpt-4o, which the Anthropic front door reaches by translation) and
the header X-Tokenbrake-Session; the first call refused with code `session_stopped` is where
the gateway stopped it, and the session is replayed no further (the agent would have failed
there). A few sessions are replayed at once. Afterwards the gateway is stopped (SIGTERM
flushes the ledger) and each call's cost is read from the ledger, in request order.

The bench process also runs the detector on every body it sends, timed: the detector's cost
per call, and a check that the gateway stopped each session where the detector alone does.
Upstream output is the emulator's (not the script's assistant turn), so dollars differ a
little from --direct's.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
import subprocess
import sys
import tempfile
import time
import uuid
from decimal import Decimal
from pathlib import Path
from typing import Any

import anthropic
import openai
import orjson
import yaml

from tokenbrake.config import LoopConfig
from tokenbrake.core import Format
from tokenbrake.evaluation.loop_sessions import Session
from tokenbrake.loops import LoopDetector
from tokenbrake.tools.launch import ChildServer

MODEL = "gpt-4o"
CONCURRENT_SESSIONS = 4
MASTER_KEY = "tb-master-bench"


def gateway_config(emulator_url: str, folder: Path, settings: LoopConfig) -> dict[str, Any]:
    return {
        "database": f"sqlite:///{folder / 'ledger.db'}",
        "state": "memory://",
        "server": {"max_body_bytes": 16 * 1024 * 1024},
        "upstreams": {"emulator": {"kind": "openai", "base_url": emulator_url + "/v1", "provider": "openai"}},
        "models": {MODEL: {"upstream": "emulator"}},
        "sessions": {"rules": [{"scope": "global", "on_loop": "stop"}], "loops": settings.model_dump()},
    }


def create_key(config: Path) -> str:
    result = subprocess.run([sys.executable, "-m", "tokenbrake.cli", "keys", "create", "--name", "bench-agents",
                             "--json", "--config", str(config)], capture_output=True, text=True, check=True, timeout=60)
    return json.loads(result.stdout)["key"]


class Replayer:
    def __init__(self, url: str, key: str, settings: LoopConfig, run: str) -> None:
        self.openai = openai.AsyncOpenAI(base_url=url + "/v1", api_key=key, max_retries=0, timeout=120)
        self.anthropic = anthropic.AsyncAnthropic(base_url=url, api_key=key, max_retries=0, timeout=120)
        self.detector = LoopDetector(settings)
        self.run = run
        self.timings: list[float] = []
        self.largest_trace = 0
        self.disagreements: list[str] = []
        self.repetitions: dict[str, int] = {}  # per session stopped: the detector's count at the stop

    async def replay(self, session: Session) -> tuple[str, int | None, str]:
        """The session id used, the call the gateway refused (None: none), and its message."""
        session_id = f"{self.run}-{session.name}"
        headers = {"X-Tokenbrake-Session": session_id}
        trace, alone = None, None
        for index, body in enumerate(session.requests()):
            began = time.thread_time()
            trace, verdict = self.detector.observe(trace, session.format, body)
            self.timings.append(time.thread_time() - began)
            self.largest_trace = max(self.largest_trace, len(orjson.dumps(trace)))
            if verdict.looping and alone is None:
                alone = index
                self.repetitions[session.name] = verdict.repetitions
            body = {**body, "model": MODEL}
            try:
                if session.format is Format.ANTHROPIC:
                    await self.anthropic.messages.create(**body, extra_headers=headers)
                else:
                    await self.openai.chat.completions.create(**body, extra_headers=headers)
            except (openai.RateLimitError, anthropic.RateLimitError) as exc:
                if "session_stopped" not in str(exc.body) and "is stopped" not in str(exc):
                    raise
                if alone != index:
                    self.disagreements.append(f"{session.name}: gateway stopped at {index}, detector alone at {alone}")
                return session_id, index, str(exc)
        if alone is not None:
            self.disagreements.append(f"{session.name}: gateway never stopped it, detector alone at {alone}")
        return session_id, None, ""

    async def close(self) -> None:
        await self.openai.close()
        await self.anthropic.close()


async def _replay_all(replayer: Replayer, sessions: list[Session]) -> list[tuple[str, int | None, str]]:
    limit = asyncio.Semaphore(CONCURRENT_SESSIONS)

    async def one(session: Session) -> tuple[str, int | None, str]:
        async with limit:
            return await replayer.replay(session)

    try:
        return await asyncio.gather(*(one(session) for session in sessions))
    finally:
        await replayer.close()


def ledger_costs(database: Path) -> dict[str, list[Decimal]]:
    """Each session's calls' costs, in the order they were made (request ids are time-ordered)."""
    with sqlite3.connect(database) as db:
        rows = db.execute("SELECT session_id, cost_usd FROM ledger WHERE session_id IS NOT NULL ORDER BY request_id").fetchall()
    costs: dict[str, list[Decimal]] = {}
    for session_id, cost in rows:
        costs.setdefault(session_id, []).append(Decimal(str(cost)))
    return costs


def replay_gateway(sessions: list[Session], settings: LoopConfig) -> tuple[list[tuple[int | None, str, list[Decimal]]], Replayer]:
    """Per session: the call the gateway refused (None: none), its message, and the costs of
    the calls that went upstream, from the ledger."""
    folder = Path(tempfile.mkdtemp(prefix="tokenbrake-loops-"))
    with ChildServer(["emulate"], quiet=True) as emulator:
        config = folder / "tokenbrake.yaml"
        config.write_text(yaml.safe_dump(gateway_config(emulator.url, folder, settings)))
        key = create_key(config)
        gateway = ChildServer(["serve", "--config", str(config)], quiet=True, env={"TOKENBRAKE_MASTER_KEY": MASTER_KEY})
        replayer = Replayer(gateway.url, key, settings, uuid.uuid4().hex[:8])
        try:
            began = time.perf_counter()
            results = asyncio.run(_replay_all(replayer, sessions))
            seconds = time.perf_counter() - began
        finally:
            gateway.stop()
    costs = ledger_costs(folder / "ledger.db")
    calls = sum(len(c) for c in costs.values())
    print(f"replayed {calls} calls through the gateway in {seconds:.0f} s ({CONCURRENT_SESSIONS} sessions at a time)")
    for line in replayer.disagreements:
        print(f"  DISAGREEMENT {line}")
    return [(stopped_at, message, costs.get(session_id, [])) for session_id, stopped_at, message in results], replayer


def kind_in(message: str) -> str | None:
    for kind in ("repeated_tool_call", "cycle", "repeated_output", "stale_context", "ping_pong"):
        if kind in message:
            return kind
    return None
