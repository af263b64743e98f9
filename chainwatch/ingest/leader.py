"""Leadership of one chain's ingest, held through the store (PostgreSQL).

Any number of ingest processes may run for a chain; one leads it, the others stand by. The
lead is a lease row (``leases``: holder, epoch, expiry by the database's clock):

* a standby tries to take it every ``ttl / 10`` seconds (at least 0.2 s, at most 1 s); it
  succeeds when the row's expiry has passed, and the epoch grows by one;
* the leader renews it every ``ttl / 3`` seconds; a renewal that finds the lease gone (expired
  and taken, e.g. after the process was paused) ends the lead;
* every write of the leader carries the lease and is checked inside its own transaction, under
  a lock of the lease row: a process that lost the lead can never commit another event for the
  chain (fencing), whatever it believes;
* on SIGTERM the leader gives the lease up at once, so a standby takes over at its next try.

A leader that cannot reach the database cannot renew: it stops leading once ``ttl`` has passed
since its last renewal, and its writes would fail anyway.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import time
import uuid
from collections.abc import Callable

from chainwatch.errors import LeadershipLost, StoreError, first_leaf
from chainwatch.ingest.chain import ChainIngest
from chainwatch.metrics import Metrics
from chainwatch.store import Lease, Store

__all__ = ["ChainLeadership", "holder_name"]

log = logging.getLogger("chainwatch.leader")


def holder_name() -> str:
    """This process's name in the leases table: host, pid and a random part."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


class ChainLeadership:
    """Stands by for one chain and runs its ingest while it leads."""

    def __init__(
        self,
        chain_name: str,
        chain_id: int,
        store: Store,
        make_ingest: Callable[[Lease], ChainIngest],
        *,
        holder: str,
        ttl: float,
        metrics: Metrics,
    ) -> None:
        self.chain_name = chain_name
        self.chain_id = chain_id
        self.store = store
        self.make_ingest = make_ingest
        self.holder = holder
        self.ttl = ttl
        self.retry = min(1.0, max(0.2, ttl / 10))
        self.metrics = metrics
        self.ingest: ChainIngest | None = None
        self.terms = 0  # how many times this process took the lead

    async def run(self) -> None:
        """Stand by, lead, stand by again ... until cancelled (then give the lease up)."""
        gauge = self.metrics.leader.labels(self.chain_name)
        gauge.set(0)
        while True:
            lease = await self._acquire()
            if lease is None:
                await asyncio.sleep(self.retry)
                continue
            self.terms += 1
            gauge.set(1)
            log.info("%s: leading (epoch %d)", self.chain_name, lease.epoch)
            try:
                await self._lead(lease)
            except* StoreError as group:
                # LeadershipLost (fenced, or the lease was taken over), or a write that failed
                # (the database ended a transaction this process left idle while paused):
                # either way another process may lead now; stand by and try again.
                log.warning("%s: %s; standing by", self.chain_name, first_leaf(group))
            finally:
                gauge.set(0)
                self.ingest = None
                # On cancellation (SIGTERM) as after any end of the lead: give it up at once.
                await asyncio.shield(self._release(lease))

    async def _acquire(self) -> Lease | None:
        try:
            return await asyncio.to_thread(
                self.store.acquire_lease, self.chain_id, self.holder, self.ttl
            )
        except StoreError as exc:
            log.warning("%s: cannot reach the leases: %s", self.chain_name, exc)
            return None

    async def _lead(self, lease: Lease) -> None:
        ingest = self.ingest = self.make_ingest(lease)
        async with asyncio.TaskGroup() as tasks:
            tasks.create_task(ingest.run(), name=f"ingest {self.chain_name}")
            tasks.create_task(self._renew(lease), name=f"lease {self.chain_name}")

    async def _renew(self, lease: Lease) -> None:
        renewed_at = time.monotonic()
        while True:
            await asyncio.sleep(self.ttl / 3)
            try:
                ours = await asyncio.to_thread(self.store.renew_lease, lease, self.ttl)
            except StoreError as exc:
                if time.monotonic() - renewed_at >= self.ttl:
                    raise LeadershipLost(f"lease not renewed for {self.ttl:g} s: {exc}") from exc
                log.warning("%s: cannot renew the lease: %s", self.chain_name, exc)
                continue
            if not ours:
                raise LeadershipLost(f"the lease of epoch {lease.epoch} was taken over")
            renewed_at = time.monotonic()

    async def _release(self, lease: Lease) -> None:
        try:
            await asyncio.to_thread(self.store.release_lease, lease)
        except StoreError as exc:
            log.warning("%s: cannot give the lease up (it expires by itself): %s",
                        self.chain_name, exc)  # fmt: skip
