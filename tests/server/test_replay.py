"""``since``: replay from the store, then live, with no gap and no duplicate at the seam."""

from __future__ import annotations

import asyncio
from typing import Any

from chainwatch.core.model import StoredEvent
from tests.server.conftest import BOB, CAROL, TIMEOUT, Harness, rpc_client


async def publish(harness: Harness, blocks: int, per_block: int = 3) -> list[StoredEvent]:
    """Mine ``blocks`` blocks, yielding to the loop between them (events keep coming while
    clients subscribe and replay)."""
    stored: list[StoredEvent] = []
    for _ in range(blocks):
        stored += harness.dev.transfers(*range(1, per_block + 1))
        await asyncio.sleep(0)
    return stored


async def collect_until(client: Any, sub: str, last_id: int) -> list[int]:
    ids: list[int] = []
    while not ids or ids[-1] < last_id:
        note = await client.notification()
        assert note["subscription"] == sub
        ids.append(note["result"]["id"])
    return ids


async def test_since_replays_then_goes_live_without_gap_or_duplicate(harness: Harness) -> None:
    before = await publish(harness, 400)  # 1200 events stored before anyone subscribes
    since = before[100].id
    async with harness.serving(), rpc_client(harness.url) as client:
        publisher = asyncio.create_task(publish(harness, 150))
        sub = await client.call("chainwatch_subscribe", [{"since": since}])
        during = await publisher
        ids = await collect_until(client, sub, during[-1].id)
        after = await publish(harness, 5)
        ids += await collect_until(client, sub, after[-1].id)
    expected = [e.id for e in before + during + after if e.id > since]
    assert ids == expected  # every id once, in order: no gap, no duplicate
    stats = harness.server.stats if harness.server is not None else {}
    assert stats["replayed"] > 0
    assert stats["replay_buffered"] > 0  # live events did arrive during the replay


async def test_since_with_a_filter_and_confirmed_finality(harness: Harness) -> None:
    before = await publish(harness, 30)
    async with harness.serving(), rpc_client(harness.url) as client:
        sub = await client.call(
            "chainwatch_subscribe",
            [{"since": 0, "finality": "confirmed", "where": [["value", "==", "2"]]}],
        )
        publisher = asyncio.create_task(publish(harness, 30))
        during = await publisher
        # Confirmed: everything up to head - confirmations + 1 = block 59 of 60.
        wanted = [e for e in before + during if e.args and e.args["value"] == "2"]
        wanted = [e for e in wanted if e.log.block_number <= 59]
        results = []
        while len(results) < len(wanted):
            note = await client.notification()
            assert note["subscription"] == sub
            results.append(note["result"])
    assert [r["id"] for r in results] == [e.id for e in wanted]
    assert {r["status"] for r in results} == {"confirmed"}


async def test_a_client_that_reconnects_with_its_last_id_misses_nothing(harness: Harness) -> None:
    await publish(harness, 10)
    seen: list[int] = []
    async with harness.serving():
        publisher = asyncio.create_task(publish(harness, 200, per_block=2))
        last: int | None = None
        for attempt in range(4):
            params: dict[str, Any] = {"contracts": ["Token"]}
            if last is not None:
                params["since"] = last
            async with rpc_client(harness.url) as client:
                sub = await client.call("chainwatch_subscribe", [params])
                for _ in range(60 if attempt < 3 else 0):
                    note = await client.notification()
                    assert note["subscription"] == sub
                    seen.append(note["result"]["id"])
                    last = seen[-1]
                if attempt == 3:
                    published = await publisher
                    seen += await collect_until(client, sub, published[-1].id)
            # The connection is gone here, mid-stream; blocks keep coming meanwhile.
    stored = harness.store.query(chain_id=31337)
    first = seen[0]
    assert seen == [e.id for e in stored if e.id >= first]


async def test_replay_skips_what_the_filter_does_not_want(harness: Harness) -> None:
    dev = harness.dev
    dev.block([dev.transfer_log(1, to=BOB), dev.transfer_log(2, to=CAROL)])
    dev.block([dev.approval_log(3)])
    dev.block([dev.transfer_log(4, to=CAROL)])
    async with harness.serving(), rpc_client(harness.url) as client:
        to_carol = {"since": 0, "events": ["Transfer"], "where": [["to", "==", CAROL]]}
        sub = await client.call("chainwatch_subscribe", [to_carol])
        first, second = await client.results(2, sub)
        assert [first["args"]["value"], second["args"]["value"]] == ["2", "4"]
        dev.block([dev.transfer_log(5, to=CAROL), dev.transfer_log(6, to=BOB)])
        (third,) = await client.results(1, sub)
        assert third["args"]["value"] == "5"
        assert third["historical"] is False


async def test_replay_of_many_events_respects_the_queue_bound(tmp_path: Any) -> None:
    # A replay much longer than the client's queue limit: pages wait for the client to drain,
    # so a client that reads keeps up and is not taken for a slow consumer.
    harness = Harness(tmp_path, max_queue_messages=40)
    try:
        stored = await publish(harness, 100, per_block=10)
        async with harness.serving() as server, rpc_client(harness.url) as client:
            sub = await client.call("chainwatch_subscribe", [{"since": 0}])
            async with asyncio.timeout(TIMEOUT * 3):
                ids = await collect_until(client, sub, stored[-1].id)
            assert ids == [e.id for e in stored]
            assert server.stats["slow_consumer"] == 0
    finally:
        harness.close()
