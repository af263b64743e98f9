"""The admission of replays (chainwatch.server.admission): a slot, a line, a refusal."""

from __future__ import annotations

import asyncio

import pytest

from chainwatch.errors import Busy
from chainwatch.server.admission import Admission


async def test_one_at_a_time_one_waiting_the_rest_told_when_to_retry() -> None:
    admission = Admission(1, 1, retry_after=5)
    release, entered = asyncio.Event(), asyncio.Event()
    order: list[str] = []

    async def hold(name: str) -> None:
        async with admission.slot():
            order.append(name)
            entered.set()
            await release.wait()

    first = asyncio.create_task(hold("first"))
    second = asyncio.create_task(hold("second"))  # runs up to its wait in the same turn
    async with asyncio.timeout(5):
        await entered.wait()
    assert (admission.running, admission.waiting) == (1, 1)
    with pytest.raises(Busy, match="too many replays in progress; retry in 5 s"):
        async with admission.slot():
            pass
    release.set()
    async with asyncio.timeout(5):
        await asyncio.gather(first, second)
    assert order == ["first", "second"]
    assert (admission.running, admission.waiting) == (0, 0)


async def test_a_cancelled_waiter_gives_its_place_up() -> None:
    admission = Admission(1, 1)
    release, entered = asyncio.Event(), asyncio.Event()

    async def hold() -> None:
        async with admission.slot():
            entered.set()
            await release.wait()

    holder = asyncio.create_task(hold())
    waiter = asyncio.create_task(hold())
    async with asyncio.timeout(5):
        await entered.wait()
    assert admission.waiting == 1
    waiter.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiter
    assert admission.waiting == 0
    release.set()
    async with asyncio.timeout(5):
        await holder
    async with admission.slot():
        assert admission.running == 1
