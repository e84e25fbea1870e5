"""Who may read and change what through the admin API and the insight API, decided server-side
on every call.

Three callers: the master key (Authorization: Bearer, as before) reads and changes everything;
a dashboard login reads what its key may, and an admin's login may act too, with the login's
CSRF token in X-CSRF-Token; a viewer key (its own, or its dashboard login) reads its team's
data only and changes nothing. `insight_access` says which one a request is; the insight
handlers force a viewer's queries to its team through `scoped` (another team's asked
for is a 403), and the admin reads keep only the team's budgets and sessions.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from starlette.requests import Request
from starlette.types import ASGIApp

from tokenbrake.admission.auth import Access, key_access, presented_key
from tokenbrake.core import ErrorKind, Format, GatewayError
from tokenbrake.dashboard.logins import COOKIE, CSRF_HEADER, Login
from tokenbrake.server.front_doors import error_response

SAFE_METHODS = ("GET", "HEAD", "OPTIONS")


def _login(request: Request) -> Login | None:
    """The dashboard login of a request that sends no key of its own."""
    dashboard = getattr(request.app.state, "dashboard", None)
    if dashboard is None or presented_key(dict(request.headers)) is not None:
        return None
    return dashboard.logins.find(request.cookies.get(COOKIE))


async def insight_access(request: Request) -> Access:
    """The caller's access to read: GatewayError (401, 403) for a caller with none."""
    login = _login(request)
    if login is not None:
        return login.access
    state = request.app.state.tokenbrake
    # (a state without a key cache checks keys in the database, as with keys not required)
    return await key_access(presented_key(dict(request.headers)), getattr(state, "keys", None), state.database)


async def admin_refusal(request: Request) -> ASGIApp | None:
    """The error answering a caller who may not use an admin-only endpoint (a write, the keys),
    or None: the master key, or an admin's dashboard login (with its CSRF token to act)."""
    login = _login(request)
    try:
        access = login.access if login is not None else await insight_access(request)
    except GatewayError as error:
        return error_response(Format.OPENAI, error)
    if not access.is_admin:
        return refused(f"viewer key '{access.key_name}' is read-only: it reads team {access.team}'s spend; "
                       "this needs the master key")
    if login is not None and request.method not in SAFE_METHODS and not login.allows(request.headers.get(CSRF_HEADER)):
        return refused(f"a dashboard login acts only with its CSRF token in {CSRF_HEADER}: use the dashboard's own buttons")
    return None


async def read_access(request: Request) -> Access | ASGIApp:
    """`insight_access` for an admin read: the access (a viewer's with its team), or the error
    to answer."""
    try:
        access = await insight_access(request)
        if not access.is_admin:
            viewer_team(access)
        return access
    except GatewayError as error:
        return error_response(Format.OPENAI, error)


def refused(message: str) -> ASGIApp:
    return error_response(Format.OPENAI, GatewayError(ErrorKind.PERMISSION, message))


def scoped(access: Access, filters: Mapping[str, Sequence[str]]) -> dict[str, Sequence[str]]:
    """The insight query's filters as the caller may run them: a viewer's forced to its team;
    GatewayError (403) when it asks for another team."""
    if access.is_admin:
        return dict(filters)
    team = viewer_team(access)
    others = [asked for asked in filters.get("team", []) if asked != team]
    if others:
        raise GatewayError(ErrorKind.PERMISSION, f"this viewer key reads team {team} only, "
                                                 f"not team {others[0]}: drop team={others[0]}")
    return {**filters, "team": [team]}


def viewer_team(access: Access) -> str:
    """A viewer's team; a viewer without one (keys made by hand in the database) sees nothing."""
    if access.team is None:
        raise GatewayError(ErrorKind.PERMISSION, f"viewer key '{access.key_name}' has no team, so it may see nothing")
    return access.team


async def key_teams(state: Any) -> dict[str, str | None]:
    """Each key's team, by the key's name."""
    return {key.name: key.team for key in await state.database.keys.list()}


def counter_team(counter: Mapping[str, Any], teams: Mapping[str, str | None]) -> str | None:
    """The team whose spend one budget counter (as the budget report shows it) counts, or None
    when it counts several teams' (global, a model, users or tags across tenants)."""
    for whose in (counter.get("tenant"), counter["counter"]):
        kind, _, value = (whose or "").partition(":")
        if kind == "team":
            return value
        if kind == "key":
            return teams.get(value)
    return None


def team_budgets(rows: Iterable[dict], team: str, teams: Mapping[str, str | None]) -> list[dict]:
    """The budget report's rows cut down to the counters of one team's spend."""
    kept = []
    for row in rows:
        counters = [c for c in row["counters"] if counter_team(c, teams) == team]
        if counters:
            kept.append({**row, "counters": counters})
    return kept
