"""`tokenbrake demo`: the gateway in front of the emulator, driven by the official SDKs.

No API keys and no network: an emulated upstream plays the providers, the gateway runs in
front of it with the keys the scenes need, and each scene (`tokenbrake/tools/demo_scenes/`) sends
its traffic through the official SDKs. Then the gateway is stopped (SIGTERM flushes its
ledger) and what the ledger recorded is printed: each call's cost, and the usage by team,
model and user. With `keep`, the gateway stays up instead (its ledger flushed through the
admin API) and the demo prints its dashboard's address and the keys to log in with, until
Ctrl-C or SIGTERM.
"""

from __future__ import annotations

import asyncio
import secrets
import signal
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import ExitStack
from pathlib import Path

import click
import httpx
import yaml

from tokenbrake.storage import Database, open_database
from tokenbrake.storage.import_format import IMPORTED
from tokenbrake.storage.reports import money, usage_table
from tokenbrake.tools.demo_scenes import DemoRun, budgets, foresight, gateway, loops, routing, say
from tokenbrake.tools.launch import ChildServer, free_port

SCENES = [gateway, budgets, routing, loops, foresight]
VIEWER = {"name": "search-viewer", "team": "search"}  # logs in to the dashboard, sees team search only


def demo_config(emulator_url: str, database: Path) -> dict:
    raw: dict = {"database": f"sqlite:///{database}", "upstreams": {}, "models": {}}
    for scene in SCENES:
        scene.configure(raw, emulator_url)
    return raw


async def _prepare(db: Database) -> dict[str, str]:
    """The scenes' keys, and what they seed the database with."""
    keys = {}
    for scene in SCENES:
        if (seed := getattr(scene, "seed", None)) is not None:
            await seed(db)
        for key in scene.KEYS:
            keys[key["name"]], _ = await db.keys.create(key["name"], team=key["team"], models=key["models"])
    keys[VIEWER["name"]], _ = await db.keys.create(VIEWER["name"], team=VIEWER["team"], role="viewer")
    return keys


async def _ledger(db: Database, limit: int):
    """The calls the demo sent (not those a scene imported), oldest first, and the usage."""
    rows = [row for row in reversed(await db.ledger.rows(limit=limit)) if row.endpoint != IMPORTED]
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
                   meanwhile: Callable[[], None], env: dict[str, str]) -> list[ChildServer]:
    """Starts the servers side by side while `meanwhile` runs; `running` stops those that started."""
    pool = running.enter_context(ThreadPoolExecutor(len(commands)))
    futures = [pool.submit(ChildServer, args, port=port, quiet=True, env=env) for args, port in commands]
    running.callback(_stop_started, futures)
    meanwhile()
    return [future.result() for future in futures]


def _stop_started(futures: list[Future]) -> None:
    for future in futures:
        if future.exception() is None:
            future.result().stop()


def run_demo(keep: bool = False) -> None:
    click.echo("Starting the emulated upstream and the gateway in front of it…")
    emulator_port, gateway_port = free_port(), free_port()
    master = f"tb-master-demo-{secrets.token_urlsafe(12)}"
    with tempfile.TemporaryDirectory() as tmp, ExitStack() as running:
        raw = demo_config(f"http://127.0.0.1:{emulator_port}", Path(tmp) / "ledger.db")
        config_path = Path(tmp) / "tokenbrake.yaml"
        config_path.write_text(yaml.safe_dump(raw))
        keys = _with_db(raw["database"], _prepare)
        serve = ["serve", "--config", str(config_path)]
        emulator, gateway_server = _start_servers(running, [(["emulate", "--output-tokens", "40"], emulator_port),
                                                            (serve, gateway_port)],
                                                  _import_sdks, {"TOKENBRAKE_MASTER_KEY": master})
        click.echo(f"Emulated upstream on {emulator.url}, gateway on {gateway_server.url}.")
        run = DemoRun(gateway_server.url, keys, raw["database"], raw, lambda: _flush_ledger(gateway_server.url, master))
        for number, scene in enumerate(SCENES, 1):
            click.echo(f"\n[{number}/{len(SCENES)}] {scene.TITLE}")
            say("keys: " + ", ".join(f"{k['name']} (team {k['team']})" for k in scene.KEYS))
            scene.play(run)
        if keep:
            _flush_ledger(gateway_server.url, master)
        else:
            click.echo("\nStopping the gateway (SIGTERM: in-flight requests finish, the ledger is flushed).")
            gateway_server.stop()
        _print_ledger(*_with_db(raw["database"], lambda db: _ledger(db, 100)))
        address = f"{gateway_server.url}/dashboard"
        if not keep:
            click.echo(f"\nThe dashboard was at {address} while the gateway ran:")
            click.echo("run `tokenbrake demo --keep` to leave it running and open it in a browser.")
            return
        click.echo(f"\nThe gateway keeps running with this ledger. Open the dashboard: {address}")
        click.echo(f"  log in with the master key:        {master}")
        click.echo(f"  or the viewer key of team {VIEWER['team']}:  {keys[VIEWER['name']]}")
        click.echo(f"  and send more traffic to {gateway_server.url}/v1 with the demo's keys, e.g.")
        click.echo(f"  search-app: {keys['search-app']}")
        click.echo("Press Ctrl-C to stop the gateway and the emulator.")
        _wait_for_stop()
        click.echo("\nStopping the gateway and the emulator.")


def _flush_ledger(url: str, master: str) -> None:
    """Has the running gateway write what its ledger writer still queues (the usage report flushes)."""
    httpx.get(f"{url}/admin/usage", headers={"authorization": f"Bearer {master}"}, timeout=30).raise_for_status()


def _wait_for_stop() -> None:
    """Until Ctrl-C or SIGTERM; either unwinds the demo, which stops its servers."""
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass


def _print_ledger(rows, usage) -> None:
    click.echo(f"\nThe ledger, one row per upstream call ({len(rows)} calls):")
    click.echo(f"  {'key':<12} {'user':<7} {'model':<22} {'status':>6} {'in':>6} {'out':>5} {'cost':>11}  stream")
    for row in rows:
        click.echo(f"  {row.key_name or '-':<12} {row.user or '-':<7} {row.served_model or '-':<22} {row.status:>6} "
                   f"{row.input_tokens + row.cached_input_tokens:>6} {row.output_tokens:>5} {money(row.cost_usd):>11}  "
                   f"{'yes' if row.stream else ''}")
    for by, groups in usage.items():
        click.echo(f"\nUsage by {by} (tokenbrake usage --by {by}; the imported history included):")
        click.echo(usage_table(by, groups))  # not indented: the table is 100 columns wide
