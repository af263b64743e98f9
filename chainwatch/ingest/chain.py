"""The ingest of one chain: history load, then live logs and heads, committed block by block.

On every (re)connect to a provider:

1. check the provider's chain id;
2. subscribe to ``newHeads`` and to the watched ``logs`` filters first, and hold what arrives;
3. check that the stored checkpoint is still canonical (a reorg while we were away), then load
   ``eth_getLogs`` from a few blocks below the checkpoint (or from ``from_block``) to the head
   in chunks, one transaction per chunk with its checkpoint; on a reconnect while running, the
   last RECHECK_BLOCKS stored blocks are fetched again and the gap to the head is loaded (a log
   sent after its block's head may have gone with the connection);
4. release the held notifications: a log waits for its block's head, and the head commits the
   block's events and the new checkpoint in one transaction. Logs of blocks already stored are
   dropped as duplicates (the store is unique on (chain_id, block_hash, log_index)).

A head whose parent is not the stored tip is a gap (fetched with ``eth_getLogs``) or a reorg
(walk back to the fork point, mark orphaned events ``removed``, fetch the new canonical logs).
Only after the store commits are events handed to the sink.

The rules for heads and logs are pure (:mod:`chainwatch.core.heads`); this module performs what
they ask. Its neighbours: the provider sessions and their watchdog (:mod:`.session`), the writer
(:mod:`.writer`) and the token metadata (:mod:`.tokens`).
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections.abc import AsyncIterator, Sequence
from concurrent.futures import Executor
from typing import Any

from chainwatch.config import ChainSettings, redact_url
from chainwatch.core.heads import (
    Advance,
    FetchGap,
    HeadTracker,
    Ignore,
    Reason,
    Reorg,
    StoreLate,
)
from chainwatch.core.model import (
    Checkpoint,
    DecodedEvent,
    Head,
    Log,
    StoredEvent,
    parse_head,
    parse_log,
)
from chainwatch.core.ranges import RangePolicy, is_range_error
from chainwatch.core.sink import REORG_WINDOW, ChainStatus, EventSink, ProviderStatus
from chainwatch.core.watch import WatchSet
from chainwatch.errors import (
    ChainwatchError,
    ProviderError,
    ProviderUnreachable,
    RemoteProtocolError,
    RpcErrorResponse,
)
from chainwatch.ingest.provider import ProviderConnection
from chainwatch.ingest.session import (
    Connected,
    HeadReceived,
    LogReceived,
    ProviderSessions,
    Unreadable,
)
from chainwatch.ingest.tokens import TokenCatalog
from chainwatch.ingest.writer import BlockWriter, StoreThread
from chainwatch.metrics import Metrics
from chainwatch.store import Lease, Store

log = logging.getLogger("chainwatch.ingest")

# Stored blocks whose logs are fetched again on a reconnect: heads and logs are separate
# subscriptions, and a log sent after its block's head may have gone with the connection.
RECHECK_BLOCKS = 8


class ChainIngest:
    """Keeps one chain's events in the store and tells the sink what was committed."""

    def __init__(
        self,
        chain: ChainSettings,
        watch: WatchSet,
        store: Store,
        sink: EventSink,
        status: ChainStatus | None = None,
        *,
        exit_on_fatal: bool = False,
        store_executor: Executor | None = None,
        lease: Lease | None = None,
        metrics: Metrics | None = None,
    ) -> None:
        self.chain = chain
        self.watch = watch
        self.store = store
        self.sink = sink
        self.lease = lease  # this process's leadership of the chain: see the writer
        self.metrics = metrics or Metrics()
        self.metrics.reorgs.labels(chain.name)  # listed at 0 before the first one
        self.metrics.provider_reconnects.labels(chain.name)
        self.status = status or ChainStatus(chain.name, chain.chain_id, chain.confirmations)
        if not self.status.providers:
            self.status.providers = [ProviderStatus(redact_url(u)) for u in chain.providers]
        self.stats = {"heads": 0, "logs": 0, "events": 0, "reorgs": 0, "malformed": 0, "gaps": 0}
        self.caught_up = asyncio.Event()
        # The tip, the recent stored blocks and the held logs: the reorg and gap rules.
        self.heads = HeadTracker()
        self.sessions = ProviderSessions(
            chain,
            watch,
            self.status,
            self.metrics,
            self.stats,
            caught_up=self.caught_up,
            block_time=lambda: self.heads.block_time,
            exit_on_fatal=exit_on_fatal,
        )
        self.inbox = self.sessions.inbox
        self.db = StoreThread(store_executor)
        self.writer = BlockWriter(
            chain, store, sink, self.heads, self.db, self.metrics, self.stats, lease=lease
        )
        self.tokens = TokenCatalog(chain.chain_id, store, self.db)
        self.suspect = False  # an unreadable log notification came: fetch the next block whole
        self.conn: ProviderConnection | None = None  # the provider of the item in process

    # --- lifecycle ----------------------------------------------------------------------------

    async def run(self) -> None:
        """Hold the provider connections and process what they send, forever.

        ``mode = "race"``: every provider connected at once, each in its own session; the first
        to deliver a head or a log wins and the others' copies are dropped as duplicates.
        ``"failover"``: one provider at a time, the next on failure. Either way one pipeline task
        processes every session's notifications in arrival order, and one writer task commits
        the blocks the pipeline hands it while the pipeline decodes the next ones. Sessions
        reconnect with backoff. With ``exit_on_fatal``, a provider on the wrong chain, or every
        provider failing before the first catch-up, raises (the daemon exits with the error).
        """
        providers = list(range(len(self.chain.providers)))
        async with asyncio.TaskGroup() as tasks:
            tasks.create_task(self._pipeline(), name=f"pipeline {self.chain.name}")
            tasks.create_task(self.writer.run(), name=f"writer {self.chain.name}")
            if self.chain.mode == "race":
                for index in providers:
                    tasks.create_task(self.sessions.run([index]), name=f"provider {index}")
            else:
                tasks.create_task(self.sessions.run(providers), name="providers")

    async def _pipeline(self) -> None:
        """Process every session's items in order; a provider failing mid-way is recycled."""
        while True:
            item = await self.inbox.get()
            self.conn = item.conn
            try:
                match item:
                    case HeadReceived(conn, source, head):
                        await self._on_head(conn, head, source)
                    case LogReceived(log=entry):
                        await self._on_log(entry)
                    case Connected(conn, source):
                        await self._on_connect(conn, source)
                    case Unreadable(conn):
                        await self._on_suspect(conn)
            except (ProviderError, RemoteProtocolError, RpcErrorResponse) as exc:
                log.warning("%s: %s: %s; reconnecting", self.chain.name, item.conn.shown, exc)
                await item.conn.close()
            finally:
                self.conn = None

    async def _on_connect(self, conn: ProviderConnection, source: int) -> None:
        tip = self.heads.tip
        if tip is None:
            await self._catch_up(conn, historical=not self.caught_up.is_set())
            self.heads.follow(source)
            self.caught_up.set()
            return
        # Live already (a reconnect, or another provider): fill what we missed, if anything.
        latest = await self._block(conn, "latest")
        await self._recheck(conn)
        if latest.number > tip.number:
            # Not as a live head: blocks mined before this connection subscribed have their
            # logs in no notification, so they are fetched, never taken from what is held.
            await self._on_head(conn, latest, source, live=False)

    # --- catch-up -----------------------------------------------------------------------------

    async def _catch_up(self, conn: ProviderConnection, *, historical: bool) -> None:
        """Bring the store from its checkpoint (or ``from_block``) up to the provider's head."""
        chain_id = self.chain.chain_id
        checkpoint = await self.db.run(self.store.checkpoint, chain_id)
        latest = await self._block(conn, "latest")
        self.status.head = latest
        self.status.last_head_at = time.monotonic()
        if checkpoint is None:
            start = self.watch.start_block()
            if start is None or start > latest.number:
                # Nothing to load: begin live at the head.
                await self._commit([], latest)
                self.heads.reached(latest)
                return
            first = start
        else:
            fork = await self._verify_checkpoint(conn, checkpoint)
            # Load the last few stored blocks again: a log that came after its block's head
            # and was lost in a crash is found again; what is stored already is dropped.
            first = max(0, fork + 1 - max(self.chain.confirmations, RECHECK_BLOCKS))
        await self._load_range(conn, first, latest.number, historical=historical, end_head=latest)

    async def _verify_checkpoint(self, conn: ProviderConnection, checkpoint: Checkpoint) -> int:
        """The stored checkpoint's block number if still canonical, else the fork point (after
        marking the orphaned events removed)."""
        canonical = await self._block(conn, hex(checkpoint.block_number), missing_ok=True)
        if canonical is None:
            raise ProviderUnreachable(
                f"{conn.shown}: provider is behind the stored checkpoint "
                f"(block {checkpoint.block_number}); waiting for it"
            )
        if canonical.hash == checkpoint.block_hash:
            self.heads.reached(canonical)
            return checkpoint.block_number
        log.warning(
            "%s: stored checkpoint %d is no longer canonical (reorg while stopped)",
            self.chain.name,
            checkpoint.block_number,
        )
        return await self._rewind(conn, checkpoint.block_number)

    async def _load_range(
        self,
        conn: ProviderConnection,
        first: int,
        last: int,
        *,
        historical: bool = False,
        end_head: Head | None = None,
    ) -> None:
        """Load ``[first, last]`` with chunked ``eth_getLogs``; one transaction per chunk."""
        async for hi, logs in self._chunks(conn, first, last):
            head = (
                end_head
                if (end_head is not None and hi == end_head.number)
                else await self._block(conn, hex(hi))
            )
            await self._commit(self._route(logs, historical=historical), head)
            self.heads.reached(head)
        tip = self.heads.tip
        if end_head is not None and (tip is None or tip.number < end_head.number):
            await self._commit([], end_head)
            self.heads.reached(end_head)

    async def _recheck(self, conn: ProviderConnection) -> None:
        """Fetch the logs of the last RECHECK_BLOCKS stored blocks again and store what is
        missing: a log sent after its block's head may have gone with the last connection.
        Logs of other blocks at those heights (another fork) are left to the heads' reorg
        check."""
        tip = self.heads.tip
        if tip is None:
            return
        first = max(0, tip.number - RECHECK_BLOCKS + 1)
        async for _, logs in self._chunks(conn, first, tip.number):
            ours = [e for e in logs if self.heads.is_stored(e.block_number, e.block_hash)]
            if ours:
                await self._commit(self._route(ours, historical=False), None)

    async def _chunks(
        self, conn: ProviderConnection, first: int, last: int
    ) -> AsyncIterator[tuple[int, list[Log]]]:
        """The watched logs of ``[first, last]`` in chunks the provider accepts: (last block of
        the chunk, its logs). A chunk refused as too large is asked again smaller."""
        policy = RangePolicy(self.chain.getlogs_max_range)
        block = first
        while block <= last:
            lo, hi = policy.next_range(block, last)
            try:
                logs = await self._get_logs(conn, {"fromBlock": hex(lo), "toBlock": hex(hi)})
            except RpcErrorResponse as exc:
                if not is_range_error(exc.code, exc.message):
                    raise
                if policy.refused(exc.message, lo, hi):
                    log.info(
                        "%s: getLogs %d-%d refused (%s); smaller chunks",
                        self.chain.name,
                        lo,
                        hi,
                        exc.message,
                    )
                    continue
                head = await self._block(conn, hex(lo))
                logs = await self._get_logs(conn, {"blockHash": head.hash})
            else:
                policy.succeeded()
            yield hi, logs
            block = hi + 1

    async def _get_logs(self, conn: ProviderConnection, span: dict[str, str]) -> list[Log]:
        """Every watched log in a block range or block, in chain order, each once."""
        seen: dict[tuple[str, int], Log] = {}
        for flt in self.watch.log_filters():
            result = await conn.request("eth_getLogs", [{**flt, **span}])
            if not isinstance(result, list):
                raise RemoteProtocolError(f"eth_getLogs returned {type(result).__name__}")
            for raw in result:
                try:
                    entry = parse_log(raw)
                except RemoteProtocolError as exc:
                    self.sessions.malformed(conn, "log", exc)
                    continue
                if not entry.removed:
                    seen.setdefault(entry.key, entry)
        return sorted(seen.values(), key=lambda e: (e.block_number, e.log_index))

    # --- live ---------------------------------------------------------------------------------

    async def _on_log(self, entry: Log) -> None:
        self.stats["logs"] += 1
        action = self.heads.on_log(entry)
        if isinstance(action, StoreLate):
            # Its block is stored already: a duplicate (dropped by the store), or a log that
            # came after its block's head (logs and heads are separate subscriptions).
            await self._commit(self._route([action.log], historical=False), None)
        # Otherwise held until its head comes, or a removed log (reorgs come from the heads).

    async def _on_suspect(self, conn: ProviderConnection) -> None:
        """A watched log came that we cannot read. Its block is the tip (heads may come before
        their logs) or the next one: fetch the tip's logs now, and the next block's whole."""
        self.suspect = True
        tip = self.heads.tip
        if tip is not None and self.heads.is_stored(tip.number, tip.hash):
            logs = await self._get_logs(conn, {"blockHash": tip.hash})
            await self._commit(self._route(logs, historical=False), None)

    async def _on_head(
        self, conn: ProviderConnection, head: Head, source: int, *, live: bool = True
    ) -> None:
        self.stats["heads"] += 1
        tip = self.heads.tip
        action = self.heads.on_head(head, source, live=live)
        if action == Ignore(Reason.NOT_FIRST):
            return
        self.status.head = head if tip is None or head.number >= tip.number else self.status.head
        self.status.last_head_at = time.monotonic()
        if isinstance(action, Advance):
            await self._advance(action.head, action.logs)
            return
        if isinstance(action, Ignore):
            return  # a head we stored already
        current = await self._block(conn, hex(action.tip.number), missing_ok=True)
        then = self.heads.on_tip_block(action, current.hash if current is not None else None)
        if isinstance(then, FetchGap):
            self.stats["gaps"] += 1
            await self._load_range(conn, then.first, then.last, end_head=then.head)
            self.heads.released(then.head)
        elif isinstance(then, Reorg):
            self.stats["reorgs"] += 1
            self.metrics.reorgs.labels(self.chain.name).inc()
            fork = await self._rewind(conn, then.from_number)
            await self._load_range(conn, fork + 1, then.head.number, end_head=then.head)
            self.heads.released(then.head)
        # Otherwise nothing: the provider lags, or the head was queued while we loaded past it.

    async def _advance(self, head: Head, held: Sequence[Log]) -> None:
        """Decode the held logs of ``head`` and hand them to the writer, which commits them
        with the checkpoint moved to ``head``.

        When more is already waiting in the inbox (a burst, a fast chain), consecutive blocks
        are grouped into one transaction, up to GROUP_MAX_BLOCKS or GROUP_MAX_EVENTS; with an
        empty inbox the block goes to the writer at once, so grouping never adds latency.
        """
        logs = list(held)
        if self.suspect and self.conn is not None:
            # A log notification before this head was unreadable: ask for the block's logs.
            logs = await self._get_logs(self.conn, {"blockHash": head.hash})
            self.suspect = False
        events = self._route(logs, historical=False)
        if self.conn is not None:
            await self.tokens.remember(self.conn, events)
        self.writer.add(head, events)
        self.heads.advanced(head)
        if self.inbox.empty() or self.writer.full():
            await self.writer.hand_off()

    async def _rewind(self, conn: ProviderConnection, from_number: int) -> int:
        """Walk back from ``from_number`` to the highest stored block that is still canonical;
        mark the events above it that are not canonical ``removed``. Returns the fork number."""
        await self.writer.flush()
        chain_id = self.chain.chain_id
        window = await self.db.run(
            self.store.recent_blocks, chain_id, self.chain.confirmations + REORG_WINDOW
        )
        fork = -1
        fork_head: Head | None = None
        for stored in window:  # newest first
            if stored.number > from_number:
                continue
            canonical = await self._block(conn, hex(stored.number), missing_ok=True)
            if canonical is not None and canonical.hash == stored.hash:
                fork, fork_head = stored.number, canonical
                break
        if fork_head is None:
            # Deeper than the window: trust the node from the oldest block we remember.
            oldest = window[-1].number - 1 if window else from_number
            fork = max(0, oldest)
            fork_head = await self._block(conn, hex(fork))
        # Stored events above the fork whose block is not canonical are orphaned.
        above = await self.db.run(self.store.query, chain_id=chain_id, from_block=fork + 1)
        orphaned: set[str] = set()
        canonical_hash: dict[int, str | None] = {}
        for event in above:
            if event.status == "removed":
                continue
            number = event.log.block_number
            if number not in canonical_hash:
                block = await self._block(conn, hex(number), missing_ok=True)
                canonical_hash[number] = block.hash if block is not None else None
            if canonical_hash[number] != event.log.block_hash:
                orphaned.add(event.log.block_hash)
        checkpoint = Checkpoint(chain_id, fork_head.number, fork_head.hash)
        changed = await self.db.run(
            functools.partial(
                self.store.reorg, chain_id, orphaned, checkpoint, fork + 1, lease=self.lease
            )
        )
        self.heads.rewound(fork, fork_head)
        log.warning(
            "%s: reorg: fork at block %d, %d events removed", self.chain.name, fork, len(changed)
        )
        for change in changed:
            assert change.event is not None
            self.writer.unconfirmed.pop(change.event.id, None)
        if changed:
            self.sink.on_changes(changed)
        return fork

    # --- store and sink -----------------------------------------------------------------------

    def _route(self, logs: Sequence[Log], *, historical: bool) -> list[DecodedEvent]:
        events = []
        for entry in logs:
            event = self.watch.route(entry, historical=historical)
            if event is not None:
                events.append(event)
        return events

    async def _commit(self, events: list[DecodedEvent], head: Head | None) -> list[StoredEvent]:
        """Commit grouped blocks first (order), then ``events`` and ``head`` (if any)."""
        await self.writer.flush()
        if self.conn is not None:
            await self.tokens.remember(self.conn, events)
        if head is not None:
            self.heads.remember(head)
        return await self.writer.write(events, head, [head] if head is not None else [])

    async def _block(self, conn: ProviderConnection, tag: str, *, missing_ok: bool = False) -> Any:
        result = await conn.request("eth_getBlockByNumber", [tag, False])
        if result is None:
            if missing_ok:
                return None
            raise ProviderUnreachable(f"{conn.shown}: block {tag} not found")
        return parse_head(result)


__all__ = ["ChainIngest", "ChainwatchError"]
