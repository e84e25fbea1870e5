"""What the gateway adds: latency and throughput through it versus straight to the upstream.

Starts `tokenbrake emulate` (no latency) and `tokenbrake serve` in front of it (with a
virtual key, so authentication and the ledger are on the measured path, as in production),
then, in one run, sends the same OpenAI chat requests to each at concurrency 1 and 32,
streamed and not, and prints requests/s, latency p50/p99, the added latency and the
throughput ratio.

The paths take turns, in `--rounds` short turns each, so that the speed of a shared
machine, which here drifts by a third within a minute, moves both sides of a ratio alike:
the ratio printed is the median of the rounds' ratios, with their range beside it.

With `--admission` it also starts two more gateways with admission on — an input cap, rate
limits (requests, tokens, concurrency) and budgets on the global, team, key and model
scopes, sized so nothing is refused — one keeping that state in process, one in Redis
(`--redis`, default redis://127.0.0.1:6379/0, a key prefix of its own), and prints their
throughput next to the plain gateway's: the cost of admission.

With `--routing`, gateways whose router decides every request's tier — the default one
(features only) and the shipped embedding one — the router's added latency, end to end.

With `--rollups`, the same gateway with the ledger writing its rows but no rollups
(`bench/serve_without_rollups.py`): its throughput against the plain gateway's is what
keeping the dashboard's rollups costs.

With `--floor`, a bare passthrough on the gateway's own HTTP server and upstream client
(`bench/passthrough.py`): the most any proxy built on them could reach.

    .venv/bin/python bench/overhead.py [--seconds 5] [--rounds 5] [--output-tokens 16] [--admission] [--routing]
        [--rollups] [--floor]

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
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import httptools
import orjson
import uvloop
import yaml

from tokenbrake.tools.launch import ChildServer, free_port, wait_healthy

LOAD_GENERATOR = "bare asyncio HTTP/1.1 keep-alive client (httptools parser, uvloop), one connection per worker"
STREAM_END = b"data: [DONE]\n\n"


@dataclass
class Result:
    requests: int
    seconds: float
    latencies: list[float]

    @classmethod
    def combined(cls, results: list[Result]) -> Result:
        return cls(sum(r.requests for r in results), sum(r.seconds for r in results),
                   [latency for r in results for latency in r.latencies])

    @property
    def rps(self) -> float:
        return self.requests / self.seconds

    def pct(self, q: float) -> float:
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000


# Distinct prompts, more than the router's embedding memo holds: each is scored for real.
PROMPT_VARIANTS = 4096


def body(stream: bool, variant: int = 0) -> bytes:
    return orjson.dumps({
        "model": "bench",
        "messages": [{"role": "system", "content": "You are helpful."},
                     {"role": "user", "content": f"Explain what a token bucket rate limiter does, briefly ({variant})."}],
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
    requests = [raw_request(url, body(stream, n), key) for n in range(PROMPT_VARIANTS)]
    request = requests[0]
    connections = [await connect(url) for _ in range(concurrency)]
    latencies: list[float] = []
    try:
        for _ in range(20):  # warm the connections and both servers
            await asyncio.gather(*(c.send(request, stream) for c in connections))
        deadline = time.perf_counter() + seconds

        async def worker(connection: Connection, n: int) -> None:
            clock = time.perf_counter
            while (started := clock()) < deadline:
                await connection.send(requests[n % PROMPT_VARIANTS], stream)
                latencies.append(clock() - started)
                n += concurrency

        started = time.perf_counter()
        await asyncio.gather(*(worker(c, n) for n, c in enumerate(connections)))
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


def with_routing(raw: dict, router: str | None = None) -> dict:
    """The same gateway with the key's requests for `bench` rerouted to a virtual model whose
    router (default: the one shipped) picks between two tiers: the router's added latency."""
    models = {**raw["models"], "bench-local": {"upstream": "emu", "price": {"input_per_mtok": 0.02, "output_per_mtok": 0.06}}}
    route = {"tiers": ["bench-local", "bench"], "strategy": "router", "router": router,
             "reroute": [{"scope": "key:bench", "models": ["bench"]}]}
    return {**raw, "models": models, "routes": {"auto": route}}


def create_key(config_path: Path) -> str:
    out = subprocess.run(
        [sys.executable, "-m", "tokenbrake.cli", "keys", "create", "--name", "bench", "--team", "bench", "--json",
         "--config", str(config_path)],
        check=True, capture_output=True, text=True,
    ).stdout
    return json.loads(out)["key"]


def measure(paths: dict[str, str], key: str, seconds: float, rounds: int) -> None:
    """Each mode and concurrency on every path, in `rounds` short turns that take the paths
    in turn (reversing their order every other round), so a machine whose speed drifts
    during the run slows every path alike. Ratios against the first path and, for gateways
    with admission, against the plain gateway: the median of the rounds' ratios, with their
    range beside it."""
    print(f"{'mode':<10} {'conc':>4} {'path':<16} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8}")
    for stream in (False, True):
        for concurrency in (1, 32):
            mode = "stream" if stream else "json"
            turns: dict[str, list[Result]] = {name: [] for name in paths}
            for number in range(rounds):
                order = list(paths.items()) if number % 2 == 0 else list(reversed(paths.items()))
                for name, base in order:
                    turns[name].append(uvloop.run(load(base + "/v1/chat/completions", key, concurrency, stream,
                                                       seconds / rounds)))
            rows = {name: Result.combined(results) for name, results in turns.items()}
            for name, result in rows.items():
                print(f"{mode:<10} {concurrency:>4} {name:<16} {result.rps:>8.0f} {result.pct(0.5):>8.2f} "
                      f"{result.pct(0.99):>8.2f}", flush=True)
            direct, plain = rows["direct"], rows["gateway"]
            print(f"{'':<15} gateway vs direct: added p50 {plain.pct(0.5) - direct.pct(0.5):.2f} ms, "
                  f"throughput ratio {ratio(turns['gateway'], turns['direct'])}", flush=True)
            for name in [n for n in rows if n.startswith("gw+")]:
                print(f"{'':<15} {name} vs gateway: added p50 {rows[name].pct(0.5) - plain.pct(0.5):.2f} ms, "
                      f"throughput ratio {ratio(turns[name], turns['gateway'])}", flush=True)
            if "floor" in rows:
                print(f"{'':<15} floor vs direct: added p50 {rows['floor'].pct(0.5) - direct.pct(0.5):.2f} ms, "
                      f"throughput ratio {ratio(turns['floor'], turns['direct'])}", flush=True)


