"""The emulator's HTTP surface: routes, key checks, faults, and the journal of what it saw.

Every POST handler runs the same steps in order: open a journal record, check the key, parse
and validate the body, read directives, misbehave if told to (hang, then fail), compose the
answer, wait as a model would, and answer (whole, or as a paced stream). Errors at any step
become an error body in the endpoint's wire format.
"""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from tokenbrake.core import Format
from tokenbrake.tools.emulator import anthropic_wire, embeddings, openai_wire, responses_wire
from tokenbrake.tools.emulator.compose import Answer, Ask, compose
from tokenbrake.tools.emulator.directives import NONE, Directives, from_request
from tokenbrake.tools.emulator.errors import EmulatorError, error_body, invalid
from tokenbrake.tools.emulator.ids import new_id
from tokenbrake.tools.emulator.journal import Journal, usage
from tokenbrake.tools.emulator.prompt_cache import PromptCache
from tokenbrake.tools.emulator.settings import EmulatorSettings
from tokenbrake.tools.emulator.streaming import GARBAGE, NAMED_GARBAGE, Pacing, SSEResponse
from tokenbrake.wire.tokens import count_request_input, count_text

JSON = "application/json"
WIRES = {Format.OPENAI: openai_wire, Format.ANTHROPIC: anthropic_wire}
NOT_JSON = b'{"id": "chatcmpl-broken", "choices": [{"index": 0, "message": '


