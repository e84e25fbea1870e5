"""The admin API under /admin/, guarded by the master key in TOKENBRAKE_MASTER_KEY.

It calls the same library functions as the CLI (`tokenbrake keys …`, `tokenbrake usage`).
Without a master key in the environment the admin API is off.
"""

from __future__ import annotations

import hmac
import os
from datetime import UTC, datetime

from starlette.requests import ClientDisconnect, Request
from starlette.routing import Route
from starlette.types import ASGIApp

from tokenbrake import budgets, sessions
from tokenbrake.changes import BUDGETS, KEYS
from tokenbrake.auth import presented_key
from tokenbrake.core import ErrorKind, Format, GatewayError
from tokenbrake.reports import GROUPINGS, key_view, usage_view
from tokenbrake.server.front_doors import JSONBytes, error_response, header_dict, read_body
from tokenbrake.state import AppState
from tokenbrake.storage import parse_since
from tokenbrake.validate import parse_json_object

MASTER_KEY_ENV = "TOKENBRAKE_MASTER_KEY"


def _refusal(request: Request) -> ASGIApp | None:
    master = os.environ.get(MASTER_KEY_ENV)
    if not master:
        return error_response(Format.OPENAI, GatewayError(
            ErrorKind.PERMISSION, f"the admin API is off: set {MASTER_KEY_ENV} where the gateway runs"))
    presented = presented_key(dict(request.headers)) or ""
    if not hmac.compare_digest(presented.encode(), master.encode()):
        return error_response(Format.OPENAI, GatewayError(ErrorKind.AUTHENTICATION, "admin API: wrong or missing master key"))
    return None


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
    if refused := _refusal(request):
        return refused
    keys = await _state(request).database.keys.list()
    return JSONBytes({"data": [key_view(k) for k in keys]})


async def create_key(request: Request) -> ASGIApp:
    if refused := _refusal(request):
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
    state = _state(request)
    unknown = [m for m in models or [] if m not in state.config.models]
    if unknown:
        return _bad(f"'models': not configured here: {', '.join(unknown)}")
    try:
        plaintext, key = await state.database.keys.create(name, team=team, models=models, require_user=require_user)
    except ValueError as exc:
        return error_response(Format.OPENAI, GatewayError(ErrorKind.INVALID_REQUEST, str(exc), status=409))
    await state.refresher.changed(KEYS)
    return JSONBytes({**key_view(key), "key": plaintext}, status_code=201)


async def show_key(request: Request) -> ASGIApp:
    if refused := _refusal(request):
        return refused
    key = await _state(request).database.keys.get(request.path_params["name"])
    if key is None:
        return error_response(Format.OPENAI, GatewayError(ErrorKind.NOT_FOUND, f"no key named '{request.path_params['name']}'"))
    return JSONBytes(key_view(key))


async def revoke_key(request: Request) -> ASGIApp:
    if refused := _refusal(request):
        return refused
    state = _state(request)
    try:
        key = await state.database.keys.revoke(request.path_params["name"])
    except KeyError:
        return error_response(Format.OPENAI, GatewayError(ErrorKind.NOT_FOUND, f"no key named '{request.path_params['name']}'"))
    await state.refresher.changed(KEYS)
    return JSONBytes(key_view(key))


async def usage(request: Request) -> ASGIApp:
    if refused := _refusal(request):
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
    groups = await state.database.ledger.usage(by, since=since_dt)
    return JSONBytes(usage_view(by, groups))


async def list_budgets(request: Request) -> ASGIApp:
    if refused := _refusal(request):
        return refused
    state = _state(request)
    await state.writer.flush()  # members of `*` budgets are read from the ledger
    return JSONBytes({"data": await budgets.report(state.config, state.database, state.limits)})


async def set_budget(request: Request) -> ASGIApp:
    """Creates or replaces the budget of that scope and period; this gateway enforces it at
    once, every other within a second (told on the change channel)."""
    if refused := _refusal(request):
        return refused
    state = _state(request)
    try:
        budget = budgets.parse_budget(await _json_body(request), state.config)
    except GatewayError as error:
        return error_response(Format.OPENAI, error)
    except ValueError as exc:
        return _bad(str(exc))
    await state.database.budgets.set(budget)
    await state.refresher.changed(BUDGETS)
    return JSONBytes(budget.model_dump(mode="json"), status_code=201)


async def delete_budget(request: Request) -> ASGIApp:
    """Deletes a budget set at run time (`?scope=team:search&period=month`); the config's stay."""
    if refused := _refusal(request):
        return refused
    scope, period = request.query_params.get("scope"), request.query_params.get("period")
    if not scope or not period:
        return _bad("'scope' and 'period' are required query parameters")
    state = _state(request)
    if not await state.database.budgets.delete(scope, period):
        message = budgets.missing_runtime_budget(state.config, scope, period)
        return error_response(Format.OPENAI, GatewayError(ErrorKind.NOT_FOUND, message))
    await state.refresher.changed(BUDGETS)
    return JSONBytes({"deleted": {"scope": scope, "period": period}})


async def list_sessions(request: Request) -> ASGIApp:
    """Live sessions, most recent first (`?key=` for one key's)."""
    if refused := _refusal(request):
        return refused
    found = await _state(request).limits.session_list(request.query_params.get("key"))
    return JSONBytes({"data": [sessions.view(r) for r in found]})


async def _session(request: Request, work) -> ASGIApp:
    """Runs `work(state, session id, key name or None)` and answers its record in detail."""
    if refused := _refusal(request):
        return refused
    try:
        record = await work(_state(request), request.path_params["session"], request.query_params.get("key"))
    except sessions.SessionNotFound as exc:
        return error_response(Format.OPENAI, GatewayError(ErrorKind.NOT_FOUND, str(exc)))
    return JSONBytes(sessions.view(record, detail=True))


async def show_session(request: Request) -> ASGIApp:
    return await _session(request, lambda state, session, key: sessions.find(state.limits, session, key))


async def stop_session(request: Request) -> ASGIApp:
    return await _session(request, lambda state, session, key: sessions.set_status(
        state.limits, state.config.sessions, session, key, stop=True))


async def resume_session(request: Request) -> ASGIApp:
    return await _session(request, lambda state, session, key: sessions.set_status(
        state.limits, state.config.sessions, session, key, stop=False))


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
