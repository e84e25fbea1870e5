"""What the fault tests share: a gateway in front of its own slow emulator, load from threads
driving the official SDK, and the ledger and the emulator's journal read back to check the
promise (spend within the cap; every call that reached the upstream in the ledger)."""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import signal
import sqlite3
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path

import httpx
import openai
import yaml
from services import postgres_url, redis_url

from tokenbrake.storage import LedgerRow, open_database
from tokenbrake.tools.launch import ChildServer

POSTGRES_URL = postgres_url()
REDIS_URL = redis_url()
SLOW = "[[emulator: tokens=40 ttft_ms=150 tps=60]]"  # about 0.8 s a call: several always in flight


def fault_config(emulator_url: str, database: str, folder: Path, **extra) -> dict:
    config = {
        "database": database,
        "server": {"graceful_shutdown_s": 1},
        "ledger": {"flush_interval_s": 0.2, "journal_dir": str(folder / "journal")},
        "upstreams": {"emu": {"kind": "openai", "base_url": emulator_url + "/v1", "provider": "openai"}},
        "models": {"gpt-4o": {"upstream": "emu"}},
        "auth": {"require_keys": False},
    }
    return config | {name: value for name, value in extra.items() if value is not None}


def write_config(folder: Path, config: dict) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "tokenbrake.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def two_replicas(emulator_url: str, database: str, state: str, folder: Path, **extra) -> tuple[ChildServer, ChildServer]:
    """Two gateways sharing `database` and `state`, each with a journal of its own (as two
    machines would have)."""
    config = fault_config(emulator_url, database, folder, state=state, **extra)
    return tuple(start_gateway(write_config(folder / name, config | {"ledger": {"journal_dir": str(folder / name / "journal")}}))
                 for name in ("a", "b"))  # type: ignore[return-value]


@contextlib.contextmanager
def locked(sqlite_path: Path) -> Iterator[None]:
    """The SQLite database held by another connection's exclusive transaction: down, for the
    gateway's writer, until the block ends."""
    locker = sqlite3.connect(sqlite_path, isolation_level=None)
    locker.execute("BEGIN EXCLUSIVE")
    try:
        yield
    finally:
        locker.execute("ROLLBACK")
        locker.close()


def kill(gateway: ChildServer) -> None:
    gateway.process.send_signal(signal.SIGKILL)
    gateway.process.wait(timeout=10)


def start_gateway(config_path: Path, port: int | None = None, log: Path | None = None) -> ChildServer:
    return ChildServer(["serve", "--config", str(config_path)], port=port,
                       quiet=log is None, log=log)


@dataclass
class Load:
    """Threads each sending one call after another (every other one streamed), each call with
    an end user of its own (`u-N`), so the ledger and the emulator's journal can be matched
    call by call. Errors (refusals, a gateway that is down) are counted, never raised."""

    url: str
    threads: int = 8
    body_text: str = "hello " + SLOW
    max_tokens: int = 64
    users: int | None = None  # end users drawn from this many (a soak's steady state), else one per call
    sent: int = 0
    answered: int = 0
    errors: dict[str, int] = field(default_factory=dict)
    messages: list[str] = field(default_factory=list)  # what each error said
    _stop: threading.Event = field(default_factory=threading.Event)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _workers: list[threading.Thread] = field(default_factory=list)

    def __enter__(self) -> Load:
        self._workers = [threading.Thread(target=self._run, args=(n,), daemon=True) for n in range(self.threads)]
        for worker in self._workers:
            worker.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for worker in self._workers:
            worker.join(timeout=30)

    def _run(self, worker: int) -> None:
        with openai.OpenAI(base_url=self.url + "/v1", api_key="unused", max_retries=0, timeout=20) as client:
            self._send(worker, client)

    def _send(self, worker: int, client: openai.OpenAI) -> None:
        n = 0
        while not self._stop.is_set():
            n += 1
            user = f"u-{worker}-{n}-{secrets.token_hex(3)}" if self.users is None else f"u-{(worker * 7919 + n) % self.users}"
            with self._lock:
                self.sent += 1
            try:
                self._call(client, user, stream=(worker + n) % 2 == 0)
                with self._lock:
                    self.answered += 1
            except (openai.APIError, httpx.HTTPError) as exc:
                with self._lock:
                    self.errors[type(exc).__name__] = self.errors.get(type(exc).__name__, 0) + 1
                    self.messages.append(f"{type(exc).__name__}: {getattr(exc, 'message', exc)}")
                time.sleep(0.05)

    def _call(self, client: openai.OpenAI, user: str, stream: bool) -> None:
        messages = [{"role": "user", "content": self.body_text}]
        if not stream:
            client.chat.completions.create(model="gpt-4o", messages=messages, user=user, max_tokens=self.max_tokens)
            return
        for _ in client.chat.completions.create(model="gpt-4o", messages=messages, user=user,
                                                max_tokens=self.max_tokens, stream=True):
            pass


def ledger_rows(database_url: str) -> list[LedgerRow]:
    async def read() -> list[LedgerRow]:
        db = await open_database(database_url)
        try:
            return await db.ledger.rows(limit=1_000_000)
        finally:
            await db.close()

    return asyncio.run(read())


def upstream_users(emulator: ChildServer) -> set[str]:
    """The end user of every call that reached the emulator."""
    records = httpx.get(emulator.url + "/_emulator/requests", timeout=10).json()
    return {r["body"]["user"] for r in records if r["body"] and r["body"].get("user")}


def total_cost(rows: list[LedgerRow]) -> Decimal:
    return sum((row.cost_usd for row in rows), Decimal(0))


def postgres_schema_url() -> tuple[str, str]:
    schema = f"tb_fault_{secrets.token_hex(6)}"
    return f"{POSTGRES_URL}?schema={schema}", schema


def drop_schema(schema: str) -> None:
    import psycopg

    with psycopg.connect(POSTGRES_URL, autocommit=True) as conn:
        conn.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")


def drop_redis_prefix(prefix: str) -> None:
    import redis

    client = redis.Redis.from_url(REDIS_URL)
    keys = list(client.scan_iter(match=prefix + "*"))
    if keys:
        client.delete(*keys)
    client.close()