class Emulator:
    """The emulator's state: settings, the journal, and answers computed once at start-up."""

    def __init__(self, settings: EmulatorSettings) -> None:
        self.settings = settings
        self.journal = Journal(settings.journal_size)
        self.prompt_cache = PromptCache()
        self.openai_models = orjson.dumps(_openai_models(settings.models))
        self.anthropic_models = orjson.dumps(_anthropic_models(settings.models))

    def routes(self) -> list[Route]:
        return [
            Route("/v1/chat/completions", self.openai_chat, methods=["POST"]),
            Route("/v1/embeddings", self.embeddings, methods=["POST"]),
            Route("/v1/responses", self.responses, methods=["POST"]),
            Route("/v1/models", self.models, methods=["GET"]),
            Route("/v1/messages", self.anthropic_chat, methods=["POST"]),
            Route("/v1/messages/count_tokens", self.count_tokens, methods=["POST"]),
            Route("/healthz", self.health, methods=["GET"]),
            Route("/_emulator/requests", self.requests, methods=["GET"]),
            Route("/_emulator/reset", self.reset, methods=["POST"]),
        ]

    async def openai_chat(self, request: Request) -> Any:
        return await self._chat(request, Format.OPENAI)

    async def anthropic_chat(self, request: Request) -> Any:
        return await self._chat(request, Format.ANTHROPIC)

    async def responses(self, request: Request) -> Any:
        """OpenAI's Responses API: the same directives, faults and pacing as chat completions."""
        record = self.journal.open(request.url.path, request.headers)
        try:
            body = await self._read(request, Format.OPENAI, record)
            ask = responses_wire.read_responses(body)
            directives = self._directives(request, responses_wire.directive_texts(body), record)
            await self._misbehave(directives)
            input_tokens = responses_wire.count_input(body)
            if directives.cached is not None:
                ask.cached_tokens = min(directives.cached, input_tokens)
            elif self.settings.prompt_caching:
                ask.cached_tokens = self.prompt_cache.responses(body, input_tokens, responses_wire.count_input)
            answer = compose(ask, directives, self.settings.output_tokens)
            pacing = self._pacing(directives, Format.OPENAI)
            if ask.stream:
                frames = responses_wire.events(body, ask, answer, input_tokens)
                return self._paced(frames, pacing, answer.output_tokens, input_tokens, record, Format.OPENAI)
            reply = responses_wire.reply(body, ask, answer, input_tokens)
            return await self._answer(reply, pacing, answer.output_tokens, input_tokens, record, Format.OPENAI)
        except EmulatorError as error:
            return _error(Format.OPENAI, error, record)

    async def _chat(self, request: Request, fmt: Format) -> Any:
        wire = WIRES[fmt]
        record = self.journal.open(request.url.path, request.headers)
        try:
            body = await self._read(request, fmt, record)
            ask = wire.read_chat(body)
            directives = self._directives(request, wire.directive_texts(body), record)
            await self._misbehave(directives)
            if directives.confidence is not None:
                ask.confidence = directives.confidence
            input_tokens = count_request_input(fmt, body)
            self._cache(fmt, body, ask, directives, input_tokens)
            answers = [compose(ask, directives, self.settings.output_tokens, i) for i in range(ask.n)]
            pacing = self._pacing(directives, fmt)
            if ask.stream:
                return self._stream(fmt, body, ask, answers, input_tokens, pacing, record)
            return await self._whole(fmt, ask, answers, input_tokens, pacing, record)
        except EmulatorError as error:
            return _error(fmt, error, record)

    def _cache(self, fmt: Format, body: dict, ask: Ask, directives: Directives, input_tokens: int) -> None:
        """The input the request reads from (and writes to) the provider's prompt cache."""
        if directives.cached is not None:
            ask.cached_tokens = min(directives.cached, input_tokens)
        elif not self.settings.prompt_caching:
            return
        elif fmt is Format.ANTHROPIC:
            ask.cached_tokens, ask.cache_write_tokens = self.prompt_cache.anthropic(body, input_tokens)
        else:
            ask.cached_tokens = self.prompt_cache.openai_chat(body, input_tokens)

    async def _whole(
        self, fmt: Format, ask: Ask, answers: list[Answer], input_tokens: int, pacing: Pacing, record: dict
    ) -> Response:
        """A non-streamed reply, after the time a model would take to produce it."""
        if fmt is Format.ANTHROPIC:
            reply = anthropic_wire.message(ask, answers[0], input_tokens)
        else:
            reply = openai_wire.completion(ask, answers, input_tokens)
        return await self._answer(reply, pacing, sum(a.output_tokens for a in answers), input_tokens, record, fmt)

    async def _answer(
        self, reply: dict, pacing: Pacing, output_tokens: int, input_tokens: int, record: dict, fmt: Format
    ) -> Response:
        delay = pacing.ttft_s + pacing.gap_s * max(output_tokens - 1, 0)
        if delay > 0:
            await asyncio.sleep(delay)
        record["status"] = 200
        if pacing.garbage is not None:
            record["outcome"] = "garbage"
            return Response(NOT_JSON, media_type=JSON, headers=_request_id(fmt))
        record["outcome"], record["usage"] = "complete", usage(input_tokens, output_tokens)
        return Response(orjson.dumps(reply), media_type=JSON, headers=_request_id(fmt))

    def _stream(
        self,
        fmt: Format,
        body: dict,
        ask: Ask,
        answers: list[Answer],
        input_tokens: int,
        pacing: Pacing,
        record: dict,
    ) -> SSEResponse:
        if fmt is Format.ANTHROPIC:
            frames = anthropic_wire.events(ask, answers[0], input_tokens)
        else:
            frames = openai_wire.chunks(ask, answers, input_tokens, openai_wire.include_usage(body))
        return self._paced(frames, pacing, sum(a.output_tokens for a in answers), input_tokens, record, fmt)

    def _paced(
        self, frames: list, pacing: Pacing, output_tokens: int, input_tokens: int, record: dict, fmt: Format
    ) -> SSEResponse:
        record["status"] = 200

        def done(outcome: str, sent: str) -> None:
            record["outcome"] = outcome
            sent_tokens = output_tokens if outcome == "complete" else count_text(sent)
            record["usage"] = usage(input_tokens, sent_tokens)

        return SSEResponse(frames, pacing, done, _request_id(fmt))

    async def embeddings(self, request: Request) -> Response:
        record = self.journal.open(request.url.path, request.headers)
        try:
            body = await self._read(request, Format.OPENAI, record)
            model, inputs = embeddings.read_inputs(body)
            directives = self._directives(request, embeddings.input_texts(inputs), record)
            await self._misbehave(directives)
            reply = embeddings.response(body, model, inputs, self.settings.embedding_dimensions)
            pacing = self._pacing(directives, Format.OPENAI)
            if pacing.ttft_s > 0:
                await asyncio.sleep(pacing.ttft_s)
        except EmulatorError as error:
            return _error(Format.OPENAI, error, record)
        record["status"], record["outcome"] = 200, "complete"
        record["usage"] = usage(reply["usage"]["prompt_tokens"], 0)
        return Response(orjson.dumps(reply), media_type=JSON, headers=_request_id(Format.OPENAI))

    async def count_tokens(self, request: Request) -> Response:
        record = self.journal.open(request.url.path, request.headers)
        try:
            body = await self._read(request, Format.ANTHROPIC, record)
            anthropic_wire.read_counting(body)
            await self._misbehave(self._directives(request, anthropic_wire.directive_texts(body), record))
        except EmulatorError as error:
            return _error(Format.ANTHROPIC, error, record)
        tokens = count_request_input(Format.ANTHROPIC, body)
        record["status"], record["outcome"], record["usage"] = 200, "complete", usage(tokens, 0)
        reply = orjson.dumps({"input_tokens": tokens})
        return Response(reply, media_type=JSON, headers=_request_id(Format.ANTHROPIC))

    async def models(self, request: Request) -> Response:
        fmt = _format_of(request)
        try:
            self._check_key(request, fmt)
        except EmulatorError as error:
            return Response(orjson.dumps(error_body(fmt, error)), error.status, media_type=JSON)
        listing = self.anthropic_models if fmt is Format.ANTHROPIC else self.openai_models
        return Response(listing, media_type=JSON)

    async def health(self, request: Request) -> Response:
        return Response(b'{"status":"ok"}', media_type=JSON)

    async def requests(self, request: Request) -> Response:
        return Response(orjson.dumps(self.journal.records()), media_type=JSON)

    async def reset(self, request: Request) -> Response:
        self.journal.reset()
        self.prompt_cache.reset()
        return Response(b'{"reset":true}', media_type=JSON)

    def _check_key(self, request: Request, fmt: Format) -> None:
        if self.settings.api_key is not None:
            WIRES[fmt].check_key(request.headers, self.settings.api_key)

    async def _read(self, request: Request, fmt: Format, record: dict) -> dict[str, Any]:
        """The request's JSON body, once its key is checked; recorded in the journal."""
        self._check_key(request, fmt)
        raw = await request.body()
        try:
            body = orjson.loads(raw)
        except orjson.JSONDecodeError:
            record["body"] = raw.decode(errors="replace")
            raise invalid("We could not parse the JSON body of your request: it is not valid JSON.") from None
        if not isinstance(body, dict):
            record["body"] = body
            raise invalid("The request body must be a JSON object.")
        record["body"], record["model"] = body, body.get("model")
        record["stream"] = body.get("stream") is True
        return body

    def _directives(self, request: Request, texts: list[str], record: dict) -> Directives:
        directives = from_request(request.headers.get("x-emulator"), texts)
        if directives is not NONE:
            record["directives"] = directives.as_dict()
        return directives

    async def _misbehave(self, directives: Directives) -> None:
        """Hang, then fail, as the request's directives ask."""
        if directives is NONE:
            return
        if directives.hang:
            await asyncio.sleep(directives.hang)
        if directives.status is None and directives.fail_first is None:
            return
        first = directives.fail_first
        if first is not None and not self.journal.should_fail(directives.id, first):
            return
        status = 500 if directives.status is None else directives.status
        if not 400 <= status <= 599:
            raise invalid(f"Emulator directive status={status} must be an error status (400-599).")
        headers = {} if directives.retry_after is None else {"retry-after": f"{directives.retry_after:g}"}
        message = f"Emulated failure with status {status}."
        raise EmulatorError(status, message, code="emulated", headers=headers)

    def _pacing(self, directives: Directives, fmt: Format) -> Pacing:
        settings = self.settings
        ttft_ms = settings.ttft_ms if directives.ttft_ms is None else directives.ttft_ms
        tps = settings.tokens_per_s if directives.tps is None else directives.tps
        gap_s = 1.0 / tps if tps > 0 else 0.0
        garbage_line = NAMED_GARBAGE if fmt is Format.ANTHROPIC else GARBAGE
        return Pacing(ttft_ms / 1000.0, gap_s, directives.cut, directives.garbage, garbage_line)


