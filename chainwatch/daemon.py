"""The daemon: wires provider -> ingest -> decode -> store -> fan-out, and owns every task.

Wiring happens here and nowhere else. Long-lived tasks belong to one ``asyncio.TaskGroup``;
SIGINT/SIGTERM cancel the main task, which lets the store finish the transaction in flight,
closes the connections and returns.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import json
import logging
import signal
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any, Literal

from chainwatch.config import ChainSettings, Settings
from chainwatch.core import rpc
from chainwatch.core.abi import load_abi_file
from chainwatch.core.model import Change
from chainwatch.core.sink import ChainStatus, EventSink, NullSink
from chainwatch.core.watch import WatchSet
from chainwatch.errors import ChainwatchError, StoreError, first_leaf
from chainwatch.ingest.chain import ChainIngest
from chainwatch.ingest.leader import ChainLeadership, holder_name
from chainwatch.metrics import Metrics, start_http
from chainwatch.server.feed import ChangeFeed
from chainwatch.store import Lease, Store

if TYPE_CHECKING:
    from chainwatch.server import Server

log = logging.getLogger("chainwatch.daemon")
# Collections of the middle generation between two full ones, once live (default 10).
GC_OLDEST_THRESHOLD = 100
# Seconds between two reads of the leases and the oldest cursor by a gateway.
LEADERS_POLL = 1.0


def build_watch(settings: Settings, chain: ChainSettings) -> WatchSet:
    """Compile what one chain watches: its contracts' ABIs and its wallet watches."""
    contracts = [
        (c.name, c.address, load_abi_file(c.abi), c.events, c.from_block)
        for c in settings.contracts_of(chain.name)
    ]
    wallets = [(w.addresses, w.standards, w.from_block) for w in settings.wallets_of(chain.name)]
    return WatchSet.build(chain.chain_id, contracts, wallets)


Role = Literal["all", "ingest", "serve"]


