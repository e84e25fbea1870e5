"""`GET` and `DELETE /v1/responses/{id}` and `GET /v1/responses/{id}/input_items`: the
responses the gateway keeps (storage/responses.py), each visible only to the key that made it.
A response another key made, or none, is the same 404."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.routing import Route
from starlette.types import ASGIApp

from tokenbrake.admission.auth import authenticate
from tokenbrake.core import ErrorKind, Format, GatewayError
from tokenbrake.gateway.state import AppState
from tokenbrake.server.front_doors import JSONBytes, error_response, header_dict
from tokenbrake.storage.responses import KeptResponse

DEFAULT_PAGE, MAX_PAGE = 20, 100  # input items listed at a time, as OpenAI's API does


async def _kept(request: Request) -> tuple[AppState, str | None, str]:
    """The gateway's state, the caller's key name, and the response id the path names."""
    state: AppState = request.app.state.tokenbrake
    key_name = None
    if state.keys is not None:
        key_name = (await authenticate(header_dict(request.scope), state.keys)).key_name
    return state, key_name, request.path_params["response_id"]


def _not_found(response_id: str) -> GatewayError:
    return GatewayError(ErrorKind.NOT_FOUND, f"Response with id '{response_id}' not found: this gateway keeps no "
                        f"such response for this API key (made with another key or with store: false, deleted, or "
                        f"older than responses.retention_s).", param="response_id")


async def _find(request: Request) -> tuple[str, KeptResponse]:
    state, key_name, response_id = await _kept(request)
    kept = await state.database.responses.find(key_name, response_id)
    if kept is None:
        raise _not_found(response_id)
    return response_id, kept


async def get_response(request: Request) -> ASGIApp:
    try:
        return JSONBytes((await _find(request))[1].response)
    except GatewayError as error:
        return error_response(Format.OPENAI, error)


async def input_items(request: Request) -> ASGIApp:
    """The response's input, a page at a time as OpenAI lists it: newest first (`order=asc` for
    oldest first), `limit` items (20 by default, 1 to 100) after the item `after` names."""
    try:
        response_id, kept = await _find(request)
        limit = _limit(request.query_params.get("limit"))
    except GatewayError as error:
        return error_response(Format.OPENAI, error)
    items = [_with_id(item, f"{response_id}_{n}") for n, item in enumerate(kept.input_items)]
    if request.query_params.get("order") != "asc":
        items.reverse()
    after = request.query_params.get("after")
    if after is not None:
        items = items[next((n + 1 for n, item in enumerate(items) if item["id"] == after), len(items)):]
    page = items[:limit]
    return JSONBytes({"object": "list", "data": page, "has_more": len(items) > limit,
                      "first_id": page[0]["id"] if page else None, "last_id": page[-1]["id"] if page else None})


def _limit(value: str | None) -> int:
    if value is None:
        return DEFAULT_PAGE
    if not value.isdigit() or not 1 <= int(value) <= MAX_PAGE:
        raise GatewayError(ErrorKind.INVALID_REQUEST, f"Invalid 'limit': {value!r}; expected an integer from 1 to "
                           f"{MAX_PAGE}.", param="limit")
    return int(value)


async def delete_response(request: Request) -> ASGIApp:
    try:
        state, key_name, response_id = await _kept(request)
        if not await state.database.responses.forget(key_name, response_id):
            raise _not_found(response_id)
    except GatewayError as error:
        return error_response(Format.OPENAI, error)
    return JSONBytes({"id": response_id, "object": "response.deleted", "deleted": True})


def _with_id(item: dict[str, Any], fallback: str) -> dict[str, Any]:
    """An input item as listed: a string `content` as an input_text part, and an id."""
    out = {"type": "message", **item} if "role" in item else dict(item)
    if isinstance(out.get("content"), str) and out.get("type") == "message":
        out["content"] = [{"type": "input_text", "text": out["content"]}]
    out.setdefault("id", "msg_" + fallback.removeprefix("resp_"))
    return out


routes = [
    Route("/v1/responses/{response_id}", get_response, methods=["GET"]),
    Route("/v1/responses/{response_id}", delete_response, methods=["DELETE"]),
    Route("/v1/responses/{response_id}/input_items", input_items, methods=["GET"]),
]
