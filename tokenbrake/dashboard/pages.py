"""The dashboard's routes: the login form, the pages, logout, and the static files.

A page is a layout (templates/layout.html) around the page's own HTML (templates/PAGE.html);
its script (static/PAGE.js, over static/core.js) reads the insight API and the admin reads
with the login's cookie, draws the charts and tables, and refreshes them every 10 s. Nothing
is written into a page but the login's role, team and CSRF token, all escaped.
"""

from __future__ import annotations

import gzip
import html
import importlib.metadata
import importlib.util
import secrets
from dataclasses import dataclass, field
from pathlib import Path
from string import Template
from urllib.parse import parse_qs, quote, urlsplit

from starlette.requests import ClientDisconnect, Request
from starlette.responses import FileResponse, HTMLResponse, RedirectResponse, Response
from starlette.routing import Route

from tokenbrake.admission.auth import Access, key_access
from tokenbrake.core import GatewayError
from tokenbrake.dashboard.logins import COOKIE, TTL_S, Login, Logins

HERE = Path(__file__).parent
PAGES = {"overview": "Overview", "explore": "Explore", "budgets": "Budgets", "sessions": "Sessions",
         "requests": "Requests"}
STATIC_TYPES = {".js": "text/javascript; charset=utf-8", ".css": "text/css; charset=utf-8"}
PLOTLY = "plotly.min.js"
NO_PLOTLY = ("Charts need plotly.js, which the dashboard extra installs: pip install 'tokenbrake[dashboard]'. "
             "Tables only until then.")
LOGIN_COOKIE = "tb_login"  # the login form's CSRF token, sent back with the form (double submit)
MAX_FORM_BYTES = 8192
# Scripts and styles from this origin only (plotly.js sets styles inline on its charts).
SECURITY_HEADERS = {
    "content-security-policy": "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
                               "img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; form-action 'self'",
    "x-content-type-options": "nosniff",
    "x-frame-options": "DENY",
    "referrer-policy": "same-origin",
    "cache-control": "no-store",
}


def plotly_file() -> Path | None:
    """plotly.js as the installed `plotly` package ships it, found without importing plotly."""
    spec = importlib.util.find_spec("plotly")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(next(iter(spec.submodule_search_locations))) / "package_data" / PLOTLY
    return path if path.is_file() else None


@dataclass
class Dashboard:
    """What the dashboard's routes need besides the gateway's state; on `app.state.dashboard`."""

    logins: Logins = field(default_factory=Logins)
    plotly: Path | None = field(default_factory=plotly_file)
    actions: bool = True  # whether this server takes actions (stop, resume a session)
    _plotly_gzip: bytes | None = None  # compressed once, on first request: 4.8 MB become 1.4

    def plotly_version(self) -> str:
        try:
            return importlib.metadata.version("plotly")
        except importlib.metadata.PackageNotFoundError:
            return "0"

    def plotly_gzip(self) -> bytes:
        if self._plotly_gzip is None and self.plotly is not None:
            self._plotly_gzip = gzip.compress(self.plotly.read_bytes(), compresslevel=6)
        return self._plotly_gzip or b""


def _dashboard(request: Request) -> Dashboard:
    return request.app.state.dashboard


def current_login(request: Request) -> Login | None:
    """The login the request's cookie names, if it is live."""
    return _dashboard(request).logins.find(request.cookies.get(COOKIE))


def _template(name: str) -> Template:
    return Template((HERE / "templates" / name).read_text())


def _html(body: str, status: int = 200, headers: dict[str, str] | None = None) -> HTMLResponse:
    return HTMLResponse(body, status_code=status, headers={**SECURITY_HEADERS, **(headers or {})})


def _who(access: Access) -> str:
    return "admin" if access.is_admin else f"viewer · team {access.team}"


def render_page(page: str, login: Login, dashboard: Dashboard) -> str:
    access = login.access
    nav = "".join(f'<a href="/dashboard/{name}"{" aria-current=page" if name == page else ""}>{title}</a>'
                  for name, title in PAGES.items())
    plotly = (f'<script src="/dashboard/static/{PLOTLY}?v={quote(dashboard.plotly_version())}" defer></script>'
              if dashboard.plotly else "")
    note = "" if dashboard.plotly else f'<p class="note" id="no-charts">{html.escape(NO_PLOTLY)}</p>'
    return _template("layout.html").substitute(
        title=PAGES[page], page=page, nav=nav, plotly=plotly, note=note,
        body=_template(f"{page}.html").substitute(),
        csrf=html.escape(login.csrf), role=html.escape(access.role), team=html.escape(access.team or ""),
        who=html.escape(_who(access)), actions="on" if dashboard.actions and access.is_admin else "off",
    )


async def page(request: Request) -> Response:
    name = request.path_params["page"]
    if name not in PAGES:
        return _html(f"<p>No dashboard page {html.escape(name)}: see <a href='/dashboard/overview'>the overview</a>.</p>",
                     status=404)
    login = current_login(request)
    if login is None:
        wanted = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        return RedirectResponse(f"/dashboard/login?next={quote(wanted, safe='')}", status_code=303)
    return _html(render_page(name, login, _dashboard(request)))


async def home(request: Request) -> Response:
    return RedirectResponse("/dashboard/overview", status_code=307)


