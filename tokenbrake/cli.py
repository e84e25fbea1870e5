"""The `tokenbrake` command. Each command parses its options, calls the library, prints."""

from __future__ import annotations

import sys

import click

from tokenbrake.config import ConfigError, load_config


@click.group()
@click.version_option(package_name="tokenbrake")
def main() -> None:
    """tokenbrake: a gateway and control plane for LLM spend."""


def _load(path: str):
    try:
        return load_config(path)
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from None


@main.command()
@click.option("--config", "config_path", envvar="TOKENBRAKE_CONFIG", required=True, help="YAML config file (or TOKENBRAKE_CONFIG).")
@click.option("--host", default=None, help="Address to listen on [default: server.host, 127.0.0.1].")
@click.option("--port", type=int, default=None, help="Port to listen on [default: server.port, 4000].")
@click.option("--log-level", default="warning", show_default=True, type=click.Choice(["debug", "info", "warning", "error"]))
def serve(config_path: str, host: str | None, port: int | None, log_level: str) -> None:
    """Run the gateway: OpenAI- and Anthropic-compatible endpoints in front of the configured upstreams."""
    from tokenbrake.pricing import PriceBook
    from tokenbrake.server.app import build_app
    from tokenbrake.server.run import run

    config = _load(config_path)
    try:
        PriceBook(config)  # fails here, before listening, on a model with no price
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from None
    server = config.server
    click.echo(f"tokenbrake gateway on http://{host or server.host}:{port or server.port} ({len(config.models)} models)", err=True)
    run(build_app(config), host or server.host, port if port is not None else server.port,
        graceful_shutdown_s=server.graceful_shutdown_s, log_level=log_level)


config_option = click.option(
    "--config", "config_path", envvar="TOKENBRAKE_CONFIG", default="tokenbrake.yaml", show_default=True,
    help="YAML config file (or TOKENBRAKE_CONFIG); its `database` is used.",
)


def _with_database(config_path: str, work):
    """Opens the config's database, runs `await work(db)`, closes it; returns the result."""
    import asyncio

    from tokenbrake.storage import open_database

    config = _load(config_path)

    async def go():
        db = await open_database(config.database)
        try:
            return await work(db)
        finally:
            await db.close()

    return asyncio.run(go())


@main.group()
def keys() -> None:
    """Virtual API keys: create, list, show, revoke. Only a salted hash of each key is stored."""


def _print_key(key, as_json: bool, plaintext: str | None = None) -> None:
    import json

    from tokenbrake.reports import key_view

    view = key_view(key) | ({"key": plaintext} if plaintext else {})
    if as_json:
        click.echo(json.dumps(view))
        return
    for field, value in view.items():
        click.echo(f"{field:<11} {', '.join(value) if isinstance(value, list) else ('-' if value is None else value)}")


@keys.command("create")
@click.option("--name", required=True, help="A unique name for the key.")
@click.option("--team", default=None, help="The team (or project) its spend is attributed to.")
@click.option("--models", default=None, help="Comma-separated models it may use [default: all].")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@config_option
def keys_create(name: str, team: str | None, models: str | None, as_json: bool, config_path: str) -> None:
    """Create a key and print it. It is shown this once; only its hash is kept."""
    allowed = [m.strip() for m in models.split(",") if m.strip()] if models else None
    config = _load(config_path)
    unknown = [m for m in allowed or [] if m not in config.models]
    if unknown:
        raise click.ClickException(f"--models: not configured: {', '.join(unknown)}")
    try:
        plaintext, key = _with_database(config_path, lambda db: db.keys.create(name, team=team, models=allowed))
    except ValueError as exc:
        raise click.ClickException(str(exc)) from None
    _print_key(key, as_json, plaintext)
    if not as_json:
        click.echo("\nStore the key now: it cannot be shown again.", err=True)


