"""Writing: batches, duplicates, checkpoints in the same transaction, status changes, reorgs,
the blocks window and token metadata. Every test runs on SQLite and on PostgreSQL."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import replace

import pytest
from store_changes import events_of, kinds, new_events
from store_testdata import (
    APPROVAL,
    TOKEN_B,
    block_events,
    block_hash,
    checkpoint,
    event,
    head,
)

from chainwatch.core.model import Change, ChangeKind, Checkpoint, DecodedEvent, Head, StoredEvent
from chainwatch.errors import StoreError
from chainwatch.store import Store


def ids(stored: list[StoredEvent]) -> list[int]:
    return [s.id for s in stored]


def status_events(changes: list[Change], kind: ChangeKind) -> list[StoredEvent]:
    """The events of a status write's changes, all of ``kind``, in cursor order."""
    assert set(kinds(changes)) <= {kind}
    return events_of(changes, kind)


# --- write_batch ----------------------------------------------------------------------------


def test_write_batch_returns_the_inserted_events_with_increasing_ids(store: Store) -> None:
    first_changes = store.write_batch(block_events(1, 3), checkpoint(1), [head(1)])
    second_changes = store.write_batch(block_events(2, 2), checkpoint(2), [head(2)])
    assert kinds(first_changes) == ["new"] * 3 + ["head"]
    assert [c.head for c in first_changes[-1:]] == [head(1)]
    first, second = new_events(first_changes), new_events(second_changes)
    assert len(first) == 3 and len(second) == 2
    all_ids = ids(first) + ids(second)
    assert all_ids == sorted(all_ids) and len(set(all_ids)) == 5
    assert [s.status for s in first + second] == ["new"] * 5
    assert [(s.log.block_number, s.log.log_index) for s in first] == [(1, 0), (1, 1), (1, 2)]
    assert [c.cursor for c in first_changes[:3]] == ids(first)  # an event's id is its cursor
    assert store.last_cursor() == second_changes[-1].cursor == all_ids[-1] + 1  # the head
    assert store.query() == first + second


def test_an_event_written_twice_is_stored_once(store: Store) -> None:
    batch = block_events(5, 2)
    stored = new_events(store.write_batch(batch, checkpoint(5)))
    assert store.write_batch(batch, checkpoint(5)) == []
    # A later batch that overlaps: only the new log goes in.
    overlap = store.write_batch([*batch, event(5, 2)], checkpoint(5))
    assert kinds(overlap) == ["new"]
    overlap_events = new_events(overlap)
    assert [(s.log.log_index) for s in overlap_events] == [2]
    assert overlap_events[0].id > stored[-1].id
    assert len(store.query()) == 3


def test_duplicates_within_one_batch_are_stored_once(store: Store) -> None:
    once = event(3, 0)
    changes = store.write_batch([once, event(3, 1), once], checkpoint(3))
    assert kinds(changes) == ["new", "new"]
    assert [s.log.log_index for s in new_events(changes)] == [0, 1]
    assert len(store.query()) == 2


def test_the_same_log_index_in_another_block_or_chain_is_another_event(store: Store) -> None:
    stored = store.write_batch(
        [event(3, 0), event(3, 0, fork=1), event(3, 0, chain_id=10)], checkpoint=None
    )
    assert len(new_events(stored)) == 3


def test_an_empty_batch_still_moves_the_checkpoint_and_the_window(store: Store) -> None:
    [only] = store.write_batch([], checkpoint(9), [head(9)])
    assert (only.kind, only.chain_id, only.head, only.event) == ("head", 1, head(9), None)
    assert store.write_batch([], checkpoint(9)) == []
    assert store.checkpoint(1) == checkpoint(9)
    assert store.recent_blocks(1, 10) == [head(9)]