def _safe_next(wanted: str | None) -> str:
    """Where to go after logging in: a dashboard page only, never another site."""
    if wanted and wanted.startswith("/dashboard/") and not wanted.startswith("//") and "\\" not in wanted:
        return wanted
    return "/dashboard/overview"


def _login_form(request: Request, message: str = "", status: int = 200, wanted: str | None = None) -> Response:
    token = request.cookies.get(LOGIN_COOKIE) or secrets.token_urlsafe(24)
    body = _template("login.html").substitute(
        message=f'<p class="error" role="alert">{html.escape(message)}</p>' if message else "",
        csrf=html.escape(token), next=html.escape(_safe_next(wanted or request.query_params.get("next"))),
    )
    response = _html(body, status=status)
    response.set_cookie(LOGIN_COOKIE, token, max_age=3600, path="/dashboard", httponly=True, samesite="strict",
                        secure=_secure(request))
    return response


async def login_form(request: Request) -> Response:
    if current_login(request) is not None:
        return RedirectResponse(_safe_next(request.query_params.get("next")), status_code=303)
    return _login_form(request)


async def _form(request: Request) -> dict[str, str]:
    """The posted form's fields (URL-encoded, at most MAX_FORM_BYTES)."""
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_FORM_BYTES:
            raise ValueError("the form is too large")
    return {name: values[0] for name, values in parse_qs(body.decode("utf-8", "replace")).items()}


def _secure(request: Request) -> bool:
    """Whether the browser reached us over HTTPS, so cookies go back only that way."""
    return request.url.scheme == "https" or request.headers.get("x-forwarded-proto") == "https"


def cross_site(request: Request) -> bool:
    """Whether a POST comes from another site, as the browser says in Origin (or Referer)."""
    origin = request.headers.get("origin") or request.headers.get("referer")
    if not origin or origin == "null":
        return origin == "null"
    # The host only: behind a proxy that ends TLS, the browser's https:// reaches us as http://.
    return urlsplit(origin).netloc != request.url.netloc


async def login(request: Request) -> Response:
    """The login form's POST: the master key or a viewer key opens a login."""
    try:
        form = await _form(request)
    except (ValueError, ClientDisconnect):
        return _login_form(request, "The form could not be read: try again.", status=400)
    wanted = form.get("next")
    expected = request.cookies.get(LOGIN_COOKIE)
    if cross_site(request) or not expected or form.get("csrf") != expected:
        return _login_form(request, "The login form expired or came from another site: log in again.", 403, wanted)
    state = request.app.state.tokenbrake
    try:
        access = await key_access(form.get("key", "").strip() or None, state.keys, state.database)
    except GatewayError as error:
        message = error.message if error.status == 403 else "That key is neither the master key nor a viewer key here."
        return _login_form(request, message, error.status, wanted)
    standing = state.keys.standing(access.key_name) if access.key_name and state.keys is not None else None
    token, _ = _dashboard(request).logins.open(access, standing)
    response = RedirectResponse(_safe_next(wanted), status_code=303)
    response.set_cookie(COOKIE, token, max_age=TTL_S, path="/", httponly=True, samesite="strict",
                        secure=_secure(request))
    response.delete_cookie(LOGIN_COOKIE, path="/dashboard")
    return response


async def logout(request: Request) -> Response:
    """Ends the login; a POST with the login's CSRF token, so no other site can log one out."""
    try:
        form = await _form(request)
    except (ValueError, ClientDisconnect):
        form = {}
    login = current_login(request)
    if login is not None and (cross_site(request) or not login.allows(form.get("csrf"))):
        return _html("<p>Logout needs the dashboard's own form: <a href='/dashboard/overview'>back</a>.</p>", 403)
    _dashboard(request).logins.close(request.cookies.get(COOKIE))
    response = RedirectResponse("/dashboard/login", status_code=303)
    response.delete_cookie(COOKIE, path="/", httponly=True, samesite="strict")
    return response


async def static(request: Request) -> Response:
    name = request.path_params["name"]
    dashboard = _dashboard(request)
    if name == PLOTLY:
        if dashboard.plotly is None:
            return Response(NO_PLOTLY, status_code=404, media_type="text/plain")
        cached = {"cache-control": "public, max-age=31536000, immutable", "vary": "accept-encoding"}
        if "gzip" in request.headers.get("accept-encoding", ""):
            return Response(dashboard.plotly_gzip(), media_type=STATIC_TYPES[".js"],
                            headers={**cached, "content-encoding": "gzip"})
        return FileResponse(dashboard.plotly, media_type=STATIC_TYPES[".js"], headers=cached)
    path = HERE / "static" / name
    if "/" in name or path.suffix not in STATIC_TYPES or not path.is_file():
        return Response(f"no dashboard file {name}", status_code=404, media_type="text/plain")
    return FileResponse(path, media_type=STATIC_TYPES[path.suffix],
                        headers={"cache-control": "no-cache", "x-content-type-options": "nosniff"})


routes = [
    Route("/dashboard", home, methods=["GET"]),
    Route("/dashboard/login", login_form, methods=["GET"]),
    Route("/dashboard/login", login, methods=["POST"]),
    Route("/dashboard/logout", logout, methods=["POST"]),
    Route("/dashboard/static/{name}", static, methods=["GET"]),
    Route("/dashboard/{page}", page, methods=["GET"]),
]
