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
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections.abc import AsyncIterator, Callable, Sequence
from concurrent.futures import Executor
from dataclasses import dataclass
from typing import Any, TypeVar

from chainwatch.config import ChainSettings, redact_url
from chainwatch.core.backoff import backoff
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
    quick_init,
)
from chainwatch.core.ranges import RangePolicy, is_range_error
from chainwatch.core.sink import REORG_WINDOW, ChainStatus, EventSink, ProviderStatus
from chainwatch.core.standards import TRANSFER_TOPIC0
from chainwatch.core.watch import WatchSet
from chainwatch.errors import (
    ChainwatchError,
    ProviderError,
    ProviderUnreachable,
    RemoteProtocolError,
    RequestTimeout,
    RpcErrorResponse,
    WrongChain,
)
from chainwatch.ingest.provider import ProviderConnection
from chainwatch.metrics import Metrics
from chainwatch.store import Lease, Store

log = logging.getLogger("chainwatch.ingest")
T = TypeVar("T")

# The stale-connection watchdog: before a block time is observed, and its floor.
DEFAULT_STALE_AFTER = 120.0
MIN_STALE_AFTER = 10.0
# A provider that sends more malformed messages than this in one session is recycled.
MAX_MALFORMED = 100
# Heads and logs of every session waiting for the pipeline. When full, sessions stop reading
# (their sockets apply backpressure to the provider) until the pipeline catches up.
INBOX_SIZE = 10_000
# At most this much is grouped into one transaction while the inbox has more waiting.
GROUP_MAX_BLOCKS = 64
GROUP_MAX_EVENTS = 5_000
# Groups handed to the writer and not yet taken; the pipeline waits when the writer is this far
# behind (the database is the bottleneck), so memory stays bounded.
WRITE_QUEUE = 8
# Seconds to wait for a token's symbol() or decimals(); a contract that loops is no token.
TOKEN_CALL_TIMEOUT = 5.0
# Events stored `new` kept in memory until confirmed (beyond it they are read back when needed).
MAX_UNCONFIRMED = 100_000
# Stored blocks whose logs are fetched again on a reconnect: heads and logs are separate
# subscriptions, and a log sent after its block's head may have gone with the connection.
RECHECK_BLOCKS = 8


