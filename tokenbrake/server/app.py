"""The ASGI application: routes to the front doors, model listing, health, metrics, the admin
API and the dashboard."""

from __future__ import annotations

import contextlib
import gc
import hmac
import logging
import os
from collections.abc import AsyncIterator, Awaitable, Callable

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from tokenbrake.admission.auth import authenticate
from tokenbrake.config import Config
from tokenbrake.core import ErrorKind, Format, GatewayError
from tokenbrake.dashboard import pages as dashboard
from tokenbrake.gateway.state import AppState
from tokenbrake.server import admin, front_doors, insight, kept_responses
from tokenbrake.server.front_doors import FrontDoor, JSONBytes, error_response
from tokenbrake.server.guard import door_format

log = logging.getLogger(__name__)

MODEL_OWNER = "tokenbrake"
# Each request allocates thousands of short-lived objects (parsed JSON, the request context,
# the HTTP servers' and client's own state), so at Python's default first threshold (700) the
# cyclic garbage collector runs every few requests; this makes it every few dozen.
GC_FIRST_THRESHOLD = 50_000


# The endpoints that carry the traffic, answered ahead of Starlette's stack (see FastDoors).
HOT_DOORS: dict[str, FrontDoor] = {
    "/v1/chat/completions": front_doors.chat_completions,
    "/v1/messages": front_doors.messages,
    "/v1/embeddings": front_doors.embeddings,
    "/v1/responses": front_doors.responses,
}


def build_app(config: Config) -> FastDoors:
    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        app.state.tokenbrake = await AppState.open(config)
        tune_garbage_collector()
        try:
            yield
        finally:
            await app.state.tokenbrake.aclose()

    routes = [
        Route("/v1/chat/completions", front_doors.chat_completions, methods=["POST"]),
        Route("/v1/embeddings", front_doors.embeddings, methods=["POST"]),
        Route("/v1/messages", front_doors.messages, methods=["POST"]),
        Route("/v1/messages/count_tokens", front_doors.count_tokens, methods=["POST"]),
        Route("/v1/responses", front_doors.responses, methods=["POST"]),
        *kept_responses.routes,
        Route("/v1/models", list_models, methods=["GET"]),
        Route("/v1/models/{model:path}", get_model, methods=["GET"]),
        Route("/healthz", healthz, methods=["GET"]),
        Route("/metrics", metrics, methods=["GET"]),
        *admin.routes,
        *insight.routes,
        *dashboard.routes,
    ]
    app = Starlette(
        routes=routes,
        lifespan=lifespan,
        # Starlette's types ask a handler for a Response; it awaits whatever ASGI app one returns.
        exception_handlers={HTTPException: http_error},  # type: ignore[dict-item]
    )
    app.state.dashboard = dashboard.Dashboard()
    return FastDoors(app, HOT_DOORS)


def cut_in_flight(app: FastDoors) -> Callable[[], Awaitable[None]]:
    """What shutdown calls once its grace period is over: the app's upstream calls cut."""
    async def cut() -> None:
        state = getattr(app.app.state, "tokenbrake", None)
        if state is not None:
            await state.cut_upstreams()

    return cut


def tune_garbage_collector() -> None:
    """Collects less often, and never again walks what start-up built (config, modules,
    tokenizers, the key ring), which `gc.freeze()` sets aside for good."""
    gc.freeze()
    gc.set_threshold(GC_FIRST_THRESHOLD, *gc.get_threshold()[1:])


class FastDoors:
    """Hands a POST to one of the hot endpoints straight to its front door, ahead of Starlette.

    Starlette's middleware, router and per-route exception wrapper cost about a tenth of the
    gateway's CPU per request, for nothing these endpoints need: they take no path
    parameters and answer every error themselves, in the caller's format. Everything else
    (other paths and methods, their 404s and 405s, lifespan) goes through Starlette as before.
    """

    def __init__(self, app: Starlette, doors: dict[str, FrontDoor]) -> None:
        self.app = app
        self.doors = doors

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        door = self.doors.get(scope["path"]) if scope["type"] == "http" and scope["method"] == "POST" else None
        if door is None:
            await self.app(scope, receive, send)
            return
        scope["app"] = self.app  # what `request.app` answers, as Starlette would have set it
        response = await door(Request(scope, receive, send))
        await response(scope, receive, send)


def client_format(request: Request) -> Format:
    return door_format(request.scope["headers"])


def model_entry(fmt: Format, name: str) -> dict:
    """A configured model as the SDK's model type expects it (no creation time is known)."""
    if fmt is Format.ANTHROPIC:
        return {"type": "model", "id": name, "display_name": name, "created_at": "1970-01-01T00:00:00Z"}
    return {"id": name, "object": "model", "created": 0, "owned_by": MODEL_OWNER}


