"""The admin API under /admin/, guarded by the master key in TOKENBRAKE_MASTER_KEY.

It calls the same library functions as the CLI (`tokenbrake keys …`, `tokenbrake usage`).
Without a master key in the environment the admin API is off. Budgets and sessions can also be
read by a viewer key, which sees only its team's (access.py); it changes nothing.
"""

from __future__ import annotations

from datetime import UTC, datetime

from starlette.requests import ClientDisconnect, Request
from starlette.routing import Route
from starlette.types import ASGIApp

from tokenbrake.admission import budget_rules, session_rules
from tokenbrake.admission.auth import ADMIN, Access
from tokenbrake.changes import BUDGETS, KEYS
from tokenbrake.core import ErrorKind, Format, GatewayError
from tokenbrake.gateway.state import AppState
from tokenbrake.server.access import admin_refusal, key_teams, read_access, team_budgets, viewer_team
from tokenbrake.server.front_doors import JSONBytes, error_response, header_dict, read_body
from tokenbrake.storage import parse_since
from tokenbrake.storage.keys import ROLES
from tokenbrake.storage.reports import GROUPINGS, key_view, usage_view
from tokenbrake.wire.validate import parse_json_object

ADMIN_ACCESS = Access(ADMIN)


def _state(request: Request) -> AppState:
    return request.app.state.tokenbrake


async def _json_body(request: Request) -> dict:
    """The request's JSON object, up to server.max_admin_body_bytes (GatewayError past it,
    and for a client gone before its body was in, whose answer then goes nowhere)."""
    limit = _state(request).config.server.max_admin_body_bytes
    try:
        body = await read_body(request.receive, header_dict(request.scope), limit, "server.max_admin_body_bytes")
    except ClientDisconnect:
        raise GatewayError(ErrorKind.INVALID_REQUEST, "the client left before its request body was in") from None
    return parse_json_object(body)


def _bad(message: str) -> ASGIApp:
    return error_response(Format.OPENAI, GatewayError(ErrorKind.INVALID_REQUEST, message))


async def list_keys(request: Request) -> ASGIApp:
    if refused := await admin_refusal(request):
        return refused
    keys = await _state(request).database.keys.list()
    return JSONBytes({"data": [key_view(k) for k in keys]})


async def create_key(request: Request) -> ASGIApp:
    if refused := await admin_refusal(request):
        return refused
    try:
        body = await _json_body(request)
    except GatewayError as error:
        return error_response(Format.OPENAI, error)
    name, team, models = body.get("name"), body.get("team"), body.get("models")
    if not isinstance(name, str) or not name:
        return _bad("'name': a non-empty string is required")
    if team is not None and not isinstance(team, str):
        return _bad("'team': expected a string")
    if models is not None and not (isinstance(models, list) and all(isinstance(m, str) for m in models)):
        return _bad("'models': expected an array of model names")
    require_user = body.get("require_user", False)
    if not isinstance(require_user, bool):
        return _bad("'require_user': expected true or false")
    role = body.get("role", "app")
    if role not in ROLES:
        return _bad(f"'role': expected one of {', '.join(ROLES)}")
    state = _state(request)
    unknown = [m for m in models or [] if m not in state.config.models]
    if unknown:
        return _bad(f"'models': not configured here: {', '.join(unknown)}")
    try:
        plaintext, key = await state.database.keys.create(name, team=team, models=models, require_user=require_user,
                                                          role=role)
    except ValueError as exc:
        status = 409 if "already exists" in str(exc) else 400
        return error_response(Format.OPENAI, GatewayError(ErrorKind.INVALID_REQUEST, str(exc), status=status))
    await state.refresher.changed(KEYS)
    return JSONBytes({**key_view(key), "key": plaintext}, status_code=201)


async def show_key(request: Request) -> ASGIApp:
    if refused := await admin_refusal(request):
        return refused
    key = await _state(request).database.keys.get(request.path_params["name"])
    if key is None:
        return error_response(Format.OPENAI, GatewayError(ErrorKind.NOT_FOUND, f"no key named '{request.path_params['name']}'"))
    return JSONBytes(key_view(key))


async def revoke_key(request: Request) -> ASGIApp:
    if refused := await admin_refusal(request):
        return refused
    state = _state(request)
    try:
        key = await state.database.keys.revoke(request.path_params["name"])
    except KeyError:
        return error_response(Format.OPENAI, GatewayError(ErrorKind.NOT_FOUND, f"no key named '{request.path_params['name']}'"))
    await state.refresher.changed(KEYS)
    return JSONBytes(key_view(key))


async def usage(request: Request) -> ASGIApp:
    if refused := await admin_refusal(request):
        return refused
    by = request.query_params.get("by", "model")
    if by not in GROUPINGS:
        return _bad(f"'by': expected one of {', '.join(GROUPINGS)}")
    since = request.query_params.get("since")
    try:
        since_dt = parse_since(since, datetime.now(UTC)) if since else None
    except ValueError as exc:
        return _bad(f"'since': {exc}")
    state = _state(request)
    await state.writer.flush()  # include what is still queued
    groups, _ = await state.database.insight.usage(by, since=since_dt)  # from the rollups
    return JSONBytes(usage_view(by, groups))