def ratio(measured: list[Result], baseline: list[Result]) -> str:
    """The median of the rounds' throughput ratios, and their range."""
    ratios = sorted(a.rps / b.rps for a, b in zip(measured, baseline))
    return f"{statistics.median(ratios):.2f} (rounds {ratios[0]:.2f}-{ratios[-1]:.2f})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5.0, help="time on each path, for each mode and concurrency")
    parser.add_argument("--rounds", type=int, default=5, help="turns the paths take in that time")
    parser.add_argument("--output-tokens", type=int, default=16)
    parser.add_argument("--admission", action="store_true", help="also measure gateways with budgets and limits on")
    parser.add_argument("--routing", action="store_true", help="also measure a gateway routing every request")
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/0", help="Redis for the shared-state gateway")
    parser.add_argument("--rollups", action="store_true",
                        help="also measure the gateway with no rollups (bench/serve_without_rollups.py)")
    parser.add_argument("--floor", action="store_true",
                        help="also measure a bare passthrough on the same server and client (bench/passthrough.py)")
    args = parser.parse_args()

    with ChildServer(["emulate", "--output-tokens", str(args.output_tokens)], quiet=True) as emulator, \
            tempfile.TemporaryDirectory() as tmp, ExitStack() as gateways:
        raw = config(emulator.url, Path(tmp) / "ledger.db")
        configs = {"gateway": raw}
        if args.admission:
            configs["gw+limits"] = with_admission(raw, "memory://")
            configs["gw+limits/redis"] = with_admission(raw, args.redis + f"?prefix=tb-bench-{time.time_ns()}:")
        if args.routing:
            configs["gw+router"] = with_routing(raw)  # the default router: features only
            configs["gw+router/embed"] = with_routing(raw, "default-embedding")  # needs the router extra
        paths = {"direct": emulator.url}
        key = None
        for name, cfg in configs.items():
            path = Path(tmp) / f"{name.replace('/', '-')}.yaml"
            path.write_text(yaml.safe_dump(cfg))
            key = key or create_key(path)  # one database: the key works on every gateway
            paths[name] = gateways.enter_context(ChildServer(["serve", "--config", str(path)], quiet=True)).url
        if args.rollups:  # the plain gateway's config and database; the paths take turns, so one writes at a time
            paths["gw+no-rollups"] = gateways.enter_context(without_rollups(Path(tmp) / "gateway.yaml"))
        if args.floor:
            paths["floor"] = gateways.enter_context(passthrough(emulator.url))
        print(f"# tokenbrake overhead — {time.strftime('%Y-%m-%d')}, {platform.machine()}, "
              f"{platform.python_implementation()} {platform.python_version()}, {args.seconds:.0f}s per cell in {args.rounds} rounds, "
              f"{args.output_tokens} output tokens")
        print(f"# load generator: {LOAD_GENERATOR}")
        measure(paths, key, args.seconds, args.rounds)
    if args.routing:
        router_latency()


def passthrough(upstream: str):
    """bench/passthrough.py in front of `upstream`; its URL."""
    port = free_port()
    return bench_script(port, "passthrough.py", upstream, str(port))


def without_rollups(config_path: Path):
    """`tokenbrake serve` with no rollups (bench/serve_without_rollups.py); its URL."""
    port = free_port()
    return bench_script(port, "serve_without_rollups.py", "serve", "--config", str(config_path), "--port", str(port))


@contextmanager
def bench_script(port: int, script: str, *args: str) -> Iterator[str]:
    """A server script beside this one, listening on `port`, until the block ends; its URL."""
    process = subprocess.Popen([sys.executable, str(Path(__file__).with_name(script)), *args],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_healthy(url + "/healthz", process)
        yield url
    finally:
        process.terminate()
        process.wait()


def router_latency() -> None:
    """The shipped routers' score() in this process, one prompt at a time: the router's own cost
    inside the added latency above (the benchmark's prompts, each scored for real)."""
    from tokenbrake.evaluation.router import score_latency_ms
    from tokenbrake.router import classifier, embedding

    prompts = [orjson.loads(body(False, n))["messages"][-1]["content"] for n in range(300)]
    paths = [classifier.DEFAULT_FEATURES_MODEL] + ([classifier.DEFAULT_EMBEDDING_MODEL] if embedding.available() else [])
    for path in paths:
        router = classifier.Router.load(path)
        p50, p95 = score_latency_ms(router, prompts)
        print(f"# router score() in process, {router.kind:<9}: p50 {p50:.2f} ms, p95 {p95:.2f} ms")


if __name__ == "__main__":
    main()
