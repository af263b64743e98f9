"""The reorg and gap bookkeeping of one chain's ingest, with no I/O.

A :class:`HeadTracker` is fed the heads and logs the providers send and answers with what the
ingest must do: an event below. It never fetches or stores anything itself; the ingest
(:mod:`chainwatch.ingest.chain`) performs what the event asks and then tells the tracker what is
stored (:meth:`~HeadTracker.advanced`, :meth:`~HeadTracker.reached`,
:meth:`~HeadTracker.remember`, :meth:`~HeadTracker.rewound`, :meth:`~HeadTracker.released`).

What it keeps: the *tip* (the newest block whose events are all stored), the provider whose head
made it (*tip source*), the hashes of the recent stored blocks by number, and the logs held for
blocks whose head has not come yet (heads and logs are separate ``eth_subscribe``
subscriptions, in no guaranteed order).

A head (:meth:`~HeadTracker.on_head`), rules in order:

==============================================================  ============================
at or below the tip, from another provider than the tip's        ``Ignore(NOT_FIRST)``
no tip yet, or a live head whose parent is the tip               ``Advance(head, held logs)``
a block stored already                                           ``Ignore(STORED)``
anything else                                                    ``CheckReorg(head, tip)``
==============================================================  ============================

The first rule is "first arrival wins": another provider's copy, or a lagging or competing head
at our height, is dropped; only a longer chain moves us to another fork, so there is no flapping
between providers. For ``CheckReorg`` the ingest asks the provider for its block at the tip's
height and passes its hash to :meth:`~HeadTracker.on_tip_block`:

==============================================================  ============================
no such block                                                    ``Ignore(LAGGING)``
the tip's hash, the head at or below the tip                     ``Ignore(BEHIND)``
the tip's hash                                                   ``FetchGap(tip+1, head)``
another hash                                                     ``Reorg(from_number, head)``
==============================================================  ============================

A log (:meth:`~HeadTracker.on_log`): a ``removed`` one is ignored (reorgs are found from the
heads); one of a stored block is stored at once (``StoreLate``: a duplicate the store drops, or a
log sent after its block's head); any other is held until its head comes (``Hold``) and forgotten
PENDING_HORIZON blocks behind a released head (an orphan's log never gets its head).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from chainwatch.core.model import Head, Log

__all__ = [
    "PENDING_HORIZON",
    "RECENT_BLOCKS",
    "Advance",
    "CheckReorg",
    "FetchGap",
    "HeadAction",
    "HeadTracker",
    "Hold",
    "Ignore",
    "LogAction",
    "Reason",
    "Reorg",
    "StoreLate",
    "TipAction",
]

# Stored block hashes remembered, to recognise late logs and repeated heads.
RECENT_BLOCKS = 256
# Held logs of blocks whose head has not come are dropped this many blocks behind the tip.
PENDING_HORIZON = 128


class Reason(enum.StrEnum):
    """Why a head or a log asks for nothing."""

    NOT_FIRST = "another provider's head at or below the tip (first arrival wins)"
    STORED = "a head stored already"
    LAGGING = "the provider has not reached our tip"
    BEHIND = "a head queued while we loaded past it"
    REMOVED = "a removed log (reorgs are found from the heads)"


@dataclass(frozen=True, slots=True)
class Ignore:
    """Nothing to do."""

    reason: Reason


@dataclass(frozen=True, slots=True)
class Advance:
    """``head`` extends the tip: store its held ``logs`` (in log order) with the checkpoint
    at ``head``, then call :meth:`HeadTracker.advanced`."""

    head: Head
    logs: tuple[Log, ...]


@dataclass(frozen=True, slots=True)
class CheckReorg:
    """``head`` does not extend the tip: ask the provider for its block at ``tip.number`` and
    pass its hash (None if it has none) to :meth:`HeadTracker.on_tip_block`."""

    head: Head
    tip: Head


@dataclass(frozen=True, slots=True)
class FetchGap:
    """Blocks ``[first, last]`` came without heads (a dropped notification, a burst): fetch
    their logs, store them up to ``head`` (``head.number == last``), then release ``head``."""

    first: int
    last: int
    head: Head


@dataclass(frozen=True, slots=True)
class Reorg:
    """The tip is no longer canonical: walk back from ``from_number`` to the fork, mark what
    is above it removed, load the new canonical blocks up to ``head``, then release ``head``."""

    from_number: int
    head: Head


@dataclass(frozen=True, slots=True)
class StoreLate:
    """A log of a block stored already: store it now (the store drops a duplicate)."""

    log: Log


@dataclass(frozen=True, slots=True)
class Hold:
    """A log held until its block's head comes (nothing to do now)."""

    log: Log


