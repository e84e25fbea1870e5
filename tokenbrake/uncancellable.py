"""Work that must finish even when the task doing it is cancelled: a request's accounting.

asyncio cancels a task by throwing CancelledError into whatever it is awaiting, and it does so
when a streaming client leaves (the response watches for that) or when the server gives up
on its requests at shutdown. anyio's shielded cancel scopes hold off only anyio's own
cancellations, not a plain `Task.cancel()`: a stream whose client left while its accounting
ran lost its ledger row and kept its budget reservation. So the work runs as a task of its
own, which that cancellation does not reach, and the caller waits for it to finish before
its own cancellation goes on.

Most accounting never waits (budgets and limits kept in process, the ledger row queued), so
the work is first run in the caller's task, up to the point where it first waits: nothing
can cancel a task between two of its waits, and work that ends there needs no task at all.
Only what is left after that first wait becomes a task (Python 3.12's eager tasks do the
same).
"""

from __future__ import annotations

import asyncio
import types
from collections.abc import Callable, Coroutine, Generator
from typing import Any, TypeVar

T = TypeVar("T")


async def finish(work: Coroutine[Any, Any, T]) -> T:
    """`await work`, run to its end whatever cancellations this task receives meanwhile;
    then, if it was cancelled, the cancellation is raised."""
    try:
        waiting_on = work.send(None)  # up to its first wait, in this task
    except StopIteration as done:
        return done.value
    task = asyncio.ensure_future(_go_on(work, waiting_on))
    cancelled = False
    while not task.done():
        try:
            await asyncio.shield(task)
        except asyncio.CancelledError:
            if not task.done():
                cancelled = True  # this task was cancelled, not the work: wait on
    if cancelled:
        raise asyncio.CancelledError
    return task.result()


@types.coroutine
def _go_on(work: Coroutine[Any, Any, T], waiting_on: Any) -> Generator[Any, Any, T]:
    """The rest of `work`, which is waiting on `waiting_on` (what its first wait handed
    the event loop): each step's outcome goes on to the work, as an `await` would pass it."""
    step: Callable[[Any], Any]
    while True:
        try:
            sent = yield waiting_on
        except BaseException as exc:  # noqa: BLE001 (the work decides, as its own await would)
            step, value = work.throw, exc
        else:
            step, value = work.send, sent
        try:
            waiting_on = step(value)
        except StopIteration as done:
            return done.value