@keys.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@config_option
def keys_list(as_json: bool, config_path: str) -> None:
    """List keys (names, teams, models, prefixes; never the keys themselves)."""
    import json

    from tokenbrake.reports import key_view

    found = _with_database(config_path, lambda db: db.keys.list())
    if as_json:
        click.echo(json.dumps([key_view(k) for k in found]))
        return
    click.echo(f"{'name':<20} {'team':<14} {'prefix':<14} {'status':<8} models")
    for key in found:
        status = "revoked" if key.revoked else "active"
        click.echo(f"{key.name:<20} {key.team or '-':<14} {key.key_prefix:<14} {status:<8} {', '.join(key.models) if key.models else 'all'}")


@keys.command("show")
@click.argument("name")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@config_option
def keys_show(name: str, as_json: bool, config_path: str) -> None:
    """Show one key."""
    key = _with_database(config_path, lambda db: db.keys.get(name))
    if key is None:
        raise click.ClickException(f"no key named '{name}'")
    _print_key(key, as_json)


@keys.command("revoke")
@click.argument("name")
@config_option
def keys_revoke(name: str, config_path: str) -> None:
    """Revoke a key; every gateway refuses it within auth.refresh_s."""
    try:
        key = _with_database(config_path, lambda db: db.keys.revoke(name))
    except KeyError:
        raise click.ClickException(f"no key named '{name}'") from None
    click.echo(f"revoked {key.name}")


@main.group()
def budgets() -> None:
    """Budgets set at run time: every gateway enforces them within budgeting.refresh_s."""


@budgets.command("set")
@click.option("--scope", required=True, help="global, or key|team|user|model|tag:NAME (NAME may be *).")
@click.option("--amount", required=True, help="USD per period.")
@click.option("--period", type=click.Choice(["minute", "hour", "day", "week", "month", "total", "rolling"]),
              default="month", show_default=True)
@click.option("--rolling-s", type=float, default=None, help="The window's length, with --period rolling.")
@click.option("--mode", type=click.Choice(["hard", "soft", "downgrade"]), default="hard", show_default=True)
@click.option("--downgrade-to", default=None, help="With --mode downgrade: the cheaper model to serve.")
@click.option("--downgrade-below", default=None, help="With --mode downgrade: below this remainder (USD).")
@click.option("--alert-at", default="0.5,0.8,1.0", show_default=True, help="Shares of the amount that alert.")
@config_option
def budgets_set(scope: str, amount: str, period: str, rolling_s: float | None, mode: str, downgrade_to: str | None,
                downgrade_below: str | None, alert_at: str, config_path: str) -> None:
    """Create a budget, or replace the one with the same scope and period."""
    from tokenbrake.budgets import parse_budget

    config = _load(config_path)
    try:
        shares = [float(share) for share in alert_at.split(",") if share.strip()]
        budget = parse_budget({"scope": scope, "amount_usd": amount, "period": period, "rolling_s": rolling_s,
                               "mode": mode, "downgrade_to": downgrade_to, "downgrade_below_usd": downgrade_below,
                               "alert_at": shares}, config)
    except ValueError as exc:
        raise click.ClickException(str(exc)) from None
    _with_database(config_path, lambda db: db.budgets.set(budget))
    click.echo(f"budget {budget.scope} ({budget.period}): ${budget.amount_usd}, {budget.mode}")


