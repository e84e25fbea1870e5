"""What the gateway adds: latency and throughput through it versus straight to the upstream.

Starts `tokenbrake emulate` (no latency) and `tokenbrake serve` in front of it, then, in one
run, sends the same OpenAI chat requests to each at concurrency 1 and 32, streamed and not,
and prints requests/s, latency p50/p99, the added latency and the throughput ratio.

    .venv/bin/python bench/overhead.py [--seconds 5] [--output-tokens 16]
"""

from __future__ import annotations

import argparse
import asyncio
import platform
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
import orjson
import yaml

from tokenbrake.launch import ChildServer


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


async def one(client: httpx.AsyncClient, url: str, payload: bytes, stream: bool) -> None:
    if stream:
        async with client.stream("POST", url, content=payload, headers={"content-type": "application/json"}) as response:
            response.raise_for_status()
            async for _ in response.aiter_raw():
                pass
    else:
        response = await client.post(url, content=payload, headers={"content-type": "application/json"})
        response.raise_for_status()


async def load(url: str, concurrency: int, stream: bool, seconds: float) -> Result:
    payload = body(stream)
    latencies: list[float] = []
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(limits=limits, timeout=30) as client:
        for _ in range(20):  # warm the connections and both servers
            await one(client, url, payload, stream)
        deadline = time.perf_counter() + seconds

        async def worker() -> None:
            while time.perf_counter() < deadline:
                started = time.perf_counter()
                await one(client, url, payload, stream)
                latencies.append(time.perf_counter() - started)

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        return Result(len(latencies), time.perf_counter() - started, latencies)


def config(emulator_url: str) -> dict:
    return {
        "upstreams": {"emu": {"kind": "openai", "base_url": emulator_url + "/v1"}},
        "models": {"bench": {"upstream": "emu", "free": True}},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5.0, help="duration of each measurement")
    parser.add_argument("--output-tokens", type=int, default=16)
    args = parser.parse_args()

    with ChildServer(["emulate", "--output-tokens", str(args.output_tokens)], quiet=True) as emulator, \
            tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "bench.yaml"
        path.write_text(yaml.safe_dump(config(emulator.url)))
        with ChildServer(["serve", "--config", str(path)], quiet=True) as gateway:
            print(f"# tokenbrake overhead — {time.strftime('%Y-%m-%d')}, {platform.machine()}, "
                  f"{platform.python_implementation()} {platform.python_version()}, {args.seconds:.0f}s per cell, "
                  f"{args.output_tokens} output tokens")
            print(f"{'mode':<10} {'conc':>4} {'path':<8} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8}")
            for stream in (False, True):
                for concurrency in (1, 32):
                    rows = {}
                    for name, base in (("direct", emulator.url), ("gateway", gateway.url)):
                        result = asyncio.run(load(base + "/v1/chat/completions", concurrency, stream, args.seconds))
                        rows[name] = result
                        mode = "stream" if stream else "json"
                        print(f"{mode:<10} {concurrency:>4} {name:<8} {result.rps:>8.0f} {result.pct(0.5):>8.2f} {result.pct(0.99):>8.2f}")
                    added = rows["gateway"].pct(0.5) - rows["direct"].pct(0.5)
                    ratio = rows["gateway"].rps / rows["direct"].rps
                    print(f"{'':<10} {'':>4} {'added p50':<18} {added:>8.2f} ms   throughput ratio {ratio:.2f}")


if __name__ == "__main__":
    main()
