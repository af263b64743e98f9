"""Admission to expensive work: at most so many at once, so many waiting, the rest refused.

A replay of ``since`` reads the store page by page and encodes every matching event; a hundred
clients resuming from 0 at once would each do it in parallel and starve the live fan-out. The
server takes a slot of a :class:`Admission` around each replay::

    async with replays.slot():
        await replay(...)

``slot`` waits in line (first come, first served) while ``limit`` replays run, and raises
:class:`chainwatch.errors.Busy` at once when ``queue_limit`` already wait: the server closes
that client with 1013 (try again later) and the error's text, which says when to retry.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

from chainwatch.errors import Busy

__all__ = ["Admission"]


class Admission:
    """``limit`` holders at once, ``queue_limit`` waiting for a slot.

    ``running`` and ``waiting`` say how many hold and wait (for stats and tests).
    """

    def __init__(
        self, limit: int, queue_limit: int, *, what: str = "replays", retry_after: float = 5.0
    ) -> None:
        if limit < 1 or queue_limit < 0:
            raise ValueError("limit must be at least 1 and queue_limit at least 0")
        self.limit = limit
        self.queue_limit = queue_limit
        self.what = what
        self.retry_after = retry_after
        self.running = 0
        self.waiting = 0
        self._semaphore = asyncio.Semaphore(limit)

    @contextlib.asynccontextmanager
    async def slot(self) -> AsyncIterator[None]:
        """Hold a slot for the body; raises Busy (without waiting) if the line is
        full. Cancelling a waiter gives its place up."""
        if self.running >= self.limit and self.waiting >= self.queue_limit:
            raise Busy(self.what, self.retry_after)
        self.waiting += 1
        try:
            await self._semaphore.acquire()
        finally:
            self.waiting -= 1
        self.running += 1
        try:
            yield
        finally:
            self.running -= 1
            self._semaphore.release()
