"""The fan-out (chainwatch.server.fanout) on its own: a real hub, a real SQLite store behind the
token cache, and recipients that record what they are sent."""

from __future__ import annotations

import asyncio
import collections
import json
from collections.abc import AsyncIterator, Iterable
from pathlib import Path

import pytest

from chainwatch.core.model import Change, Head
from chainwatch.core.protocol import HeadsSpec
from chainwatch.core.sink import ChainStatus
from chainwatch.metrics import Metrics
from chainwatch.server.fanout import FANOUT_QUEUE, Fanout
from chainwatch.server.hub import Hub, Recipient
from chainwatch.store import Store
from chainwatch.store.tokens import TokenCache

CHAIN = 31337
TIMEOUT = 10.0


class Recorder:
    def __init__(self) -> None:
        self.frames: list[bytes] = []

    def push(self, header: bytes, prefix: bytes, data: bytes, suffix: bytes) -> None:
        self.frames.append(data)

    def overflow(self) -> None:
        raise AssertionError("not buffering")


class Harness:
    def __init__(self, store: Store) -> None:
        self.hub = Hub()
        self.status = ChainStatus("dev", CHAIN, 2)
        self.stats: collections.Counter[str] = collections.Counter()
        self.metrics = Metrics()
        self.flushed: list[set[Recipient]] = []
        self.overloads = 0
        self.fanout = Fanout(
            self.hub,
            TokenCache(store),
            {CHAIN: self.status},
            metrics=self.metrics,
            stats=self.stats,
            chain_names={CHAIN: "dev"},
            flush=self.flush,
            overloaded=self.overloaded,
        )

    def flush(self, recipients: Iterable[Recipient]) -> None:
        self.flushed.append(set(recipients))

    def overloaded(self) -> None:
        self.overloads += 1


@pytest.fixture
async def harness(tmp_path: Path) -> AsyncIterator[Harness]:
    store = Store.open(f"sqlite:///{tmp_path / 'cw.db'}")
    try:
        yield Harness(store)
    finally:
        store.close()


def head(cursor: int, number: int) -> Change:
    block = Head(number, f"0x{number:064x}", f"0x{number - 1:064x}")
    return Change(cursor, CHAIN, "head", head=block)


async def test_routes_batches_in_order_and_records_heads(harness: Harness) -> None:
    client = Recorder()
    harness.hub.subscribe(client, "0x1", HeadsSpec(CHAIN))
    fanout = harness.fanout
    async with asyncio.TaskGroup() as tasks:
        task = tasks.create_task(fanout.run())
        fanout.on_changes([])  # nothing to route: not queued
        fanout.on_changes([head(1, 5), head(2, 6)])
        fanout.on_changes([head(3, 4)])  # an older head (a gateway's late read) goes out too
        async with asyncio.timeout(TIMEOUT):
            await fanout.join()
        task.cancel()
    assert [int(json.loads(frame)["number"], 16) for frame in client.frames] == [5, 6, 4]
    assert harness.flushed == [{client}, {client}]
    assert harness.status.head is not None and harness.status.head.number == 6
    assert fanout.head_number(CHAIN) == 6 and fanout.head_number(1) is None
    text = harness.metrics.render().decode()
    assert "chainwatch_change_cursor 3.0" in text
    assert "chainwatch_deliveries_total 3.0" in text
    assert 'chainwatch_head_block{chain="dev"} 6.0' in text


async def test_a_full_queue_drops_what_waits_and_hands_over_to_the_server(
    harness: Harness,
) -> None:
    fanout = harness.fanout
    for cursor in range(1, FANOUT_QUEUE + 1):  # the task is not running: the queue fills
        fanout.on_changes([head(cursor, cursor)])
    assert harness.overloads == 0
    fanout.on_changes([head(FANOUT_QUEUE + 1, FANOUT_QUEUE + 1)])
    assert harness.overloads == 1
    assert harness.stats["fanout_overflow"] == 1
    # What was dropped counts as routed: clients resume past it from the log.
    assert harness.hub.last_cursor == FANOUT_QUEUE + 1
    async with asyncio.timeout(TIMEOUT):
        await fanout.join()  # nothing left waiting
    assert harness.flushed == []
