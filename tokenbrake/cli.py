"""The `tokenbrake` command. Each command parses its options, calls the library, prints."""

from __future__ import annotations

import sys

import click

from tokenbrake.config import ConfigError, load_config, unset_key_envs


@click.group()
@click.version_option(package_name="tokenbrake")
def main() -> None:
    """tokenbrake: a gateway and control plane for LLM spend."""


def _load(path: str):
    import os

    if not os.path.exists(path):
        raise click.ClickException(f"no config file {path}: give one with --config FILE or TOKENBRAKE_CONFIG "
                                   f"(the default is ./tokenbrake.yaml)")
    try:
        return load_config(path)
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from None


CONFIG_HELP = "YAML config file [default: TOKENBRAKE_CONFIG, else ./tokenbrake.yaml]."
config_option = click.option("--config", "config_path", envvar="TOKENBRAKE_CONFIG", default="tokenbrake.yaml",
                             help=CONFIG_HELP)


@main.command()
@config_option
@click.option("--host", default=None, help="Address to listen on [default: server.host, 127.0.0.1].")
@click.option("--port", type=int, default=None, help="Port to listen on [default: server.port, 4000].")
@click.option("--log-level", default="info", show_default=True, type=click.Choice(["debug", "info", "warning", "error"]),
              help="info: a line per request (the access log, unless log.access: false); debug: tracebacks too.")
def serve(config_path: str, host: str | None, port: int | None, log_level: str) -> None:
    """Run the gateway: OpenAI- and Anthropic-compatible endpoints in front of the configured upstreams."""
    import asyncio

    from tokenbrake.logs import start_logging
    from tokenbrake.server.app import build_app, cut_in_flight
    from tokenbrake.server.guard import fit_to_open_files
    from tokenbrake.server.run import run
    from tokenbrake.server.startup import StartupError, check_reachable, listen

    config = _checked(config_path)
    server = config.server
    host, port = host or server.host, port if port is not None else server.port
    try:
        sock = listen(host, port)
        asyncio.run(check_reachable(config))
    except StartupError as exc:
        if log_level == "debug":
            raise
        raise click.ClickException(str(exc)) from None
    bounds, warning = fit_to_open_files(server)
    if warning:
        click.echo(f"warning: {warning}", err=True)
    listener = start_logging(config.log, log_level)
    click.echo(f"tokenbrake gateway on http://{host}:{sock.getsockname()[1]} ({len(config.models)} models)", err=True)
    try:
        app = build_app(config)
        run(app, host, port, graceful_shutdown_s=server.graceful_shutdown_s,
            log_level=log_level if log_level in ("debug", "error") else "warning", sock=sock, cut=cut_in_flight(app),
            bounds=bounds, before_exit=listener.stop)
    finally:
        listener.stop()  # a second stop, after run()'s, does nothing


def _checked(config_path: str):
    """The config, with what needs no server checked, as serve and check-config both do: every
    model priced, each route's router loaded (the shipped ones are cached, so serve loads them
    once), the key variables set."""
    from tokenbrake.routing.routers import build_routes
    from tokenbrake.settlement.pricing import PriceBook

    config = _load(config_path)
    try:
        PriceBook(config)
        build_routes(config)
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from None
    for warning in unset_key_envs(config):
        click.echo(f"warning: {warning}", err=True)
    return config


def _with_database(config_path: str, work):
    """Opens the config's database, runs `await work(db)`, closes it; returns the result."""
    import asyncio

    from tokenbrake.server.startup import StartupError, reach
    from tokenbrake.storage import open_database

    config = _load(config_path)

    async def go():
        db = await reach("the database", config.database, lambda: open_database(config.database))
        try:
            return await work(db)
        finally:
            await db.close()

    try:
        return asyncio.run(go())
    except StartupError as exc:
        raise click.ClickException(str(exc)) from None


def _changing(config_path: str, kind: str, work):
    """`_with_database` for a change to keys or budgets: once it is committed, every gateway is
    told (the change channel, changes/), so each applies it within a second."""
    from tokenbrake.changes import publish_change

    config = _load(config_path)

    async def and_tell(db):
        result = await work(db)
        await publish_change(config, db, kind)
        return result

    return _with_database(config_path, and_tell)


@main.group()
def keys() -> None:
    """Virtual API keys: create, list, show, revoke. Only a salted hash of each key is stored."""


