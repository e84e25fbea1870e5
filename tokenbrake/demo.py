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
from pathlib import Path

import click
import yaml

from tokenbrake.demo_scenes import budgets, gateway, loops, routing
from tokenbrake.launch import ChildServer
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


def run_demo() -> None:
    with ChildServer(["emulate", "--output-tokens", "40"], quiet=True) as emulator, tempfile.TemporaryDirectory() as tmp:
        raw = demo_config(emulator.url, Path(tmp) / "ledger.db")
        config_path = Path(tmp) / "tokenbrake.yaml"
        config_path.write_text(yaml.safe_dump(raw))
        keys = _with_db(raw["database"], _create_keys)
        with ChildServer(["serve", "--config", str(config_path)], quiet=True) as gateway_server:
            click.echo(f"Emulated upstream on {emulator.url}, gateway on {gateway_server.url}.")
            for scene in SCENES:
                click.echo(f"\n{scene.TITLE}")
                click.echo(f"  keys: {', '.join(k['name'] + ' (team ' + k['team'] + ')' for k in scene.KEYS)}")
                scene.play(gateway_server.url, keys)
            click.echo("\nStopping the gateway (SIGTERM: in-flight requests finish, the ledger is flushed).")
        rows, usage = _with_db(raw["database"], lambda db: _ledger(db, 500))
    click.echo(f"\nThe ledger, one row per upstream call ({len(rows)} calls):")
    click.echo(f"  {'key':<12} {'user':<7} {'model':<22} {'status':>6} {'in':>6} {'out':>5} {'cost':>11}  stream")
    for row in rows:
        click.echo(f"  {row.key_name or '-':<12} {row.user or '-':<7} {row.served_model or '-':<22} {row.status:>6} "
                   f"{row.input_tokens + row.cached_input_tokens:>6} {row.output_tokens:>5} {money(row.cost_usd):>11}  "
                   f"{'yes' if row.stream else ''}")
    for by, groups in usage.items():
        click.echo(f"\nUsage by {by} (tokenbrake usage --by {by}):")
        click.echo("\n".join("  " + line for line in usage_table(by, groups).splitlines()))
