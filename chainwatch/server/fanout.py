"""The fan-out: committed changes from the log, routed to every subscriber that wants them.

Changes arrive in cursor order (the ingest's in-process hand-off, or a gateway's read of the
log, see :mod:`chainwatch.server.feed`) through :meth:`Fanout.on_changes`, which never waits: a
batch goes into one bounded queue (``FANOUT_QUEUE`` batches). One task (:meth:`Fanout.run`)
takes the batches in order, records each new head (what ``eth_blockNumber``, confirmations and
``/healthz`` read), reads the token metadata the batch needs, routes it with the
:class:`~chainwatch.server.hub.Hub` (pure) and hands the clients it touched to ``flush``, which
writes each of them once.

When the queue is full (the task is that far behind, e.g. the store stalls token lookups), what
waits is dropped and ``overloaded`` is called: the server closes every client (1013), who
resume from the log with their cursor - nothing is lost, it is sent again after the reconnect.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import time
from collections.abc import Callable, Iterable, Mapping, Sequence

from chainwatch.core.model import Change, Head
from chainwatch.core.sink import ChainStatus
from chainwatch.metrics import Metrics
from chainwatch.server.hub import Hub, Recipient
from chainwatch.store.tokens import TokenCache

__all__ = ["Fanout"]

log = logging.getLogger("chainwatch.server")

#: Batches (one per sink call) waiting for the fan-out task.
FANOUT_QUEUE = 10_000


class Fanout:
    """The queue of committed changes and the task that routes them.

    ``stats`` (the server's counters) gets ``fanout_overflow`` and ``internal_error``; ``metrics``
    the deliveries, the last cursor routed, the delivery latency (commit to routed) and each
    chain's head block.
    """

    def __init__(
        self,
        hub: Hub,
        tokens: TokenCache,
        statuses: Mapping[int, ChainStatus],
        *,
        metrics: Metrics,
        stats: collections.Counter[str],
        chain_names: Mapping[int, str],
        flush: Callable[[Iterable[Recipient]], None],
        overloaded: Callable[[], None],
    ) -> None:
        self.hub = hub
        self.tokens = tokens
        self.statuses = statuses
        self.metrics = metrics
        self.stats = stats
        self._chain_names = chain_names
        self._flush = flush
        self._overloaded = overloaded
        self._queue: asyncio.Queue[Sequence[Change]] = asyncio.Queue(FANOUT_QUEUE)

    def on_changes(self, changes: Sequence[Change]) -> None:
        """Committed changes, in cursor order: queued for the fan-out task."""
        if not changes:
            return
        try:
            self._queue.put_nowait(changes)
        except asyncio.QueueFull:
            self._overload(changes)

    def head_number(self, chain_id: int) -> int | None:
        """The chain's head as last known (from the log, or the ingest of this process)."""
        status = self.statuses.get(chain_id)
        if status is None or status.head is None:
            return None
        return status.head.number

    async def run(self) -> None:
        """Route the queued batches, in order, until cancelled."""
        while True:
            changes = await self._queue.get()
            try:
                await self._route(changes)
            finally:
                self._queue.task_done()

    async def join(self) -> None:
        """Wait until every batch queued so far has been routed."""
        await self._queue.join()

    def _overload(self, changes: Sequence[Change]) -> None:
        """Drop what waits (the hub counts it as routed: clients resume past it from the log)
        and let the server close every client."""
        top = changes[-1].cursor
        while not self._queue.empty():
            top = max(top, self._queue.get_nowait()[-1].cursor)
            self._queue.task_done()
        self.hub.last_cursor = max(self.hub.last_cursor, top)
        self.stats["fanout_overflow"] += 1
        self._overloaded()

    async def _route(self, changes: Sequence[Change]) -> None:
        """Route one batch of changes and write to every client it touched."""
        for change in changes:
            if change.head is not None:
                self._new_head(change.chain_id, change.head)
        await self.tokens.ensure(changes)
        hub = self.hub
        try:
            touched = hub.route(changes, head_number=self.head_number, token_of=self.tokens.get)
        except Exception:
            # A bug of ours: lose this batch, not the server and every subscriber with it.
            log.exception("internal error routing changes %d-%d", changes[0].cursor,
                          changes[-1].cursor)  # fmt: skip
            self.stats["internal_error"] += 1
            return
        self._flush(touched)
        metrics = self.metrics
        delivered = hub.deliveries
        if delivered:
            metrics.deliveries.inc(delivered)
            hub.deliveries = 0
        metrics.change_cursor.set(hub.last_cursor)
        committed_at = changes[-1].at
        if committed_at:
            metrics.delivery_latency.observe(max(0.0, time.time() - committed_at))

    def _new_head(self, chain_id: int, head: Head) -> None:
        """A head from the log: what eth_blockNumber, confirmations and /healthz read (in a
        gateway, nothing else tells them)."""
        status = self.statuses.get(chain_id)
        if status is not None and (status.head is None or head.number >= status.head.number):
            status.head = head
            status.last_head_at = time.monotonic()
            self.metrics.head_block.labels(self._chain_names.get(chain_id, str(chain_id))).set(
                head.number
            )
