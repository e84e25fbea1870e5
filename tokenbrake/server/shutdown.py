"""A shutdown that loses nothing: SIGTERM stops accepting, requests in flight get
`graceful_shutdown_s` to finish, then the ones still running are cut.

Cutting them is left neither to uvicorn (which would cancel their tasks: no ledger row, a
reservation held, a plain-text 500) nor to the clients: the gateway closes its upstream
connections, so each request still running meets the end of its upstream as any broken call
does — a stream ends with its front door's in-stream error event, a JSON request gets a 503
in its SDK's format — and is recorded with what it had got, its reservation settled. uvicorn
waits `CUT_GRACE_S` more for that before it gives up on them.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Iterator
from types import FrameType

import uvicorn

log = logging.getLogger(__name__)

CUT_GRACE_S = 5.0  # after the cut, for the requests cut to record themselves and answer


class GracefulServer(uvicorn.Server):
    def __init__(self, config: uvicorn.Config, graceful_shutdown_s: float,
                 cut: Callable[[], Awaitable[None]], before_exit: Callable[[], None] | None = None) -> None:
        super().__init__(config)
        self.graceful_shutdown_s = graceful_shutdown_s
        self.cut = cut
        self.before_exit = before_exit
        self._loop: asyncio.AbstractEventLoop | None = None
        self._cut_scheduled = False

    async def serve(self, sockets=None) -> None:
        self._loop = asyncio.get_running_loop()
        await super().serve(sockets)

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        # uvicorn re-raises the SIGTERM it caught once the shutdown is done, which ends the
        # process at once: what must outlive the shutdown (the log lines still queued, among
        # them the one saying which rows the journal keeps) is finished first.
        with super().capture_signals():
            try:
                yield
            finally:
                if self.before_exit is not None:
                    self.before_exit()

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        super().handle_exit(sig, frame)
        if self._loop is not None and not self._cut_scheduled:
            self._cut_scheduled = True
            self._loop.call_soon_threadsafe(self._loop.call_later, self.graceful_shutdown_s, self._start_cut)

    def _start_cut(self) -> None:
        if self.server_state.tasks:
            log.warning("cutting %d requests still running after graceful_shutdown_s (%gs); each is recorded "
                        "with what it delivered", len(self.server_state.tasks), self.graceful_shutdown_s)
        asyncio.ensure_future(self.cut())
