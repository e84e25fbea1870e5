"""The insight API under /admin/insight/: totals, breakdowns, series and savings read from the
rollups (storage/insight_queries.py), the most recent ledger rows, forecasts and anomaly
alerts (foresight/).

Each handler reads its parameters, scopes them to the caller (access.py), asks the storage
layer and shapes the answer as the README's "Admin API" section lays down. A parameter it cannot use,
unknown ones included (a misspelt filter would otherwise widen the answer silently), is a 400
that names it and says what to send instead.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

from starlette.requests import Request
from starlette.routing import Route
from starlette.types import ASGIApp

from tokenbrake.core import ErrorKind, Format, GatewayError
from tokenbrake.foresight import outlook
from tokenbrake.gateway.state import AppState
from tokenbrake.server.access import Access, counter_team, insight_access, key_teams, scoped, viewer_team
from tokenbrake.server.front_doors import JSONBytes, error_response
from tokenbrake.storage import LedgerRow, parse_since
from tokenbrake.storage.insight_queries import (
    DIMENSIONS,
    TAG,
    VIEW_FIELDS,
    Query,
    QueryError,
    check_dimension,
    iso,
    ledger_conditions,
    money,
)

log = logging.getLogger(__name__)

DEFAULT_SINCE = "7d"
COMMON = ("since", "until", *DIMENSIONS)
MAX_TOP = 1000
MAX_REQUESTS = 500


class BadParameter(Exception):
    def __init__(self, param: str, fix: str) -> None:
        super().__init__(f"'{param}': {fix}")


def parse_time(param: str, text: str, now: datetime) -> datetime:
    """`30m`, `24h`, `7d`, a date, or an ISO-8601 time (UTC unless it says otherwise)."""
    try:
        return parse_since(text, now)
    except ValueError:
        pass
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        raise BadParameter(param, f"cannot read {text!r}: use 30m, 24h, 7d, 90d, a date (2026-12-01) or an "
                                  f"ISO time (2026-12-01T10:00:00Z)") from None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _names(request: Request, allowed: tuple[str, ...]) -> None:
    for name in request.query_params:
        if name not in allowed and not (name.startswith(TAG) and "tag." in allowed):
            raise BadParameter(name, f"unknown parameter: use {', '.join(allowed)}")


def _filters(request: Request) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for name in request.query_params:
        if name in DIMENSIONS or name.startswith(TAG):
            check_dimension(name, name)
            found[name] = request.query_params.getlist(name)
    return found


def _query(request: Request, access: Access, now: datetime) -> Query:
    since = parse_time("since", request.query_params.get("since") or DEFAULT_SINCE, now)
    until_text = request.query_params.get("until")
    until = parse_time("until", until_text, now) if until_text else now
    if since >= until:
        raise BadParameter("since", f"{iso(since)} is not before until ({iso(until)}): use an earlier since")
    return Query(since, until, scoped(access, _filters(request)))


def _by(request: Request, required: bool) -> list[str]:
    text = request.query_params.get("by")
    if not text:
        if required:
            raise BadParameter("by", f"required: one or two of {', '.join(DIMENSIONS)}, tag.NAME (e.g. by=team,model)")
        return []
    return [part.strip() for part in text.split(",")]


def _int(request: Request, name: str, default: int | None, low: int, high: int) -> int | None:
    text = request.query_params.get(name)
    if text is None:
        return default
    try:
        number = int(text)
    except ValueError:
        number = low - 1
    if not low <= number <= high:
        raise BadParameter(name, f"{text!r}: use a whole number from {low} to {high}")
    return number


def _group(by: list[str], values: tuple | None) -> dict[str, Any]:
    return {"other": True} if values is None else dict(zip(by, values, strict=True))


def _state(request: Request) -> AppState:
    return request.app.state.tokenbrake


def _handler(allowed: tuple[str, ...], work: Callable[[Request, AppState, Access, datetime], Awaitable[dict]]):
    """Access first, then the parameters; every refusal in the OpenAI error shape."""
    async def handle(request: Request) -> ASGIApp:
        try:
            access = await insight_access(request)
            _names(request, allowed)
            state = _state(request)
            await _flushed(state)
            return JSONBytes(await work(request, state, access, datetime.now(UTC)))
        except GatewayError as error:
            return error_response(Format.OPENAI, error)
        except (BadParameter, QueryError) as exc:
            return error_response(Format.OPENAI, GatewayError(ErrorKind.INVALID_REQUEST, str(exc)))

    return handle


async def _flushed(state: AppState) -> None:
    """Writes what is still queued, so an answer includes the calls just made; a database
    that is failing leaves the answer as of the last batch written."""
    try:
        await state.writer.flush()
    except Exception as exc:  # the rows stay queued; the writer logs and retries them
        log.debug("insight: answering without the rows still queued: %s", exc)


async def series(request: Request, state: AppState, access: Access, now: datetime) -> dict:
    query = _query(request, access, now)
    every = request.query_params.get("every") or _every_for(query.until - query.since)
    by = _by(request, required=False)
    top = _int(request, "top", 10, 1, MAX_TOP) or 10
    fields = _fields(request)
    found = await state.database.insight.series(query, every, by, top, now, fields)
    times = [iso(t) for t in found.times]
    return {"every": every, "since": iso(found.since), "until": iso(found.until), "by": by,
            "series": [{"group": _group(by, group),
                        "points": [{"t": t, **m.view(fields)} for t, m in zip(times, line, strict=True)]}
                       for group, line in found.series]}


def _fields(request: Request) -> list[str] | None:
    """`metrics=cost_usd,requests`: only those in each point (a 90-day hourly chart of one
    metric is a tenth of the answer)."""
    text = request.query_params.get("metrics")
    if not text:
        return None
    fields = [name.strip() for name in text.split(",")]
    for name in fields:
        if name not in VIEW_FIELDS:
            raise BadParameter("metrics", f"unknown metric {name!r}: use one or more of {', '.join(VIEW_FIELDS)}")
    return fields


def _every_for(span: timedelta) -> str:
    return "minute" if span <= timedelta(hours=3) else "hour" if span <= timedelta(days=8) else "day"


async def breakdown(request: Request, state: AppState, access: Access, now: datetime) -> dict:
    query = _query(request, access, now)
    by = _by(request, required=True)
    found = await state.database.insight.breakdown(query, by, _int(request, "top", None, 1, MAX_TOP), now)
    return {"since": iso(found.since), "until": iso(found.until), "by": by,
            "rows": [{"group": _group(by, group), **m.view()} for group, m in found.rows],
            "other": found.other.view() if found.other is not None else None, "total": found.total.view()}


async def totals(request: Request, state: AppState, access: Access, now: datetime) -> dict:
    found = await state.database.insight.totals(_query(request, access, now), now)
    return {"since": iso(found.since), "until": iso(found.until), "current": found.current.view(),
            "previous": found.previous.view(), "previous_since": iso(found.previous_since),
            "previous_until": iso(found.previous_until)}


async def savings(request: Request, state: AppState, access: Access, now: datetime) -> dict:
    """What the controls saved. Only routing records a saving in the ledger today (each routed
    call: its cost at the model asked for, less what it cost); the rest are 0 until recorded."""
    start, end, total = await state.database.insight.total(_query(request, access, now), now)
    routing = total.saved_usd
    return {"since": iso(start), "until": iso(end), "routing_usd": money(routing), "downgrades_usd": "0",
            "refusals_usd": "0", "cache_usd": "0", "reduction_usd": "0", "total_usd": money(routing)}


async def requests(request: Request, state: AppState, access: Access, now: datetime) -> dict:
    filters = scoped(access, _filters(request))
    conditions, params = ledger_conditions(filters)
    for name, op in (("before", "<"), ("since", ">="), ("until", "<")):
        text = request.query_params.get(name)
        if text:
            conditions.append(f"l.ts {op} ?")
            params = [*params, parse_time(name, text, now)]
    rows = await state.database.ledger.recent(conditions, params, _int(request, "limit", 50, 1, MAX_REQUESTS) or 50)
    return {"rows": [_request_view(row, state) for row in rows]}


def _request_view(row: LedgerRow, state: AppState) -> dict[str, Any]:
    """One ledger row as the requests view shows it; `earlier_call`: a cascade's call made
    before the one that served (its id is the request's, then `.1`, `.2`…)."""
    routed = row.requested_model if row.requested_model in state.config.routes else None
    flags = [name for name, on in ((f"loop:{row.loop_suspected}", row.loop_suspected), ("usage_unseen", row.usage_unseen),
                                   ("routed", routed), ("earlier_call", "." in row.request_id)) if on]
    view = {
        "request_id": row.request_id, "ts": iso(row.ts), "key_name": row.key_name, "team": row.team, "user": row.user,
        "session": row.session, "tags": row.tags, "requested_model": row.requested_model,
        "served_model": row.served_model, "upstream": row.provider, "provider": row.provider, "status": row.status,
        "error": row.error, "input_tokens": row.input_tokens + row.cached_input_tokens + row.cache_write_tokens,
        "cached_input_tokens": row.cached_input_tokens, "output_tokens": row.output_tokens,
        "reasoning_tokens": row.reasoning_tokens, "cost_usd": money(row.cost_usd),
        "saved_usd": None if row.saved_usd is None else money(row.saved_usd), "latency_ms": round(row.latency_ms, 3),
        "stream": row.stream, "route": routed, "flags": flags,
    }
    if state.config.ledger.store_prompts:
        view["prompt"] = row.prompt
    return view


async def forecast(request: Request, state: AppState, access: Access, now: datetime) -> dict:
    """Forecasts to the period's end: of `scope` (its budgets', or its month), else of global
    and every budget."""
    scope = request.query_params.get("scope")
    try:
        found = await outlook.targets(state.config, state.database, now, scope)
    except ValueError as exc:
        raise BadParameter("scope", str(exc)) from None
    if not access.is_admin:
        found = await _readable(found, access, state, scope)
    tz = state.config.budgeting.timezone
    return {"forecasts": [await outlook.forecast(state.database, target, now, tz) for target in found]}


async def _readable(found: list[outlook.Target], access: Access, state: AppState,
                    scope: str | None) -> list[outlook.Target]:
    """A viewer's forecasts: of its team's budgets' counters, and of other spend within its
    team; asking for another team's is a 403."""
    if scope is not None and not scope.endswith(":*"):
        scoped(access, outlook.scope_filters(scope))
    teams = await key_teams(state)
    return [replace(target, filters=scoped(access, target.filters)) for target in found
            if target.budget is None
            or counter_team({"counter": target.counter or target.scope, "tenant": target.tenant}, teams) == access.team]


async def anomalies(request: Request, state: AppState, access: Access, now: datetime) -> dict:
    """The anomaly alerts raised since `since` (default 7d) and those still on, newest first;
    a viewer's, its team's only (the whole deployment's are the master key's)."""
    since = parse_time("since", request.query_params.get("since") or DEFAULT_SINCE, now)
    team = None if access.is_admin else viewer_team(access)
    return {"since": iso(since), "anomalies": await state.database.alerts.since(since, team,
                                                                             _int(request, "limit", 200, 1, MAX_REQUESTS) or 200)}


_SERIES = (*COMMON, "tag.", "every", "by", "top", "metrics")
routes = [
    Route("/admin/insight/series", _handler(_SERIES, series), methods=["GET"]),
    Route("/admin/insight/breakdown", _handler((*COMMON, "tag.", "by", "top"), breakdown), methods=["GET"]),
    Route("/admin/insight/totals", _handler((*COMMON, "tag."), totals), methods=["GET"]),
    Route("/admin/insight/savings", _handler((*COMMON, "tag."), savings), methods=["GET"]),
    Route("/admin/insight/requests", _handler((*COMMON, "tag.", "limit", "before"), requests), methods=["GET"]),
    Route("/admin/insight/forecast", _handler(("scope",), forecast), methods=["GET"]),
    Route("/admin/insight/anomalies", _handler(("since", "limit"), anomalies), methods=["GET"]),
]
