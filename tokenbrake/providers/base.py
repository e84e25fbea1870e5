"""An upstream reached over pooled HTTP connections.

Each subclass knows its wire format's paths and auth headers. Every failure, whatever its
cause, surfaces as `UpstreamFailure`, which says whether trying again may help; deciding to
retry or fall back is the dispatcher's job, not the provider's.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from typing import Any

import httpx
import orjson

from tokenbrake.config import Config, UpstreamConfig
from tokenbrake.core import Endpoint, Format
from tokenbrake.errors import upstream_error_message
from tokenbrake.sse import SSEEvent, SSEParser

RETRYABLE_STATUS = frozenset({408, 409, 429, 500, 502, 503, 504, 529})


class UpstreamFailure(Exception):
    """An upstream call that produced no usable answer."""

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        retryable: bool = False,
        timed_out: bool = False,
        retry_after_s: float | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.retryable = retryable
        self.timed_out = timed_out
        self.retry_after_s = retry_after_s


class UpstreamStream:
    """An open upstream SSE response; iterate for events, always `aclose()`."""

    def __init__(self, upstream: str, response: httpx.Response) -> None:
        self._upstream = upstream
        self._response = response

    async def events(self) -> AsyncIterator[SSEEvent]:
        parser = SSEParser()
        try:
            async for chunk in self._response.aiter_raw():
                for event in parser.feed(chunk):
                    yield event
        except httpx.TimeoutException as exc:
            raise UpstreamFailure(f"upstream {self._upstream} stalled mid-stream", timed_out=True) from exc
        except httpx.HTTPError as exc:
            raise UpstreamFailure(f"upstream {self._upstream} broke off the stream ({_describe(exc)})") from exc

    async def aclose(self) -> None:
        await self._response.aclose()


class Provider:
    kind: Format
    paths: dict[Endpoint, str]

    def __init__(self, name: str, config: UpstreamConfig, transport: httpx.AsyncBaseTransport | None = None) -> None:
        self.name = name
        self.config = config
        api_key = os.environ.get(config.api_key_env) if config.api_key_env else None
        self.client = httpx.AsyncClient(
            base_url=config.base_url.rstrip("/"),
            headers={**self.auth_headers(api_key), **config.headers, "content-type": "application/json"},
            timeout=httpx.Timeout(config.timeout_s, connect=config.connect_timeout_s),
            limits=httpx.Limits(
                max_connections=config.max_connections, max_keepalive_connections=config.max_connections
            ),
            transport=transport,
        )

    def auth_headers(self, api_key: str | None) -> dict[str, str]:
        raise NotImplementedError

    def supports(self, endpoint: Endpoint) -> bool:
        return endpoint in self.paths

    async def request_json(self, endpoint: Endpoint, body: dict[str, Any]) -> dict[str, Any]:
        response = await self._send(endpoint, body, stream=False)
        try:
            data = orjson.loads(response.content)
        except orjson.JSONDecodeError:
            raise UpstreamFailure(f"upstream {self.name} answered with a body that is not JSON") from None
        if not isinstance(data, dict):
            raise UpstreamFailure(f"upstream {self.name} answered with JSON that is not an object")
        return data

    async def open_stream(self, endpoint: Endpoint, body: dict[str, Any]) -> UpstreamStream:
        return UpstreamStream(self.name, await self._send(endpoint, body, stream=True))

    async def list_models(self) -> dict[str, Any]:
        response = await self._call(self.client.build_request("GET", self.paths[Endpoint.MODELS]), stream=False)
        return orjson.loads(response.content)

    async def _send(self, endpoint: Endpoint, body: dict[str, Any], *, stream: bool) -> httpx.Response:
        request = self.client.build_request("POST", self.paths[endpoint], content=orjson.dumps(body))
        return await self._call(request, stream=stream)

    async def _call(self, request: httpx.Request, *, stream: bool) -> httpx.Response:
        try:
            response = await self.client.send(request, stream=stream)
        except httpx.ConnectTimeout as exc:
            raise UpstreamFailure(f"could not connect to upstream {self.name}: timed out", retryable=True) from exc
        except httpx.TimeoutException as exc:
            raise UpstreamFailure(f"upstream {self.name} did not answer in time", timed_out=True) from exc
        except httpx.ConnectError as exc:
            raise UpstreamFailure(
                f"could not connect to upstream {self.name} ({_describe(exc)})", retryable=True
            ) from exc
        except httpx.HTTPError as exc:
            raise UpstreamFailure(f"upstream {self.name} failed ({_describe(exc)})", retryable=True) from exc
        if response.status_code == 200:
            return response
        await _read_quietly(response)
        raise _status_failure(self.name, response)


def _status_failure(name: str, response: httpx.Response) -> UpstreamFailure:
    try:
        message = upstream_error_message(orjson.loads(response.content))
    except orjson.JSONDecodeError:
        message = None
    text = message or response.reason_phrase or "no message"
    return UpstreamFailure(
        f"upstream {name} answered {response.status_code}: {text}",
        status=response.status_code,
        retryable=response.status_code in RETRYABLE_STATUS,
        retry_after_s=_retry_after(response.headers.get("retry-after")),
    )


async def _read_quietly(response: httpx.Response) -> None:
    try:
        await response.aread()
    except httpx.HTTPError:
        pass
    finally:
        await response.aclose()


def _retry_after(value: str | None) -> float | None:
    try:
        return max(0.0, float(value)) if value else None
    except ValueError:
        return None


def _describe(exc: Exception) -> str:
    return str(exc) or type(exc).__name__


def build_providers(config: Config) -> dict[str, Provider]:
    from tokenbrake.providers.anthropic import AnthropicProvider
    from tokenbrake.providers.openai import OpenAIProvider

    classes = {"openai": OpenAIProvider, "anthropic": AnthropicProvider}
    return {name: classes[up.kind](name, up) for name, up in config.upstreams.items()}
