"""Fuzzing a live server: random and malformed frames, requests and filters from many clients.

No input may raise an unhandled exception, stall the loop or change another client's stream:
an observer subscribed before the fuzzing must receive exactly the events and heads published
during it, in order, and the server must still answer at the end.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import os
import threading
from collections.abc import Coroutine, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from chainwatch.core.filters import OPERATORS
from chainwatch.core.model import StoredEvent
from chainwatch.server import Server
from tests.server.conftest import ALICE, BOB, TIMEOUT, TOKEN, USDC, Harness, RpcClient

T = TypeVar("T")


class LiveServer:
    """A serving Harness on an event loop of its own thread, so that hypothesis (synchronous)
    can drive it example by example."""

    def __init__(self, tmp_path: Path) -> None:
        self.tmp_path = tmp_path
        self.loop = asyncio.new_event_loop()
        self.ready = threading.Event()
        self.stop: asyncio.Event | None = None
        self.harness: Harness | None = None
        self.server: Server | None = None
        self.observer: RpcClient | None = None
        self.observed: list[dict[str, Any]] = []
        self.published: list[StoredEvent] = []
        self.subs: dict[str, str] = {}
        self.caught_up: asyncio.Event | None = None
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._thread, daemon=True)

    def _thread(self) -> None:
        try:
            self.loop.run_until_complete(self._main())
        except BaseException as exc:  # reported to the test thread
            self.error = exc
            self.ready.set()

    async def _main(self) -> None:
        self.stop = asyncio.Event()
        harness = self.harness = Harness(self.tmp_path)
        harness.store.save_token(31337, USDC, "USDC", 6)
        try:
            async with harness.serving() as server, contextlib.AsyncExitStack() as stack:
                self.server = server
                ws = await stack.enter_async_context(connect(harness.url + "/dev"))
                observer = self.observer = RpcClient(ws)
                self.subs["events"] = await observer.call("chainwatch_subscribe", [{}])
                self.subs["heads"] = await observer.call("eth_subscribe", ["newHeads"])
                self.subs["logs"] = await observer.call("eth_subscribe", ["logs"])
                reader = asyncio.create_task(self._observe(observer))
                self.ready.set()
                await self.stop.wait()
                reader.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await reader
        finally:
            harness.close()

    async def _observe(self, observer: RpcClient) -> None:
        self.caught_up = asyncio.Event()
        while True:
            note = await observer.notification()
            self.observed.append(note)
            if (
                note["subscription"] == self.subs["heads"]
                and self.harness is not None
                and int(note["result"]["number"], 16) == self.harness.dev.number
            ):
                self.caught_up.set()

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout=TIMEOUT * 3)

    async def publish(self, salt: int) -> None:
        assert self.harness is not None
        dev = self.harness.dev
        logs = [dev.transfer_log(salt % 1000 + 1, ALICE, BOB)]
        if salt % 3 == 0:
            logs.append(dev.transfer_log(salt, ALICE, BOB, token=USDC))
        self.published += dev.block(logs)


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    server = LiveServer(tmp_path_factory.mktemp("fuzz"))
    server.thread.start()
    assert server.ready.wait(TIMEOUT), "the server did not start"
    if server.error is not None:
        raise server.error
    yield server
    assert server.stop is not None
    server.loop.call_soon_threadsafe(server.stop.set)
    server.thread.join(TIMEOUT)


# --- what clients send --------------------------------------------------------------------------

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner,
                                                                max_size=4),
    max_leaves=12,
)  # fmt: skip
addresses = st.sampled_from([TOKEN, TOKEN.lower(), USDC, ALICE, "0x12", "nope"])
where_clauses = st.lists(
    st.tuples(
        st.sampled_from(["from", "to", "value", "amount", "owner", "nope", ""])
        | st.text(max_size=5),
        st.sampled_from([*OPERATORS, "=~", ""]),
        st.one_of(json_values, addresses, st.integers().map(str),
                  st.lists(st.one_of(addresses, st.integers()), max_size=3)),
    ).map(list),
    max_size=3,
)  # fmt: skip
filters = st.fixed_dictionaries(
    {},
    optional={
        "chain_id": st.sampled_from([31337, 5, 1, "x"]),
        "contracts": st.lists(st.sampled_from(["Token", "ERC20", "ERC721", "X", TOKEN, USDC]),
                              max_size=3),
        "events": st.lists(st.sampled_from(["Transfer", "Approval", "Nope"]), max_size=2),
        "where": where_clauses,
        "finality": st.sampled_from(["new", "confirmed", "final", 1]),
        "since": st.sampled_from([0, 5, -1, "1", None]),
        "junk": json_values,
    },
)  # fmt: skip
log_filters = st.fixed_dictionaries(
    {},
    optional={
        "address": st.one_of(addresses, st.lists(addresses, max_size=3)),
        "topics": st.lists(st.one_of(st.none(), st.sampled_from(["0x" + "dd" * 32, "0x1"]),
                                     st.lists(st.none() | st.just("0x" + "ee" * 32), max_size=2)),
                           max_size=5),
    },
)  # fmt: skip
params = st.one_of(
    json_values,
    st.tuples(st.sampled_from(["newHeads", "logs", "newPendingTransactions"]), log_filters).map(
        list
    ),
    st.tuples(filters).map(list),
    st.lists(st.text(max_size=40), max_size=2),
)
methods = st.sampled_from(
    ["eth_chainId", "net_version", "eth_blockNumber", "eth_subscribe", "eth_unsubscribe",
     "chainwatch_subscribe", "chainwatch_unsubscribe", "chainwatch_contracts", "eth_getLogs",
     "eth_sendRawTransaction", "web3_clientVersion", ""]
) | st.text(max_size=12)  # fmt: skip
requests = st.fixed_dictionaries(
    {
        "method": methods,
        "jsonrpc": st.sampled_from(["2.0"] * 8 + ["1.0", 2]),
        "id": st.one_of(st.integers(0, 100), st.integers(0, 100), st.text(max_size=8),
                        st.none(), st.floats(), st.lists(st.integers(), max_size=2)),
    },
    optional={"params": params},
)  # fmt: skip
subscribes = st.one_of(
    st.builds(lambda f: {"jsonrpc": "2.0", "id": 1, "method": "chainwatch_subscribe",
                         "params": [f]}, filters),
    st.builds(lambda f: {"jsonrpc": "2.0", "id": 2, "method": "eth_subscribe",
                         "params": ["logs", f]}, log_filters),
)  # fmt: skip
messages = st.one_of(
    subscribes.map(json.dumps),
    st.text(max_size=300),
    st.binary(max_size=300),
    requests.map(json.dumps),
    st.lists(requests, max_size=5).map(json.dumps),
    json_values.map(json.dumps),
    st.integers(1, 2000).map(lambda n: "[" * n),
    requests.map(lambda r: json.dumps(r).encode()),
)
paths = st.sampled_from(["/", "/dev", "/other", "/nope", "/dev?x=1", "/healthz", "//", "/%00"])


async def _drain_until(ws: Any, marker: str) -> None:
    """Read until the reply to the marker request (or the connection ends)."""
    with contextlib.suppress(ConnectionClosed):
        while True:
            message = await ws.recv()
            if marker in (message if isinstance(message, str) else message.decode()):
                return


async def fuzz_client(live: LiveServer, path: str, sent: list[str | bytes], salt: int) -> None:
    assert live.harness is not None
    try:
        async with connect(live.harness.url + path, open_timeout=TIMEOUT, max_size=None) as ws:
            for message in sent:
                await ws.send(message)
            await live.publish(salt)
            marker = base64.b32encode(os.urandom(10)).decode()
            await ws.send(json.dumps({"jsonrpc": "2.0", "id": marker, "method": "eth_chainId"}))
            async with asyncio.timeout(TIMEOUT):
                await _drain_until(ws, marker)
    except InvalidStatus as exc:
        assert exc.response.status_code in (200, 404, 426), exc
        await live.publish(salt)


async def raw_frames(live: LiveServer, data: bytes, salt: int) -> None:
    """A handshake by hand, then bytes that may be no valid frame at all."""
    assert live.server is not None
    reader, writer = await asyncio.open_connection("127.0.0.1", live.server.port)
    key = base64.b64encode(os.urandom(16)).decode()
    writer.write(
        (f"GET /dev HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
         f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n").encode()
    )  # fmt: skip
    async with asyncio.timeout(TIMEOUT):
        head = await reader.readuntil(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 101")
    writer.write(data)
    await live.publish(salt)
    writer.close()
    with contextlib.suppress(ConnectionError):
        await writer.wait_closed()


FUZZ_SETTINGS = settings(
    max_examples=int(os.environ.get("CHAINWATCH_FUZZ_EXAMPLES", "120")),
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


def test_fuzzing_leaves_the_server_up_and_others_unaffected(live: LiveServer) -> None:
    salts = iter(range(10**9))

    @FUZZ_SETTINGS
    @given(paths, st.lists(messages, min_size=1, max_size=8))
    def requests_and_junk(path: str, sent: list[str | bytes]) -> None:
        live.run(fuzz_client(live, path, sent, next(salts)))

    @FUZZ_SETTINGS
    @given(st.binary(min_size=1, max_size=200))
    def malformed_frames(data: bytes) -> None:
        live.run(raw_frames(live, data, next(salts)))

    requests_and_junk()
    malformed_frames()

    # The observer saw exactly what was published, in order, nothing else.
    async def settle() -> list[dict[str, Any]]:
        assert live.caught_up is not None
        live.caught_up.clear()
        await live.publish(0)  # a last block: its head comes after everything before it
        async with asyncio.timeout(TIMEOUT):
            await live.caught_up.wait()
        return list(live.observed)

    observed = live.run(settle())
    events = [n["result"] for n in observed if n["subscription"] == live.subs["events"]]
    heads = [n["result"] for n in observed if n["subscription"] == live.subs["heads"]]
    logs = [n["result"] for n in observed if n["subscription"] == live.subs["logs"]]
    assert [e["id"] for e in events] == [e.id for e in live.published]
    assert {e["status"] for e in events} == {"new"}
    assert live.harness is not None
    assert [int(h["number"], 16) for h in heads] == list(range(1, live.harness.dev.number + 1))
    assert [(log["blockHash"], log["logIndex"]) for log in logs] == [
        (e.log.block_hash, hex(e.log.log_index)) for e in live.published
    ]

    async def still_serving() -> dict[str, int]:
        assert live.harness is not None and live.server is not None
        async with connect(live.harness.url) as ws:
            client = RpcClient(ws)
            assert await client.call("eth_chainId") == "0x7a69"
        return dict(live.server.stats)

    stats = live.run(still_serving())
    assert stats["parse_error"] > 0 and stats["invalid_request"] > 0
    assert stats["invalid_params"] > 0 and stats["subscriptions"] > 3  # observer's three
    assert stats.get("internal_error", 0) == 0
