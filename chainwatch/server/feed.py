"""A gateway's source of changes: the store's change log, read by cursor.

A gateway (``chainwatch serve``) has no provider connection and no ingest: everything it sends
comes from the log. It wakes on PostgreSQL ``LISTEN/NOTIFY`` (a thread of its own waits for
notifications) and, as the safety net, every ``poll`` seconds - a listener that was
disconnected has missed notifications, and a read by cursor never misses a committed change.
Each wake reads ``changes_after(cursor)`` in pages until nothing is left and hands each page to
the sink (the server), in cursor order.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading

from chainwatch.core.backoff import backoff
from chainwatch.core.sink import EventSink
from chainwatch.errors import StoreError
from chainwatch.store import Store

__all__ = ["ChangeFeed"]

log = logging.getLogger("chainwatch.feed")

#: Changes read per query.
PAGE = 1000
#: Seconds between two reads when no notification comes (the safety net).
POLL = 1.0


class ChangeFeed:
    """Tails the change log from ``cursor`` and hands what it reads to ``sink``."""

    def __init__(
        self, store: Store, sink: EventSink, cursor: int, *, poll: float = POLL, page: int = PAGE
    ) -> None:
        self.store = store
        self.sink = sink
        self.cursor = cursor
        self.poll = poll
        self.page = page
        self.reads = 0
        self.failing = False  # the last read failed (what /healthz reports)
        self._wake = asyncio.Event()

    async def run(self) -> None:
        """Read until cancelled."""
        loop = asyncio.get_running_loop()
        stop = threading.Event()
        listener = asyncio.create_task(self._listen(loop, stop), name="change-log listener")
        try:
            while True:
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(self.poll):
                        await self._wake.wait()
                self._wake.clear()
                await self.read()
        finally:
            stop.set()
            listener.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await listener

    async def read(self) -> int:
        """Read and hand over everything committed after the cursor; returns how many."""
        total = 0
        while True:
            try:
                changes = await asyncio.to_thread(
                    self.store.changes_after, self.cursor, limit=self.page
                )
            except StoreError as exc:
                if not self.failing:
                    log.error("cannot read the change log: %s", exc)
                self.failing = True
                return total
            self.failing = False
            self.reads += 1
            if not changes:
                return total
            self.cursor = changes[-1].cursor
            self.sink.on_changes(changes)
            total += len(changes)
            if len(changes) < self.page:
                return total

    async def _listen(self, loop: asyncio.AbstractEventLoop, stop: threading.Event) -> None:
        """Keep a LISTEN connection; reconnect with backoff when it fails."""

        def wake() -> None:
            loop.call_soon_threadsafe(self._wake.set)

        delays = backoff()
        while not stop.is_set():
            try:
                await asyncio.to_thread(self.store.wait_for_changes, stop, wake)
            except StoreError as exc:
                log.warning("change-log notifications lost (polling meanwhile): %s", exc)
                await asyncio.sleep(next(delays))
