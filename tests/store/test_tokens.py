"""The token-metadata cache of the change log's consumers (chainwatch.store.tokens), on a real
store: what it reads, when it reads again, and how much it keeps."""

from __future__ import annotations

from store_testdata import TOKEN_A, TOKEN_B, checkpoint, event

from chainwatch.core.model import Change
from chainwatch.store import Store
from chainwatch.store.tokens import TokenCache

TOKEN_C = "0x" + "c3" * 20


def transfers(store: Store, number: int, *addresses: str) -> list[Change]:
    """Commit one transfer of each token in block ``number``; the changes written."""
    events = [event(number, i, address=a) for i, a in enumerate(addresses)]
    return store.write_batch(events, checkpoint(number))


async def test_reads_what_a_batch_needs_and_answers_without_the_store(store: Store) -> None:
    store.save_token(1, TOKEN_A, "AAA", 6)
    tokens = TokenCache(store)
    assert tokens.get(1, TOKEN_A) is None  # nothing read yet
    changes = transfers(store, 1, TOKEN_A)
    await tokens.ensure(changes)
    assert tokens.get(1, TOKEN_A) == ("AAA", 6)
    assert tokens.get(2, TOKEN_A) is None  # another chain's token of the same address
    store.save_token(1, TOKEN_A, "BBB", 18)
    await tokens.ensure(changes)
    assert tokens.get(1, TOKEN_A) == ("AAA", 6)  # known metadata is kept


async def test_a_token_the_store_lacks_is_unknown_until_its_miss_expires(store: Store) -> None:
    changes = transfers(store, 1, TOKEN_A)
    patient, eager = TokenCache(store), TokenCache(store, miss_ttl=0.0)
    await patient.ensure(changes)
    await eager.ensure(changes)
    store.save_token(1, TOKEN_A, "AAA", 6)  # the ingest saves it after the first transfers
    await patient.ensure(changes)
    await eager.ensure(changes)
    assert patient.get(1, TOKEN_A) is None
    assert eager.get(1, TOKEN_A) == ("AAA", 6)


async def test_only_transfers_need_metadata(store: Store) -> None:
    store.save_token(1, TOKEN_A, "AAA", 6)
    changes = store.write_batch([event(1, 0, name="Approval", args={})], checkpoint(1))
    tokens = TokenCache(store)
    await tokens.ensure(changes)
    assert tokens.get(1, TOKEN_A) is None


async def test_holds_at_most_size_tokens_the_oldest_going_first(store: Store) -> None:
    for address, symbol in ((TOKEN_A, "AAA"), (TOKEN_B, "BBB"), (TOKEN_C, "CCC")):
        store.save_token(1, address, symbol, 18)
    tokens = TokenCache(store, size=2)
    await tokens.ensure(transfers(store, 1, TOKEN_A, TOKEN_B))
    await tokens.ensure(transfers(store, 2, TOKEN_C))
    assert tokens.get(1, TOKEN_A) is None
    assert tokens.get(1, TOKEN_B) == ("BBB", 18)
    assert tokens.get(1, TOKEN_C) == ("CCC", 18)