def test_a_log_round_trips_exactly(store: Store, reopen: Callable[[], Store]) -> None:
    odd_logs = [
        # no topics (anonymous event), empty data
        event(2**40, 0, topics=(), data="0x", name=None, contract=None, error="no ABI"),
        # four topics, long data, a high log index
        event(
            12,
            70_000,
            topics=(APPROVAL, "0x" + "00" * 32, "0x" + "ff" * 32, "0x" + "0f" * 32),
            data="0x" + "de" * 1000,
        ),
        # args of every JSON shape, non-ASCII text included
        event(
            13,
            1,
            args={
                "amounts": ["1", "340282366920938463463374607431768211455"],
                "nested": {"ok": True, "none": None, "list": [[1, 2], []]},
                "text": 'quote " backslash \\ snow ☃ \u0000',
                "ratio": 0.5,
            },
            historical=True,
        ),
    ]
    written = new_events(store.write_batch(odd_logs, None))
    assert [s.log for s in written] == [e.log for e in odd_logs]
    read = reopen().query()
    assert read == written
    for stored, decoded in zip(read, odd_logs, strict=True):
        assert stored.log == decoded.log
        assert stored.log.topics == decoded.log.topics
        assert isinstance(stored.log.topics, tuple)
        assert (stored.contract, stored.event, stored.args, stored.error, stored.historical) == (
            decoded.contract,
            decoded.event,
            decoded.args,
            decoded.error,
            decoded.historical,
        )