def _print_key(key, as_json: bool, plaintext: str | None = None) -> None:
    import json

    from tokenbrake.storage.reports import key_view

    view = key_view(key) | ({"key": plaintext} if plaintext else {})
    if as_json:
        click.echo(json.dumps(view))
        return
    view["models"] = view["models"] or "all"  # as `keys list` says
    for field, value in view.items():
        click.echo(f"{field:<12} {', '.join(value) if isinstance(value, list) else ('-' if value is None else value)}")


@keys.command("create")
@click.option("--name", required=True, help="A unique name for the key.")
@click.option("--team", default=None, help="The team (or project) its spend is attributed to.")
@click.option("--models", default=None, help="Comma-separated models it may use [default: all].")
@click.option("--require-user", is_flag=True,
              help="Refuse its requests that name no end user (user, metadata.user_id or X-Tokenbrake-User).")
@click.option("--role", type=click.Choice(["app", "viewer"]), default="app", show_default=True,
              help="app: calls models; viewer: reads its --team's spend (the dashboard, the insight API), calls nothing.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.option("--quiet", "-q", is_flag=True, help="Print only the key: export TB_KEY=$(tokenbrake keys create ... -q).")
@config_option
def keys_create(name: str, team: str | None, models: str | None, require_user: bool, role: str, as_json: bool,
                quiet: bool, config_path: str) -> None:
    """Create a key and print it. It is shown this once; only its hash is kept."""
    from tokenbrake.storage.keys import check_role

    allowed = [m.strip() for m in models.split(",") if m.strip()] if models else None
    config = _load(config_path)
    unknown = [m for m in allowed or [] if m not in config.models]
    if unknown:
        raise click.ClickException(f"--models: not configured: {', '.join(unknown)}")
    try:
        check_role(role, team, allowed)  # before the database is opened
        plaintext, key = _changing(config_path, "keys", lambda db: db.keys.create(name, team=team, models=allowed,
                                                                                  require_user=require_user, role=role))
    except ValueError as exc:
        raise click.ClickException(str(exc)) from None
    if quiet:
        click.echo(plaintext)
        return
    _print_key(key, as_json, plaintext)
    if not as_json:
        click.echo("\nStore the key now: it cannot be shown again.", err=True)


@keys.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@config_option
def keys_list(as_json: bool, config_path: str) -> None:
    """List keys (names, teams, models, prefixes; never the keys themselves)."""
    import json

    from tokenbrake.storage.reports import key_view

    found = _with_database(config_path, lambda db: db.keys.list())
    if as_json:
        click.echo(json.dumps([key_view(k) for k in found]))
        return
    click.echo(f"{'name':<20} {'team':<14} {'prefix':<14} {'status':<8} {'user':<9} models")
    for key in found:
        status = "revoked" if key.revoked else "active"
        user = "required" if key.require_user else "optional"
        models = "none (viewer)" if key.role == "viewer" else ", ".join(key.models) if key.models else "all"
        click.echo(f"{key.name:<20} {key.team or '-':<14} {key.key_prefix:<14} {status:<8} {user:<9} {models}")


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
    """Revoke a key; every gateway refuses it within a second, and ends its running streams."""
    async def work(db):
        key = await db.keys.get(name)
        if key is None:
            raise click.ClickException(f"no key named '{name}' (tokenbrake keys list shows them)")
        if key.revoked:
            raise click.ClickException(f"key '{name}' is already revoked (since {key.revoked_at:%Y-%m-%d %H:%M} UTC)")
        return await db.keys.revoke(name)

    click.echo(f"revoked {_changing(config_path, 'keys', work).name}")


PERIODS = ["minute", "hour", "day", "week", "month", "total", "rolling"]


@main.group()
def budgets() -> None:
    """Budgets set at run time: every gateway enforces them within a second."""


@budgets.command("set")
@click.option("--scope", required=True, help="global, or key|team|user|model|tag:NAME (NAME may be *).")
@click.option("--amount", required=True, help="USD per period.")
@click.option("--period", type=click.Choice(PERIODS), default="month", show_default=True)
@click.option("--rolling-s", type=float, default=None, help="The window's length, with --period rolling.")
@click.option("--mode", type=click.Choice(["hard", "soft", "downgrade"]), default="hard", show_default=True)
@click.option("--downgrade-to", default=None, help="With --mode downgrade: the cheaper model to serve.")
@click.option("--downgrade-below", default=None, help="With --mode downgrade: below this remainder (USD).")
@click.option("--alert-at", default="0.5,0.8,1.0", show_default=True, help="Shares of the amount that alert.")
@click.option("--across-tenants", is_flag=True,
              help="A user: or tag: scope: one counter shared by every tenant [default: one per key's team or key].")
@config_option
def budgets_set(scope: str, amount: str, period: str, rolling_s: float | None, mode: str, downgrade_to: str | None,
                downgrade_below: str | None, alert_at: str, across_tenants: bool, config_path: str) -> None:
    """Create a budget, or replace the one with the same scope and period."""
    from tokenbrake.admission.budget_rules import parse_budget

    config = _load(config_path)
    try:
        shares = [float(share) for share in alert_at.split(",") if share.strip()]
        budget = parse_budget({"scope": scope, "amount_usd": amount, "period": period, "rolling_s": rolling_s,
                               "mode": mode, "downgrade_to": downgrade_to, "downgrade_below_usd": downgrade_below,
                               "alert_at": shares, "across_tenants": across_tenants}, config)
    except ValueError as exc:
        raise click.ClickException(str(exc)) from None
    _changing(config_path, "budgets", lambda db: db.budgets.set(budget))
    across = ", across tenants" if budget.across_tenants else ""
    click.echo(f"budget {budget.scope} ({budget.period}): ${budget.amount_usd}, {budget.mode}{across}")


@budgets.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@config_option
def budgets_list(as_json: bool, config_path: str) -> None:
    """List the budgets in force (config and run time) with this period's spend.

    With in-process state, spend is read from its snapshot file (up to a few seconds old)."""
    import json

    from tokenbrake.admission.budget_rules import report

    config = _load(config_path)

    async def work(db):
        limits = await _open_limit_store(config)
        try:
            return await report(config, db, limits)
        finally:
            await limits.close()

    rows = _with_database(config_path, work)
    if config.state_url == "memory://":
        click.echo("note: state is memory:// (kept inside the gateway process), so no spend is visible here; "
                   "ask the gateway (GET /admin/budgets), or give the state a snapshot path or Redis", err=True)
    if as_json:
        click.echo(json.dumps(rows))
        return
    click.echo(f"{'scope / counter':<24} {'period':<8} {'mode':<9} {'from':<8} {'amount':>10} {'spent':>12} "
               f"{'reserved':>12} {'remaining':>12}  resets at")
    for row in rows:
        head = f"{row['period']:<8} {row['mode']:<9} {row['source']:<8} {_dollars(row['amount_usd']):>10}"
        for n, counter in enumerate(row["counters"] or [{}]):
            own = n == 0 and counter.get("counter") in (None, row["scope"]) and not counter.get("tenant")
            tenant = f" in {counter['tenant']}" if counter.get("tenant") else ""
            name = row["scope"] if own else f"  {counter['counter']}{tenant}"
            if name.startswith("  ") and n == 0:  # a `*` or per-tenant budget: its own line, then one per member
                click.echo(f"{row['scope']:<24} {head}")
            click.echo(f"{name:<24} {head} {_dollars(counter.get('spent_usd')):>12} "
                       f"{_dollars(counter.get('reserved_usd')):>12} {_dollars(counter.get('remaining_usd')):>12}  "
                       f"{counter.get('resets_at') or '-'}")


def _dollars(amount: str | None) -> str:
    from decimal import Decimal

    from tokenbrake.storage.reports import usd

    return "-" if amount is None else usd(Decimal(amount))


@budgets.command("delete")
@click.option("--scope", required=True)
@click.option("--period", required=True, type=click.Choice(PERIODS))
@config_option
def budgets_delete(scope: str, period: str, config_path: str) -> None:
    """Delete a budget set at run time (those in the config stay)."""
    from tokenbrake.admission.budget_rules import missing_runtime_budget

    if not _changing(config_path, "budgets", lambda db: db.budgets.delete(scope, period)):
        raise click.ClickException(missing_runtime_budget(_load(config_path), scope, period))
    click.echo(f"deleted {scope} ({period})")


@main.group()
def sessions() -> None:
    """Agent sessions: their counts and spend, loop verdicts; stop and resume them.

    Works on the state backend the config names (`state:`, Redis). In-process sessions live
    inside the gateway: use its admin API (/admin/sessions); with a snapshot path, list and
    show read the snapshot (a few seconds old)."""


def _with_limit_store(config_path: str, work, writing: bool = False):
    """Opens the config's state backend, runs `await work(store, config)`, closes it."""
    import asyncio

    from tokenbrake.admission.session_rules import SessionNotFound
    from tokenbrake.server.startup import StartupError

    config = _load(config_path)
    if config.state_url.startswith("memory://") and (writing or config.state_url == "memory://"):
        raise click.ClickException(f"the sessions live in the gateway's process (state: {config.state_url}): use its admin "
                                   f"API, GET /admin/sessions[/ID] or POST /admin/sessions/ID/stop|resume")

    async def go():
        store = await _open_limit_store(config)
        try:
            return await work(store, config)
        finally:
            await store.close()

    try:
        return asyncio.run(go())
    except (SessionNotFound, StartupError) as exc:
        raise click.ClickException(str(exc)) from None


async def _open_limit_store(config):
    """The config's state backend, read-only; StartupError (one line) when it cannot be opened."""
    from tokenbrake.limits import open_limit_store
    from tokenbrake.server.startup import reach

    return await reach("the state backend (state:)", config.state_url, lambda: open_limit_store(config.state_url, read_only=True))


key_option = click.option("--key", "key_name", default=None, help="The key the session belongs to (needed only "
                          "when one session id is used under several keys).")


@sessions.command("list")
@click.option("--key", "key_name", default=None, help="Only this key's sessions.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@config_option
def sessions_list(key_name: str | None, as_json: bool, config_path: str) -> None:
    """List live sessions, most recent first."""
    import json

    from tokenbrake.admission.session_rules import view
    from tokenbrake.storage.reports import usd

    found = _with_limit_store(config_path, lambda store, _: store.session_list(key_name))
    if as_json:
        click.echo(json.dumps([view(r) for r in found]))
        return
    click.echo(f"{'key':<16} {'session':<24} {'status':<8} {'calls':>6} {'tokens':>9} {'cost':>12} {'loops':>5}  last seen")
    for r in found:
        shown = view(r)
        click.echo(f"{r.key_name:<16} {r.session:<24} {r.status:<8} {r.calls:>6} {r.tokens:>9} "
                   f"{usd(r.cost):>12} {r.loop_calls:>5}  {shown['last_seen']}")


@sessions.command("show")
@click.argument("session")
@key_option
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@config_option
def sessions_show(session: str, key_name: str | None, as_json: bool, config_path: str) -> None:
    """Show one session: counts, spend, status and why, and its latest loop verdicts."""
    import json

    from tokenbrake.admission.session_rules import find, view

    shown = view(_with_limit_store(config_path, lambda store, _: find(store, session, key_name)), detail=True)
    if as_json:
        click.echo(json.dumps(shown))
        return
    for field, value in shown.items():
        if field not in ("verdicts", "trace"):
            click.echo(f"{field:<18} {'-' if value is None else value}")
    for verdict in shown["verdicts"]:
        click.echo(f"  call {verdict['call']}: {verdict['kind']} x{verdict['repetitions']} ({verdict['action']}): "
                   f"{verdict['evidence']}")


def _set_status(session: str, key_name: str | None, config_path: str, stop: bool) -> None:
    from tokenbrake.admission.session_rules import set_status

    record = _with_limit_store(config_path, lambda store, config: set_status(store, config.sessions, session, key_name, stop),
                         writing=True)
    click.echo(f"{'stopped' if stop else 'resumed'} session {record.session} of key {record.key_name}")


@sessions.command("stop")
@click.argument("session")
@key_option
@config_option
def sessions_stop(session: str, key_name: str | None, config_path: str) -> None:
    """Stop a session: every gateway refuses its calls until it is resumed."""
    _set_status(session, key_name, config_path, stop=True)


@sessions.command("resume")
@click.argument("session")
@key_option
@config_option
def sessions_resume(session: str, key_name: str | None, config_path: str) -> None:
    """Resume a stopped session; the loop detector forgets the repetitions it had counted."""
    _set_status(session, key_name, config_path, stop=False)


@main.command()
@click.option("--by", "by", multiple=True,
              help="key, team, user, model (served), asked, upstream, session, status, tag (every tag), "
                   "tag.NAME or day; two as --by team --by model or --by team,model [default: model].")
@click.option("--every", type=click.Choice(["minute", "hour", "day"]), default=None,
              help="One row per group and minute, hour or day.")
@click.option("--top", type=click.IntRange(min=1), default=None, help="The N most expensive groups, then the rest.")
@click.option("--since", default=None, help="7d, 24h, 30m or a date (2026-11-01) [default: everything].")
@click.option("--until", default=None, help="As --since [default: now].")
@click.option("--filter", "filters", multiple=True, metavar="DIMENSION=VALUE",
              help="Only these requests, e.g. team=search or tag.feature=chat; repeat a dimension for either value.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.option("--csv", "as_csv", is_flag=True, help="Print CSV.")
@config_option
def usage(by: tuple[str, ...], every: str | None, top: int | None, since: str | None, until: str | None,
          filters: tuple[str, ...], as_json: bool, as_csv: bool, config_path: str) -> None:
    """Requests, tokens and cost per group (and per minute, hour or day), read from the rollups.

    A report groups and filters by at most one dimension and team (--by team --by model,
    --by user --filter team=search)."""
    import json
    from datetime import UTC, datetime

    from tokenbrake.storage.insight_queries import Query, QueryError
    from tokenbrake.storage.reports import flat_rows, rows_csv, rows_table, usage_table, usage_view

    names = [part.strip() for text in by or ("model",) for part in text.split(",") if part.strip()]
    now = datetime.now(UTC)
    since_dt, until_dt = (_moment(text, option, now) for text, option in ((since, "--since"), (until, "--until")))
    where = _filters(filters)

    async def work(db):
        if every is None and len(names) == 1:
            return await db.insight.usage(names[0], since_dt, until_dt, where, top, now)
        if "day" in names:
            raise QueryError("by", "day goes with one dimension only: use --every day")
        query = Query(since_dt or await db.insight.earliest() or now, until_dt or now, where)
        if every is None:
            found = await db.insight.breakdown(query, names, top, now)
            return [(None, group, m) for group, m in found.rows] + ([(None, None, found.other)] if found.other is not None else [])
        found = await db.insight.series(query, every, names, top or 10, now)
        return [(t, group, m) for group, line in found.series for t, m in zip(found.times, line, strict=True)
                if m.requests]

    try:
        result = _with_database(config_path, work)
    except QueryError as exc:
        raise click.BadParameter(str(exc).split(": ", 1)[1], param_hint=_hint(exc.param)) from None
    if every is None and len(names) == 1:
        groups, total = result
        view = usage_view(names[0], groups, [total])
        click.echo(json.dumps(view) if as_json else rows_csv(view["data"]) if as_csv
                   else usage_table(names[0], groups, [total] if names[0] == "tag" else None))
        return
    records = flat_rows(names, result)
    click.echo(json.dumps({"by": names, "every": every, "data": records}) if as_json
               else rows_csv(records) if as_csv else rows_table(records))


def _moment(text: str | None, option: str, now):
    from tokenbrake.storage import parse_since

    try:
        return parse_since(text, now) if text else None
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint=option) from None


def _filters(filters: tuple[str, ...]) -> dict[str, list[str]]:
    from tokenbrake.storage.insight_queries import QueryError, check_dimension

    found: dict[str, list[str]] = {}
    for text in filters:
        name, sep, value = text.partition("=")
        try:
            if not sep:
                raise QueryError("filter", f"{text!r}: write DIMENSION=VALUE, e.g. team=search")
            found.setdefault(check_dimension(name.strip(), "filter"), []).append(value.strip())
        except QueryError as exc:
            raise click.BadParameter(str(exc).split(": ", 1)[1], param_hint="--filter") from None
    return found


def _hint(param: str) -> str:
    return {"by": "--by", "every": "--every", "since": "--since"}.get(param, "--filter")


@main.command()
@click.option("--scope", default=None,
              help="global, or key|team|user|model|tag:NAME, as budgets write them [default: global and every budget].")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@config_option
def forecast(scope: str | None, as_json: bool, config_path: str) -> None:
    """Forecast spend to the end of the period, with an 80% interval, and when each budget
    runs out at the current pace.

    A scope's month, or its budgets' periods; from its own hourly history (weekday, hour of
    day, trend). A scope with under three days of spend says so instead."""
    import json
    from datetime import UTC, datetime

    from tokenbrake.foresight.outlook import outlook
    from tokenbrake.foresight.table import forecast_table

    config = _load(config_path)
    try:
        views = _with_database(config_path, lambda db: outlook(config, db, datetime.now(UTC), scope))
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--scope") from None
    click.echo(json.dumps(views) if as_json else forecast_table(views))


@main.command()
@click.option("--since", default="7d", show_default=True, help="30m, 24h, 7d, a date or an ISO time.")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON line per alert.")
@config_option
def anomalies(since: str, as_json: bool, config_path: str) -> None:
    """The anomaly alerts the gateways raised since --since, and those still on, newest first.

    Each: its kind, scope, since when, the factor against its usual, the cost so far and a
    day's at this pace, who is behind it, and the command that would stop it."""
    import json
    from datetime import UTC, datetime

    from tokenbrake.foresight.table import anomaly_lines
    from tokenbrake.storage import parse_since

    try:
        start = parse_since(since, datetime.now(UTC))
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--since") from None
    found = _with_database(config_path, lambda db: db.alerts.since(start))
    if as_json:
        for alert in found:
            click.echo(json.dumps(alert))
        return
    click.echo("\n".join(anomaly_lines(found)) if found else f"no anomalies since {start:%Y-%m-%d %H:%M} UTC")


@main.group()
def insight() -> None:
    """What past usage would have shown: forecasts and anomaly alerts, replayed."""


@insight.command("replay")
@click.argument("file", type=click.Path(exists=True, dir_okay=False))
@click.option("--format", "form", type=click.Choice(["jsonl", "csv"]), default=None,
              help="The file's format [default: csv for a .csv FILE, else jsonl].")
@click.option("--forecast-days", default=None,
              help="Days of the month whose midnight forecasts are printed, e.g. 7,14,21 [default: every day].")
@config_option
def insight_replay(file: str, form: str | None, forecast_days: str | None, config_path: str) -> None:
    """Run the forecaster and the anomaly detector over FILE's calls (the `ledger import`
    format) in time order, on a simulated clock, and print what they would have said: a JSON
    line per alert ("type": "alert", "at": when it would have been raised), per incident's end
    ("type": "end") and per month-end forecast ("type": "forecast"), the whole deployment's
    and each team's at each simulated midnight. The config's anomalies: section sets the
    thresholds; nothing is written to its database, which is not opened."""
    import json
    import os

    from tokenbrake.config import parse_config
    from tokenbrake.foresight.replay import ReplayRefused, read_minutes, replay
    from tokenbrake.storage.import_format import format_of

    # No config file: the defaults (replay needs no upstream, and opens no database).
    config = _load(config_path) if os.path.exists(config_path) else parse_config({"upstreams": {}, "models": {}})
    try:
        days = None if forecast_days is None else [int(day) for day in forecast_days.split(",") if day.strip()]
    except ValueError:
        raise click.BadParameter(f"{forecast_days!r}: days of the month, e.g. 7,14,21", param_hint="--forecast-days") from None
    try:
        minutes = read_minutes(file, form or format_of(file))
    except ReplayRefused as exc:
        raise click.ClickException(str(exc)) from None
    for line in replay(minutes, config, days):
        click.echo(json.dumps(line))


@main.group()
def ledger() -> None:
    """The ledger of calls: bring in past usage."""


@ledger.command("import")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, allow_dash=True))
@click.option("--format", "form", type=click.Choice(["jsonl", "csv"]), default=None,
              help="The file's format [default: csv for a .csv FILE, else jsonl].")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@config_option
