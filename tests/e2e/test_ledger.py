"""The ledger misses nothing: for concurrent mixed calls (streamed, cancelled, failed, cut
off) its totals equal what the upstream itself reported, on SQLite and on PostgreSQL, and
across a SIGTERM restart."""

import asyncio
import re
import signal
import uuid
from decimal import Decimal

import anthropic
import httpx
import openai
import pytest

from tokenbrake.config import parse_config
from tokenbrake.core import Usage
from tokenbrake.settlement.pricing import PriceBook
from tokenbrake.storage import open_database
from tokenbrake.tools.launch import ChildServer


def user(text: str) -> list[dict]:
    return [{"role": "user", "content": text}]


async def one_call(kind: str, oa: openai.AsyncOpenAI, an: anthropic.AsyncAnthropic, tag: str) -> None:
    """One call of the given kind; errors are part of the mix and are expected."""
    try:
        if kind == "openai":
            await oa.chat.completions.create(model="gpt-4o", messages=user(f"[[emulator: id={tag} tokens=9]]"))
        elif kind == "openai-stream":
            stream = await oa.chat.completions.create(model="small", messages=user(f"[[emulator: id={tag}]]"), stream=True)
            async for _ in stream:
                pass
        elif kind == "anthropic-stream":
            async with an.messages.stream(model="claude-fast", max_tokens=60, messages=user(f"[[emulator: id={tag}]]")) as s:
                await s.get_final_message()
        elif kind == "anthropic-to-openai":
            await an.messages.create(model="small", max_tokens=60, messages=user(f"[[emulator: id={tag} tokens=11]]"))
        elif kind == "openai-to-anthropic-stream":
            stream = await oa.chat.completions.create(model="claude-fast", messages=user(f"[[emulator: id={tag}]]"), stream=True)
            async for _ in stream:
                pass
        elif kind == "upstream-500":
            await oa.chat.completions.create(model="gpt-4o", messages=user(f"[[emulator: id={tag} status=500]]"))
        elif kind == "cut":
            stream = await oa.chat.completions.create(model="gpt-4o", messages=user(f"[[emulator: id={tag} tokens=40 cut=5]]"), stream=True)
            async for _ in stream:
                pass
        elif kind == "cancelled":
            stream = await oa.chat.completions.create(
                model="gpt-4o", messages=user(f"[[emulator: id={tag} tokens=200 tps=100]]"), stream=True)
            received = 0
            async for _ in stream:
                received += 1
                if received == 4:
                    break
            await stream.close()
    except (openai.APIError, anthropic.APIError):
        pass


KINDS = ["openai", "openai-stream", "anthropic-stream", "anthropic-to-openai", "openai-to-anthropic-stream",
         "upstream-500", "cut", "cancelled"]


async def mixed_traffic(url: str, key: str, marker: str, count: int) -> None:
    async with openai.AsyncOpenAI(base_url=url + "/v1", api_key=key, max_retries=0) as oa, \
            anthropic.AsyncAnthropic(base_url=url, api_key=key, max_retries=0) as an:
        await asyncio.gather(*(one_call(KINDS[i % len(KINDS)], oa, an, f"{marker}-{i}") for i in range(count)))


def upstream_by_call(emulator, config: dict, marker: str) -> dict[str, dict]:
    """What the emulator reported for each call id of this marker (retries summed), priced
    with the gateway's own config."""
    upstream_names = {(m.get("model") or name): name for name, m in config["models"].items()}
    prices = PriceBook(parse_config(config, {}))
    calls: dict[str, dict] = {}
    for record in httpx.get(emulator.url + "/_emulator/requests").json():
        found = re.search(rf"id=({marker}-\d+)", str(record["body"]))
        if not found:
            continue
        usage = record["usage"] or {"input_tokens": 0, "output_tokens": 0}
        call = calls.setdefault(found.group(1), {"input": 0, "output": 0, "cost": Decimal(0), "outcomes": []})
        call["input"] += usage["input_tokens"]
        call["output"] += usage["output_tokens"]
        call["cost"] += prices.cost(upstream_names[record["model"]], Usage(
            input_tokens=usage["input_tokens"], output_tokens=usage["output_tokens"]))
        call["outcomes"].append(record["outcome"])
    return calls