class Daemon:
    """One process in one of three roles (see the README's "Running several processes"):

    * ``all`` (``chainwatch run``): the store, a server (when wanted) and one ingest per chain,
      which hands what it commits to the server directly;
    * ``ingest`` (``chainwatch ingest``, PostgreSQL): an ingest candidate per chain - it leads a
      chain nobody leads and stands by otherwise (:mod:`chainwatch.ingest.leader`); ``/healthz``
      and ``/metrics`` on ``http_port``;
    * ``serve`` (``chainwatch serve``, PostgreSQL): a gateway - no provider connection; the
      server reads the change log (:mod:`chainwatch.server.feed`).
    """

    def __init__(
        self,
        settings: Settings,
        *,
        serve: bool = True,
        extra_sink: EventSink | None = None,
        schema: str | None = None,
        role: Role = "all",
        http_port: int | None = None,
    ) -> None:
        self.settings = settings
        self.role = role
        self.serve = serve if role == "all" else role == "serve"
        self.extra_sink = extra_sink
        self.schema = schema
        self.http_port = http_port
        self.statuses = {
            c.chain_id: ChainStatus(c.name, c.chain_id, c.confirmations) for c in settings.chains
        }
        self.metrics = Metrics()
        self.store: Store | None = None
        self.server: Server | None = None
        self.ingests: list[ChainIngest] = []
        self.leaderships: list[ChainLeadership] = []
        self.feed: ChangeFeed | None = None
        self.leaders: dict[int, tuple[str, int, float]] = {}  # a gateway's view of the leases
        self.started = asyncio.Event()
        # One thread for every write: chains share it, so writes reach the database in order.
        self.store_executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="store")

    async def run(self) -> None:
        """Run until cancelled; fatal start-up errors (ChainwatchError) propagate."""
        settings = self.settings
        rpc.cap_recursion_limit()
        store = await asyncio.to_thread(Store.open, settings.storage.url, schema=self.schema)
        self.store = store
        http = None
        try:
            if self.role != "all" and store.dialect != "postgresql":
                raise ChainwatchError(
                    f"chainwatch {self.role} needs PostgreSQL ([storage] url), not SQLite"
                )
            sink: EventSink = NullSink()
            server = None
            if self.serve:
                from chainwatch.server import Server

                health = self._gateway_health if self.role == "serve" else None
                server = Server(settings, store, self.statuses, self.metrics, health)
                await server.start()
                self.server = server
                sink = server
            if self.extra_sink is not None:
                sink = _Tee(sink, self.extra_sink)
            if self.http_port is not None:
                http = start_http(
                    settings.server.host, self.http_port, self.metrics, self._ingest_health
                )
            try:
                async with asyncio.TaskGroup() as tasks:
                    if self.role in ("all", "ingest"):
                        self._start_ingest(tasks, store, sink)
                        tasks.create_task(self._prune_changes(store), name="prune changes")
                    if self.role == "serve":
                        assert server is not None
                        self.feed = ChangeFeed(store, server, server.last_cursor)
                        tasks.create_task(self.feed.run(), name="change feed")
                        tasks.create_task(self._watch_leaders(store), name="leaders")
                    if server is not None:
                        tasks.create_task(server.serve_forever(), name="server")
                    tasks.create_task(self._announce(), name="announce")
            except ExceptionGroup as group:
                # A fatal start-up error of one chain stops the daemon: surface it as itself.
                first = first_leaf(group)
                if isinstance(first, ChainwatchError):
                    raise first from None
                raise
        finally:
            if http is not None:
                http.shutdown()
                http.server_close()
            # Let a write already handed to the store's thread finish before closing it.
            await asyncio.shield(asyncio.to_thread(self.store_executor.shutdown, wait=True))
            store.close()

    def _start_ingest(self, tasks: asyncio.TaskGroup, store: Store, sink: EventSink) -> None:
        settings = self.settings
        holder = holder_name()
        for chain in settings.chains:
            watch = build_watch(settings, chain)

            def make(lease: Lease | None, chain: ChainSettings = chain, watch: WatchSet = watch
                     ) -> ChainIngest:  # fmt: skip
                ingest = ChainIngest(
                    chain,
                    watch,
                    store,
                    sink,
                    self.statuses[chain.chain_id],
                    exit_on_fatal=True,
                    store_executor=self.store_executor,
                    lease=lease,
                    metrics=self.metrics,
                )
                self.ingests.append(ingest)
                return ingest

            if self.role == "all":
                tasks.create_task(make(None).run(), name=f"ingest {chain.name}")
                continue
            leadership = ChainLeadership(
                chain.name,
                chain.chain_id,
                store,
                make,
                holder=holder,
                ttl=settings.storage.lease_ttl,
                metrics=self.metrics,
            )
            self.leaderships.append(leadership)
            tasks.create_task(leadership.run(), name=f"leadership {chain.name}")

    async def _prune_changes(self, store: Store) -> None:
        """Drop changes older than ``[storage] changes_retention``, now and then."""
        retention = self.settings.storage.changes_retention
        every = min(3600.0, max(1.0, retention / 10))
        while True:
            try:
                pruned = await asyncio.to_thread(store.prune_changes, retention)
            except StoreError as exc:
                log.warning("cannot prune the change log: %s", exc)
            else:
                if pruned:
                    log.info("pruned %d changes older than %g s", pruned, retention)
                    server = self.server
                    if server is not None:
                        await server.refresh_oldest_cursor()
            await asyncio.sleep(every)

    async def _watch_leaders(self, store: Store) -> None:
        """A gateway's view of who leads each chain (for /healthz), and of the oldest cursor."""
        server = self.server
        while True:
            try:
                self.leaders = await asyncio.to_thread(store.leaders)
                if server is not None:
                    await server.refresh_oldest_cursor()
            except StoreError as exc:
                log.warning("cannot read the leases: %s", exc)
                self.leaders = {}
            await asyncio.sleep(LEADERS_POLL)

    def _gateway_health(self) -> tuple[int, bytes]:
        """200 while the change log is readable and every chain has a live leader."""
        chains: dict[str, Any] = {}
        healthy = self.feed is not None and not self.feed.failing
        for status in self.statuses.values():
            leader = status.chain_id in self.leaders
            healthy = healthy and leader
            chains[status.name] = {
                "chain_id": status.chain_id,
                "head": status.head.number if status.head is not None else None,
                "leader": leader,
            }
        body = {"status": "ok" if healthy else "unavailable", "role": "serve", "chains": chains}
        return (200 if healthy else 503), json.dumps(body, separators=(",", ":")).encode()

    def _ingest_health(self) -> tuple[int, bytes]:
        """200 while every chain this process leads has a connected provider."""
        chains: dict[str, Any] = {}
        healthy = True
        led = {
            lead.chain_id: lead.ingest is not None for lead in self.leaderships
        } if self.leaderships else {c: True for c in self.statuses}  # fmt: skip
        for status in self.statuses.values():
            leading = led.get(status.chain_id, False)
            connected = status.providers_connected
            healthy = healthy and (not leading or connected > 0)
            chains[status.name] = {
                "chain_id": status.chain_id,
                "leader": leading,
                "head": status.head.number if status.head is not None else None,
                "providers_connected": connected,
            }
        body = {"status": "ok" if healthy else "unavailable", "role": self.role, "chains": chains}
        return (200 if healthy else 503), json.dumps(body, separators=(",", ":")).encode()

    @property
    def server_port(self) -> int | None:
        """The port the server listens on, once started."""
        port = getattr(self.server, "port", None)
        return port if isinstance(port, int) else None

    async def _announce(self) -> None:
        if self.role == "all":
            await asyncio.gather(*(i.caught_up.wait() for i in self.ingests))
            log.info("caught up on %d chain(s)", len(self.ingests))
        # What lives now (the libraries, ABIs, configuration: hundreds of thousands of objects)
        # lives until exit: out of the garbage collector's sight, a full collection no longer
        # walks it (up to 80 ms a time while live, the worst of the alert latency).
        gc.collect()
        gc.freeze()
        # Once frozen, the oldest generation holds only what came since; the rule that a full
        # collection waits until that grew by a quarter then let one through every 100 young
        # collections (every 70,000 allocations), each walking all that is kept: caches, events
        # awaiting confirmation. Measured over 60,000 logs: 5 full collections of 30-64 ms and
        # 8.3-10 µs a log in the collector; with GC_OLDEST_THRESHOLD, none, and 7.3 µs.
        young, middle, _ = gc.get_threshold()
        gc.set_threshold(young, middle, GC_OLDEST_THRESHOLD)
        self.started.set()


class _Tee:
    """Hands every call to two sinks."""

    def __init__(self, first: EventSink, second: EventSink) -> None:
        self.first = first
        self.second = second

    def on_changes(self, changes: Sequence[Change]) -> None:
        self.first.on_changes(changes)
        self.second.on_changes(changes)


@contextlib.contextmanager
def cancel_on_signals(task: asyncio.Task[object]) -> Iterator[list[int]]:
    """SIGINT and SIGTERM cancel ``task``; yields the list of signals received."""
    loop = asyncio.get_running_loop()
    received: list[int] = []

    def handler(signum: int) -> None:
        received.append(signum)
        log.info("received %s, shutting down", signal.Signals(signum).name)
        task.cancel()

    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, handler, signum)
    try:
        yield received
    finally:
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(signum)


async def run_until_signal(main: Callable[[], object]) -> bool:
    """Run the coroutine function ``main`` until it returns or a signal stops it.

    Returns True when a signal stopped it (a clean shutdown).
    """
    task: asyncio.Task[object] = asyncio.create_task(main())  # type: ignore[arg-type]
    with cancel_on_signals(task) as received:
        try:
            await task
        except asyncio.CancelledError:
            if not received:
                raise
    return bool(received)
