"""The PostgreSQL and Redis the tests use: the machine's when they answer, else throwaway ones.

The URLs live in one place, the environment: TEST_POSTGRES_URL and TEST_REDIS_URL say which
servers to try (by default the local ones on their standard ports; not TOKENBRAKE_..., which
the `tokenbrake` processes would read as config overrides). Before collection, `conftest.py`
calls `provide()`: a server that does not answer at its URL is replaced by a throwaway one,
started from the Debian packages' binaries on a free port in a temporary folder, and the
variable is set to its URL, so that test modules, fixtures and the `tokenbrake` processes
they start all read the same one. The throwaway servers are stopped, and their folders
removed, when the run ends.
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from tokenbrake.tools.launch import free_port

POSTGRES_VAR, REDIS_VAR = "TEST_POSTGRES_URL", "TEST_REDIS_URL"
DEFAULT_POSTGRES_URL = "postgresql://postgres@127.0.0.1:5432/test"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"
START_TIMEOUT_S = 30.0
# postgres refuses to run as root, so as root the throwaway cluster belongs to this user
# (created by the Debian package postgresql).
POSTGRES_USER = "postgres"
POSTGRES_BINARIES = "/usr/lib/postgresql/*/bin"  # where the Debian packages put them, one folder a version


def postgres_url() -> str:
    return os.environ.get(POSTGRES_VAR, DEFAULT_POSTGRES_URL)


def redis_url() -> str:
    return os.environ.get(REDIS_VAR, DEFAULT_REDIS_URL)


class MissingServer(Exception):
    """No server answers and none can be started: the message says what to install."""


@dataclass
class Throwaway:
    """A server process started for this test run, and the folder that holds its data."""

    name: str
    url: str
    process: subprocess.Popen
    folder: Path
    stop_signal: int = signal.SIGTERM
    replaces: str = ""  # why the configured server was not used
    command: list = field(default_factory=list)  # how it was started, to start it again
    options: dict = field(default_factory=dict)
    log: Path = field(init=False)

    def __post_init__(self) -> None:
        self.log = self.folder / "server.log"

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(self.stop_signal)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        shutil.rmtree(self.folder, ignore_errors=True)

    def signal_all(self, signum: int) -> None:
        """`signum` to the server and every process it started (PostgreSQL's workers each have a
        session of their own): SIGSTOP makes it unreachable as a network partition would, its
        connections open but silent."""
        for pid in [self.process.pid, *children_of(self.process.pid)]:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signum)

    def crash(self) -> None:
        """kill -9 of the server and its workers; the data folder stays, for `start_again`."""
        self.signal_all(signal.SIGKILL)
        self.process.wait()

    def start_again(self) -> None:
        with open(self.log, "a") as log:
            self.process = subprocess.Popen([str(part) for part in self.command], stdout=log, stderr=subprocess.STDOUT,
                                            stdin=subprocess.DEVNULL, cwd=self.folder, start_new_session=True,
                                            **self.options)


def children_of(parent: int) -> list[int]:
    """The processes whose parent is `parent`, read from /proc."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError):
            fields = stat.read_text().rpartition(")")[2].split()  # after the command, which may hold spaces
            if int(fields[1]) == parent:
                found.append(int(stat.parent.name))
    return found


def provide() -> list[Throwaway]:
    """Makes both variables name a server that answers, starting throwaway ones where needed."""
    wanted = [(POSTGRES_VAR, postgres_url(), postgres_answers, start_postgres),
              (REDIS_VAR, redis_url(), redis_answers, start_redis)]
    started: list[Throwaway] = []
    try:
        for var, url, answers, start in wanted:
            why = answers(url)
            if why is not None:
                started.append(start())
                started[-1].replaces = f"nothing answered at {url}: {why.splitlines()[0]}"
                url = started[-1].url
            os.environ[var] = url
    except BaseException:
        stop(started)
        raise
    return started


def stop(servers: list[Throwaway]) -> None:
    for server in reversed(servers):
        server.stop()


def postgres_answers(url: str) -> str | None:
    """None when a connection to `url` works; else why not."""
    import psycopg

    try:
        psycopg.connect(url, connect_timeout=3).close()
    except psycopg.Error as exc:
        return str(exc).strip() or type(exc).__name__
    return None


def redis_answers(url: str) -> str | None:
    import redis

    client = redis.Redis.from_url(url, socket_connect_timeout=3, socket_timeout=3)
    try:
        client.ping()
    except redis.RedisError as exc:
        return str(exc) or type(exc).__name__
    finally:
        client.close()
    return None