def ledger_import(file: str, form: str | None, as_json: bool, config_path: str) -> None:
    """Load past calls from FILE (- reads stdin) into the ledger and its rollups, so reports,
    baselines and forecasts have history from the first day.

    \b
    JSONL, one call a line:
      {"time": "2026-10-01T12:00:00Z", "key": "app", "team": "search", "user": "ana",
       "session": "s-1", "model": "gpt-4o", "input_tokens": 1200, "output_tokens": 80,
       "cost_usd": 0.0038, "status": 200, "tags": {"feature": "search"}}
    CSV: a header with the same names, each tag a column of its own (tag.feature).

    Only time, model and cost_usd are required; a time without an offset is UTC. Every line
    is checked before anything is written: if one is bad, nothing is imported, and the bad
    lines (the first 20) are listed with the field and the fix. Importing a file again adds
    nothing: a call's id comes from its content, or from its request_id (or id) field.
    Imported rows have front_door and endpoint "import", and charge no budget.
    """
    import json
    import shutil
    import tempfile

    from tokenbrake.storage.import_format import format_of
    from tokenbrake.storage.ledger_import import ImportRefused, import_file
    from tokenbrake.storage.reports import usd

    def imported_from(path: str):
        try:
            return _with_database(config_path, lambda db: import_file(db.ledger, path, form or format_of(file)))
        except ImportRefused as exc:
            raise click.ClickException(str(exc)) from None

    if file == "-":  # read twice (checked, then written): stdin is kept in a file meanwhile
        with tempfile.NamedTemporaryFile(prefix="tokenbrake-import-") as spool:
            shutil.copyfileobj(sys.stdin.buffer, spool)
            spool.flush()
            imported = imported_from(spool.name)
    else:
        imported = imported_from(file)
    if as_json:
        click.echo(json.dumps(imported.view()))
        return
    click.echo(f"read {imported.read} calls: {imported.inserted} inserted, {imported.already_there} already in the ledger")
    if imported.first is not None and imported.last is not None:
        click.echo(f"inserted {imported.first:%Y-%m-%d %H:%M:%S} to {imported.last:%Y-%m-%d %H:%M:%S} UTC, "
                   f"{usd(imported.cost_usd)}")