def ledger_by_call(database_url: str, marker: str) -> dict[str, object]:
    """The gateway's ledger rows for this marker's calls, by call id (prompts are stored)."""
    async def read():
        db = await open_database(database_url)
        try:
            return await db.ledger.rows(limit=10_000)
        finally:
            await db.close()

    rows = {}
    for row in asyncio.run(read()):
        found = re.search(rf"id=({marker}-\d+)", row.prompt or "")
        if found:
            rows[found.group(1)] = row
    return rows


def ledger_totals(gateway, master_key: str, key_name: str) -> dict:
    rows = httpx.get(gateway.url + "/admin/usage?by=key", headers={"authorization": f"Bearer {master_key}"}).json()["data"]
    return next(row for row in rows if row["key"] == key_name)


def start_gateway(config_path, master_key: str) -> ChildServer:
    return ChildServer(["serve", "--config", str(config_path)], quiet=True,
                       env={"TOKENBRAKE_MASTER_KEY": master_key})


@pytest.fixture
def ledger_setup(emulator, tmp_path, database_url, master_key):
    """A gateway of its own on a fresh database, with one key; yields (config, path, key)."""
    from gateway_setup import create_key, gateway_config, write_config

    config = gateway_config(emulator.url, database_url)
    config["ledger"] = {"flush_interval_s": 0.2, "store_prompts": True}  # to match rows to calls
    path = write_config(tmp_path, config)
    key = create_key(path, "ledger-test")
    return config, path, key


def test_ledger_equals_what_the_upstream_reported_for_concurrent_mixed_calls(emulator, ledger_setup, master_key):
    config, path, key = ledger_setup
    marker = f"mix{uuid.uuid4().hex[:8]}"
    with start_gateway(path, master_key) as gateway:
        asyncio.run(mixed_traffic(gateway.url, key, marker, count=48))
        upstream = upstream_by_call(emulator, config, marker)
        totals = ledger_totals(gateway, master_key, "ledger-test")
    rows = ledger_by_call(config["database"], marker)
    assert len(upstream) == len(rows) == totals["requests"] == 48
    for call, reported in upstream.items():
        row = rows[call]
        assert row.input_tokens == reported["input"], call
        if "disconnected" in reported["outcomes"]:
            # The client hung up: the gateway charges every token that reached it. A chunk the
            # upstream wrote in the instant before our hang-up reached it, may still be on the
            # wire, unseen: at most one token per stream here (one token per chunk).
            assert row.status == 499 and 0 <= reported["output"] - row.output_tokens <= 1, call
            assert row.cost_usd <= reported["cost"], call
        else:
            assert row.output_tokens == reported["output"] and row.cost_usd == reported["cost"], call
    assert Decimal(totals["cost_usd"]) == sum((row.cost_usd for row in rows.values()), Decimal(0))
    assert sum(1 for row in rows.values() if row.status >= 400) == 18  # 500s, cut streams, cancels


def test_sigterm_finishes_requests_in_flight_and_flushes_the_ledger(emulator, ledger_setup, master_key):
    config, path, key = ledger_setup
    marker = f"term{uuid.uuid4().hex[:8]}"
    gateway = start_gateway(path, master_key)

    async def slow_streams() -> list[str]:
        async with openai.AsyncOpenAI(base_url=gateway.url + "/v1", api_key=key, max_retries=0) as oa:
            async def one(i: int) -> str:
                stream = await oa.chat.completions.create(
                    model="small", stream=True, messages=user(f"[[emulator: id={marker}-{i} tokens=60 tps=60]]"))
                return "".join([c.choices[0].delta.content or "" async for c in stream if c.choices])

            async def terminate_soon() -> None:
                await asyncio.sleep(0.4)
                gateway.process.terminate()

            texts = await asyncio.gather(*(one(i) for i in range(6)), terminate_soon())
            return [t for t in texts if t is not None]

    texts = asyncio.run(slow_streams())
    # uvicorn re-raises the SIGTERM it handled once shutdown is complete
    assert gateway.process.wait(timeout=30) in (0, -signal.SIGTERM)
    assert all(texts)  # every stream in flight was finished, not cut
    upstream = upstream_by_call(emulator, config, marker)
    with start_gateway(path, master_key) as restarted:
        totals = ledger_totals(restarted, master_key, "ledger-test")
    assert len(upstream) == totals["requests"] == 6
    assert totals["input_tokens"] == sum(call["input"] for call in upstream.values())
    assert totals["output_tokens"] == sum(call["output"] for call in upstream.values())
    assert Decimal(totals["cost_usd"]) == sum((call["cost"] for call in upstream.values()), Decimal(0))