async def list_budgets(request: Request) -> ASGIApp:
    """The budgets in force with their spend; a viewer's, only the counters of its team's spend."""
    access = await read_access(request)
    if not isinstance(access, Access):
        return access
    state = _state(request)
    await state.writer.flush()  # members of `*` budgets are read from the ledger
    rows = await budget_rules.report(state.config, state.database, state.limits)
    if not access.is_admin:
        rows = team_budgets(rows, viewer_team(access), await key_teams(state))
    return JSONBytes({"data": rows})


async def set_budget(request: Request) -> ASGIApp:
    """Creates or replaces the budget of that scope and period; this gateway enforces it at
    once, every other within a second (told on the change channel)."""
    if refused := await admin_refusal(request):
        return refused
    state = _state(request)
    try:
        budget = budget_rules.parse_budget(await _json_body(request), state.config)
    except GatewayError as error:
        return error_response(Format.OPENAI, error)
    except ValueError as exc:
        return _bad(str(exc))
    await state.database.budgets.set(budget)
    await state.refresher.changed(BUDGETS)
    return JSONBytes(budget.model_dump(mode="json"), status_code=201)


async def delete_budget(request: Request) -> ASGIApp:
    """Deletes a budget set at run time (`?scope=team:search&period=month`); the config's stay."""
    if refused := await admin_refusal(request):
        return refused
    scope, period = request.query_params.get("scope"), request.query_params.get("period")
    if not scope or not period:
        return _bad("'scope' and 'period' are required query parameters")
    state = _state(request)
    if not await state.database.budgets.delete(scope, period):
        message = budget_rules.missing_runtime_budget(state.config, scope, period)
        return error_response(Format.OPENAI, GatewayError(ErrorKind.NOT_FOUND, message))
    await state.refresher.changed(BUDGETS)
    return JSONBytes({"deleted": {"scope": scope, "period": period}})


async def list_sessions(request: Request) -> ASGIApp:
    """Live sessions, most recent first (`?key=` for one key's); a viewer's, its team's keys' only."""
    access = await read_access(request)
    if not isinstance(access, Access):
        return access
    state = _state(request)
    found = await state.limits.session_list(request.query_params.get("key"))
    if not access.is_admin:
        teams = await key_teams(state)
        found = [r for r in found if teams.get(r.key_name) == access.team]
    return JSONBytes({"data": [session_rules.view(r) for r in found]})


async def _session(request: Request, access: Access, work) -> ASGIApp:
    """Runs `work(state, session id, key name or None)` and answers its record in detail; a
    session of another team's key is, to a viewer, one that does not exist."""
    state = _state(request)
    try:
        record = await work(state, request.path_params["session"], request.query_params.get("key"))
        if not access.is_admin and (await key_teams(state)).get(record.key_name) != access.team:
            raise session_rules.SessionNotFound(f"no live session {request.path_params['session']!r} "
                                                f"of team {access.team}'s keys")
    except session_rules.SessionNotFound as exc:
        return error_response(Format.OPENAI, GatewayError(ErrorKind.NOT_FOUND, str(exc)))
    return JSONBytes(session_rules.view(record, detail=True))


async def show_session(request: Request) -> ASGIApp:
    access = await read_access(request)
    if not isinstance(access, Access):
        return access
    return await _session(request, access, lambda state, session, key: session_rules.find(state.limits, session, key))


async def _set_session_status(request: Request, stop: bool) -> ASGIApp:
    if refused := await admin_refusal(request):
        return refused
    return await _session(request, ADMIN_ACCESS, lambda state, session, key: session_rules.set_status(
        state.limits, state.config.sessions, session, key, stop=stop))


async def stop_session(request: Request) -> ASGIApp:
    return await _set_session_status(request, stop=True)


async def resume_session(request: Request) -> ASGIApp:
    return await _set_session_status(request, stop=False)


routes = [
    Route("/admin/keys", list_keys, methods=["GET"]),
    Route("/admin/keys", create_key, methods=["POST"]),
    Route("/admin/keys/{name}", show_key, methods=["GET"]),
    Route("/admin/keys/{name}/revoke", revoke_key, methods=["POST"]),
    Route("/admin/usage", usage, methods=["GET"]),
    Route("/admin/budgets", list_budgets, methods=["GET"]),
    Route("/admin/budgets", set_budget, methods=["POST"]),
    Route("/admin/sessions", list_sessions, methods=["GET"]),
    # `path`: a session id may hold slashes (`team/run-7`, sent as team%2Frun-7 or as is)
    Route("/admin/sessions/{session:path}/stop", stop_session, methods=["POST"]),
    Route("/admin/sessions/{session:path}/resume", resume_session, methods=["POST"]),
    Route("/admin/sessions/{session:path}", show_session, methods=["GET"]),
    Route("/admin/budgets", delete_budget, methods=["DELETE"]),
]
