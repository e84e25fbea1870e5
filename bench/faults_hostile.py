"""Hostile clients against a real gateway: slowloris, idle connections and giant headers.

Starts `tokenbrake emulate` and `tokenbrake serve` in front of it, then plays each attack
(from a child process, so the attackers' own work does not slow the measuring client) while
a good client sends chat requests on a keep-alive connection, and prints one row per fault
with its figure: the good requests' latency under attack beside their latency without it,
how long the attackers held their sockets, the gateway's memory.

    .venv/bin/python bench/faults_hostile.py [--seconds 4] [--senders 200] [--idle 3000] [--crowd 10000]

`hostile_rows(emulator_url, folder, settings)` gives the same rows (bench/faults.py can
print them in its table).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import multiprocessing
import resource
import statistics
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from hostile import CHAT, MESSAGES, giant_header, rss_bytes  # noqa: E402
from overhead import create_key  # noqa: E402

from tokenbrake.config import ServerConfig  # noqa: E402
from tokenbrake.tools.launch import ChildServer  # noqa: E402

GOOD = {"model": "bench", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 8}


@dataclass
class Settings:
    seconds: float = 4.0  # the good client's time under each attack (and without)
    senders: int = 200  # slow senders of each kind (headers, bodies)
    idle: int = 3000  # idle connections under the cap, kept up
    crowd: int = 10000  # idle connections past it, kept up
    giant: int = 8  # giant-header requests
    giant_bytes: int = 64 << 20
    header_timeout_s: float = 2.0  # the slowloris row's gateway's
    body_timeout_s: float = 3.0


def client(url: str, key: str, fresh: bool = False) -> httpx.Client:
    """A good client: one keep-alive connection, or (`fresh`) a new connection per request."""
    return httpx.Client(base_url=url, headers={"authorization": f"Bearer {key}"}, timeout=30,
                        limits=httpx.Limits(max_keepalive_connections=0 if fresh else 1, keepalive_expiry=120))


def good_requests(good: httpx.Client, seconds: float) -> list[tuple[int | None, float]]:
    """(status, seconds) of each chat request sent one after another for `seconds`; status
    None: the request failed without an answer."""
    results = []
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        started = time.monotonic()
        try:
            status: int | None = good.post("/v1/chat/completions", json=GOOD).status_code
        except httpx.HTTPError:
            status = None
        results.append((status, time.monotonic() - started))
    return results


def outcomes(results: list[tuple[int | None, float]]) -> str:
    counts: dict[str, int] = {}
    for status, _ in results:
        counts[str(status or "no answer")] = counts.get(str(status or "no answer"), 0) + 1
    return ", ".join(f"{n} x {status}" for status, n in sorted(counts.items()))


def latency(results: list[tuple[int | None, float]]) -> str:
    served = sorted(seconds for status, seconds in results if status == 200)
    if not served:
        return "none served"
    p99 = served[min(len(served) - 1, int(0.99 * len(served)))]
    return f"p50 {statistics.median(served) * 1000:.1f} ms, p99 {p99 * 1000:.1f} ms"


# The attackers, run in a child process (asyncio, one task per socket).
async def drip(port: int, start: bytes, every_s: float, give_up_s: float) -> tuple[int | None, float]:
    """Sends `start`, then a byte every `every_s` until answered; (status, seconds held)."""
    started = time.monotonic()
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(start)
    status = None
    while time.monotonic() - started < give_up_s:
        try:
            data = await asyncio.wait_for(reader.read(65536), every_s)
        except TimeoutError:
            writer.write(b"a")
            continue
        if data.startswith(b"HTTP/1.1 "):
            status = int(data.split(b" ", 2)[1])
        break
    writer.close()
    return status, time.monotonic() - started


async def idle_crowd(port: int, count: int, ready, hold_s: float) -> tuple[int, list[float]]:
    """Keeps `count` connections that send nothing open until `hold_s` after they all
    opened, opening a new one (after a short pause) whenever the gateway closes one, as a
    sustained attack would; (connections opened, how long the gateway let each stay)."""
    opened, held = [0], []
    over = asyncio.Event()

    async def stay(reader) -> None:
        since = time.monotonic()
        with contextlib.suppress(OSError):
            await reader.read(65536)  # the gateway's answer, or its close
        held.append(time.monotonic() - since)

    async def one() -> None:
        while not over.is_set():
            try:
                reader, writer = await asyncio.open_connection("127.0.0.1", port)
            except OSError:
                await asyncio.sleep(0.1)
                continue
            opened[0] += 1
            if opened[0] == count:
                ready.set()
                asyncio.get_running_loop().call_later(hold_s, over.set)
            staying = asyncio.ensure_future(stay(reader))
            ending = asyncio.ensure_future(over.wait())
            await asyncio.wait([staying, ending], return_when=asyncio.FIRST_COMPLETED)
            staying.cancel()
            ending.cancel()
            writer.close()
            await asyncio.sleep(0.1)

    await asyncio.gather(*(one() for _ in range(count)))
    return opened[0], held


def attacker(kind: str, port: int, count: int, settings: Settings, ready, results) -> None:
    resource.setrlimit(resource.RLIMIT_NOFILE, (resource.getrlimit(resource.RLIMIT_NOFILE)[1],) * 2)
    give_up = max(settings.header_timeout_s, settings.body_timeout_s) * 3 + settings.seconds

    async def attack():
        if kind == "slowloris":
            body_start = MESSAGES + b"content-type: application/json\r\ncontent-length: 4096\r\n\r\n{"
            tasks = [drip(port, CHAT + b"x-slow: ", 0.5, give_up) for _ in range(count)]
            tasks += [drip(port, body_start, 0.5, give_up) for _ in range(count)]
            ready.set()
            return await asyncio.gather(*tasks)
        return await idle_crowd(port, count, ready, settings.seconds + 3)

    results.put(asyncio.run(attack()))


def under_attack(kind: str, gateway: ChildServer, count: int, settings: Settings, measure):
    """Starts the attack and, once the attackers are in place, runs `measure()`; (what it
    returned, what the attackers saw)."""
    context = multiprocessing.get_context("fork")
    ready, results = context.Event(), context.Queue()
    process = context.Process(target=attacker, args=(kind, gateway.port, count, settings, ready, results))
    process.start()
    ready.wait(timeout=60)
    measured = measure()
    outcome = results.get(timeout=120)
    process.join(timeout=10)
    return measured, outcome


def slowloris_row(gateway: ChildServer, key: str, settings: Settings, baseline: str) -> str:
    with client(gateway.url, key) as good:
        served, held = under_attack("slowloris", gateway, settings.senders, settings,
                                    lambda: good_requests(good, settings.seconds))
    heads, bodies = held[: settings.senders], held[settings.senders:]
    cut = sum(1 for status, _ in held if status == 408)
    return (f"good requests {latency(served)} ({baseline} without); {cut}/{len(held)} senders answered 408, "
            f"held at most {max(s for _, s in heads):.1f} s (headers, header_timeout_s {settings.header_timeout_s:g}) "
            f"and {max(s for _, s in bodies):.1f} s (bodies, body_timeout_s {settings.body_timeout_s:g})")


def crowd_row(gateway: ChildServer, key: str, settings: Settings, count: int, baseline: str) -> str:
    """A sustained crowd of `count` idle connections: what a good client on its keep-alive
    connection (opened before) and on new connections meets meanwhile."""
    with client(gateway.url, key) as kept, client(gateway.url, key, fresh=True) as fresh:
        kept.get("/healthz")

        def measure():
            return good_requests(kept, settings.seconds / 2), good_requests(fresh, settings.seconds / 2)

        (on_kept, on_new), (opened, held) = under_attack("idle", gateway, count, settings, measure)
    held.sort()
    stays = f"median {statistics.median(held):.1f} s, at most {held[-1]:.1f} s" if held else "none closed"
    return (f"{count} idle ({opened} opened in all; of those the gateway closed, each let stay {stays}): good "
            f"requests on a keep-alive connection {outcomes(on_kept)}, {latency(on_kept)} ({baseline} without); "
            f"on new connections {outcomes(on_new)}, {latency(on_new)}")


def giant_row(gateway: ChildServer, key: str, settings: Settings) -> str:
    pid = gateway.process.pid
    before, peak = rss_bytes(pid), [0]
    done = threading.Event()

    def sample() -> None:
        while not done.is_set():
            peak[0] = max(peak[0], rss_bytes(pid))
            time.sleep(0.01)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    started = time.monotonic()
    answers: list = []
    threads = [threading.Thread(target=lambda: answers.append(giant_header(gateway.port, settings.giant_bytes)))
               for _ in range(settings.giant)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    seconds = time.monotonic() - started
    time.sleep(1)
    done.set()
    after = rss_bytes(pid)
    refused = sum(1 for a in answers if a.status == 431)
    with client(gateway.url, key) as good:
        after_attack = good_requests(good, 1.0)
    return (f"{settings.giant} x {settings.giant_bytes >> 20} MiB header: {refused}/{settings.giant} answered 431 in "
            f"{seconds:.2f} s; RSS {before / 1e6:.0f} MB -> peak {peak[0] / 1e6:.0f} MB -> {after / 1e6:.0f} MB; "
            f"good requests after: {latency(after_attack)}")


def gateway_config(emulator_url: str, folder: Path, server: dict) -> Path:
    path = folder / f"tokenbrake-{len(list(folder.glob('*.yaml')))}.yaml"
    path.write_text(yaml.safe_dump({
        "database": f"sqlite:///{folder / 'ledger.db'}",  # one database: one key for every gateway
        "server": server,
        "upstreams": {"emu": {"kind": "openai", "base_url": emulator_url + "/v1"}},
        "models": {"bench": {"upstream": "emu", "free": True}},
    }))
    return path


def hostile_rows(emulator_url: str, folder: Path, settings: Settings) -> list[tuple[str, str]]:
    """(fault, figure) rows, from two gateways in front of the emulator: one with the default
    `server:` settings, one with short read timeouts for the slowloris row (the defaults
    would make it last a minute)."""
    resource.setrlimit(resource.RLIMIT_NOFILE, (resource.getrlimit(resource.RLIMIT_NOFILE)[1],) * 2)
    defaults = gateway_config(emulator_url, folder, {})
    quick = gateway_config(emulator_url, folder, {"header_timeout_s": settings.header_timeout_s,
                                                  "body_timeout_s": settings.body_timeout_s})
    key = create_key(defaults)
    with ChildServer(["serve", "--config", str(defaults)], quiet=True) as gateway, \
            ChildServer(["serve", "--config", str(quick)], quiet=True) as impatient:
        with client(gateway.url, key) as good:
            baseline = latency(good_requests(good, settings.seconds))
        cap = ServerConfig().max_connections
        return [
            ("no attack", f"good requests {baseline}"),
            ("slowloris: a byte each 0.5 s, headers and bodies", slowloris_row(impatient, key, settings, baseline)),
            ("idle connections that send nothing, under the cap", crowd_row(gateway, key, settings, settings.idle, baseline)),
            (f"idle connections past the cap ({cap})", crowd_row(gateway, key, settings, settings.crowd, baseline)),
            ("giant headers (no key)", giant_row(gateway, key, settings)),
        ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    defaults = Settings()
    parser.add_argument("--seconds", type=float, default=defaults.seconds, help="the good client's time per row")
    parser.add_argument("--senders", type=int, default=defaults.senders, help="slow senders of headers, and of bodies")
    parser.add_argument("--idle", type=int, default=defaults.idle, help="idle connections under the cap")
    parser.add_argument("--crowd", type=int, default=defaults.crowd, help="idle connections past the cap")
    parser.add_argument("--header-timeout", type=float, default=defaults.header_timeout_s,
                        help="server.header_timeout_s of the slowloris row's gateway")
    parser.add_argument("--body-timeout", type=float, default=defaults.body_timeout_s,
                        help="server.body_timeout_s of the slowloris row's gateway")
    args = parser.parse_args()
    settings = Settings(seconds=args.seconds, senders=args.senders, idle=args.idle, crowd=args.crowd,
                        header_timeout_s=args.header_timeout, body_timeout_s=args.body_timeout)
    server = ServerConfig()
    with ChildServer(["emulate"], quiet=True) as emulator, tempfile.TemporaryDirectory() as tmp:
        print(f"# tokenbrake hostile clients — {time.strftime('%Y-%m-%d')}; default server: settings "
              f"(max_connections {server.max_connections}, header_timeout_s {server.header_timeout_s:g}, "
              f"max_header_bytes {server.max_header_bytes}) but for slowloris (header_timeout_s "
              f"{settings.header_timeout_s:g}, body_timeout_s {settings.body_timeout_s:g}); "
              "good client: httpx, one request at a time")
        print("| fault | figure |\n| --- | --- |")
        for fault, figure in hostile_rows(emulator.url, Path(tmp), settings):
            print(f"| {fault} | {figure} |", flush=True)


if __name__ == "__main__":
    main()
