"""What the ingest side hands to the fan-out side, and the live state of each chain.

What a consumer receives is defined by the store's change log alone (``Change``: a cursor and
what changed). In one process (``chainwatch run``) the ingest hands the changes it has just
committed to an ``EventSink`` on the event loop - a fast hand-off of exactly the log's entries,
after the commit, so the sink only ever sees what is durable. A gateway process reads the same
entries from the log by cursor. Calls must not block: a sink queues and returns.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

from chainwatch.core.model import Change, Head

# Recent blocks kept beyond the confirmation depth for reorg detection; a reorg deeper than
# confirmations + REORG_WINDOW is beyond what chainwatch repairs.
REORG_WINDOW = 64


class EventSink(Protocol):
    def on_changes(self, changes: Sequence[Change]) -> None:
        """Committed changes of one transaction, in cursor order."""


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

    def on_changes(self, changes: Sequence[Change]) -> None:
        pass
