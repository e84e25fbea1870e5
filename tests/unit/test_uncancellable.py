"""Accounting that must finish runs to its end through the cancellations of its task."""

from __future__ import annotations

import asyncio

import pytest

from tokenbrake.uncancellable import finish


async def test_work_finishes_though_its_task_is_cancelled_twice_then_the_cancellation_goes_on():
    steps = []

    async def settle():
        for step in range(3):
            await asyncio.sleep(0.02)
            steps.append(step)
        return "settled"

    task = asyncio.create_task(finish(settle()))
    await asyncio.sleep(0.01)
    task.cancel()
    await asyncio.sleep(0.02)
    task.cancel()  # a second cancellation mid-way (the server giving up at shutdown)
    with pytest.raises(asyncio.CancelledError):
        await task
    assert steps == [0, 1, 2]


async def test_without_cancellation_it_returns_the_result_and_raises_the_error():
    async def value():
        await asyncio.sleep(0)
        return 7

    async def broken():
        await asyncio.sleep(0)
        raise ValueError("no")

    assert await finish(value()) == 7
    with pytest.raises(ValueError):
        await finish(broken())
