"""Starting `tokenbrake` servers as child processes on loopback ports.

The demo, the benchmarks and the end-to-end tests all run the real commands this way.
"""

from __future__ import annotations

import io
import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import IO

import httpx


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_healthy(url: str, process: subprocess.Popen, timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    # One client for all the polls: a new one per poll (httpx.get) costs 20 ms of CPU, which the
    # starting server needs more.
    with httpx.Client(timeout=1) as client:
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise RuntimeError(f"{_command(process)} exited with {process.returncode}")
            try:
                if client.get(url).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.05)
    raise RuntimeError(f"{url} did not become healthy in {timeout_s}s")


def _command(process: subprocess.Popen) -> str:
    args = process.args
    return str(args) if isinstance(args, (str, bytes, os.PathLike)) else " ".join(map(str, args))


class ChildServer:
    """`tokenbrake ARGS --port P` in a child process, healthy once the constructor returns."""

    def __init__(self, args: list[str], port: int | None = None, env: dict[str, str] | None = None,
                 quiet: bool = False, log: Path | None = None) -> None:
        """`quiet`: its output discarded; `log`: appended to that file."""
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        output: int | IO[bytes] | None = subprocess.DEVNULL if quiet else None
        if log is not None:
            output = open(log, "ab")  # noqa: SIM115 (closed below, once the child has its own copy)
        try:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "tokenbrake.cli", *args, "--port", str(self.port)],
                env={**os.environ, **(env or {})},
                stdout=output,
                stderr=output,
            )
        finally:
            if isinstance(output, io.IOBase):
                output.close()  # the child writes through the descriptor it inherited
        try:
            wait_healthy(self.url + "/healthz", self.process)
        except RuntimeError:
            self.stop()
            raise

    def stop(self, timeout_s: float = 15.0) -> int:
        """SIGTERM, then SIGKILL if it does not stop in time; returns the exit code."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return self.process.returncode

    def __enter__(self) -> ChildServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