@pytest.mark.parametrize("count", [2000, 4500])
def test_large_batches_work(store: Store, count: int) -> None:
    """2,000 logs (a history chunk) and 4,500, which takes more than one statement per batch."""
    batch = [event(100 + i // 300, i % 300, historical=True) for i in range(count)]
    stored = new_events(store.write_batch(batch, checkpoint(100 + (count - 1) // 300)))
    assert len(stored) == count
    assert ids(stored) == sorted(ids(stored)) and len(set(ids(stored))) == count
    assert [s.log for s in stored] == [e.log for e in batch]
    assert store.write_batch(batch, None) == []
    assert len(store.query()) == count
    assert all(s.historical for s in store.query(limit=10))


def test_a_batch_must_be_about_the_checkpoints_chain(store: Store) -> None:
    with pytest.raises(ValueError, match="chain 2"):
        store.write_batch([event(1, 0, chain_id=2)], checkpoint(1, chain_id=1))
    with pytest.raises(ValueError, match="blocks need"):
        store.write_batch([], None, [head(1)])
    assert store.query() == []


# --- transactions ---------------------------------------------------------------------------


def test_the_checkpoint_commits_with_its_events(store: Store, reopen: Callable[[], Store]) -> None:
    store.write_batch(block_events(4, 3), checkpoint(4), [head(4)])
    other = reopen()  # another connection, as after a restart
    assert other.checkpoint(1) == checkpoint(4)
    assert len(other.query(chain_id=1)) == 3
    assert other.recent_blocks(1, 5) == [head(4)]


def test_a_failure_inside_the_transaction_leaves_neither_events_nor_checkpoint(
    store: Store, reopen: Callable[[], Store]
) -> None:
    before = new_events(store.write_batch(block_events(1, 2), checkpoint(1), [head(1)]))
    # The events go in first; then the checkpoint breaks a NOT NULL constraint.
    broken = Checkpoint(1, 2, None)  # type: ignore[arg-type]
    with pytest.raises(StoreError):
        store.write_batch(block_events(2, 3), broken, [head(2)])
    # ...and the same with a block of the window that cannot be stored.
    broken_head = Head(2, None, block_hash(1))  # type: ignore[arg-type]
    with pytest.raises(StoreError):
        store.write_batch(block_events(2, 3), checkpoint(2), [broken_head])
    for view in (store, reopen()):
        assert view.query() == before
        assert view.checkpoint(1) == checkpoint(1)
        assert view.recent_blocks(1, 10) == [head(1)]
    # The store is usable afterwards and the rolled-back logs can be written again.
    again = new_events(store.write_batch(block_events(2, 3), checkpoint(2), [head(2)]))
    assert len(again) == 3 and again[0].id > before[-1].id


def test_one_writer_and_several_readers_at_once(store: Store) -> None:
    errors: list[BaseException] = []
    done = threading.Event()

    def read() -> None:
        try:
            while not done.is_set():
                seen = store.query(order="desc", limit=50)
                assert ids(seen) == sorted(ids(seen), reverse=True)
                store.checkpoint(1)
                store.recent_blocks(1, 5)
        except BaseException as exc:
            errors.append(exc)

    readers = [threading.Thread(target=read) for _ in range(3)]
    for r in readers:
        r.start()
    try:
        for number in range(1, 41):
            store.write_batch(block_events(number, 5), checkpoint(number), [head(number)])
    finally:
        done.set()
        for r in readers:
            r.join()
    assert errors == []
    assert len(store.query()) == 200
    assert store.checkpoint(1) == checkpoint(40)


# --- status changes and reorgs --------------------------------------------------------------


def test_reorg_removes_the_events_of_those_blocks_only(store: Store) -> None:
    store.write_batch(block_events(1, 2) + block_events(2, 2) + block_events(3, 1), checkpoint(3))
    store.write_batch([event(2, 0, chain_id=5)], None)  # same block hash, other chain
    removals = store.reorg(1, [block_hash(2), block_hash(3)], checkpoint(1), 2)
    assert [c.prior for c in removals] == ["new"] * 3
    changed = status_events(removals, "removed")
    assert [(s.log.block_number, s.status) for s in changed] == [(2, "removed")] * 2 + [
        (3, "removed")
    ]
    assert all(s.log.removed for s in changed)
    assert ids(changed) == ids(store.query(chain_id=1, from_block=2))  # ids kept
    assert store.query(chain_id=1, status="removed") == changed
    assert [(s.status, s.log.removed) for s in store.query(chain_id=1, to_block=1)] == [
        ("new", False)
    ] * 2
    before = store.last_cursor()
    assert store.reorg(1, [block_hash(2)], checkpoint(1), 2) == []  # nothing changed this time
    assert store.reorg(1, [], checkpoint(1), 2) == []
    assert store.last_cursor() == before  # and nothing was appended to the log
    assert [s.status for s in store.query(chain_id=5)] == ["new"]


def test_a_reorg_takes_many_block_hashes(store: Store) -> None:
    """More orphaned blocks than one statement's IN list takes (500): every chunk's events are
    removed, each with the status it had before (confirmed up to block 600, new above)."""
    store.commit_block([event(n, 0) for n in range(1, 1201)], checkpoint(1200))
    store.commit_block([], checkpoint(1200), confirm_through=600)
    changes = store.reorg(1, [block_hash(n) for n in range(1, 1201)], checkpoint(0), 1)
    changed = status_events(changes, "removed")
    assert [c.cursor for c in changes] == sorted({c.cursor for c in changes})
    assert len(changed) == 1200 and ids(changed) == sorted(ids(changed))
    assert [s.log.block_number for s in changed] == list(range(1, 1201))
    assert [c.prior for c in changes] == ["confirmed"] * 600 + ["new"] * 600
    assert store.query(status="removed") == changed


def test_commit_block_confirms_new_events_at_or_below_the_block_only(store: Store) -> None:
    stored = new_events(
        store.write_batch([event(n, i) for n in (1, 2, 3, 4) for i in (0, 1)], checkpoint(4))
    )
    store.write_batch([event(1, 0, chain_id=5)], None)
    store.reorg(1, [block_hash(2)], checkpoint(4), 5)
    confirmations = store.commit_block([], checkpoint(4), confirm_through=3)
    confirmed = status_events(confirmations, "confirmed")
    assert [(s.log.block_number, s.log.log_index) for s in confirmed] == [
        (1, 0),
        (1, 1),
        (3, 0),
        (3, 1),
    ]
    assert {(s.status, s.log.removed) for s in confirmed} == {("confirmed", False)}
    assert [c.prior for c in confirmations] == [None] * 4
    assert ids(confirmed) == [s.id for s in stored if s.log.block_number in (1, 3)]
    assert store.query(chain_id=1, status="confirmed") == confirmed  # read back as returned
    before = store.last_cursor()
    assert store.commit_block([], checkpoint(4), confirm_through=3) == []
    assert store.last_cursor() == before  # nothing confirmed, nothing appended
    statuses = {(s.log.block_number, s.status) for s in store.query(chain_id=1)}
    assert statuses == {(1, "confirmed"), (2, "removed"), (3, "confirmed"), (4, "new")}
    assert [s.status for s in store.query(chain_id=5)] == ["new"]


def test_reorg_removes_orphaned_events_rewinds_the_window_and_the_checkpoint(
    store: Store, reopen: Callable[[], Store]
) -> None:
    for n in range(1, 6):
        store.write_batch(block_events(n, 2), checkpoint(n), [head(n)])
    orphaned = [block_hash(4), block_hash(5)]
    removals = store.reorg(1, orphaned, checkpoint(3), removed_from_block=4)
    assert [c.prior for c in removals] == ["new"] * 4
    changed = status_events(removals, "removed")
    assert [(s.log.block_number, s.status, s.log.removed) for s in changed] == [
        (4, "removed", True),
        (4, "removed", True),
        (5, "removed", True),
        (5, "removed", True),
    ]
    view = reopen()
    assert view.checkpoint(1) == checkpoint(3)
    assert [h.number for h in view.recent_blocks(1, 10)] == [3, 2, 1]
    assert {s.log.block_number for s in view.query(status="new")} == {1, 2, 3}
    # The new fork's blocks 4 and 5 come in as new events with new ids.
    newer = new_events(
        store.write_batch(block_events(4, 2, fork=1), checkpoint(4, fork=1), [head(4, 1)])
    )
    assert len(newer) == 2 and newer[0].id > removals[-1].cursor
    assert store.recent_blocks(1, 1) == [head(4, 1)]
    # Seeing the same reorg again changes nothing but still sets the checkpoint.
    assert store.reorg(1, orphaned, checkpoint(4, fork=1), removed_from_block=5) == []


def test_reorg_wants_the_checkpoint_of_its_chain(store: Store) -> None:
    with pytest.raises(ValueError, match="chain 2"):
        store.reorg(1, [], checkpoint(1, chain_id=2), removed_from_block=1)


# --- the blocks window ----------------------------------------------------------------------


def test_recent_blocks_are_newest_first_and_pruned_from_below(store: Store) -> None:
    store.write_batch([], checkpoint(10), [head(n) for n in range(1, 11)])
    store.write_batch([], checkpoint(3, chain_id=7), [head(3)])
    assert [h.number for h in store.recent_blocks(1, 3)] == [10, 9, 8]
    assert store.recent_blocks(1, 1) == [Head(10, block_hash(10), block_hash(9))]
    store.prune_blocks(1, below_number=8)
    assert [h.number for h in store.recent_blocks(1, 100)] == [10, 9, 8]
    assert store.recent_blocks(7, 100) == [head(3)]  # other chains keep theirs
    # A block written again at the same height replaces the stored one.
    store.write_batch([], checkpoint(10, fork=2), [head(10, fork=2)])
    assert store.recent_blocks(1, 1) == [head(10, fork=2)]


def test_checkpoints_are_per_chain(store: Store) -> None:
    assert store.checkpoint(1) is None
    store.write_batch([], checkpoint(5))
    store.write_batch([], checkpoint(9, chain_id=137))
    store.write_batch([], checkpoint(6))
    assert store.checkpoint(1) == checkpoint(6)
    assert store.checkpoint(137) == checkpoint(9, chain_id=137)


# --- tokens and names -----------------------------------------------------------------------


def test_token_metadata_is_saved_and_replaced(store: Store) -> None:
    assert store.token(1, TOKEN_B) is None
    store.save_token(1, TOKEN_B, "USDC", 6)
    assert store.token(1, TOKEN_B) == ("USDC", 6)
    assert store.token(1, TOKEN_B.upper().replace("0X", "0x")) == ("USDC", 6)
    assert store.token(10, TOKEN_B) is None
    store.save_token(1, TOKEN_B, None, None)  # e.g. a token without symbol() / decimals()
    assert store.token(1, TOKEN_B) == (None, None)


def test_known_contract_names(store: Store) -> None:
    assert store.known_contract_names() == set()
    store.write_batch(
        [event(1, 0), event(1, 1, contract="Other"), event(1, 2, contract=None, name=None)], None
    )
    assert store.known_contract_names() == {"TokenA", "Other"}


def test_a_removed_log_passed_in_is_stored_as_a_new_event(store: Store) -> None:
    decoded = event(1, 0)
    flagged = DecodedEvent(
        decoded.chain_id,
        replace(decoded.log, removed=True),
        decoded.contract,
        decoded.event,
        decoded.args,
    )
    [stored] = new_events(store.write_batch([flagged], None))
    assert stored.status == "new" and stored.log == decoded.log
    assert store.query() == [stored]


def test_commit_block_writes_and_confirms_in_one_transaction(store: Store) -> None:
    first_changes = store.commit_block(block_events(1, 2), checkpoint(1), [head(1)])
    assert kinds(first_changes) == ["new", "new", "head"]
    first = new_events(first_changes)
    store.write_batch([event(1, 5, chain_id=5)], None)  # another chain: never confirmed here
    # Block 3 commits and confirms everything at or below block 2, block 1's events by id.
    second = new_events(store.commit_block(block_events(2, 1), checkpoint(2), [head(2)]))
    third_changes = store.commit_block(
        block_events(3, 2), checkpoint(3), [head(3)], confirm_through=2
    )
    # The confirmations of earlier events come first, then the new events, then the head.
    assert kinds(third_changes) == ["confirmed"] * 3 + ["new", "new", "head"]
    assert events_of(third_changes, "confirmed") == [
        e.with_status("confirmed") for e in first + second
    ]
    third = new_events(third_changes)
    assert [e.status for e in third] == ["new", "new"]
    assert store.checkpoint(1) == checkpoint(3)
    statuses = {(s.log.block_number, s.status) for s in store.query(chain_id=1)}
    assert statuses == {(1, "confirmed"), (2, "confirmed"), (3, "new")}
    assert [s.status for s in store.query(chain_id=5)] == ["new"]
    # A history chunk deep enough is inserted confirmed at once, and reported so: its events'
    # `new` changes, then their `confirmed` ones, after the confirmations of earlier events.
    chunk_changes = store.commit_block(block_events(4, 2), checkpoint(4), confirm_through=4)
    chunk = new_events(chunk_changes)
    assert kinds(chunk_changes) == ["confirmed"] * 2 + ["new"] * 2 + ["confirmed"] * 2
    assert ids(events_of(chunk_changes, "confirmed")) == ids(third) + ids(chunk)
    assert store.query(chain_id=1, from_block=4) == [e.with_status("confirmed") for e in chunk]


def test_commit_block_is_all_or_nothing(store: Store) -> None:
    store.commit_block(block_events(1, 1), checkpoint(1), [head(1)])
    bad = event(2, 0)
    broken = DecodedEvent(bad.chain_id, bad.log, bad.contract, bad.event, {"x": object()})
    with pytest.raises(TypeError):
        store.commit_block([event(2, 1), broken], checkpoint(2), [head(2)], confirm_through=1)
    assert store.checkpoint(1) == checkpoint(1)
    assert [s.status for s in store.query(chain_id=1)] == ["new"]


def test_commit_block_reads_back_the_confirmed_events_it_does_not_know(store: Store) -> None:
    """Earlier events missing from ``known`` are read back, in id order, whatever order and
    extra entries ``known`` has; the events of ``known`` that are not confirmed now make no
    change."""
    stored = new_events(store.write_batch(block_events(1, 3) + block_events(2, 1), checkpoint(2)))
    stranger = replace(stored[1], id=10**9)
    known = {stored[3].id: stored[3], stored[1].id: stored[1], stranger.id: stranger}
    changes = store.commit_block([], checkpoint(2), confirm_through=1, known=known)
    assert events_of(changes, "confirmed") == [e.with_status("confirmed") for e in stored[:3]]
    assert store.query(status="confirmed") == events_of(changes, "confirmed")
    assert store.query(status="new") == stored[3:]
