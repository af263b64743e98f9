"""Several writers on one PostgreSQL database, each a store of its own (as separate processes
would be) writing its own chain, and a consumer tailing the change log meanwhile.

The promise tested: a consumer that loops ``changes_after(last)`` ends with exactly every change
the writers committed, each once, in strictly increasing cursor order, although the writers'
transactions overlap. Cursors handed out at insert time (a ``BIGSERIAL``) break it: a
transaction that took cursor 10 may commit after one that took 11, and a tail that read 11
meanwhile never sees 10. Writers here commit hundreds of transactions with random pauses, some
batches hold duplicates, and one variant keeps each transaction open longer with large batches.
"""

from __future__ import annotations

import itertools
import random
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import pytest
from store_backends import Backend
from store_changes import assert_replays, cursors, new_events
from store_testdata import block_events, checkpoint, head

from chainwatch.core.model import Change, DecodedEvent, StoredEvent

pytestmark = pytest.mark.postgres

#: Seconds any thread may take before the test fails instead of hanging.
DEADLINE = 90.0
FIRST_CHAIN = 100  # writer w writes chain FIRST_CHAIN + w


@dataclass(frozen=True)
class Load:
    writers: int
    blocks: int  # transactions per writer
    max_events: int  # new events per block: 0 to this
    max_pause: float  # seconds between two of a writer's commits: 0 to this


@dataclass
class Tail:
    """What the consumer saw."""

    changes: list[Change]
    reads: int = 0  # changes_after calls that returned something
    reads_while_writing: int = 0


def write_chain(
    backend: Backend, chain_id: int, load: Load, seed: int, start: threading.Barrier
) -> list[Change]:
    """One writer: a block per transaction, as the daemon commits them; returns the changes."""
    rng = random.Random(seed)
    written: list[Change] = []
    known: dict[int, StoredEvent] = {}  # the writer's memory of its unconfirmed events
    previous: list[DecodedEvent] = []
    with backend.open() as store:
        start.wait(DEADLINE)
        for number in range(1, load.blocks + 1):
            batch = block_events(number, rng.randint(0, load.max_events), chain_id=chain_id)
            if previous and rng.random() < 0.3:  # a provider sends some logs again
                batch = rng.sample(previous, min(3, len(previous))) + batch
            if batch and rng.random() < 0.2:  # and the same log twice in one batch
                batch.append(batch[0])
            changes = store.commit_block(
                batch,
                checkpoint(number, chain_id=chain_id),
                [head(number)],
                confirm_through=number - 3,
                known=known if rng.random() < 0.5 else None,
            )
            for change in changes:
                assert change.chain_id == chain_id
                if change.kind == "new" and change.event is not None:
                    known[change.event.id] = change.event
                elif change.kind == "confirmed" and change.event is not None:
                    known.pop(change.event.id, None)
            written += changes
            previous = batch
            time.sleep(rng.uniform(0, load.max_pause))
    return written


def tail_log(
    backend: Backend, writing: threading.Event, seed: int, chain_id: int | None = None
) -> Tail:
    """The consumer: ``changes_after(last)`` in a loop (of ``chain_id`` only, if given), pages
    of random sizes, until the writers are done and nothing is left."""
    rng = random.Random(seed)
    tail = Tail([])
    last = 0
    deadline = time.monotonic() + DEADLINE
    with backend.open() as store:
        while time.monotonic() < deadline:
            finished = not writing.is_set()  # read before the query: then nothing can follow
            page = store.changes_after(last, limit=rng.choice((1, 4, 50, 1000)), chain_id=chain_id)
            if page:
                assert page[0].cursor > last, (last, page[0])
                tail.changes += page
                last = page[-1].cursor
                tail.reads += 1
                tail.reads_while_writing += not finished
            elif finished:
                return tail
            else:
                time.sleep(rng.uniform(0, 0.002))
    raise AssertionError(f"the tail did not finish in {DEADLINE} s")


def run(backend: Backend, load: Load, seed: int) -> tuple[list[Change], Tail, Tail]:
    """Run the writers and two tails at once: one of everything, one of the first writer's
    chain. Returns every change written, and the tails."""
    start = threading.Barrier(load.writers + 1)
    writing = threading.Event()
    writing.set()
    with ThreadPoolExecutor(load.writers + 2) as pool:
        tail = pool.submit(tail_log, backend, writing, seed)
        chain_tail = pool.submit(tail_log, backend, writing, seed + 1, FIRST_CHAIN)
        writers = [
            pool.submit(write_chain, backend, FIRST_CHAIN + w, load, seed * 1000 + w, start)
            for w in range(load.writers)
        ]
        try:
            start.wait(DEADLINE)
            written = [change for w in writers for change in w.result(DEADLINE)]
        finally:
            writing.clear()
        return written, tail.result(DEADLINE), chain_tail.result(DEADLINE)


@pytest.fixture
def shared(postgres_backend: Backend) -> Iterator[Backend]:
    """The writers' and readers' one schema, migrated before they race."""
    postgres_backend.open().close()
    yield postgres_backend


@pytest.mark.parametrize(
    ("load", "seed"),
    [
        # Many short transactions: 4 x 125 commits of 0-4 events.
        pytest.param(Load(writers=4, blocks=125, max_events=4, max_pause=0.002), 1, id="short"),
        # Fewer, longer ones: each holds its cursors while it inserts up to 200 events.
        pytest.param(Load(writers=3, blocks=20, max_events=200, max_pause=0.005), 2, id="long"),
    ],
)
def test_a_tailing_consumer_sees_every_committed_change_once_in_order(
    shared: Backend, load: Load, seed: int
) -> None:
    written, tail, chain_tail = run(shared, load, seed)

    # Each writer's changes came back in cursor order, an event's id its new change's cursor.
    for chain_id in range(FIRST_CHAIN, FIRST_CHAIN + load.writers):
        mine = [c for c in written if c.chain_id == chain_id]
        assert cursors(mine) == sorted(set(cursors(mine)))
        assert [e.id for e in new_events(mine)] == [c.cursor for c in mine if c.kind == "new"]
        assert sum(c.kind == "head" for c in mine) == load.blocks
    # The tail saw all of them, once each, strictly increasing, as they were written.
    expected = sorted(written, key=lambda c: c.cursor)
    assert len({c.cursor for c in expected}) == len(expected)
    seen = cursors(tail.changes)
    missed = sorted(set(cursors(expected)) - set(seen))
    assert not missed, f"the tail skipped {len(missed)} committed changes: cursors {missed[:10]}"
    assert seen == sorted(set(seen)), "the tail saw a change twice or out of order"
    assert_replays(tail.changes, expected)
    with shared.open() as store:
        assert store.last_cursor() == expected[-1].cursor
    # The tail of one chain saw exactly that chain's changes.
    assert_replays(chain_tail.changes, [c for c in expected if c.chain_id == FIRST_CHAIN])

    # The run did what it is meant to: overlapping writers, a tail reading while they wrote.
    transactions = load.writers * load.blocks
    switches = sum(a.chain_id != b.chain_id for a, b in itertools.pairwise(expected))
    assert switches > transactions // 4, "the writers' commits did not interleave"
    assert tail.reads_while_writing > 10, "the tail did not read while the writers wrote"
    assert any(c.kind == "confirmed" for c in expected)