def postgres_binaries(pattern: str = POSTGRES_BINARIES) -> Path:
    """The folder of the newest installed PostgreSQL's initdb and postgres."""
    folders = sorted(glob.glob(pattern), key=lambda p: int(Path(p).parent.name), reverse=True)
    for folder in folders:
        if os.access(Path(folder) / "initdb", os.X_OK) and os.access(Path(folder) / "postgres", os.X_OK):
            return Path(folder)
    raise MissingServer(
        f"The tests need PostgreSQL: none answers at {postgres_url()} and no initdb/postgres is installed "
        f"to start one. Install the Debian package postgresql (apt-get install postgresql), "
        f"or set {POSTGRES_VAR} to a server's URL.")


def as_postgres_user(folder: Path) -> dict:
    """Popen options that run a PostgreSQL binary as a user it accepts: as root, the postgres user."""
    if os.geteuid() != 0:
        return {}
    try:
        user = pwd.getpwnam(POSTGRES_USER)
    except KeyError:
        raise MissingServer(
            f"The tests start a throwaway PostgreSQL, which refuses to run as root, and there is no "
            f"'{POSTGRES_USER}' user to run it as: install the Debian package postgresql "
            f"(apt-get install postgresql), which creates it.") from None
    os.chown(folder, user.pw_uid, user.pw_gid)
    return {"user": user.pw_uid, "group": user.pw_gid, "extra_groups": [],
            "env": {**os.environ, "HOME": str(folder), "USER": POSTGRES_USER}}


def start_postgres(durable: bool = False) -> Throwaway:
    """A throwaway PostgreSQL. Durability is off unless `durable` (the data is thrown away, and
    fsyncs would slow every test); a test that kills the server needs it on, or commits the
    server acknowledged are lost with its memory (synchronous_commit=off loses the last ~600 ms)."""
    binaries = postgres_binaries()
    folder = Path(tempfile.mkdtemp(prefix="tokenbrake-test-postgres-"))
    try:
        options = as_postgres_user(folder)
        data, port = folder / "data", free_port()
        with open(folder / "initdb.log", "w") as log:
            subprocess.run([binaries / "initdb", "-D", data, "-U", "postgres", "-A", "trust", "-E", "UTF8",
                            "--no-sync"], stdout=log, stderr=subprocess.STDOUT, check=True, cwd=folder,
                           timeout=120, **options)
        speed = [] if durable else ["-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off"]
        command = [binaries / "postgres", "-D", data, "-p", str(port), "-k", folder,
                   "-c", "listen_addresses=127.0.0.1", *speed, "-c", "max_connections=200"]
        server = launch("PostgreSQL", f"postgresql://postgres@127.0.0.1:{port}/test", command, folder,
                        signal.SIGINT, options)  # SIGINT: a fast shutdown that does not wait for clients
    except subprocess.CalledProcessError:
        log = (folder / "initdb.log").read_text(errors="replace")[-2000:]
        shutil.rmtree(folder, ignore_errors=True)
        raise MissingServer(f"initdb failed for the throwaway PostgreSQL:\n{log}") from None
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise
    try:
        wait_until(server, lambda: postgres_answers(server.url.removesuffix("/test") + "/postgres"))
        import psycopg

        with psycopg.connect(server.url.removesuffix("/test") + "/postgres", autocommit=True) as conn:
            conn.execute("CREATE DATABASE test")
    except BaseException:
        server.stop()
        raise
    return server


def redis_binary(search_path: str | None = None) -> str:
    binary = shutil.which("redis-server", path=search_path)
    if binary is None:
        raise MissingServer(
            f"The tests need Redis: none answers at {redis_url()} and no redis-server is installed to start "
            f"one. Install the Debian package redis-server (apt-get install redis-server), or set {REDIS_VAR} "
            f"to a server's URL.")
    return binary


def start_redis() -> Throwaway:
    binary = redis_binary()
    folder = Path(tempfile.mkdtemp(prefix="tokenbrake-test-redis-"))
    port = free_port()
    command = [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
               "--dir", folder, "--daemonize", "no"]
    try:
        server = launch("Redis", f"redis://127.0.0.1:{port}/0", command, folder, signal.SIGTERM, {})
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise
    try:
        wait_until(server, lambda: redis_answers(server.url))
    except BaseException:
        server.stop()
        raise
    return server


def launch(name: str, url: str, command: list, folder: Path, stop_signal: int, options: dict) -> Throwaway:
    server = Throwaway(name, url, None, folder, stop_signal, command=command, options=options)  # type: ignore[arg-type]
    server.log.write_text("")
    server.start_again()
    return server


def wait_until(server: Throwaway, problem: Callable[[], str | None]) -> None:
    """Waits for `problem()` to report none; fails naming the server, its log and the last problem."""
    deadline = time.monotonic() + START_TIMEOUT_S
    while (why := problem()) is not None:
        if server.process.poll() is not None or time.monotonic() > deadline:
            log = server.log.read_text(errors="replace")[-2000:]
            raise MissingServer(f"The throwaway {server.name} at {server.url} did not start ({why}):\n{log}")
        time.sleep(0.1)
