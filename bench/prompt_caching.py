"""Prompt caching on autopilot, measured: the input cost of the loop evaluation set's
progressing agent sessions on an Anthropic model, with the autopilot on and off, same run.

    .venv/bin/python bench/prompt_caching.py               # every progressing session
    .venv/bin/python bench/prompt_caching.py --sessions 8  # the first 8 of them

Starts `tokenbrake emulate` (whose prompt cache behaves as Anthropic's: writes at 1.25x,
reads at 0.1x the input price, 5-minute TTL, the model's minimum) and `tokenbrake serve` with
two models on the same emulated claude-sonnet-4-5: `sonnet` (an upstream with the default
`prompt_caching: auto`) and `sonnet-plain` (`prompt_caching: off`). Each progressing session
(tokenbrake/evaluation/loop_sessions: coding, reading, searching, paginating, polling, long
chats, writer/reviewer; some trim their context to a window) is replayed as its agent sends it,
with no cache_control, with the official SDK of its format (OpenAI-format sessions reach the
Anthropic upstream by translation), once per model. Input cost is read from the ledger's
token columns at the catalog's Sonnet 4.5 prices ($3 input, $0.30 cache read, $3.75 cache
write per million), output left out: both runs get the same answers.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sqlite3
import subprocess
import sys
import tempfile
import time
import uuid
from collections import defaultdict
from decimal import Decimal
from pathlib import Path
from typing import Any

import anthropic
import openai
import yaml

from tokenbrake.config import parse_config
from tokenbrake.core import Format, Usage
from tokenbrake.evaluation.loop_sessions import Session, build_sessions
from tokenbrake.settlement.pricing import PriceBook
from tokenbrake.tools.launch import ChildServer

MODELS = {"sonnet": "auto", "sonnet-plain": "off"}
UPSTREAM_MODEL = "claude-sonnet-4-5"
CONCURRENT_SESSIONS = 4
MASTER_KEY = "tb-master-bench"


def gateway_config(emulator_url: str, folder: Path) -> dict[str, Any]:
    upstreams = {f"emulator-{mode}": {"kind": "anthropic", "base_url": emulator_url, "provider": "anthropic",
                                      "prompt_caching": mode} for mode in MODELS.values()}
    models = {name: {"upstream": f"emulator-{mode}", "model": UPSTREAM_MODEL} for name, mode in MODELS.items()}
    return {"database": f"sqlite:///{folder / 'ledger.db'}", "state": "memory://",
            "server": {"max_body_bytes": 16 * 1024 * 1024}, "upstreams": upstreams, "models": models}


def create_key(config: Path) -> str:
    result = subprocess.run([sys.executable, "-m", "tokenbrake.cli", "keys", "create", "--name", "bench-agents",
                             "--json", "--config", str(config)], capture_output=True, text=True, check=True, timeout=60)
    return json.loads(result.stdout)["key"]


async def replay(sessions: list[Session], url: str, key: str, run: str) -> None:
    """Every session once per model, a few at a time, each call as its agent sends it."""
    oa = openai.AsyncOpenAI(base_url=url + "/v1", api_key=key, max_retries=0, timeout=120)
    an = anthropic.AsyncAnthropic(base_url=url, api_key=key, max_retries=0, timeout=120)
    limit = asyncio.Semaphore(CONCURRENT_SESSIONS)

    async def one(session: Session, model: str) -> None:
        async with limit:
            headers = {"X-Tokenbrake-Session": f"{run}-{model}-{session.name}"}
            for body in session.requests():
                body = {**body, "model": model}
                if session.format is Format.ANTHROPIC:
                    await an.messages.create(**body, extra_headers=headers)
                else:
                    await oa.chat.completions.create(**body, extra_headers=headers)

    try:
        await asyncio.gather(*(one(session, model) for session in sessions for model in MODELS))
    finally:
        await oa.close()
        await an.close()


def input_costs(database: Path, prices: PriceBook) -> dict[str, dict[str, Decimal]]:
    """Per model, per token kind (uncached, cache read, cache write): the input's cost."""
    with sqlite3.connect(database) as db:
        rows = db.execute("SELECT served_model, input_tokens, cached_input_tokens, cache_write_tokens "
                          "FROM ledger WHERE status = 200").fetchall()
    costs: dict[str, dict[str, Decimal]] = defaultdict(lambda: defaultdict(Decimal))
    for model, plain, read, written in rows:
        for kind, usage in (("uncached", Usage(input_tokens=plain)), ("read", Usage(cached_input_tokens=read)),
                            ("written", Usage(cache_write_tokens=written))):
            costs[model][kind] += prices.cost(model, usage)
        costs[model]["calls"] += 1
    return costs


def report(costs: dict[str, dict[str, Decimal]], sessions: list[Session], seconds: float) -> None:
    on, off = costs["sonnet"], costs["sonnet-plain"]
    total_on, total_off = on["uncached"] + on["read"] + on["written"], off["uncached"]
    print(f"{len(sessions)} progressing sessions, {int(on['calls'])} calls each way, "
          f"replayed in {seconds:.0f} s ({CONCURRENT_SESSIONS} sessions at a time)")
    print(f"input cost, autopilot off: ${total_off:.2f}")
    print(f"input cost, autopilot on:  ${total_on:.2f}  (uncached ${on['uncached']:.2f}, "
          f"cache reads ${on['read']:.2f}, cache writes ${on['written']:.2f})")
    print(f"ratio on/off: {total_on / total_off:.3f}  ({1 - total_on / total_off:.1%} cheaper input)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sessions", type=int, default=None, help="replay only the first N progressing sessions")
    args = parser.parse_args()
    sessions = [s for s in build_sessions() if s.loop_kind is None][: args.sessions]
    folder = Path(tempfile.mkdtemp(prefix="tokenbrake-prompt-caching-"))
    with ChildServer(["emulate"], quiet=True) as emulator:
        config = gateway_config(emulator.url, folder)
        path = folder / "tokenbrake.yaml"
        path.write_text(yaml.safe_dump(config))
        key = create_key(path)
        gateway = ChildServer(["serve", "--config", str(path)], quiet=True, env={"TOKENBRAKE_MASTER_KEY": MASTER_KEY})
        try:
            began = time.perf_counter()
            asyncio.run(replay(sessions, gateway.url, key, uuid.uuid4().hex[:8]))
            seconds = time.perf_counter() - began
        finally:
            gateway.stop()  # SIGTERM flushes the ledger
    report(input_costs(folder / "ledger.db", PriceBook(parse_config(config))), sessions, seconds)


if __name__ == "__main__":
    main()
