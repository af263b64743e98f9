"""The writer of one chain's ingest: commits the blocks the pipeline hands it, in order.

The pipeline groups consecutive blocks (:meth:`BlockWriter.add`) and hands each group over
(:meth:`BlockWriter.hand_off`); the writer task (:meth:`BlockWriter.run`) commits them, one
transaction per group, while the pipeline decodes the next ones, then hands the changes to the
sink. Only after the store commits are events handed to the sink.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable
from concurrent.futures import Executor
from typing import Any, TypeVar

from chainwatch.config import ChainSettings
from chainwatch.core.heads import HeadTracker
from chainwatch.core.model import Checkpoint, DecodedEvent, Head, StoredEvent
from chainwatch.core.sink import REORG_WINDOW, EventSink
from chainwatch.metrics import Metrics
from chainwatch.store import Lease, Store

T = TypeVar("T")

# At most this much is grouped into one transaction while the inbox has more waiting.
GROUP_MAX_BLOCKS = 64
GROUP_MAX_EVENTS = 5_000
# Groups handed to the writer and not yet taken; the pipeline waits when the writer is this far
# behind (the database is the bottleneck), so memory stays bounded.
WRITE_QUEUE = 8
# Events stored `new` kept in memory until confirmed (beyond it they are read back when needed).
MAX_UNCONFIRMED = 100_000


class StoreThread:
    """Runs store calls in the store's thread (one writer, in order)."""

    def __init__(self, executor: Executor | None) -> None:
        self.executor = executor

    async def run(self, call: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self.executor, functools.partial(call, *args, **kwargs))


class BlockWriter:
    """Commits one chain's blocks and events and tells the sink what was committed."""

    def __init__(
        self,
        chain: ChainSettings,
        store: Store,
        sink: EventSink,
        heads: HeadTracker,
        db: StoreThread,
        metrics: Metrics,
        stats: dict[str, int],
        *,
        lease: Lease | None,
    ) -> None:
        self.chain = chain
        self.store = store
        self.sink = sink
        self.heads = heads  # told which heads are committed, to forget their held logs
        self.db = db
        self.metrics = metrics
        self.stats = stats  # the ingest's counters: "events" is counted here
        # This process's leadership of the chain (PostgreSQL roles): every write carries it,
        # and a write after the lease was lost fails with LeadershipLost (fencing).
        self.lease = lease
        self._events_stored = metrics.events_stored.labels(chain.name)
        self._head_block = metrics.head_block.labels(chain.name)
        self.group_heads: list[Head] = []  # blocks advanced to, not yet handed to the writer
        self.group_events: list[DecodedEvent] = []
        self.writes: asyncio.Queue[tuple[list[Head], list[DecodedEvent]]] = asyncio.Queue(
            WRITE_QUEUE
        )
        self.unconfirmed: dict[int, StoredEvent] = {}  # id -> stored event still `new`

    def add(self, head: Head, events: list[DecodedEvent]) -> None:
        """Group block ``head`` with its events into the next transaction."""
        self.group_events += events
        self.group_heads.append(head)

    def full(self) -> bool:
        """Whether the group reached GROUP_MAX_BLOCKS or GROUP_MAX_EVENTS."""
        return (
            len(self.group_heads) >= GROUP_MAX_BLOCKS or len(self.group_events) >= GROUP_MAX_EVENTS
        )

    async def hand_off(self) -> None:
        """Queue the grouped blocks for the writer; waits only while the writer is
        WRITE_QUEUE groups behind."""
        if self.group_heads:
            job = (self.group_heads, self.group_events)
            self.group_heads, self.group_events = [], []
            await self.writes.put(job)

    async def flush(self) -> None:
        """Return once every block advanced to is committed and told to the sink: before
        anything else reads or writes the store (a reorg, a gap, a late log)."""
        await self.hand_off()
        await self.writes.join()

    async def run(self) -> None:
        """Commit what the pipeline hands over, in order, then tell the sink of the heads.

        Groups that waited while a commit ran are merged into the next transaction (up to
        GROUP_MAX_BLOCKS or GROUP_MAX_EVENTS). A write that fails is a store failure: it ends
        the ingest (and the daemon) with nothing marked done, so nothing is told committed
        that is not; the checkpoint still points below the lost blocks, loaded again on start.
        """
        while True:
            heads, events = await self.writes.get()
            taken = 1
            while (
                not self.writes.empty()
                and len(heads) < GROUP_MAX_BLOCKS
                and len(events) < GROUP_MAX_EVENTS
            ):
                more_heads, more_events = self.writes.get_nowait()
                heads, events = heads + more_heads, events + more_events
                taken += 1
            await self.write(events, heads[-1], heads)
            for head in heads:
                self.heads.released(head)
            for _ in range(taken):
                self.writes.task_done()

    async def write(
        self, events: list[DecodedEvent], head: Head | None, blocks: list[Head]
    ) -> list[StoredEvent]:
        """One transaction: the events, the blocks in the window, the checkpoint at ``head``
        and the confirmations it brings, with their changes. Then the sink gets the changes."""
        chain_id = self.chain.chain_id
        checkpoint = Checkpoint(chain_id, head.number, head.hash) if head is not None else None
        if checkpoint is None:
            changes = await self.db.run(
                functools.partial(self.store.write_batch, events, None, blocks, lease=self.lease)
            )
        else:
            depth = head.number - self.chain.confirmations + 1 if head is not None else -1
            changes = await self.db.run(
                functools.partial(
                    self.store.commit_block,
                    events,
                    checkpoint,
                    blocks,
                    confirm_through=depth if depth >= 0 else None,
                    known=self.unconfirmed,
                    lease=self.lease,
                )
            )
        stored: list[StoredEvent] = []
        unconfirmed = self.unconfirmed
        for change in changes:
            event = change.event
            if event is None:
                continue
            if change.kind == "new":
                stored.append(event)
                unconfirmed[event.id] = event
            elif change.kind == "confirmed":
                unconfirmed.pop(event.id, None)
        if len(unconfirmed) > MAX_UNCONFIRMED:
            unconfirmed.clear()  # read back from the store when confirmed, then
        self.stats["events"] += len(stored)
        self._events_stored.inc(len(stored))
        if changes:
            self.metrics.change_cursor.set(changes[-1].cursor)
        if head is not None:
            self._head_block.set(head.number)
            keep_from = head.number - self.chain.confirmations - REORG_WINDOW
            if keep_from > 0 and head.number % 16 == 0:
                await self.db.run(self.store.prune_blocks, chain_id, keep_from)
        if changes:
            self.sink.on_changes(changes)
        return stored