HeadAction = Ignore | Advance | CheckReorg
TipAction = Ignore | FetchGap | Reorg
LogAction = Ignore | StoreLate | Hold


class HeadTracker:
    """The tip, the recent stored blocks and the held logs of one chain (see the module)."""

    def __init__(self) -> None:
        self.tip: Head | None = None  # newest block whose events are all stored
        self.tip_source: int | None = None  # the provider whose head is our tip
        self.recent: dict[int, str] = {}  # number -> hash of the recent blocks stored
        self.pending: dict[str, dict[int, Log]] = {}  # block hash -> log index -> held log
        self.block_time: float | None = None  # seconds, observed from head timestamps

    # --- what came ----------------------------------------------------------------------------

    def on_head(self, head: Head, source: int, *, live: bool = True) -> HeadAction:
        """Classify ``head`` from provider ``source``. ``live=False`` for a head that was not
        a notification (a reconnect's ``latest``): its logs are in no notification, so it never
        takes held logs and never advances; it is checked and its range fetched."""
        tip = self.tip
        if tip is not None and head.number <= tip.number and source != self.tip_source:
            return Ignore(Reason.NOT_FIRST)
        self._observe_block_time(head)
        self.tip_source = source
        if tip is None or (live and head.number == tip.number + 1 and head.parent_hash == tip.hash):
            held = self.pending.pop(head.hash, {})
            return Advance(head, tuple(held[i] for i in sorted(held)))
        if self.recent.get(head.number) == head.hash:
            return Ignore(Reason.STORED)
        return CheckReorg(head, tip)

    def on_tip_block(self, check: CheckReorg, block_hash: str | None) -> TipAction:
        """The provider's block at ``check.tip.number`` is ``block_hash`` (None: it has none)."""
        head, tip = check.head, check.tip
        if block_hash is None:
            return Ignore(Reason.LAGGING)  # it lags, it does not disagree
        if block_hash == tip.hash:
            if head.number <= tip.number:
                return Ignore(Reason.BEHIND)
            return FetchGap(tip.number + 1, head.number, head)
        return Reorg(min(tip.number, head.number - 1), head)

    def on_log(self, entry: Log) -> LogAction:
        """Classify a log notification; a log of no stored block is held."""
        if entry.removed:
            return Ignore(Reason.REMOVED)
        if self.recent.get(entry.block_number) == entry.block_hash:
            # A node may send a block's logs after later heads (anvil does, after a reorg).
            return StoreLate(entry)
        self.pending.setdefault(entry.block_hash, {})[entry.log_index] = entry
        return Hold(entry)

    # --- what the ingest stored ---------------------------------------------------------------

    def is_stored(self, number: int, block_hash: str) -> bool:
        """Whether block ``number`` with ``block_hash`` is among the recent stored blocks."""
        return self.recent.get(number) == block_hash

    def follow(self, source: int) -> None:
        """Take provider ``source``'s heads as the tip's (after a catch-up from it)."""
        self.tip_source = source

    def reached(self, head: Head) -> None:
        """Every event up to ``head`` is stored (or handed to the writer): it is the tip."""
        self.tip = head

    def remember(self, head: Head) -> None:
        """``head``'s block is stored: recognise its late logs and repeated heads."""
        self.recent[head.number] = head.hash
        if len(self.recent) > 2 * RECENT_BLOCKS:
            floor = head.number - RECENT_BLOCKS
            self.recent = {n: h for n, h in self.recent.items() if n > floor}

    def advanced(self, head: Head) -> None:
        """What an :class:`Advance` asked is done: ``head`` is the tip and stored."""
        self.reached(head)
        self.remember(head)

    def rewound(self, fork: int, fork_head: Head) -> None:
        """A reorg walked back to block ``fork``: ``fork_head`` is the tip, nothing above the
        fork is stored any more."""
        self.tip = fork_head
        for number in [n for n in self.recent if n > fork]:
            del self.recent[number]

    def released(self, head: Head) -> None:
        """``head`` and everything below it are stored: forget held logs of ``head`` and of
        blocks more than PENDING_HORIZON below it."""
        self.pending.pop(head.hash, None)
        horizon = head.number - PENDING_HORIZON
        for block_hash in [
            h
            for h, held in self.pending.items()
            if next(iter(held.values())).block_number < horizon
        ]:
            del self.pending[block_hash]

    def _observe_block_time(self, head: Head) -> None:
        tip = self.tip
        if tip is None or head.number != tip.number + 1 or head.timestamp <= tip.timestamp:
            return
        interval = float(head.timestamp - tip.timestamp)
        # A slow moving average: one odd block does not move the watchdog much.
        self.block_time = (
            interval if self.block_time is None else 0.9 * self.block_time + 0.1 * interval
        )
