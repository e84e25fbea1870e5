"""What the gateway adds: latency and throughput through it versus straight to the upstream.

Starts `tokenbrake emulate` (no latency) and `tokenbrake serve` in front of it (with a
virtual key, so authentication and the ledger are on the measured path, as in production),
then, in one run, sends the same OpenAI chat requests to each at concurrency 1 and 32,
streamed and not, and prints requests/s, latency p50/p99, the added latency and the
throughput ratio.

    .venv/bin/python bench/overhead.py [--seconds 5] [--output-tokens 16]

The load generator has to cost much less than the servers it measures, or it measures
itself: on a 2-core machine it shares the CPU with them. So it is a bare HTTP/1.1 keep-alive
client (one connection per concurrent worker, httptools parsing the responses, uvloop),
identical for both paths; it checks every status and that every stream reached `[DONE]`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import platform
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import httptools
import orjson
import uvloop
import yaml

from tokenbrake.launch import ChildServer

LOAD_GENERATOR = "bare asyncio HTTP/1.1 keep-alive client (httptools parser, uvloop), one connection per worker"
STREAM_END = b"data: [DONE]\n\n"


@dataclass
class Result:
    requests: int
    seconds: float
    latencies: list[float]

    @property
    def rps(self) -> float:
        return self.requests / self.seconds

    def pct(self, q: float) -> float:
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000


def body(stream: bool) -> bytes:
    return orjson.dumps({
        "model": "bench",
        "messages": [{"role": "system", "content": "You are helpful."},
                     {"role": "user", "content": "Explain what a token bucket rate limiter does, briefly."}],
        "stream": stream,
    })


def raw_request(url: str, payload: bytes, key: str) -> bytes:
    parts = urlsplit(url)
    head = (f"POST {parts.path} HTTP/1.1\r\nhost: {parts.netloc}\r\ncontent-type: application/json\r\n"
            f"authorization: Bearer {key}\r\ncontent-length: {len(payload)}\r\n\r\n")
    return head.encode() + payload


class Connection(asyncio.Protocol):
    """One keep-alive connection; `send` writes a request and waits for the whole response."""

    def __init__(self) -> None:
        self.parser = httptools.HttpResponseParser(self)
        self.transport: asyncio.Transport | None = None
        self.waiter: asyncio.Future | None = None
        self.tail = b""

    def connection_made(self, transport) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.parser.feed_data(data)

    def on_body(self, chunk: bytes) -> None:
        self.tail = (self.tail + chunk)[-len(STREAM_END):]

    def on_message_complete(self) -> None:
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_result((self.parser.get_status_code(), self.tail))

    def connection_lost(self, exc: Exception | None) -> None:
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_exception(ConnectionError(f"connection lost: {exc}"))

    async def send(self, request: bytes, stream: bool) -> None:
        self.tail = b""
        self.waiter = asyncio.get_running_loop().create_future()
        self.transport.write(request)
        status, tail = await self.waiter
        if status != 200:
            raise RuntimeError(f"answered {status}")
        if stream and tail != STREAM_END:
            raise RuntimeError(f"stream did not end with [DONE]: {tail!r}")


async def connect(url: str) -> Connection:
    parts = urlsplit(url)
    _, connection = await asyncio.get_running_loop().create_connection(Connection, parts.hostname, parts.port)
    return connection


async def load(url: str, key: str, concurrency: int, stream: bool, seconds: float) -> Result:
    request = raw_request(url, body(stream), key)
    connections = [await connect(url) for _ in range(concurrency)]
    latencies: list[float] = []
    try:
        for _ in range(20):  # warm the connections and both servers
            await asyncio.gather(*(c.send(request, stream) for c in connections))
        deadline = time.perf_counter() + seconds

        async def worker(connection: Connection) -> None:
            clock = time.perf_counter
            while (started := clock()) < deadline:
                await connection.send(request, stream)
                latencies.append(clock() - started)

        started = time.perf_counter()
        await asyncio.gather(*(worker(c) for c in connections))
        return Result(len(latencies), time.perf_counter() - started, latencies)
    finally:
        for connection in connections:
            connection.transport.close()


def config(emulator_url: str, database: Path) -> dict:
    return {
        "database": f"sqlite:///{database}",
        "upstreams": {"emu": {"kind": "openai", "base_url": emulator_url + "/v1"}},
        "models": {"bench": {"upstream": "emu", "free": True}},
    }


def create_key(config_path: Path) -> str:
    out = subprocess.run(
        [sys.executable, "-m", "tokenbrake.cli", "keys", "create", "--name", "bench", "--json", "--config", str(config_path)],
        check=True, capture_output=True, text=True,
    ).stdout
    return json.loads(out)["key"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5.0, help="duration of each measurement")
    parser.add_argument("--output-tokens", type=int, default=16)
    args = parser.parse_args()

    with ChildServer(["emulate", "--output-tokens", str(args.output_tokens)], quiet=True) as emulator, \
            tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "bench.yaml"
        path.write_text(yaml.safe_dump(config(emulator.url, Path(tmp) / "ledger.db")))
        key = create_key(path)
        with ChildServer(["serve", "--config", str(path)], quiet=True) as gateway:
            print(f"# tokenbrake overhead — {time.strftime('%Y-%m-%d')}, {platform.machine()}, "
                  f"{platform.python_implementation()} {platform.python_version()}, {args.seconds:.0f}s per cell, "
                  f"{args.output_tokens} output tokens")
            print(f"# load generator: {LOAD_GENERATOR}")
            print(f"{'mode':<10} {'conc':>4} {'path':<8} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8}")
            for stream in (False, True):
                for concurrency in (1, 32):
                    rows = {}
                    for name, base in (("direct", emulator.url), ("gateway", gateway.url)):
                        url = base + "/v1/chat/completions"
                        result = uvloop.run(load(url, key, concurrency, stream, args.seconds))
                        rows[name] = result
                        mode = "stream" if stream else "json"
                        print(f"{mode:<10} {concurrency:>4} {name:<8} {result.rps:>8.0f} {result.pct(0.5):>8.2f} "
                              f"{result.pct(0.99):>8.2f}", flush=True)
                    added = rows["gateway"].pct(0.5) - rows["direct"].pct(0.5)
                    ratio = rows["gateway"].rps / rows["direct"].rps
                    print(f"{'':<10} {'':>4} {'added p50':<18} {added:>8.2f} ms   throughput ratio {ratio:.2f}", flush=True)


if __name__ == "__main__":
    main()
