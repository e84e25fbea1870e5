"""The ledger misses nothing: for concurrent mixed calls (streamed, cancelled, failed, cut
off) its totals equal what the upstream itself reported, on SQLite and on PostgreSQL, and
across a SIGTERM restart."""

import asyncio
import signal
import uuid
from decimal import Decimal

import anthropic
import httpx
import openai
import pytest
import yaml

from tokenbrake.config import parse_config
from tokenbrake.core import Usage
from tokenbrake.launch import ChildServer
from tokenbrake.pricing import PriceBook


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


def upstream_report(emulator, config: dict, marker: str) -> tuple[int, int, Decimal, int]:
    """Input tokens, output tokens and cost the emulator reported for this marker's calls,
    and how many calls reached it."""
    upstream_names = {(m.get("model") or name): name for name, m in config["models"].items()}
    prices = PriceBook(parse_config(config, {}))
    records = [r for r in httpx.get(emulator.url + "/_emulator/requests").json() if marker in str(r["body"])]
    inputs = outputs = 0
    cost = Decimal(0)
    for record in records:
        usage = record["usage"] or {"input_tokens": 0, "output_tokens": 0}
        inputs += usage["input_tokens"]
        outputs += usage["output_tokens"]
        cost += prices.cost(upstream_names[record["model"]], Usage(input_tokens=usage["input_tokens"],
                                                                   output_tokens=usage["output_tokens"]))
    return inputs, outputs, cost, len(records)


def ledger_totals(gateway, master_key: str, key_name: str) -> dict:
    rows = httpx.get(gateway.url + "/admin/usage?by=key", headers={"authorization": f"Bearer {master_key}"}).json()["data"]
    return next(row for row in rows if row["key"] == key_name)


def start_gateway(config_path, master_key: str) -> ChildServer:
    return ChildServer(["serve", "--config", str(config_path)], quiet=True,
                       env={"TOKENBRAKE_MASTER_KEY": master_key})


@pytest.fixture
def ledger_setup(emulator, tmp_path, database_url, master_key):
    """A gateway of its own on a fresh database, with one key; yields (config, path, key)."""
    from conftest import create_key, gateway_config, write_config

    config = gateway_config(emulator.url, database_url)
    config["ledger"] = {"flush_interval_s": 0.2}
    path = write_config(tmp_path, config)
    key = create_key(path, "ledger-test")
    return config, path, key


def test_ledger_equals_what_the_upstream_reported_for_concurrent_mixed_calls(emulator, ledger_setup, master_key):
    config, path, key = ledger_setup
    marker = f"mix{uuid.uuid4().hex[:8]}"
    with start_gateway(path, master_key) as gateway:
        asyncio.run(mixed_traffic(gateway.url, key, marker, count=48))
        inputs, outputs, cost, calls = upstream_report(emulator, config, marker)
        totals = ledger_totals(gateway, master_key, "ledger-test")
    assert calls > 48  # the 500s were retried
    assert totals["requests"] == 48
    assert (totals["input_tokens"], totals["output_tokens"]) == (inputs, outputs)
    assert Decimal(totals["cost_usd"]) == cost
    assert totals["errors"] >= 12  # the 500s and the cut streams


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
    with start_gateway(path, master_key) as restarted:
        inputs, outputs, cost, calls = upstream_report(emulator, config, marker)
        totals = ledger_totals(restarted, master_key, "ledger-test")
    assert calls == 6 and totals["requests"] == 6
    assert (totals["input_tokens"], totals["output_tokens"]) == (inputs, outputs)
    assert Decimal(totals["cost_usd"]) == cost