@quick_init
@dataclass(frozen=True, slots=True)
class _Item:
    """What a session hands to the pipeline: a (re)connection, a head or a log."""

    kind: str  # "connected" | "head" | "log" | "suspect" (an unreadable log came)
    conn: ProviderConnection
    source: int  # index of the provider
    value: Head | Log | None


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
        # This process's leadership of the chain (PostgreSQL roles): every write carries it,
        # and a write after the lease was lost fails with LeadershipLost (fencing).
        self.lease = lease
        self.metrics = metrics or Metrics()
        self._events_stored = self.metrics.events_stored.labels(chain.name)
        self._head_block = self.metrics.head_block.labels(chain.name)
        self.metrics.reorgs.labels(chain.name)  # listed at 0 before the first one
        self.metrics.provider_reconnects.labels(chain.name)
        self.status = status or ChainStatus(chain.name, chain.chain_id, chain.confirmations)
        if not self.status.providers:
            self.status.providers = [ProviderStatus(redact_url(u)) for u in chain.providers]
        self.exit_on_fatal = exit_on_fatal
        # The tip, the recent stored blocks and the held logs: the reorg and gap rules.
        self.heads = HeadTracker()
        self.store_executor = store_executor
        self.suspect = False  # an unreadable log notification came: fetch the next block whole
        self.group_heads: list[Head] = []  # blocks advanced to, not yet handed to the writer
        self.group_events: list[DecodedEvent] = []
        self.writes: asyncio.Queue[tuple[list[Head], list[DecodedEvent]]] = asyncio.Queue(
            WRITE_QUEUE
        )
        self.unconfirmed: dict[int, StoredEvent] = {}  # id -> stored event still `new`
        self.known_tokens: set[str] = set()
        self.conn: ProviderConnection | None = None  # the provider of the item in process
        self.failed_at_start: set[int] = set()
        self.connected_once: set[int] = set()
        self.inbox: asyncio.Queue[_Item] = asyncio.Queue(INBOX_SIZE)
        self.caught_up = asyncio.Event()
        self.stats = {"heads": 0, "logs": 0, "events": 0, "reorgs": 0, "malformed": 0, "gaps": 0}

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
            tasks.create_task(self._writer(), name=f"writer {self.chain.name}")
            if self.chain.mode == "race":
                for index in providers:
                    tasks.create_task(self._provider_loop([index]), name=f"provider {index}")
            else:
                tasks.create_task(self._provider_loop(providers), name="providers")

    async def _provider_loop(self, indexes: list[int]) -> None:
        delays = backoff()
        while True:
            for index in indexes:
                pstatus = self.status.providers[index]
                started = time.monotonic()
                try:
                    await self._session(index)
                except WrongChain as exc:
                    pstatus.last_error = str(exc)
                    log.error("%s", exc)
                    if self.exit_on_fatal:
                        raise
                except (ProviderError, RemoteProtocolError, RpcErrorResponse) as exc:
                    pstatus.last_error = str(exc)
                    log.warning("%s: %s", self.chain.name, exc)
                    if not self.caught_up.is_set() and index not in self.connected_once:
                        # Never reached: at start, that is the user's to fix (a wrong URL,
                        # a provider down). One that connected and then failed is retried.
                        self.failed_at_start.add(index)
                        if self.exit_on_fatal and len(self.failed_at_start) == len(
                            self.chain.providers
                        ):
                            raise
                finally:
                    pstatus.connected = False
                    self.metrics.provider_reconnects.labels(self.chain.name).inc()
                if not any(p.connected for p in self.status.providers):
                    log.warning("%s: no provider connected", self.chain.name)
                if time.monotonic() - started > 30:
                    delays = backoff()  # the connection held: start again from a short delay
            await asyncio.sleep(next(delays))

    async def _session(self, index: int) -> None:
        """One connection: check the chain, subscribe, then queue what the provider sends."""
        chain = self.chain
        pstatus = self.status.providers[index]
        async with ProviderConnection(
            chain.providers[index],
            ping_interval=chain.ping_interval,
            ping_timeout=chain.ping_timeout,
        ) as conn:
            reported = _quantity(await conn.request("eth_chainId", []), "eth_chainId")
            if reported != chain.chain_id:
                raise WrongChain(
                    f"{conn.shown}: provider is on chain {reported}, "
                    f"but chains '{chain.name}' has chain_id = {chain.chain_id}"
                )
            heads_sub = await conn.subscribe(["newHeads"])
            log_subs = set()
            for flt in self.watch.log_filters():
                log_subs.add(await conn.subscribe(["logs", flt]))
            pstatus.connected = True
            pstatus.last_error = None
            self.connected_once.add(index)
            log.info("%s: connected to %s", chain.name, conn.shown)
            # Subscribed first, caught up second: what arrives meanwhile waits in the inbox.
            await self.inbox.put(_Item("connected", conn, index, None))
            while True:
                note = conn.notification_nowait()
                if note is None:  # nothing waiting: wait, with the stale-connection watchdog
                    try:
                        async with asyncio.timeout(self._stale_after()):
                            note = await conn.notification()
                    except TimeoutError:
                        stale = self._stale_after()
                        raise ProviderUnreachable(
                            f"{conn.shown}: no new head for {stale:.0f} s; reconnecting"
                        ) from None
                if conn.malformed > MAX_MALFORMED:
                    raise ProviderUnreachable(
                        f"{conn.shown}: {conn.malformed} malformed messages; reconnecting"
                    )
                try:
                    if note.subscription == heads_sub:
                        await self.inbox.put(_Item("head", conn, index, parse_head(note.result)))
                    elif note.subscription in log_subs:
                        try:
                            entry = parse_log(note.result)
                        except RemoteProtocolError:
                            # A watched log we cannot read: the next block is fetched whole.
                            await self.inbox.put(_Item("suspect", conn, index, None))
                            raise
                        await self.inbox.put(_Item("log", conn, index, entry))
                    else:
                        raise RemoteProtocolError(f"unknown subscription {note.subscription!r:.40}")
                except RemoteProtocolError as exc:
                    self._malformed(conn, "notification", exc)

    async def _pipeline(self) -> None:
        """Process every session's items in order; a provider failing mid-way is recycled."""
        while True:
            item = await self.inbox.get()
            self.conn = item.conn
            try:
                if item.kind == "connected":
                    await self._on_connect(item.conn, item.source)
                elif item.kind == "suspect":
                    await self._on_suspect(item.conn)
                elif item.kind == "head":
                    assert isinstance(item.value, Head)
                    await self._on_head(item.conn, item.value, item.source)
                else:
                    assert isinstance(item.value, Log)
                    await self._on_log(item.value)
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

    def _stale_after(self) -> float:
        """Seconds without a new head after which the connection is recycled: the configured
        ``stale_after``, else 3 x the observed block time (at least MIN_STALE_AFTER)."""
        if self.chain.stale_after is not None:
            return self.chain.stale_after
        block_time = self.heads.block_time
        if block_time is None:
            return DEFAULT_STALE_AFTER
        return max(MIN_STALE_AFTER, 3 * block_time)

    def _malformed(self, conn: ProviderConnection, what: str, exc: object) -> None:
        self.stats["malformed"] += 1
        conn.malformed += 1
        log.warning("%s: %s: skipped a malformed %s: %s", self.chain.name, conn.shown, what, exc)

    # --- catch-up -----------------------------------------------------------------------------

    async def _catch_up(self, conn: ProviderConnection, *, historical: bool) -> None:
        """Bring the store from its checkpoint (or ``from_block``) up to the provider's head."""
        chain_id = self.chain.chain_id
        checkpoint = await self._db(self.store.checkpoint, chain_id)
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
                    self._malformed(conn, "log", exc)
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
            await self._remember_tokens(self.conn, events)
        self.group_events += events
        self.group_heads.append(head)
        self.heads.advanced(head)
        if (
            self.inbox.empty()
            or len(self.group_heads) >= GROUP_MAX_BLOCKS
            or len(self.group_events) >= GROUP_MAX_EVENTS
        ):
            await self._hand_off()

    async def _hand_off(self) -> None:
        """Queue the grouped blocks for the writer; waits only while the writer is
        WRITE_QUEUE groups behind."""
        if self.group_heads:
            job = (self.group_heads, self.group_events)
            self.group_heads, self.group_events = [], []
            await self.writes.put(job)

    async def _flush(self) -> None:
        """Return once every block advanced to is committed and told to the sink: before
        anything else reads or writes the store (a reorg, a gap, a late log)."""
        await self._hand_off()
        await self.writes.join()

    async def _writer(self) -> None:
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
            await self._write(events, heads[-1], heads)
            for head in heads:
                self.heads.released(head)
            for _ in range(taken):
                self.writes.task_done()

    async def _rewind(self, conn: ProviderConnection, from_number: int) -> int:
        """Walk back from ``from_number`` to the highest stored block that is still canonical;
        mark the events above it that are not canonical ``removed``. Returns the fork number."""
        await self._flush()
        chain_id = self.chain.chain_id
        window = await self._db(
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
        above = await self._db(self.store.query, chain_id=chain_id, from_block=fork + 1)
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
        changed = await self._db(
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
            self.unconfirmed.pop(change.event.id, None)
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
        await self._flush()
        if self.conn is not None:
            await self._remember_tokens(self.conn, events)
        if head is not None:
            self.heads.remember(head)
        return await self._write(events, head, [head] if head is not None else [])

    async def _write(
        self, events: list[DecodedEvent], head: Head | None, blocks: list[Head]
    ) -> list[StoredEvent]:
        """One transaction: the events, the blocks in the window, the checkpoint at ``head``
        and the confirmations it brings, with their changes. Then the sink gets the changes."""
        chain_id = self.chain.chain_id
        checkpoint = Checkpoint(chain_id, head.number, head.hash) if head is not None else None
        if checkpoint is None:
            changes = await self._db(
                functools.partial(self.store.write_batch, events, None, blocks, lease=self.lease)
            )
        else:
            depth = head.number - self.chain.confirmations + 1 if head is not None else -1
            changes = await self._db(
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
                await self._db(self.store.prune_blocks, chain_id, keep_from)
        if changes:
            self.sink.on_changes(changes)
        return stored

    async def _db(self, call: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Run a store call in the store's thread (one writer, in order)."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(
            self.store_executor, functools.partial(call, *args, **kwargs)
        )

    async def _block(self, conn: ProviderConnection, tag: str, *, missing_ok: bool = False) -> Any:
        result = await conn.request("eth_getBlockByNumber", [tag, False])
        if result is None:
            if missing_ok:
                return None
            raise ProviderUnreachable(f"{conn.shown}: block {tag} not found")
        return parse_head(result)

    async def token_metadata(
        self, conn: ProviderConnection, address: str
    ) -> tuple[str | None, int | None]:
        """ERC-20 ``symbol()`` and ``decimals()`` by ``eth_call``; None where a token lacks one."""
        symbol = await _call_string(conn, address, "0x95d89b41")
        decimals_raw = await _call(conn, address, "0x313ce567")
        decimals = None
        if decimals_raw is not None and len(decimals_raw) == 32:
            value = int.from_bytes(decimals_raw, "big")
            decimals = value if value <= 255 else None
        return symbol, decimals

    async def _remember_tokens(
        self, conn: ProviderConnection, events: Sequence[DecodedEvent]
    ) -> None:
        for event in events:
            entry = event.log
            if entry.address in self.known_tokens or len(entry.topics) != 3:
                continue
            if entry.topics[0] != TRANSFER_TOPIC0 or event.error is not None:
                continue
            if await self._db(self.store.token, self.chain.chain_id, entry.address) is None:
                try:
                    symbol, decimals = await self.token_metadata(conn, entry.address)
                except ProviderError:
                    continue  # the provider went away: the events are written, ask next time
                await self._db(
                    self.store.save_token, self.chain.chain_id, entry.address, symbol, decimals
                )
            self.known_tokens.add(entry.address)


async def _call(conn: ProviderConnection, address: str, selector: str) -> bytes | None:
    try:
        result = await conn.request(
            "eth_call",
            [{"to": address, "data": selector}, "latest"],
            answer_within=TOKEN_CALL_TIMEOUT,
        )
    except (RpcErrorResponse, RequestTimeout):
        # Reverted, or a contract that runs until the node gives up: not a token we can read.
        return None
    if not isinstance(result, str) or not result.startswith("0x"):
        return None
    try:
        return bytes.fromhex(result[2:])
    except ValueError:
        return None


async def _call_string(conn: ProviderConnection, address: str, selector: str) -> str | None:
    raw = await _call(conn, address, selector)
    if raw is None:
        return None
    if len(raw) == 32:  # some old tokens return bytes32
        return raw.rstrip(b"\0").decode("utf-8", "replace") or None
    if len(raw) >= 64:
        length = int.from_bytes(raw[32:64], "big")
        if 64 + length <= len(raw):
            return raw[64 : 64 + length].decode("utf-8", "replace")
    return None


def _quantity(value: Any, what: str) -> int:
    if isinstance(value, str) and value.startswith("0x"):
        try:
            return int(value, 16)
        except ValueError:
            pass
    raise RemoteProtocolError(f"{what}: expected a hex quantity, got {value!r:.60}")


__all__ = ["ChainIngest", "ChainwatchError"]