@budgets.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@config_option
def budgets_list(as_json: bool, config_path: str) -> None:
    """List the budgets in force (config and run time) with this period's spend.

    With in-process state, spend is read from its snapshot file (up to a few seconds old)."""
    import json

    from tokenbrake.budgets import report
    from tokenbrake.limits import open_state

    config = _load(config_path)

    async def work(db):
        limits = await open_state(config.state, read_only=True)
        try:
            return await report(config, await db.budgets.list(), limits, db)
        finally:
            await limits.close()

    rows = _with_database(config_path, work)
    if as_json:
        click.echo(json.dumps(rows))
        return
    click.echo(f"{'scope':<22} {'period':<8} {'mode':<9} {'amount':>10} {'spent':>12} {'reserved':>12} "
               f"{'remaining':>12}  resets at")
    for row in rows:
        counter = (row["counters"] or [{}])[0]
        click.echo(f"{row['scope']:<22} {row['period']:<8} {row['mode']:<9} {row['amount_usd']:>10} "
                   f"{counter.get('spent_usd', '-'):>12} {counter.get('reserved_usd', '-'):>12} "
                   f"{counter.get('remaining_usd', '-'):>12}  {counter.get('resets_at') or '-'}")


@budgets.command("delete")
@click.option("--scope", required=True)
@click.option("--period", required=True)
@config_option
def budgets_delete(scope: str, period: str, config_path: str) -> None:
    """Delete a budget set at run time (those in the config stay)."""
    if not _with_database(config_path, lambda db: db.budgets.delete(scope, period)):
        raise click.ClickException(f"no run-time budget {scope} ({period})")
    click.echo(f"deleted {scope} ({period})")


@main.command()
@click.option("--by", type=click.Choice(["key", "team", "user", "model", "session", "tag", "day"]), default="model", show_default=True)
@click.option("--since", default=None, help="7d, 24h, 30m or a date (2026-11-01) [default: everything].")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@config_option
def usage(by: str, since: str | None, as_json: bool, config_path: str) -> None:
    """Requests, tokens and cost per group, read from the ledger."""
    import json
    from datetime import UTC, datetime

    from tokenbrake.reports import usage_table, usage_view
    from tokenbrake.storage import parse_since

    try:
        since_dt = parse_since(since, datetime.now(UTC)) if since else None
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--since") from None
    groups = _with_database(config_path, lambda db: db.ledger.usage(by, since=since_dt))
    click.echo(json.dumps(usage_view(by, groups)) if as_json else usage_table(by, groups))


@main.command("check-config")
@click.argument("config_path")
def check_config(config_path: str) -> None:
    """Validate a config file (and its prices) without starting anything."""
    from tokenbrake.pricing import PriceBook

    config = _load(config_path)
    try:
        PriceBook(config)
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"ok: {len(config.upstreams)} upstreams, {len(config.models)} models")


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", type=int, default=8400, show_default=True)
@click.option("--ttft-ms", type=float, default=0.0, show_default=True, help="Latency to the first token.")
@click.option("--tps", type=float, default=0.0, show_default=True, help="Output tokens per second (0: no delay).")
@click.option("--output-tokens", type=int, default=32, show_default=True, help="Default reply length in tokens.")
@click.option("--api-key", default=None, help="Require this key (default: accept any).")
def emulate(host: str, port: int, ttft_ms: float, tps: float, output_tokens: int, api_key: str | None) -> None:
    """Run an emulated upstream speaking the OpenAI and Anthropic wire formats.

    OpenAI clients use base URL http://HOST:PORT/v1, Anthropic clients http://HOST:PORT.
    Faults and reply shapes can be chosen per request with the X-Emulator header or an
    [[emulator: ...]] directive in the last user message (see the README).
    """
    from tokenbrake.emulator import EmulatorSettings, build_app
    from tokenbrake.server.run import run

    settings = EmulatorSettings(ttft_ms=ttft_ms, tokens_per_s=tps, output_tokens=output_tokens, api_key=api_key)
    click.echo(f"tokenbrake emulator on http://{host}:{port} (OpenAI: /v1, Anthropic: /)", err=True)
    run(build_app(settings), host, port, graceful_shutdown_s=1.0)


@main.command()
def demo() -> None:
    """Run the gateway in front of an emulated upstream and send it an application's traffic.

    Needs no API keys and no network; exits by itself.
    """
    from tokenbrake.demo import run_demo

    run_demo()


if __name__ == "__main__":
    sys.exit(main())
