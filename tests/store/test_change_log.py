"""The change log: every write appends its changes in its own transaction, cursors grow in commit
order, ``changes_after`` replays exactly what was committed, pruning, and the backfill of
migration 0004. Every test runs on SQLite and on PostgreSQL, but for one race that needs a
PostgreSQL lock to stage."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from alembic import command
from store_backends import Backend
from store_changes import AT_TOLERANCE, assert_replays, cursors, events_of, kinds, new_events
from store_testdata import block_events, block_hash, checkpoint, event, head

from chainwatch.core.model import Change, Checkpoint, DecodedEvent, Head, StoredEvent
from chainwatch.errors import CursorExpired, StoreError
from chainwatch.store import Store
from chainwatch.store.migrate import alembic_config, current_revision
from chainwatch.store.schema import changes as changes_table
from chainwatch.store.schema import checkpoints as checkpoints_table
from chainwatch.store.schema import events as events_table
from tests.helpers import wait_until

EVERYTHING = 1_000_000  # a page size larger than any test's log


def replay(store: Store, after: int = 0, **kwargs: Any) -> list[Change]:
    return store.changes_after(after, limit=EVERYTHING, **kwargs)


def a_day_of_writes(store: Store) -> list[Change]:
    """Every kind of write on two chains, as the daemon does them; returns what they returned."""
    written: list[Change] = []
    for number in range(1, 5):
        written += store.commit_block(
            block_events(number, 2), checkpoint(number), [head(number)], confirm_through=number - 2
        )
        written += store.write_batch(
            [event(number, 0, chain_id=137)], checkpoint(number, chain_id=137), [head(number)]
        )
    written += store.write_batch(block_events(4, 3), None)  # two duplicates and one new event
    written += store.commit_block([], checkpoint(4, chain_id=137), confirm_through=2)
    written += store.commit_block([], checkpoint(4), confirm_through=3)
    written += store.commit_block([], checkpoint(5), [head(5)], confirm_through=4)
    return written


# --- each write appends its changes -----------------------------------------------------------


def test_a_new_store_has_an_empty_log(store: Store) -> None:
    assert (store.last_cursor(), store.oldest_cursor()) == (0, 0)
    assert store.changes_after(0) == []
    assert store.heads() == {}


def test_changes_after_replays_exactly_what_the_writes_returned(store: Store) -> None:
    written = a_day_of_writes(store)
    assert set(kinds(written)) == {"new", "confirmed", "head"}
    assert cursors(written) == sorted(set(cursors(written)))  # strictly increasing
    assert_replays(replay(store), written)
    assert store.last_cursor() == written[-1].cursor
    # Any cursor in between: exactly what came after it.
    for i, change in enumerate(written):
        assert_replays(replay(store, change.cursor), written[i + 1 :])
    assert replay(store, store.last_cursor()) == []


def test_changes_after_pages_with_limit(store: Store) -> None:
    written = a_day_of_writes(store)
    for limit in (1, 3, 7):
        pages: list[Change] = []
        at = 0
        while page := store.changes_after(at, limit=limit):
            assert len(page) <= limit
            pages += page
            at = page[-1].cursor
        assert_replays(pages, written)


def test_changes_after_filters_a_chain(store: Store, reopen: Callable[[], Store]) -> None:
    written = a_day_of_writes(store)
    for chain_id in (1, 137):
        mine = [c for c in written if c.chain_id == chain_id]
        assert mine and len(mine) < len(written)
        assert_replays(replay(reopen(), chain_id=chain_id), mine)
        assert_replays(store.changes_after(mine[1].cursor, limit=2, chain_id=chain_id), mine[2:4])
    assert replay(store, chain_id=10) == []


def test_an_events_id_is_the_cursor_of_its_new_change(store: Store) -> None:
    written = a_day_of_writes(store)
    news = [c for c in written if c.kind == "new"]
    assert [c.cursor for c in news] == [c.event.id for c in news if c.event is not None]
    assert [s.id for s in store.query()] == [c.cursor for c in news]
    for change in written:
        if change.event is not None:
            assert change.event.status == change.kind
            assert change.event.chain_id == change.chain_id
        else:
            assert change.kind == "head" and change.head is not None


def test_every_write_returns_the_time_of_its_changes(store: Store) -> None:
    started = time.time()
    written = a_day_of_writes(store)
    written += store.reorg(1, [block_hash(4)], checkpoint(3), 4)
    assert set(kinds(written)) == {"new", "confirmed", "removed", "head"}
    untimed = [c for c in written if not started - AT_TOLERANCE <= c.at <= time.time()]
    assert untimed == []


def test_cursors_grow_in_commit_order_across_stores(
    store: Store, reopen: Callable[[], Store]
) -> None:
    """Two stores on one database (as two processes): whichever commits later has the greater
    cursors, and a third sees both in that order."""
    other = reopen()
    written: list[Change] = []
    for number in range(1, 6):
        written += store.commit_block(block_events(number, 2), checkpoint(number), [head(number)])
        written += other.commit_block(
            block_events(number, 1, chain_id=10), checkpoint(number, chain_id=10), [head(number)]
        )
    assert cursors(written) == sorted(set(cursors(written)))
    assert_replays(replay(reopen()), written)
    assert store.last_cursor() == other.last_cursor() == written[-1].cursor


def test_duplicates_append_no_changes(store: Store) -> None:
    first = store.write_batch(block_events(1, 2), checkpoint(1), [head(1)])
    again = store.write_batch([*block_events(1, 2), event(1, 2)], checkpoint(1), [head(1)])
    assert kinds(again) == ["new", "head"]
    assert again[0].cursor > first[-1].cursor
    assert_replays(replay(store), first + again)
    # A batch of duplicates only writes nothing to the log.
    before = store.last_cursor()
    assert store.write_batch(block_events(1, 3), checkpoint(1)) == []
    assert replay(store, before) == []


# --- a write that fails leaves no change ------------------------------------------------------


#: A checkpoint the database refuses (its hash column is NOT NULL).
NO_HASH_CHECKPOINT = Checkpoint(1, 1, None)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("failing_write", "error"),
    [
        pytest.param(
            # The events go in, then the checkpoint breaks a NOT NULL constraint.
            lambda s: s.write_batch(block_events(3, 2), NO_HASH_CHECKPOINT, [head(3)]),
            StoreError,
            id="write_batch",
        ),
        pytest.param(
            # Earlier events are confirmed first, then an event's args cannot be encoded.
            lambda s: s.commit_block(
                [event(3, 0), DecodedEvent(1, event(3, 1).log, "TokenA", "Transfer", {"x": {1}})],
                checkpoint(3),
                [head(3)],
                confirm_through=2,
            ),
            TypeError,
            id="commit_block",
        ),
        pytest.param(
            # Everything is written but the changes: a head's header cannot be encoded.
            lambda s: s.write_batch(
                block_events(3, 2),
                checkpoint(3),
                [Head(3, block_hash(3), block_hash(2), raw={"number": "0x3", "bad": {1}})],
            ),
            TypeError,
            id="write_batch-head",
        ),
        pytest.param(
            # The removals and their changes are written, then the checkpoint breaks a NOT NULL
            # constraint.
            lambda s: s.reorg(1, [block_hash(2)], NO_HASH_CHECKPOINT, 2),
            StoreError,
            id="reorg",
        ),
    ],
)
def test_a_write_that_fails_appends_no_change(
    store: Store,
    reopen: Callable[[], Store],
    failing_write: Callable[[Store], object],
    error: type[Exception],
) -> None:
    before = store.write_batch(block_events(1, 2) + block_events(2, 2), checkpoint(2), [head(2)])
    with pytest.raises(error):
        failing_write(store)
    for view in (store, reopen()):
        assert view.last_cursor() == before[-1].cursor
        assert_replays(replay(view), before)
        assert {s.status for s in view.query()} == {"new"}
        assert view.checkpoint(1) == checkpoint(2)
    # The next write's changes come right after, and are all there is after the last cursor.
    after = store.commit_block(block_events(3, 1), checkpoint(3), [head(3)], confirm_through=2)
    assert kinds(after) == ["confirmed"] * 4 + ["new", "head"]
    assert after[0].cursor > before[-1].cursor
    assert_replays(replay(store, before[-1].cursor), after)


# --- what each change carries -----------------------------------------------------------------


def test_removed_changes_carry_the_status_before(store: Store) -> None:
    for number in range(1, 5):
        store.commit_block(
            block_events(number, 2), checkpoint(number), [head(number)], confirm_through=number - 1
        )
    before = store.last_cursor()
    removals = store.reorg(1, [block_hash(3), block_hash(4)], checkpoint(2), 3)
    assert kinds(removals) == ["removed"] * 4
    assert [c.prior for c in removals] == ["confirmed", "confirmed", "new", "new"]
    removed = events_of(removals, "removed")
    assert [(e.log.block_number, e.status, e.log.removed) for e in removed] == [
        (3, "removed", True),
        (3, "removed", True),
        (4, "removed", True),
        (4, "removed", True),
    ]
    assert_replays(replay(store, before), removals)
    # Seen again, the same reorg changes nothing and appends nothing.
    assert store.reorg(1, [block_hash(3), block_hash(4)], checkpoint(2), 3) == []
    assert store.last_cursor() == removals[-1].cursor


def test_event_changes_replay_as_written_whatever_their_event_became(store: Store) -> None:
    written = store.commit_block(block_events(1, 1), checkpoint(1))
    written += store.commit_block([], checkpoint(2), confirm_through=1)
    assert kinds(written) == ["new", "confirmed"]
    assert_replays(replay(store), written)  # the event is confirmed now, its `new` change not
    written += store.reorg(1, [block_hash(1)], checkpoint(0), 1)
    assert kinds(written) == ["new", "confirmed", "removed"]
    assert [(c.event.status, c.event.log.removed) for c in written if c.event] == [
        ("new", False),
        ("confirmed", False),
        ("removed", True),
    ]
    assert_replays(replay(store), written)


def test_commit_block_takes_confirmed_events_from_known(store: Store) -> None:
    first = new_events(store.commit_block(block_events(1, 3), checkpoint(1)))
    known: dict[int, StoredEvent] = {e.id: e for e in first[:2]}  # the third is read back
    confirmed = store.commit_block([], checkpoint(2), [head(2)], confirm_through=1, known=known)
    assert events_of(confirmed, "confirmed") == [e.with_status("confirmed") for e in first]
    assert_replays(replay(store, first[-1].id), confirmed)


def test_head_changes_carry_the_nodes_header(store: Store, reopen: Callable[[], Store]) -> None:
    header = {
        "number": "0x5",
        "hash": block_hash(5),
        "parentHash": block_hash(4),
        "timestamp": "0x65f0a1b2",
        "miner": "0x" + "c0" * 20,
        "baseFeePerGas": "0x3b9aca00",
        "extraData": "0x" + "ee" * 32,
        "withdrawals": [{"index": "0x1", "amount": "0x2"}],
        "note": "snow ☃",
    }
    rich = Head(5, block_hash(5), block_hash(4), 0x65F0A1B2, raw=header)
    bare = head(6)  # no header object: its fields are stored
    written = store.write_batch([], checkpoint(6), [rich, bare])
    assert [c.head for c in written] == [rich, bare]
    replayed = replay(reopen())
    assert [(c.kind, c.chain_id, c.event, c.prior) for c in replayed] == [
        ("head", 1, None, None)
    ] * 2
    assert [c.head for c in replayed] == [rich, bare]  # number, hash, parent and timestamp
    assert replayed[0].head is not None and replayed[0].head.raw == header
    assert replayed[1].head is not None and replayed[1].head.raw == {
        "number": "0x6",
        "hash": block_hash(6),
        "parentHash": block_hash(5),
        "timestamp": "0x0",
    }


def test_heads_are_each_chains_checkpoint_with_its_parent(store: Store) -> None:
    store.write_batch([], checkpoint(2), [head(1), head(2)])
    store.write_batch([], checkpoint(7, chain_id=137, fork=3), [head(7, fork=3)])
    store.write_batch([], checkpoint(9, chain_id=10))  # no block in the window: no parent
    assert store.heads() == {
        1: head(2),
        137: head(7, fork=3),
        10: Head(9, block_hash(9), ""),
    }
    store.reorg(1, [], checkpoint(1), 2)
    assert store.heads()[1] == head(1)


# --- pruning ----------------------------------------------------------------------------------


def _age_changes(backend: Backend, through: int, seconds: float) -> None:
    """Make the changes up to cursor ``through`` look ``seconds`` old (as after a long run)."""
    engine = backend.engine()
    try:
        with engine.begin() as conn:
            conn.execute(
                changes_table.update()
                .where(changes_table.c.cursor <= through)
                .values(created_at=datetime.now(UTC) - timedelta(seconds=seconds))
            )
    finally:
        engine.dispose()


def test_prune_changes_drops_old_changes_and_expires_older_cursors(
    store: Store, backend: Backend, reopen: Callable[[], Store]
) -> None:
    old = store.write_batch(block_events(1, 3), checkpoint(1), [head(1)])
    recent = store.write_batch(block_events(2, 2), checkpoint(2), [head(2)])
    assert store.prune_changes(3600) == 0  # nothing is an hour old
    assert store.oldest_cursor() == 0
    _age_changes(backend, old[-1].cursor, 7200)
    assert store.prune_changes(3600) == len(old)
    assert store.prune_changes(3600) == 0
    oldest = old[-1].cursor
    for view in (store, reopen()):
        assert view.oldest_cursor() == oldest
        assert_replays(replay(view, oldest), recent)  # resuming at the oldest cursor loses nothing
        for expired in (0, old[0].cursor, oldest - 1):
            with pytest.raises(CursorExpired) as info:
                view.changes_after(expired)
            assert (info.value.cursor, info.value.oldest) == (expired, oldest)
            assert f"cursor {expired} is older" in str(info.value)
            assert isinstance(info.value, StoreError)
    # Events are never pruned, and new writes go on after the last cursor.
    assert len(store.query()) == 5
    newer = store.write_batch(block_events(3, 1), checkpoint(3))
    assert newer[0].cursor > recent[-1].cursor
    assert_replays(replay(store, oldest), recent + newer)


def test_prune_everything_keeps_the_last_cursor(store: Store) -> None:
    written = store.write_batch(block_events(1, 2), checkpoint(1), [head(1)])
    assert store.prune_changes(0) == 3  # everything committed before now
    assert store.oldest_cursor() == store.last_cursor() == written[-1].cursor
    assert store.changes_after(store.last_cursor()) == []
    with pytest.raises(CursorExpired):
        store.changes_after(0)
    assert store.prune_changes(0) == 0
    assert store.oldest_cursor() == written[-1].cursor  # never goes back


@pytest.mark.postgres
def test_a_prune_between_the_check_and_the_read_is_never_a_silent_gap(
    postgres_backend: Backend,
) -> None:
    """A reader resuming at cursor 2 while cursors up to 5 are pruned gets CursorExpired or
    every change after 2, never the changes after 5 alone. An outside transaction locks the
    changes table so that the prune lands exactly between the reader's two statements."""
    with postgres_backend.open() as store:
        written = store.write_batch(block_events(1, 6), checkpoint(1), [head(1)])
        assert cursors(written) == list(range(1, 8))
        engine = postgres_backend.engine()
        result: list[object] = []
        try:
            with engine.connect() as conn:
                prune = conn.begin()
                conn.exec_driver_sql("LOCK TABLE changes IN ACCESS EXCLUSIVE MODE")
                with ThreadPoolExecutor(1) as pool:

                    def read() -> None:
                        try:
                            result.append(store.changes_after(2))
                        except CursorExpired as exc:
                            result.append(exc)

                    reader = pool.submit(read)
                    wait_until(
                        lambda: _waits_for_a_lock_on_changes(postgres_backend),
                        30,
                        "the reader to wait for the changes table",
                    )
                    # What prune_changes does, in the transaction that holds the lock.
                    conn.exec_driver_sql("DELETE FROM changes WHERE cursor <= 5")
                    conn.exec_driver_sql("UPDATE change_log SET pruned_through = 5")
                    prune.commit()
                    reader.result(30)
        finally:
            engine.dispose()
    [outcome] = result
    if isinstance(outcome, CursorExpired):
        assert (outcome.cursor, outcome.oldest) == (2, 5)
    else:
        assert isinstance(outcome, list)
        assert cursors(outcome) == [3, 4, 5, 6, 7], "changes 3-5 were skipped silently"
        assert_replays(outcome, written[2:])