@main.command("check-config")
@click.argument("file", required=False)
@config_option
def check_config(file: str | None, config_path: str) -> None:
    """Validate a config (FILE, else --config's rule), its prices, its routes' routers and its
    URLs, as `serve` does, without starting or connecting to anything."""
    config = _checked(file or config_path)
    click.echo(f"ok: {len(config.upstreams)} upstreams, {len(config.models)} models, {len(config.routes)} routes")


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
    from tokenbrake.server.run import run
    from tokenbrake.tools.emulator import EmulatorSettings, build_app

    settings = EmulatorSettings(ttft_ms=ttft_ms, tokens_per_s=tps, output_tokens=output_tokens, api_key=api_key)
    click.echo(f"tokenbrake emulator on http://{host}:{port} (OpenAI: /v1, Anthropic: /)", err=True)
    run(build_app(settings), host, port, graceful_shutdown_s=1.0)


@main.command()
@click.option("--keep", is_flag=True,
              help="Leave the gateway running afterwards, with the demo's ledger, to open its dashboard; Ctrl-C stops it.")
def demo(keep: bool) -> None:
    """Run the gateway in front of an emulated upstream and send it an application's traffic.

    Needs no API keys and no network; exits by itself (with --keep, at Ctrl-C).
    """
    from tokenbrake.tools.demo import run_demo

    run_demo(keep=keep)


