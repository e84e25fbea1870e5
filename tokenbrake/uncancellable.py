"""Work that must finish even when the task doing it is cancelled: a request's accounting.

asyncio cancels a task by throwing CancelledError into whatever it is awaiting, and it does so
when a streaming client leaves (the response watches for that) or when the server gives up
on its requests at shutdown. anyio's shielded cancel scopes hold off only anyio's own
cancellations, not a plain `Task.cancel()`: a stream whose client left while its accounting
ran lost its ledger row and kept its budget reservation. So the work runs as a task of its
own, which that cancellation does not reach, and the caller waits for it to finish before
its own cancellation goes on.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import TypeVar

T = TypeVar("T")


async def finish(work: Awaitable[T]) -> T:
    """`await work`, run to its end whatever cancellations this task receives meanwhile;
    then, if it was cancelled, the cancellation is raised."""
    task = asyncio.ensure_future(work)
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