def _waits_for_a_lock_on_changes(backend: Backend) -> bool:
    engine = backend.engine()
    try:
        with engine.connect() as conn:
            waiting = conn.execute(
                sa.text(
                    "SELECT count(*) FROM pg_locks WHERE NOT granted "
                    "AND relation = to_regclass(:name)"
                ),
                {"name": f'"{backend.schema}".changes'},
            ).scalar()
    finally:
        engine.dispose()
    return bool(waiting)


# --- migration 0004 ---------------------------------------------------------------------------

# Rows as chainwatch wrote them at revision 0003: ids with gaps (rolled-back inserts), two
# chains, every status.
_OLD_EVENTS = [
    (3, event(1, 0), "confirmed"),
    (4, event(1, 1), "confirmed"),
    (7, event(1, 0, chain_id=137), "new"),
    (9, event(2, 0), "removed"),
    (10, event(2, 0, fork=1), "new"),
    (12, event(3, 0, chain_id=137), "new"),
]


def _old_row(event_id: int, decoded: DecodedEvent, status: str) -> dict[str, object]:
    entry = decoded.log
    return {
        "id": event_id,
        "chain_id": decoded.chain_id,
        "block_number": entry.block_number,
        "block_hash": entry.block_hash,
        "transaction_hash": entry.transaction_hash,
        "transaction_index": entry.transaction_index,
        "log_index": entry.log_index,
        "address": entry.address,
        "contract": decoded.contract,
        "event": decoded.event,
        "args": json.dumps(decoded.args),
        "topics": json.dumps(list(entry.topics)),
        "data": entry.data,
        "error": None,
        "status": status,
        "historical": False,
    }


