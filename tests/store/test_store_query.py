"""``Store.query``: each filter alone, together, and the resume cursor. SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from store_changes import new_events
from store_testdata import TOKEN_A, TOKEN_B, block_hash, checkpoint, event, head

from chainwatch.core.model import StoredEvent
from chainwatch.store import Store


@pytest.fixture
def stored(store: Store) -> list[StoredEvent]:
    """Two chains, two contracts at two addresses, two event names, blocks 1-6, every status."""
    batch = []
    for number in range(1, 7):
        batch += [
            event(number, 0),
            event(number, 1, address=TOKEN_B, contract="TokenB"),
            event(number, 2, name="Approval", args={"owner": "0x" + "11" * 20}),
            event(number, 0, chain_id=137, contract="Bridge", address=TOKEN_B),
        ]
    batch.append(event(7, 0, contract="TokenA", name=None, args=None, error="bad data"))
    store.write_batch(batch, None)
    store.commit_block([], checkpoint(6), confirm_through=2)
    store.reorg(1, [block_hash(6)], checkpoint(5), 6)
    return store.query()


CASES: dict[str, tuple[dict[str, object], Callable[[StoredEvent], bool]]] = {
    "chain_id": ({"chain_id": 137}, lambda s: s.chain_id == 137),
    "contract": ({"contract": "TokenB"}, lambda s: s.contract == "TokenB"),
    "address": ({"address": TOKEN_B}, lambda s: s.log.address == TOKEN_B),
    "address in capitals": (
        {"address": "0x" + TOKEN_B[2:].upper()},
        lambda s: s.log.address == TOKEN_B,
    ),
    "event": ({"event": "Approval"}, lambda s: s.event == "Approval"),
    "from_block": ({"from_block": 5}, lambda s: s.log.block_number >= 5),
    "to_block": ({"to_block": 2}, lambda s: s.log.block_number <= 2),
    "block range": ({"from_block": 3, "to_block": 4}, lambda s: 3 <= s.log.block_number <= 4),
    "status new": ({"status": "new"}, lambda s: s.status == "new"),
    "status confirmed": ({"status": "confirmed"}, lambda s: s.status == "confirmed"),
    "status removed": ({"status": "removed"}, lambda s: s.status == "removed"),
    "several": (
        {"chain_id": 1, "contract": "TokenA", "event": "Transfer", "from_block": 2},
        lambda s: (
            s.chain_id == 1
            and s.contract == "TokenA"
            and s.event == "Transfer"
            and s.log.block_number >= 2
        ),
    ),
    "nothing matches": ({"contract": "Nope"}, lambda s: False),
}


@pytest.mark.parametrize("case", list(CASES))
def test_each_filter(store: Store, stored: list[StoredEvent], case: str) -> None:
    filters, keep = CASES[case]
    expected = [s for s in stored if keep(s)]
    assert store.query(**filters) == expected  # type: ignore[arg-type]
    if case != "nothing matches":
        assert expected and len(expected) < len(stored)


def test_everything_is_returned_in_id_order(stored: list[StoredEvent]) -> None:
    assert len(stored) == 25
    assert [s.id for s in stored] == sorted(s.id for s in stored)
    assert {s.status for s in stored} == {"new", "confirmed", "removed"}


def test_since_id_resumes_after_a_cursor(store: Store, stored: list[StoredEvent]) -> None:
    cursor = stored[9].id
    assert store.query(since_id=cursor) == stored[10:]
    assert store.query(since_id=stored[-1].id) == []
    assert store.query(since_id=0) == stored


def test_limit_and_order(store: Store, stored: list[StoredEvent]) -> None:
    assert store.query(limit=3) == stored[:3]
    assert store.query(order="desc", limit=3) == stored[::-1][:3]
    assert store.query(order="desc") == stored[::-1]
    page = store.query(since_id=stored[4].id, limit=5)
    assert page == stored[5:10]
    with pytest.raises(ValueError, match="order"):
        store.query(order="sideways")


def test_last_cursor(store: Store) -> None:
    assert store.last_cursor() == 0
    [first, second] = new_events(store.write_batch([event(1, 0), event(1, 1)], None))
    assert store.last_cursor() == second.id > first.id
    # A batch of duplicates writes no change (it may leave a gap); cursors only grow.
    [head_change] = store.write_batch([event(1, 1)], checkpoint(2), [head(2)])
    assert head_change.kind == "head"
    assert store.last_cursor() >= head_change.cursor > second.id
    assert store.write_batch([event(1, 0)], None) == []
    [third] = new_events(store.write_batch([event(3, 0)], None))
    assert store.last_cursor() == third.id > head_change.cursor


def test_an_undecoded_event_reads_back_with_its_error(
    store: Store, stored: list[StoredEvent]
) -> None:
    [undecoded] = store.query(from_block=7)
    assert (undecoded.event, undecoded.args, undecoded.error) == (None, None, "bad data")
    assert undecoded.to_json()["error"] == "bad data"
    assert undecoded.log.address == TOKEN_A


@pytest.mark.parametrize("case", list(CASES))
@pytest.mark.parametrize("batch", [1, 4, 1000])
def test_stream_gives_what_query_gives_in_batches(
    store: Store, stored: list[StoredEvent], case: str, batch: int
) -> None:
    filters: dict[str, Any] = dict(CASES[case][0])
    batches = list(store.stream(**filters, batch=batch))
    assert [e for b in batches for e in b] == store.query(**filters)
    assert all(0 < len(b) <= batch for b in batches)
    limited = [e for b in store.stream(**filters, limit=3, batch=batch) for e in b]
    assert limited == store.query(**filters, limit=3)


def test_a_stream_left_half_read_lets_the_store_go_on(
    store: Store, stored: list[StoredEvent]
) -> None:
    """A reader that goes away (``| head``) closes the stream: its connection goes back and
    the store writes and reads as before."""
    stream = store.stream(batch=2)
    assert next(stream) == stored[:2]
    stream.close()
    [written] = new_events(store.write_batch([event(8, 0)], None))
    assert store.query(since_id=stored[-1].id) == [written]
