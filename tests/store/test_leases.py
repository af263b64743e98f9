"""Leadership of a chain's ingest (PostgreSQL): taking, renewing and giving up a lease, taking
over an expired one, and fencing: a write carrying a lease that is no longer the stored one is
refused and writes nothing."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from store_backends import Backend
from store_changes import kinds
from store_testdata import block_events, block_hash, checkpoint, head

from chainwatch.core.model import Change
from chainwatch.errors import LeadershipLost, StoreError
from chainwatch.store import Lease, Store
from tests.helpers import wait_until

TTL = 30.0  # long enough never to run out during a test
SHORT_TTL = 0.5


@pytest.fixture
def stores(postgres_backend: Backend) -> Iterator[tuple[Store, Store]]:
    """Two stores on one PostgreSQL schema, as two chainwatch processes."""
    first = postgres_backend.open()
    second = postgres_backend.open()
    try:
        yield first, second
    finally:
        first.close()
        second.close()


def writes_with(lease: Lease) -> dict[str, Callable[[Store], list[Change]]]:
    """Every write that takes a lease, for chain 1; each writes something to a store that
    holds block 1's two events and block 1 in its window."""
    return {
        "write_batch": lambda s: s.write_batch(block_events(9, 1), checkpoint(9), lease=lease),
        "commit_block": lambda s: s.commit_block(
            block_events(9, 2), checkpoint(9), [head(9)], confirm_through=8, lease=lease
        ),
        "reorg": lambda s: s.reorg(1, [block_hash(9)], checkpoint(8), 9, lease=lease),
    }


@pytest.mark.postgres
def test_acquire_renew_and_release(stores: tuple[Store, Store]) -> None:
    store, other = stores
    assert store.leaders() == {}
    lease = store.acquire_lease(1, "node-a", TTL)
    assert lease == Lease(1, "node-a", 1)
    [(holder, epoch, left)] = other.leaders().values()
    assert (holder, epoch) == ("node-a", 1) and 0 < left <= TTL
    # Another holder cannot take it while it runs; another chain is free.
    assert other.acquire_lease(1, "node-b", TTL) is None
    assert other.acquire_lease(2, "node-b", TTL) == Lease(2, "node-b", 1)
    # Renewing pushes the expiry out.
    assert store.renew_lease(lease, 3 * TTL)
    assert 2 * TTL < other.leaders()[1][2] <= 3 * TTL
    # Released, it is free at once, and the next holder's epoch is greater.
    store.release_lease(lease)
    assert set(other.leaders()) == {2}
    assert not store.renew_lease(lease, TTL)
    taken = other.acquire_lease(1, "node-b", TTL)
    assert taken == Lease(1, "node-b", 2)
    assert other.leaders()[1][:2] == ("node-b", 2)
    # Releasing a lease that is no longer ours leaves the new holder's alone.
    store.release_lease(lease)
    assert other.leaders()[1][:2] == ("node-b", 2)


@pytest.mark.postgres
def test_taking_a_lease_again_starts_a_new_epoch(stores: tuple[Store, Store]) -> None:
    """The same holder acquiring again (a restarted process with the same name) gets a new
    epoch: whatever still carries the old one is fenced off."""
    store, _ = stores
    old = store.acquire_lease(1, "node-a", TTL)
    again = store.acquire_lease(1, "node-a", TTL)
    assert old is not None and again == Lease(1, "node-a", old.epoch + 1)
    assert not store.renew_lease(old, TTL)
    with pytest.raises(LeadershipLost):
        store.write_batch(block_events(1, 1), checkpoint(1), lease=old)
    assert store.renew_lease(again, TTL)
    assert kinds(store.write_batch(block_events(1, 1), checkpoint(1), lease=again)) == ["new"]


@pytest.mark.postgres
def test_writes_with_the_current_lease_go_through(stores: tuple[Store, Store]) -> None:
    store, _ = stores
    lease = store.acquire_lease(1, "node-a", TTL)
    assert lease is not None
    store.write_batch(block_events(1, 2), checkpoint(1), [head(1)], lease=lease)
    written = {name: write(store) for name, write in writes_with(lease).items()}
    assert {name: kinds(changes) for name, changes in written.items()} == {
        "write_batch": ["new"],
        "commit_block": ["confirmed", "confirmed", "new", "head"],
        "reorg": ["removed", "removed"],
    }
    assert store.checkpoint(1) == checkpoint(8)


@pytest.mark.postgres
def test_an_expired_lease_is_taken_over_and_its_writes_are_fenced(
    stores: tuple[Store, Store],
) -> None:
    store, other = stores
    old = store.acquire_lease(1, "node-a", SHORT_TTL)
    assert old is not None
    store.commit_block(block_events(1, 2), checkpoint(1), [head(1)], lease=old)
    assert other.acquire_lease(1, "node-b", TTL) is None  # not yet expired
    new = wait_until(
        lambda: other.acquire_lease(1, "node-b", TTL), 10 * SHORT_TTL + 5, "the lease to expire"
    )
    assert new == Lease(1, "node-b", old.epoch + 1)
    assert not store.renew_lease(old, TTL)

    before = (store.last_cursor(), store.query(), store.checkpoint(1), store.recent_blocks(1, 9))
    for name, write in writes_with(old).items():
        with pytest.raises(LeadershipLost, match="chain 1: the lease of epoch 1") as info:
            write(store)
        assert isinstance(info.value, StoreError), name
        after = (store.last_cursor(), store.query(), store.checkpoint(1), store.recent_blocks(1, 9))
        assert after == before, f"{name} with a lost lease wrote something"
    # The new leader writes on from where the old one stopped.
    changes = other.commit_block(
        block_events(2, 1), checkpoint(2), [head(2)], confirm_through=1, lease=new
    )
    assert kinds(changes) == ["confirmed", "confirmed", "new", "head"]
    assert changes[0].cursor > before[0]


@pytest.mark.postgres
def test_an_expired_lease_that_nobody_took_is_refused_too(stores: tuple[Store, Store]) -> None:
    store, other = stores
    lease = store.acquire_lease(1, "node-a", SHORT_TTL)
    assert lease is not None
    wait_until(lambda: 1 not in other.leaders(), 10 * SHORT_TTL + 5, "the lease to expire")
    with pytest.raises(LeadershipLost):
        store.commit_block(block_events(1, 1), checkpoint(1), [head(1)], lease=lease)
    assert (store.last_cursor(), store.query(), store.checkpoint(1)) == (0, [], None)
    assert not store.renew_lease(lease, TTL)
    # Its holder may take it again, under a new epoch.
    assert store.acquire_lease(1, "node-a", TTL) == Lease(1, "node-a", lease.epoch + 1)


def test_leases_need_postgresql(tmp_path: Path) -> None:
    with Store.open(f"sqlite:///{tmp_path / 'leases.db'}") as store:
        with pytest.raises(StoreError, match="leadership needs PostgreSQL"):
            store.acquire_lease(1, "node-a", TTL)
        with pytest.raises(StoreError, match="leadership needs PostgreSQL"):
            store.renew_lease(Lease(1, "node-a", 1), TTL)
        assert store.leaders() == {}