@main.command()
@config_option
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", type=int, default=4001, show_default=True, help="Port to listen on.")
def dashboard(config_path: str, host: str, port: int) -> None:
    """Serve the web dashboard (/dashboard) on its own, reading the config's database and state.

    For when the gateway's replicas sit behind a load balancer (a dashboard login lives in the
    process that made it), or to look at a ledger without a gateway. Log in with the master key
    (TOKENBRAKE_MASTER_KEY) or a viewer key. It only reads: actions (stopping a session) are
    the gateway's.
    """
    import asyncio

    from tokenbrake.server.run import run
    from tokenbrake.server.standalone import build_dashboard_app
    from tokenbrake.server.startup import StartupError, check_reachable, listen

    config = _load(config_path)
    try:
        sock = listen(host, port)
        asyncio.run(check_reachable(config))
    except StartupError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"tokenbrake dashboard on http://{host}:{sock.getsockname()[1]}/dashboard", err=True)
    if config.state_url.startswith("memory://"):
        click.echo(f"note: state is {config.state_url}: live budgets and sessions are read from its snapshot "
                   "(a few seconds old), or are the gateway's alone with memory://", err=True)
    run(build_dashboard_app(config), host, port, graceful_shutdown_s=1.0, sock=sock)


@main.command()
@click.argument("models", nargs=-1, required=True)
@click.option("--url", default="http://127.0.0.1:4000", show_default=True, help="The running gateway.")
@click.option("--key", envvar="TOKENBRAKE_PROBE_KEY", required=True, help="A virtual key (or TOKENBRAKE_PROBE_KEY).")
def probe(models: tuple[str, ...], url: str, key: str) -> None:
    """Check a running gateway with the official SDKs, for each of MODELS: replies, streams,
    tool calls (each through both front doors), and the errors they must raise. Exits 1 if
    any check fails. Each check spends a few dozen of the model's tokens (a reasoning
    model's, a few hundred)."""
    from tokenbrake.tools.probe import run_probe, unreachable

    if (reason := unreachable(url)) is not None:
        raise click.ClickException(reason)
    outcomes = run_probe(url, key, list(models))
    width = max(len(outcome.model) for outcome in outcomes)
    for outcome in outcomes:
        result = "ok" if outcome.failure is None else f"FAIL  {outcome.failure}"
        click.echo(f"{outcome.model:<{width}}  {outcome.check:<29} {result}")
    failed = sum(outcome.failure is not None for outcome in outcomes)
    click.echo(f"{len(outcomes) - failed} passed, {failed} failed", err=True)
    if failed:
        raise SystemExit(1)


