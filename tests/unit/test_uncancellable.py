"""Accounting that must finish runs to its end through the cancellations of its task."""

from __future__ import annotations

import asyncio

import pytest

from tokenbrake.uncancellable import _go_on, finish


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


async def test_work_runs_in_the_callers_task_until_it_first_waits_then_in_its_own():
    tasks = []

    async def settle(waits: int):
        tasks.append(asyncio.current_task())
        for _ in range(waits):
            await asyncio.sleep(0)
            tasks.append(asyncio.current_task())
        return waits

    caller = asyncio.current_task()
    assert await finish(settle(0)) == 0 and tasks == [caller]
    tasks.clear()
    assert await finish(settle(2)) == 2
    assert tasks[0] is caller and tasks[1] is not caller and tasks[1] is tasks[2]


async def test_work_that_never_waits_returns_its_result_and_raises_its_error():
    async def value():
        return 7

    async def broken():
        raise ValueError("no")

    assert await finish(value()) == 7
    with pytest.raises(ValueError):
        await finish(broken())


async def test_the_rest_of_the_work_gets_what_its_task_is_sent_as_its_own_await_would():
    async def settle():
        try:
            await asyncio.sleep(1)
        except asyncio.CancelledError:
            return "cancelled inside"
        return "slept"

    work = settle()
    rest = asyncio.ensure_future(_go_on(work, work.send(None)))
    await asyncio.sleep(0.01)
    rest.cancel()  # what only shutdown could do to finish()'s own task
    assert await rest == "cancelled inside"
