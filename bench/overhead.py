"""What the gateway adds: latency and throughput through it versus straight to the upstream.

Starts `tokenbrake emulate` (no latency) and `tokenbrake serve` in front of it (with a
virtual key, so authentication and the ledger are on the measured path, as in production),
then, in one run, sends the same OpenAI chat requests to each at concurrency 1 and 32,
streamed and not, and prints requests/s, latency p50/p99, the added latency and the
throughput ratio.

With `--admission` it also starts two more gateways with admission on — an input cap, rate
limits (requests, tokens, concurrency) and budgets on the global, team, key and model
scopes, sized so nothing is refused — one keeping that state in process, one in Redis
(`--redis`, default redis://127.0.0.1:6379/0, a key prefix of its own), and prints their
throughput next to the plain gateway's: the cost of admission.

    .venv/bin/python bench/overhead.py [--seconds 5] [--output-tokens 16] [--admission]

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
from contextlib import ExitStack
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
        "models": {"bench": {"upstream": "emu", "price": {"input_per_mtok": 2.5, "output_per_mtok": 10}}},
    }


def with_admission(raw: dict, state: str) -> dict:
    """The same gateway with every admission check on, none of which refuses."""
    big = {"amount_usd": 1_000_000, "period": "day"}
    return {
        **raw,
        "state": state,
        "limits": [{"scope": "key:*", "requests_per_minute": 10_000_000, "tokens_per_minute": 10**12,
                    "concurrent": 10_000, "max_input_tokens": 100_000, "max_output_tokens": 4096},
                   {"scope": "model:bench", "requests_per_minute": 10_000_000}],
        "budgets": [{"scope": "global", **big}, {"scope": "team:*", **big}, {"scope": "key:*", **big},
                    {"scope": "model:bench", "amount_usd": 1_000_000, "period": "month"}],
    }


def create_key(config_path: Path) -> str:
    out = subprocess.run(
        [sys.executable, "-m", "tokenbrake.cli", "keys", "create", "--name", "bench", "--team", "bench", "--json",
         "--config", str(config_path)],
        check=True, capture_output=True, text=True,
    ).stdout
    return json.loads(out)["key"]


def measure(paths: dict[str, str], key: str, seconds: float) -> None:
    """Each mode and concurrency on every path in turn; ratios against the first path and,
    for gateways with admission, against the plain gateway."""
    print(f"{'mode':<10} {'conc':>4} {'path':<16} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8}")
    for stream in (False, True):
        for concurrency in (1, 32):
            rows = {}
            mode = "stream" if stream else "json"
            for name, base in paths.items():
                result = uvloop.run(load(base + "/v1/chat/completions", key, concurrency, stream, seconds))
                rows[name] = result
                print(f"{mode:<10} {concurrency:>4} {name:<16} {result.rps:>8.0f} {result.pct(0.5):>8.2f} "
                      f"{result.pct(0.99):>8.2f}", flush=True)
            direct, plain = rows["direct"], rows["gateway"]
            print(f"{'':<15} gateway vs direct: added p50 {plain.pct(0.5) - direct.pct(0.5):.2f} ms, "
                  f"throughput ratio {plain.rps / direct.rps:.2f}", flush=True)
            for name in [n for n in rows if n.startswith("gw+")]:
                print(f"{'':<15} {name} vs gateway: added p50 {rows[name].pct(0.5) - plain.pct(0.5):.2f} ms, "
                      f"throughput ratio {rows[name].rps / plain.rps:.2f}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5.0, help="duration of each measurement")
    parser.add_argument("--output-tokens", type=int, default=16)
    parser.add_argument("--admission", action="store_true", help="also measure gateways with budgets and limits on")
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/0", help="Redis for the shared-state gateway")
    args = parser.parse_args()

    with ChildServer(["emulate", "--output-tokens", str(args.output_tokens)], quiet=True) as emulator, \
            tempfile.TemporaryDirectory() as tmp, ExitStack() as gateways:
        raw = config(emulator.url, Path(tmp) / "ledger.db")
        configs = {"gateway": raw}
        if args.admission:
            configs["gw+limits"] = with_admission(raw, "memory://")
            configs["gw+limits/redis"] = with_admission(raw, args.redis + f"?prefix=tb-bench-{time.time_ns()}:")
        paths = {"direct": emulator.url}
        key = None
        for name, cfg in configs.items():
            path = Path(tmp) / f"{name.replace('/', '-')}.yaml"
            path.write_text(yaml.safe_dump(cfg))
            key = key or create_key(path)  # one database: the key works on every gateway
            paths[name] = gateways.enter_context(ChildServer(["serve", "--config", str(path)], quiet=True)).url
        print(f"# tokenbrake overhead — {time.strftime('%Y-%m-%d')}, {platform.machine()}, "
              f"{platform.python_implementation()} {platform.python_version()}, {args.seconds:.0f}s per cell, "
              f"{args.output_tokens} output tokens")
        print(f"# load generator: {LOAD_GENERATOR}")
        measure(paths, key, args.seconds)


if __name__ == "__main__":
    main()