@main.group()
def router() -> None:
    """The request router: train it on labelled prompts, score prompts with it."""


@router.command("train")
@click.argument("data", required=False, type=click.Path(exists=True))
@click.option("--out", "out_path", required=True, type=click.Path(dir_okay=False), help="Where to write the router (JSON).")
@click.option("--embedding/--no-embedding", default=None,
              help="Use the sentence embedding as well as the features [default: when tokenbrake[router] is installed].")
@click.option("--from-ledger", is_flag=True, help="Train on the cascade outcomes kept in the config's database instead of DATA.")
@click.option("--l2", type=float, default=None, help="Regularization of the features [default: 30].")
@config_option
def router_train(data: str | None, out_path: str, embedding: bool | None, from_ledger: bool, l2: float | None,
                 config_path: str) -> None:
    """Train a router on DATA and write it to --out.

    DATA is a JSONL file of {"prompt": ..., "good_enough": true|false} lines (good_enough: the
    cheap model's answer was good enough), or a directory holding RouteLLM's evaluation files
    (gsm8k_responses.csv, mt_bench_*.jsonl), or, with --from-ledger, nothing.
    """
    from tokenbrake.router.classifier import train_router
    from tokenbrake.router.training import read_examples

    if from_ledger == (data is not None):
        raise click.UsageError("give DATA or --from-ledger (one of them)")
    if from_ledger:
        from tokenbrake.routing.outcomes import labelled_examples

        examples = _with_database(config_path, labelled_examples)
        if not examples:
            raise click.ClickException("the ledger holds no routing examples: only routes with strategy: cascade "
                                       "and keep_examples: true keep them (each cascade outcome's prompt and label)")
    else:
        assert data is not None  # given, as checked above
        try:
            examples = read_examples(data)
        except ValueError as exc:
            raise click.ClickException(str(exc)) from None
    options: dict[str, object] = {"embedding": embedding, "info": {"trained_on": "ledger" if from_ledger else data}}
    if l2 is not None:
        options["l2"] = l2
    try:
        trained = train_router(examples, **options)
    except (ValueError, RuntimeError) as exc:
        raise click.ClickException(str(exc)) from None
    trained.save(out_path)
    needs_strong = sum(not good for _, good in examples)
    click.echo(f"trained a {trained.kind} router on {len(examples)} examples ({needs_strong} needing the strong model)"
               f" -> {out_path}", err=True)
    shares = ", ".join(f"{share:.0%}: {trained.threshold_for_share(share):.3f}" for share in (0.2, 0.5, 0.8))
    click.echo(f"thresholds sending a share of such traffic to the strong model: {shares}", err=True)


@router.command("score")
@click.argument("prompts", type=click.File("r"))
@click.option("--model", "model_path", default=None,
              help="A router file written by `router train`, or a shipped one: default, default-embedding "
                   "[default: default].")
def router_score(prompts, model_path: str | None) -> None:
    """Print {"score": s} for each {"prompt": ...} line of PROMPTS (a JSONL file, or - for stdin).

    Higher means the strong model is needed; the scores are in [0, 1].
    """
    import json

    from tokenbrake.router.classifier import load_router

    try:
        scorer = load_router(model_path)
    except (OSError, ValueError) as exc:
        raise click.ClickException(f"--model: {exc}") from None
    for number, line in enumerate(prompts, start=1):
        if not line.strip():
            continue
        prompt = json.loads(line).get("prompt")
        if not isinstance(prompt, str):
            raise click.ClickException(f"line {number}: expected {{\"prompt\": string}}")
        click.echo(json.dumps({"score": round(scorer.score(prompt), 6)}))


if __name__ == "__main__":
    sys.exit(main())
