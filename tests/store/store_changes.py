"""Reading the changes (``chainwatch.core.model.Change``) that the store's writes return."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import replace

from chainwatch.core.model import Change, ChangeKind, StoredEvent


def events_of(changes: Iterable[Change], kind: ChangeKind) -> list[StoredEvent]:
    """The events of the ``kind`` changes, in cursor order."""
    out = []
    for change in changes:
        if change.kind == kind:
            assert change.event is not None, change
            out.append(change.event)
    return out


def new_events(changes: Iterable[Change]) -> list[StoredEvent]:
    """The events a write inserted (its ``new`` changes), in id order."""
    return events_of(changes, "new")


def kinds(changes: Iterable[Change]) -> list[str]:
    return [change.kind for change in changes]


def cursors(changes: Iterable[Change]) -> list[int]:
    return [change.cursor for change in changes]


#: How far the commit time a replayed change carries may be from the one its write returned:
#: the database's clock, at its transaction's start (PostgreSQL: before the write waited for the
#: change log's lock) or to the second (SQLite).
AT_TOLERANCE = 5.0


def timeless(changes: Iterable[Change]) -> list[Change]:
    """The changes without their commit time (``at``), for comparing a replay with a write."""
    return [replace(change, at=0.0) for change in changes]


def assert_replays(replayed: Sequence[Change], written: Sequence[Change]) -> None:
    """``replayed`` (read from the log) is exactly ``written`` (what the writes returned), and
    each change's commit time agrees with the write's where the write gave one (see
    ``test_every_write_returns_the_time_of_its_changes``)."""
    assert timeless(replayed) == timeless(written)
    for read, wrote in zip(replayed, written, strict=True):
        assert read.at > 0, read
        assert wrote.at == 0 or abs(read.at - wrote.at) <= AT_TOLERANCE, (read, wrote)