async def visible_models(request: Request) -> list[str]:
    """The models the caller's key may use (raises GatewayError for a bad key)."""
    state: AppState = request.app.state.tokenbrake
    allowed = None
    if state.keys is not None:
        allowed = (await authenticate(dict(request.headers), state.keys)).allowed_models
    names = [*state.config.models, *state.config.routes]  # routes: virtual models such as `auto`
    return sorted(name for name in names if allowed is None or name in allowed)


async def list_models(request: Request) -> ASGIApp:
    fmt = client_format(request)
    try:
        names = await visible_models(request)
    except GatewayError as error:
        return error_response(fmt, error)
    data = [model_entry(fmt, name) for name in names]
    if fmt is Format.ANTHROPIC:
        return JSONBytes(
            {"data": data, "has_more": False, "first_id": names[0] if names else None, "last_id": names[-1] if names else None}
        )
    return JSONBytes({"object": "list", "data": data})


async def get_model(request: Request) -> ASGIApp:
    fmt = client_format(request)
    name = request.path_params["model"]
    try:
        names = await visible_models(request)
    except GatewayError as error:
        return error_response(fmt, error)
    if name not in names:
        return error_response(fmt, GatewayError(ErrorKind.NOT_FOUND, f"The model '{name}' does not exist on this gateway. "
                                                f"Available models: {', '.join(names) or 'none'}", code="model_not_found"))
    return JSONBytes(model_entry(fmt, name))


async def healthz(request: Request) -> ASGIApp:
    return JSONBytes({"status": "ok"})


async def metrics(request: Request) -> ASGIApp:
    """Prometheus metrics, with each budget counter's spend gathered now; behind a bearer
    token when `server.metrics_token_env` names one."""
    state: AppState = request.app.state.tokenbrake
    if (refused := metrics_refusal(state.config.server.metrics_token_env, request.headers.get("authorization"))):
        return Response(refused + "\n", status_code=401, media_type="text/plain",
                        headers={"www-authenticate": "Bearer"})
    return Response(state.metrics.render(await budget_gauges(state)), media_type="text/plain; version=0.0.4; charset=utf-8")


def metrics_refusal(token_env: str | None, authorization: str | None) -> str | None:
    """Why a scrape is refused, or None. A token variable that is not set refuses every scrape:
    the operator asked for protection, so its absence must not open the endpoint."""
    if token_env is None:
        return None
    expected = os.environ.get(token_env)
    if not expected:
        return f"/metrics is protected by server.metrics_token_env, but {token_env} is not set: set it and restart"
    presented = (authorization or "").removeprefix("Bearer ").strip()
    if not hmac.compare_digest(presented.encode(), expected.encode()):
        return f"/metrics needs the token in {token_env}: send Authorization: Bearer TOKEN"
    return None


async def budget_gauges(state: AppState) -> list:
    from tokenbrake.admission.budget_rules import report
    from tokenbrake.settlement.metrics import budget_families

    try:
        return budget_families(await report(state.config, state.database, state.limits))
    except Exception:  # the rest of the scrape is still worth having
        log.warning("/metrics: the budgets' spend could not be read; scraped without it", exc_info=True)
        return []


SERVED = ("/v1/chat/completions, /v1/responses, /v1/embeddings, /v1/models, /v1/messages and "
          "/v1/messages/count_tokens")
# Provider APIs a client may try that the gateway does not serve, and what to use instead.
INSTEAD = {
    "/v1/conversations": ("OpenAI's Conversations API is not served: chain responses with previous_response_id "
                          "(client.responses.create), or send the whole conversation as input"),
    "/v1/completions": "legacy completions are not served: use Chat Completions (client.chat.completions)",
    "/v1/messages/batches": "message batches are not served: send each request to /v1/messages",
}


async def http_error(request: Request, exc: HTTPException) -> ASGIApp:
    """Unknown paths and wrong methods, in the caller's own error format. A provider API the
    gateway does not serve says so, and what it does serve."""
    path = request.url.path
    detail = exc.detail
    if exc.status_code == 404 and path.startswith("/v1/"):
        hint = next((text for prefix, text in INSTEAD.items() if path == prefix or path.startswith(prefix + "/")), None)
        detail = f"{hint or 'not served by tokenbrake'}. tokenbrake serves {SERVED}"
    kind = ErrorKind.NOT_FOUND if exc.status_code == 404 else ErrorKind.INVALID_REQUEST
    error = GatewayError(kind, f"{request.method} {path}: {detail}", status=exc.status_code)
    return error_response(client_format(request), error)