def build_app(settings: EmulatorSettings | None = None) -> Starlette:
    """The emulator as an ASGI app; `app.state.emulator` holds its state (and journal)."""
    emulator = Emulator(settings or EmulatorSettings())
    handlers = {404: _not_found, 405: _not_found}
    app = Starlette(routes=emulator.routes(), exception_handlers=handlers)  # type: ignore[arg-type]
    app.state.emulator = emulator
    return app


async def _not_found(request: Request, exc: HTTPException) -> Response:
    fmt = _format_of(request)
    message = f"Invalid URL ({request.method} {request.url.path})"
    body = error_body(fmt, EmulatorError(exc.status_code, message))
    return Response(orjson.dumps(body), exc.status_code, media_type=JSON)


def _error(fmt: Format, error: EmulatorError, record: dict) -> Response:
    record["status"], record["outcome"] = error.status, "error"
    headers = {**_request_id(fmt), **error.headers}
    return Response(orjson.dumps(error_body(fmt, error)), error.status, headers=headers, media_type=JSON)


def _format_of(request: Request) -> Format:
    anthropic = "anthropic-version" in request.headers or request.url.path.startswith("/v1/messages")
    return Format.ANTHROPIC if anthropic else Format.OPENAI


def _request_id(fmt: Format) -> dict[str, str]:
    return {"request-id" if fmt is Format.ANTHROPIC else "x-request-id": new_id("req_")}


def _openai_models(models: list[str]) -> dict[str, Any]:
    owner = "tokenbrake-emulator"
    data = [{"id": m, "object": "model", "created": 1_700_000_000, "owned_by": owner} for m in models]
    return {"object": "list", "data": data}


def _anthropic_models(models: list[str]) -> dict[str, Any]:
    data = [
        {"type": "model", "id": m, "display_name": m, "created_at": "2025-01-01T00:00:00Z"}
        for m in models
        if m.startswith("claude")
    ]
    first, last = (data[0]["id"], data[-1]["id"]) if data else (None, None)
    return {"data": data, "has_more": False, "first_id": first, "last_id": last}
