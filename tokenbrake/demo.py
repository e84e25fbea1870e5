"""`tokenbrake demo`: the gateway in front of the emulator, driven by the official SDKs.

No API keys and no network: an emulated upstream plays a frontier API (priced like gpt-4o
and Claude Haiku from the price catalog) and a small local model, the gateway runs in front
of it with two teams' virtual keys, and an application's worth of traffic goes through both
front doors. Then the gateway is stopped (SIGTERM flushes its ledger) and what the ledger
recorded is printed: each call's cost, and the usage by team and by model.
"""

from __future__ import annotations

import asyncio
import re
import tempfile
from collections.abc import Callable
from pathlib import Path

import anthropic
import click
import openai
import yaml

from tokenbrake.launch import ChildServer
from tokenbrake.reports import money, usage_table
from tokenbrake.storage import Database, open_database


def demo_config(emulator_url: str, database: Path) -> dict:
    return {
        "database": f"sqlite:///{database}",
        "upstreams": {
            "frontier-api": {"kind": "openai", "base_url": emulator_url + "/v1", "provider": "openai"},
            "anthropic-api": {"kind": "anthropic", "base_url": emulator_url, "provider": "anthropic"},
            "local-gpu": {"kind": "openai", "base_url": emulator_url + "/v1"},
        },
        "models": {
            "frontier": {"upstream": "frontier-api", "model": "gpt-4o"},
            "claude-fast": {"upstream": "anthropic-api", "model": "claude-3-5-haiku-latest"},
            "local": {"upstream": "local-gpu", "model": "qwen2.5-3b-instruct",
                      "price": {"input_per_mtok": 0.02, "output_per_mtok": 0.06}},
            "text-embedding-3-small": {"upstream": "frontier-api"},
        },
    }


def _short(text: str, width: int = 64) -> str:
    text = re.sub(r"\s+", " ", text)
    return text if len(text) <= width else text[: width - 1] + "…"


def scene(label: str, call: Callable[[], str]) -> None:
    try:
        outcome = call()
    except (openai.APIError, anthropic.APIError) as exc:
        outcome = f"{type(exc).__name__}: {_short(str(exc), 90)}"
    click.echo(f"  {label:<50} {outcome}")


async def _create_keys(db: Database) -> dict[str, str]:
    search, _ = await db.keys.create("search-app", team="search")
    support, _ = await db.keys.create("support-bot", team="support", models=["local", "claude-fast"])
    return {"search": search, "support": support}


async def _ledger(db: Database, limit: int):
    rows = list(reversed(await db.ledger.rows(limit=limit)))
    return rows, {by: await db.ledger.usage(by) for by in ("team", "model", "user")}


def _with_db(url: str, work):
    async def go():
        db = await open_database(url)
        try:
            return await work(db)
        finally:
            await db.close()

    return asyncio.run(go())


def run_demo() -> None:
    with ChildServer(["emulate", "--output-tokens", "40"], quiet=True) as emulator, tempfile.TemporaryDirectory() as tmp:
        raw = demo_config(emulator.url, Path(tmp) / "ledger.db")
        config_path = Path(tmp) / "tokenbrake.yaml"
        config_path.write_text(yaml.safe_dump(raw))
        keys = _with_db(raw["database"], _create_keys)
        click.echo("Created two virtual keys: search-app (team search) and support-bot (team support, "
                   "models local and claude-fast only).")
        with ChildServer(["serve", "--config", str(config_path)], quiet=True) as gateway:
            click.echo(f"Emulated upstream on {emulator.url}, gateway on {gateway.url}.\n")
            play(gateway.url, keys)
            click.echo("\nStopping the gateway (SIGTERM: in-flight requests finish, the ledger is flushed).")
        rows, usage = _with_db(raw["database"], lambda db: _ledger(db, 100))
    click.echo(f"\nThe ledger, one row per upstream call ({len(rows)} calls):")
    click.echo(f"  {'key':<12} {'user':<7} {'model':<22} {'status':>6} {'in':>5} {'out':>5} {'cost':>11}  stream")
    for row in rows:
        click.echo(f"  {row.key_name or '-':<12} {row.user or '-':<7} {row.served_model or '-':<22} {row.status:>6} "
                   f"{row.input_tokens + row.cached_input_tokens:>5} {row.output_tokens:>5} {money(row.cost_usd):>11}  "
                   f"{'yes' if row.stream else ''}")
    for by, groups in usage.items():
        click.echo(f"\nUsage by {by} (tokenbrake usage --by {by}):")
        click.echo("\n".join("  " + line for line in usage_table(by, groups).splitlines()))


