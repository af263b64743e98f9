"""The provider connections of one chain: sessions, reconnection and the stale watchdog.

Each session checks the provider's chain id, subscribes to ``newHeads`` and to the watched
``logs`` filters, announces itself (:class:`Connected`) and then queues what the provider sends
(:class:`HeadReceived`, :class:`LogReceived`, :class:`Unreadable`) in the pipeline's inbox, in
arrival order. A session ends when the connection fails, when no head came for
:meth:`ProviderSessions.stale_after` seconds, or after MAX_MALFORMED malformed messages; the
provider is then reconnected with backoff.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from chainwatch.config import ChainSettings
from chainwatch.core.backoff import backoff
from chainwatch.core.model import Head, Log, parse_head, parse_log, quick_init
from chainwatch.core.sink import ChainStatus
from chainwatch.core.watch import WatchSet
from chainwatch.errors import (
    ProviderError,
    ProviderUnreachable,
    RemoteProtocolError,
    RpcErrorResponse,
    WrongChain,
)
from chainwatch.ingest.provider import ProviderConnection
from chainwatch.metrics import Metrics

log = logging.getLogger("chainwatch.ingest")

# The stale-connection watchdog: before a block time is observed, and its floor.
DEFAULT_STALE_AFTER = 120.0
MIN_STALE_AFTER = 10.0
# A provider that sends more malformed messages than this in one session is recycled.
MAX_MALFORMED = 100
# Heads and logs of every session waiting for the pipeline. When full, sessions stop reading
# (their sockets apply backpressure to the provider) until the pipeline catches up.
INBOX_SIZE = 10_000


@quick_init
@dataclass(frozen=True, slots=True)
class Connected:
    """Provider ``source`` is (re)connected and subscribed: catch up through ``conn``."""

    conn: ProviderConnection
    source: int  # index of the provider


@quick_init
@dataclass(frozen=True, slots=True)
class HeadReceived:
    conn: ProviderConnection
    source: int
    head: Head


@quick_init
@dataclass(frozen=True, slots=True)
class LogReceived:
    conn: ProviderConnection
    source: int
    log: Log


@quick_init
@dataclass(frozen=True, slots=True)
class Unreadable:
    """A watched log notification came that could not be read."""

    conn: ProviderConnection
    source: int


Received = Connected | HeadReceived | LogReceived | Unreadable


class ProviderSessions:
    """Holds one chain's provider connections and queues what they send in ``inbox``."""

    def __init__(
        self,
        chain: ChainSettings,
        watch: WatchSet,
        status: ChainStatus,
        metrics: Metrics,
        stats: dict[str, int],
        *,
        caught_up: asyncio.Event,
        block_time: Callable[[], float | None],
        exit_on_fatal: bool = False,
    ) -> None:
        self.chain = chain
        self.watch = watch
        self.status = status
        self.metrics = metrics
        self.stats = stats  # the ingest's counters: "malformed" is counted here
        self.caught_up = caught_up  # set by the pipeline after the first catch-up
        self.block_time = block_time  # seconds between heads, as observed (None: not yet)
        self.exit_on_fatal = exit_on_fatal
        self.inbox: asyncio.Queue[Received] = asyncio.Queue(INBOX_SIZE)
        self.failed_at_start: set[int] = set()
        self.connected_once: set[int] = set()

    async def run(self, indexes: list[int]) -> None:
        """Keep one of the providers ``indexes`` connected, the next on failure, forever."""
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
            await self.inbox.put(Connected(conn, index))
            while True:
                note = conn.notification_nowait()
                if note is None:  # nothing waiting: wait, with the stale-connection watchdog
                    try:
                        async with asyncio.timeout(self.stale_after()):
                            note = await conn.notification()
                    except TimeoutError:
                        stale = self.stale_after()
                        raise ProviderUnreachable(
                            f"{conn.shown}: no new head for {stale:.0f} s; reconnecting"
                        ) from None
                if conn.malformed > MAX_MALFORMED:
                    raise ProviderUnreachable(
                        f"{conn.shown}: {conn.malformed} malformed messages; reconnecting"
                    )
                try:
                    if note.subscription == heads_sub:
                        await self.inbox.put(HeadReceived(conn, index, parse_head(note.result)))
                    elif note.subscription in log_subs:
                        try:
                            entry = parse_log(note.result)
                        except RemoteProtocolError:
                            # A watched log we cannot read: the next block is fetched whole.
                            await self.inbox.put(Unreadable(conn, index))
                            raise
                        await self.inbox.put(LogReceived(conn, index, entry))
                    else:
                        raise RemoteProtocolError(f"unknown subscription {note.subscription!r:.40}")
                except RemoteProtocolError as exc:
                    self.malformed(conn, "notification", exc)

    def stale_after(self) -> float:
        """Seconds without a new head after which the connection is recycled: the configured
        ``stale_after``, else 3 x the observed block time (at least MIN_STALE_AFTER)."""
        if self.chain.stale_after is not None:
            return self.chain.stale_after
        block_time = self.block_time()
        if block_time is None:
            return DEFAULT_STALE_AFTER
        return max(MIN_STALE_AFTER, 3 * block_time)

    def malformed(self, conn: ProviderConnection, what: str, exc: object) -> None:
        """Count and log a malformed message of ``conn``, which is recycled past MAX_MALFORMED."""
        self.stats["malformed"] += 1
        conn.malformed += 1
        log.warning("%s: %s: skipped a malformed %s: %s", self.chain.name, conn.shown, what, exc)


def _quantity(value: Any, what: str) -> int:
    if isinstance(value, str) and value.startswith("0x"):
        try:
            return int(value, 16)
        except ValueError:
            pass
    raise RemoteProtocolError(f"{what}: expected a hex quantity, got {value!r:.60}")
