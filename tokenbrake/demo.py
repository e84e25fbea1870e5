"""`tokenbrake demo`: the gateway in front of the emulator, driven by the official SDKs.

No API keys and no network: an emulated upstream plays the providers, the gateway runs in
front of it with the keys the scenes need, and each scene (`tokenbrake/demo_scenes/`) sends
its traffic through the official SDKs. Then the gateway is stopped (SIGTERM flushes its
ledger) and what the ledger recorded is printed: each call's cost, and the usage by team,
model and user.
"""

from __future__ import annotations

import asyncio
import tempfile
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import ExitStack
from pathlib import Path

import click
import yaml

from tokenbrake.demo_scenes import budgets, gateway, loops, routing, say
from tokenbrake.launch import ChildServer, free_port
from tokenbrake.reports import money, usage_table
from tokenbrake.storage import Database, open_database

SCENES = [gateway, budgets, routing, loops]


def demo_config(emulator_url: str, database: Path) -> dict:
    raw: dict = {"database": f"sqlite:///{database}", "upstreams": {}, "models": {}}
    for scene in SCENES:
        scene.configure(raw, emulator_url)
    return raw


async def _create_keys(db: Database) -> dict[str, str]:
    keys = {}
    for scene in SCENES:
        for key in scene.KEYS:
            keys[key["name"]], _ = await db.keys.create(key["name"], team=key["team"], models=key["models"])
    return keys


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


def _import_sdks() -> None:
    """The official SDKs the scenes drive: about 2 s of CPU to import, spent while the servers start."""
    import anthropic  # noqa: F401
    import openai  # noqa: F401


def _start_servers(running: ExitStack, commands: list[tuple[list[str], int]],
                   meanwhile: Callable[[], None]) -> list[ChildServer]:
    """Starts the servers side by side while `meanwhile` runs; `running` stops those that started."""
    pool = running.enter_context(ThreadPoolExecutor(len(commands)))
    futures = [pool.submit(ChildServer, args, port=port, quiet=True) for args, port in commands]
    running.callback(_stop_started, futures)
    meanwhile()
    return [future.result() for future in futures]


def _stop_started(futures: list[Future]) -> None:
    for future in futures:
        if future.exception() is None:
            future.result().stop()


def run_demo() -> None:
    click.echo("Starting the emulated upstream and the gateway in front of it…")
    emulator_port, gateway_port = free_port(), free_port()
    with tempfile.TemporaryDirectory() as tmp, ExitStack() as running:
        raw = demo_config(f"http://127.0.0.1:{emulator_port}", Path(tmp) / "ledger.db")
        config_path = Path(tmp) / "tokenbrake.yaml"
        config_path.write_text(yaml.safe_dump(raw))
        keys = _with_db(raw["database"], _create_keys)
        emulator, gateway_server = _start_servers(running, [(["emulate", "--output-tokens", "40"], emulator_port),
                                                            (["serve", "--config", str(config_path)], gateway_port)],
                                                  _import_sdks)
        click.echo(f"Emulated upstream on {emulator.url}, gateway on {gateway_server.url}.")
        for number, scene in enumerate(SCENES, 1):
            click.echo(f"\n[{number}/{len(SCENES)}] {scene.TITLE}")
            say("keys: " + ", ".join(f"{k['name']} (team {k['team']})" for k in scene.KEYS))
            scene.play(gateway_server.url, keys)
        click.echo("\nStopping the gateway (SIGTERM: in-flight requests finish, the ledger is flushed).")
        gateway_server.stop()
        rows, usage = _with_db(raw["database"], lambda db: _ledger(db, 500))
    click.echo(f"\nThe ledger, one row per upstream call ({len(rows)} calls):")
    click.echo(f"  {'key':<12} {'user':<7} {'model':<22} {'status':>6} {'in':>6} {'out':>5} {'cost':>11}  stream")
    for row in rows:
        click.echo(f"  {row.key_name or '-':<12} {row.user or '-':<7} {row.served_model or '-':<22} {row.status:>6} "
                   f"{row.input_tokens + row.cached_input_tokens:>6} {row.output_tokens:>5} {money(row.cost_usd):>11}  "
                   f"{'yes' if row.stream else ''}")
    for by, groups in usage.items():
        click.echo(f"\nUsage by {by} (tokenbrake usage --by {by}):")
        click.echo(usage_table(by, groups))  # not indented: the table is 100 columns wide
