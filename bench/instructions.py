"""What the gateway's own code costs per request, in CPU instructions: a measure that stays
put on a machine whose speed does not (shared cores, other jobs).

`bench/overhead.py` measures time, and on a busy 2-core machine the same gateway measures
30% apart from one run to the next. This counts instructions instead, with valgrind's
callgrind, which counts the same for the same work whatever else the machine is doing.

It starts `tokenbrake emulate`, then runs, each under callgrind in a process of its own:
- `client`: the bare upstream call, aiohttp posting the request to the emulator and reading
  the answer (the baseline: what any Python proxy pays for the call itself);
- `gateway`: the gateway's ASGI application in process, driven with the same requests (with
  a virtual key, the ledger and metrics on, as in production), without the HTTP server.
Each is run for two request counts; the difference divided by the difference in requests is
the cost of one request, start-up excluded. Printed: thousands of instructions per request
for each, streamed and not, and the gateway's as a multiple of the bare call's.

    .venv/bin/python bench/instructions.py [--requests 800]

Needs valgrind (on this machine kind: /usr/bin/valgrind). A run takes about ten minutes.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import orjson
import uvloop
import yaml

sys.path.insert(0, str(Path(__file__).parent))
from overhead import body, config, create_key  # noqa: E402  (the same requests and config)

from tokenbrake.tools.launch import ChildServer  # noqa: E402

WARM_REQUESTS = 200  # the smaller run: start-up, imports and warming, subtracted
CONCURRENCY = 1  # one at a time: how many requests share a loop turn would move the count


async def drive_client(url: str, stream: bool, requests: int) -> None:
    import aiohttp

    async with aiohttp.ClientSession(headers={"content-type": "application/json"}) as session:
        async def one(n: int) -> None:
            async with session.post(url, data=body(stream, n)) as response:
                assert response.status == 200, response.status
                await response.read()

        await _workers(one, requests)


async def drive_gateway(config_path: str, key: str, stream: bool, requests: int) -> None:
    from tokenbrake.config import load_config
    from tokenbrake.server.app import build_app

    app = build_app(load_config(config_path))
    await _start(app)
    headers = [(b"host", b"bench"), (b"content-type", b"application/json"),
               (b"authorization", f"Bearer {key}".encode())]

    async def one(n: int) -> None:
        payload = body(stream, n)
        messages = [{"type": "http.request", "body": payload, "more_body": False}]
        sent: list[dict] = []

        async def receive() -> dict:
            if messages:
                return messages.pop()
            await asyncio.Event().wait()  # the client never leaves
            raise AssertionError("unreachable")

        async def send(message: dict) -> None:
            sent.append(message)

        scope = {"type": "http", "method": "POST", "path": "/v1/chat/completions", "query_string": b"",
                 "headers": headers + [(b"content-length", str(len(payload)).encode())], "http_version": "1.1",
                 "scheme": "http", "server": ("127.0.0.1", 0), "client": ("127.0.0.1", 0), "root_path": "",
                 "asgi": {"version": "3.0"}}
        await app(scope, receive, send)
        assert sent[0]["status"] == 200, sent

    await _workers(one, requests)


async def _start(app) -> None:
    """Runs the app's lifespan start-up (and leaves it running)."""
    started = asyncio.Event()
    messages = [{"type": "lifespan.startup"}]

    async def receive() -> dict:
        if messages:
            return messages.pop()
        await asyncio.Event().wait()
        raise AssertionError("unreachable")

    async def send(message: dict) -> None:
        if message["type"] == "lifespan.startup.complete":
            started.set()

    asyncio.get_running_loop().create_task(app({"type": "lifespan", "asgi": {"version": "3.0"}}, receive, send))
    await started.wait()


async def _workers(one, requests: int) -> None:
    async def worker(first: int) -> None:
        for n in range(first, requests, CONCURRENCY):
            await one(n)

    await asyncio.gather(*(worker(w) for w in range(CONCURRENCY)))


def run_subject(args: argparse.Namespace) -> None:
    """The measured process: one subject, one mode, `--count` requests, then exit at once."""
    stream = args.mode == "stream"
    if args.subject == "client":
        uvloop.run(drive_client(args.url + "/v1/chat/completions", stream, args.count))
    else:
        uvloop.run(drive_gateway(args.config, args.key, stream, args.count))
    sys.stdout.flush()
    os._exit(0)  # skip shutdown: it is not part of a request


def instructions(subject: str, mode: str, count: int, setup: dict, out: Path) -> int:
    """Instructions callgrind counted for one run of the measured process."""
    command = ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}", sys.executable, __file__,
               "--subject", subject, "--mode", mode, "--count", str(count), "--setup", json.dumps(setup)]
    subprocess.run(command, check=True, capture_output=True)
    for line in out.read_text().splitlines():
        if line.startswith(("summary:", "totals:")):
            return int(line.split()[1])
    raise RuntimeError(f"no instruction total in {out}")


def per_request(subject: str, mode: str, requests: int, setup: dict, tmp: Path) -> float:
    small = instructions(subject, mode, WARM_REQUESTS, setup, tmp / "small.out")
    large = instructions(subject, mode, WARM_REQUESTS + requests, setup, tmp / "large.out")
    return (large - small) / requests


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=800, help="requests counted (beyond the warm-up)")
    parser.add_argument("--subject", choices=["client", "gateway"], help=argparse.SUPPRESS)
    parser.add_argument("--mode", choices=["json", "stream"], help=argparse.SUPPRESS)
    parser.add_argument("--count", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--setup", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.subject:
        for name, value in orjson.loads(args.setup).items():
            setattr(args, name, value)
        run_subject(args)

    with ChildServer(["emulate", "--output-tokens", "16"], quiet=True) as emulator, \
            tempfile.TemporaryDirectory() as tmp:
        config_path = Path(tmp) / "gateway.yaml"
        config_path.write_text(yaml.safe_dump(config(emulator.url, Path(tmp) / "ledger.db")))
        setup = {"url": emulator.url, "config": str(config_path), "key": create_key(config_path)}
        print(f"# tokenbrake instructions per request (callgrind), {args.requests} requests counted, "
              f"{CONCURRENCY} at a time, 16 output tokens")
        print(f"{'mode':<8} {'bare client':>12} {'gateway':>12} {'gateway/client':>15}")
        for mode in ("json", "stream"):
            client = per_request("client", mode, args.requests, setup, Path(tmp))
            gateway = per_request("gateway", mode, args.requests, setup, Path(tmp))
            print(f"{mode:<8} {client / 1000:>11.0f}k {gateway / 1000:>11.0f}k {gateway / client:>15.2f}", flush=True)


if __name__ == "__main__":
    main()