def test_migration_0004_gives_existing_events_and_checkpoints_their_changes(
    store: Store, reopen: Callable[[], Store], backend: Backend
) -> None:
    store.close()
    engine = backend.engine()
    try:
        with engine.begin() as conn:
            command.downgrade(alembic_config(conn), "0003")
        with engine.begin() as conn:
            assert current_revision(conn) == "0003"
            conn.execute(events_table.insert(), [_old_row(*old) for old in _OLD_EVENTS])
            conn.execute(
                checkpoints_table.insert(),
                [
                    {"chain_id": 137, "block_number": 3, "block_hash": block_hash(3)},
                    {"chain_id": 1, "block_number": 2, "block_hash": block_hash(2, 1)},
                ],
            )
    finally:
        engine.dispose()

    upgraded = reopen()
    log = replay(upgraded)
    summary = [
        (c.cursor, c.chain_id, c.kind, c.event.id if c.event else None, c.prior) for c in log
    ]
    assert summary == [
        # A `new` change per event, its cursor the event's id...
        (3, 1, "new", 3, None),
        (4, 1, "new", 4, None),
        (7, 137, "new", 7, None),
        (9, 1, "new", 9, None),
        (10, 1, "new", 10, None),
        (12, 137, "new", 12, None),
        # ...then the events that moved on, in id order (what they were before is not known)...
        (13, 1, "confirmed", 3, None),
        (14, 1, "confirmed", 4, None),
        (15, 1, "removed", 9, None),
        # ...then each chain's checkpoint as its head.
        (16, 1, "head", None, None),
        (17, 137, "head", None, None),
    ]
    assert [c.event.status for c in log if c.event is not None] == [
        *(["new"] * 6),
        "confirmed",
        "confirmed",
        "removed",
    ]
    for change, (_, old, _) in zip(log[:6], _OLD_EVENTS, strict=True):
        assert change.event is not None
        assert replace(change.event.log, removed=False) == old.log
        assert (change.event.contract, change.event.args) == (old.contract, old.args)
    assert [(c.head.number, c.head.hash) for c in log[-2:] if c.head is not None] == [
        (2, block_hash(2, 1)),
        (3, block_hash(3)),
    ]
    assert (upgraded.last_cursor(), upgraded.oldest_cursor()) == (17, 0)
    # The events keep their ids and statuses.
    assert [(s.id, s.status) for s in upgraded.query()] == [(i, st) for i, _, st in _OLD_EVENTS]
    # New writes go on above the old ids and the backfilled cursors.
    newer = upgraded.commit_block(
        block_events(4, 2), checkpoint(4, chain_id=1), [head(4)], confirm_through=2
    )
    assert kinds(newer) == ["confirmed", "new", "new", "head"]
    assert events_of(newer, "confirmed")[0].id == 10
    assert newer[0].cursor == 18  # the counter starts after the backfill
    assert [e.id for e in new_events(newer)] == [19, 20]
    assert_replays(replay(upgraded, 17), newer)
    engine = backend.engine()
    try:
        with engine.connect() as conn:
            count = conn.execute(sa.select(sa.func.count()).select_from(changes_table))
            assert count.scalar() == len(log) + len(newer)
    finally:
        engine.dispose()
