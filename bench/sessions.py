"""What the Sessions stage costs per call: its before and after steps, timed in process.

Runs the stage (tokenbrake/stages/watch_session.py) on prepared requests — agents of 100 calls
that read a different file each call (so the loop detector reads one more step per call) —
with the state in process and in Redis, and prints microseconds per call for: no session
rules; rules but a request without a session; session limits; limits and loop detection.
The upstream is not called: usage and cost are set as an upstream call would set them.

    .venv/bin/python bench/sessions.py [--redis redis://127.0.0.1:6379/0] [--calls 2020]
"""

from __future__ import annotations

import argparse
import asyncio
import secrets
import sys
import time
from decimal import Decimal
from pathlib import Path

import redis

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from agent_turns import body, progressing  # noqa: E402

from tokenbrake.config import parse_config  # noqa: E402
from tokenbrake.core import Attempt, Attribution, Endpoint, Format, RequestContext, Target, Usage  # noqa: E402
from tokenbrake.limits import open_limit_store  # noqa: E402
from tokenbrake.settlement.alerts import Alerts  # noqa: E402
from tokenbrake.stages.watch_session import Sessions  # noqa: E402

RAW = {"upstreams": {"u": {"kind": "openai", "base_url": "http://127.0.0.1:9/v1"}},
       "models": {"gpt-4o": {"upstream": "u", "free": True}}}
TARGET = Target("gpt-4o", "u", Format.OPENAI, "gpt-4o")
AGENT_CALLS = 100


def requests(n: int, with_session: bool) -> list[RequestContext]:
    """`n` calls of successive 100-call agents (session `agent-K`), as the upstream left them."""
    steps, out = progressing(AGENT_CALLS - 1), []
    for i in range(n):
        session = f"agent-{i // AGENT_CALLS}" if with_session else None
        ctx = RequestContext(format=Format.OPENAI, endpoint=Endpoint.CHAT, body=body(Format.OPENAI, steps[:i % AGENT_CALLS]),
                             headers={}, who=Attribution(key_name="bench", team="bench", session=session))
        ctx.targets = [TARGET]
        ctx.attempts.append(Attempt(TARGET, 200))
        ctx.usage, ctx.cost = Usage(input_tokens=500, output_tokens=40), Decimal("0.0016")
        out.append(ctx)
    return out


async def per_call_us(rules: list[dict], state: str, n: int, with_session: bool = True) -> float:
    config = parse_config({**RAW, "sessions": {"rules": rules}})
    store = await open_limit_store(state)
    stage = Sessions(config, store, Alerts(config.alerts, store))
    spent = 0.0
    try:
        for ctx in requests(n, with_session):
            started = time.perf_counter()
            await stage.before(ctx)
            await stage.after(ctx)
            spent += time.perf_counter() - started
    finally:
        await store.close()
    return spent / n * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/0")
    parser.add_argument("--calls", type=int, default=2020)
    args = parser.parse_args()
    prefix = f"tbbench-sessions-{secrets.token_hex(4)}:"
    in_redis = f"{args.redis}?prefix={prefix}"
    limits = {"scope": "global", "max_calls": 1_000_000, "max_cost_usd": 1000, "calls_per_minute": 100_000}
    cases = [
        ("no session rules", [], "memory://", True),
        ("rules, request without a session", [limits], "memory://", False),
        ("session limits, in process", [limits], "memory://", True),
        ("session limits, Redis", [limits], in_redis, True),
        ("limits + loop detection, in process", [{**limits, "on_loop": "warn"}], "memory://", True),
        ("limits + loop detection, Redis", [{**limits, "on_loop": "warn"}], in_redis, True),
    ]
    try:
        for label, rules, state, with_session in cases:
            us = asyncio.run(per_call_us(rules, state, args.calls, with_session))
            print(f"{label:<40} {us:9.2f} µs/call")
    finally:
        client = redis.Redis.from_url(args.redis)
        keys = list(client.scan_iter(match=prefix + "*"))
        if keys:
            client.delete(*keys)
        client.close()


if __name__ == "__main__":
    main()
