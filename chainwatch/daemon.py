"""The daemon: wires provider -> ingest -> decode -> store -> fan-out, and owns every task.

Wiring happens here and nowhere else. Long-lived tasks belong to one ``asyncio.TaskGroup``;
SIGINT/SIGTERM cancel the main task, which lets the store finish the transaction in flight,
closes the connections and returns.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import signal
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor

from chainwatch.config import ChainSettings, Settings
from chainwatch.core import rpc
from chainwatch.core.abi import load_abi_file
from chainwatch.core.sink import ChainStatus, EventSink, NullSink
from chainwatch.core.watch import WatchSet
from chainwatch.errors import ChainwatchError
from chainwatch.ingest.chain import ChainIngest
from chainwatch.store import Store

log = logging.getLogger("chainwatch.daemon")
# Collections of the middle generation between two full ones, once live (default 10).
GC_OLDEST_THRESHOLD = 100


def build_watch(settings: Settings, chain: ChainSettings) -> WatchSet:
    """Compile what one chain watches: its contracts' ABIs and its wallet watches."""
    contracts = [
        (c.name, c.address, load_abi_file(c.abi), c.events, c.from_block)
        for c in settings.contracts_of(chain.name)
    ]
    wallets = [(w.addresses, w.standards, w.from_block) for w in settings.wallets_of(chain.name)]
    return WatchSet.build(chain.chain_id, contracts, wallets)


class Daemon:
    """One process: the store, a server (when wanted) and one ingest per chain."""

    def __init__(
        self,
        settings: Settings,
        *,
        serve: bool = True,
        extra_sink: EventSink | None = None,
        schema: str | None = None,
    ) -> None:
        self.settings = settings
        self.serve = serve
        self.extra_sink = extra_sink
        self.schema = schema
        self.statuses = {
            c.chain_id: ChainStatus(c.name, c.chain_id, c.confirmations) for c in settings.chains
        }
        self.store: Store | None = None
        self.server: object | None = None
        self.ingests: list[ChainIngest] = []
        self.started = asyncio.Event()
        # One thread for every write: chains share it, so writes reach the database in order.
        self.store_executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="store")

    async def run(self) -> None:
        """Run until cancelled; fatal start-up errors (ChainwatchError) propagate."""
        settings = self.settings
        rpc.cap_recursion_limit()
        store = await asyncio.to_thread(Store.open, settings.storage.url, schema=self.schema)
        self.store = store
        try:
            sink: EventSink = NullSink()
            server = None
            if self.serve:
                from chainwatch.server import Server

                server = Server(settings, store, self.statuses)
                await server.start()
                self.server = server
                sink = server
            if self.extra_sink is not None:
                sink = _Tee(sink, self.extra_sink)
            for chain in settings.chains:
                self.ingests.append(
                    ChainIngest(
                        chain,
                        build_watch(settings, chain),
                        store,
                        sink,
                        self.statuses[chain.chain_id],
                        exit_on_fatal=True,
                        store_executor=self.store_executor,
                    )
                )
            try:
                async with asyncio.TaskGroup() as tasks:
                    for ingest in self.ingests:
                        tasks.create_task(ingest.run(), name=f"ingest {ingest.chain.name}")
                    if server is not None:
                        tasks.create_task(server.serve_forever(), name="server")
                    tasks.create_task(self._announce(), name="announce")
            except ExceptionGroup as group:
                # A fatal start-up error of one chain stops the daemon: surface it as itself.
                first = _first_leaf(group)
                if isinstance(first, ChainwatchError):
                    raise first from None
                raise
        finally:
            # Let a write already handed to the store's thread finish before closing it.
            await asyncio.shield(asyncio.to_thread(self.store_executor.shutdown, wait=True))
            store.close()

    @property
    def server_port(self) -> int | None:
        """The port the server listens on, once started."""
        port = getattr(self.server, "port", None)
        return port if isinstance(port, int) else None

    async def _announce(self) -> None:
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


def _first_leaf(group: BaseExceptionGroup[BaseException]) -> BaseException:
    first = group.exceptions[0]
    return _first_leaf(first) if isinstance(first, BaseExceptionGroup) else first


class _Tee:
    """Hands every call to two sinks."""

    def __init__(self, first: EventSink, second: EventSink) -> None:
        self.first = first
        self.second = second

    def on_head(self, chain_id: int, head: object) -> None:
        self.first.on_head(chain_id, head)  # type: ignore[arg-type]
        self.second.on_head(chain_id, head)  # type: ignore[arg-type]

    def on_events(self, chain_id: int, events: object) -> None:
        self.first.on_events(chain_id, events)  # type: ignore[arg-type]
        self.second.on_events(chain_id, events)  # type: ignore[arg-type]


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