def play(url: str, keys: dict[str, str]) -> None:
    tags = {"X-Tokenbrake-Tags": "feature=search,env=demo"}
    search = openai.OpenAI(base_url=url + "/v1", api_key=keys["search"], max_retries=0, default_headers=tags)
    support_oa = openai.OpenAI(base_url=url + "/v1", api_key=keys["support"], max_retries=0)
    support_an = anthropic.Anthropic(base_url=url, api_key=keys["support"], max_retries=0,
                                     default_headers={"X-Tokenbrake-Session": "ticket-981"})
    ask = [{"role": "user", "content": "Summarise our refund policy in two sentences."}]

    def chat(client: openai.OpenAI, model: str, user: str) -> Callable[[], str]:
        return lambda: _short(client.chat.completions.create(model=model, messages=ask, user=user).choices[0].message.content or "")

    def stream() -> str:
        chunks = search.chat.completions.create(model="local", messages=ask, stream=True, user="ana")
        return _short("".join(c.choices[0].delta.content or "" for c in chunks if c.choices))

    def anthropic_to(model: str) -> Callable[[], str]:
        def call() -> str:
            message = support_an.messages.create(model=model, max_tokens=200, system="You are terse.", messages=ask,
                                                 metadata={"user_id": "ben"})
            return _short(message.content[0].text)
        return call

    def tool_call() -> str:
        tools = [{"type": "function", "function": {"name": "lookup_order", "parameters": {
            "type": "object", "properties": {"order_id": {"type": "string"}}, "required": ["order_id"]}}}]
        reply = search.chat.completions.create(model="frontier", messages=[{"role": "user", "content": "Where is order 42?"}],
                                               tools=tools, user="ana")
        call = reply.choices[0].message.tool_calls[0]
        return f"tool call {call.function.name}({call.function.arguments})"

    def cancelled() -> str:
        long_ask = [{"role": "user", "content": "Write a long essay. [[emulator: tokens=400 tps=200]]"}]
        with search.chat.completions.create(model="frontier", messages=long_ask, stream=True, user="carl") as chunks:
            received = sum(1 for _, _ in zip(range(5), chunks))
        return f"closed after {received} chunks; charged for what was produced"

    def embed() -> str:
        result = search.embeddings.create(model="text-embedding-3-small", input=["refund policy", "shipping times"])
        return f"{len(result.data)} vectors of {len(result.data[0].embedding)} dims"

    def not_allowed() -> str:
        support_oa.chat.completions.create(model="frontier", messages=ask)
        return "unexpectedly served"

    def upstream_down() -> str:
        search.chat.completions.create(model="frontier", messages=[{"role": "user", "content": "[[emulator: status=503]]"}])
        return "unexpectedly served"

    scene("search-app, OpenAI SDK → frontier", chat(search, "frontier", "ana"))
    scene("search-app, OpenAI SDK → local", chat(search, "local", "dev"))
    scene("search-app, OpenAI SDK stream → local", stream)
    scene("search-app, tool call → frontier", tool_call)
    scene("search-app, embeddings", embed)
    scene("search-app, stream cancelled by the client", cancelled)
    scene("search-app, upstream keeps answering 503", upstream_down)
    scene("support-bot, Anthropic SDK → local (translated)", anthropic_to("local"))
    scene("support-bot, Anthropic SDK → Claude", anthropic_to("claude-fast"))
    scene("support-bot, OpenAI SDK → Claude (translated)", chat(support_oa, "claude-fast", "ben"))
    scene("support-bot, OpenAI SDK → frontier (not allowed)", not_allowed)
