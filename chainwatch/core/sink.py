"""What the ingest side hands to the fan-out side, and the live state of each chain.

The daemon wires one ``EventSink`` (the downstream server) to every chain's ingest. Ingest
calls it on the event loop, after the store has committed, so the sink only ever sees what is
durable. Calls must not block: a sink queues and returns.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

from chainwatch.core.model import Head, StoredEvent

# Recent blocks kept beyond the confirmation depth for reorg detection; a reorg deeper than
# confirmations + REORG_WINDOW is beyond what chainwatch repairs. Resuming subscribers are told
# of the removals inside it.
REORG_WINDOW = 64


class EventSink(Protocol):
    def on_head(self, chain_id: int, head: Head) -> None:
        """A new canonical head of ``chain_id`` (after the events up to it are stored)."""

    def on_events(self, chain_id: int, events: Sequence[StoredEvent]) -> None:
        """Stored events whose status is new, or changed (``confirmed``/``removed``); each keeps
        its id through its life. Ordered by (block, log index) within a call."""


@dataclass(slots=True)
class ProviderStatus:
    url: str  # redacted
    connected: bool = False
    last_error: str | None = None


@dataclass(slots=True)
class ChainStatus:
    """Live state of one chain, written by its ingest and read by /healthz and eth_blockNumber.

    ``last_head_at`` is a ``time.monotonic()`` reading (0.0 before the first head).
    """

    name: str
    chain_id: int
    confirmations: int
    head: Head | None = None
    last_head_at: float = 0.0
    providers: list[ProviderStatus] = field(default_factory=list)

    @property
    def providers_connected(self) -> int:
        return sum(1 for p in self.providers if p.connected)


class NullSink:
    """A sink that drops everything (daemon runs without a server, tests)."""

    def on_head(self, chain_id: int, head: Head) -> None:
        pass

    def on_events(self, chain_id: int, events: Sequence[StoredEvent]) -> None:
        pass
