"""The floor under the gateway: the same HTTP server and upstream client, and nothing else.

An ASGI app on `tokenbrake.server.run` (uvicorn with the gateway's settings) that posts each
request's body to the upstream with aiohttp and sends back what it answered, a stream as it
comes. No key, no pipeline, no ledger, no metrics, no checks: what any Python proxy built on
this stack pays per request. `bench/overhead.py --floor` measures it beside the gateway.

    .venv/bin/python bench/passthrough.py UPSTREAM_URL PORT
"""

from __future__ import annotations

import sys

import aiohttp

from tokenbrake.server.run import run

JSON_HEADERS = [(b"content-type", b"application/json")]
SSE_HEADERS = [(b"content-type", b"text/event-stream")]


class Passthrough:
    def __init__(self, upstream: str) -> None:
        self.upstream = upstream.rstrip("/")
        self.session: aiohttp.ClientSession | None = None

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] == "lifespan":
            await self.lifespan(receive, send)
        elif scope["path"] == "/healthz":
            await answer(send, 200, JSON_HEADERS, b'{"status": "ok"}')
        else:
            await self.forward(scope, receive, send)

    async def lifespan(self, receive, send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                self.session = aiohttp.ClientSession(cookie_jar=aiohttp.DummyCookieJar())
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await self.session.close()
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def forward(self, scope, receive, send) -> None:
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        url = self.upstream + scope["path"]
        async with self.session.post(url, data=body, headers={"content-type": "application/json"}) as response:
            if response.content_type != "text/event-stream":
                await answer(send, response.status, JSON_HEADERS, await response.read())
                return
            await send({"type": "http.response.start", "status": response.status, "headers": SSE_HEADERS})
            async for chunk in response.content.iter_any():
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
            await send({"type": "http.response.body", "body": b"", "more_body": False})


async def answer(send, status: int, headers: list, body: bytes) -> None:
    headers = [*headers, (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


if __name__ == "__main__":
    run(Passthrough(sys.argv[1]), "127.0.0.1", int(sys.argv[2]))
