"""Each limit of ``[server]``, hit by a real client."""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosedError, InvalidStatus

from tests.server.conftest import TIMEOUT, Harness, rpc_client


@pytest.fixture
def limited(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Harness]:
    harness = Harness(tmp_path, **request.param)
    yield harness
    harness.close()


@contextlib.asynccontextmanager
async def reluctant_reader(url: str) -> AsyncIterator[ClientConnection]:
    """A client that does not read: a tiny receive buffer, and websockets' own flow control
    stops reading the socket after one unread message."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    host, port = url.removeprefix("ws://").split(":")
    sock.connect((host, int(port)))
    sock.setblocking(False)
    async with connect(url, sock=sock, max_queue=1, open_timeout=TIMEOUT) as ws:
        yield ws


@pytest.mark.parametrize("limited", [{"max_queue_messages": 50}], indirect=True)
async def test_slow_consumer_is_closed_and_a_fast_one_gets_everything(limited: Harness) -> None:
    dev = limited.dev
    async with limited.serving() as server, rpc_client(limited.url) as fast:
        fast_sub = await fast.call("chainwatch_subscribe", [{}])
        async with reluctant_reader(limited.url) as slow:
            await slow.send(json.dumps({"jsonrpc": "2.0", "id": 1, "method": "chainwatch_subscribe",
                                        "params": [{}]}))  # fmt: skip
            sent = []
            for _ in range(60):
                sent += dev.transfers(*range(1, 21))  # 1200 events, about 850 KB of frames
                # The fast client keeps up with each block as it comes.
                got = [r["id"] for r in await fast.results(20, fast_sub)]
                assert got == [e.id for e in sent[-20:]]
            assert server.stats["slow_consumer"] == 1
            # The slow client now reads what was written before its close frame, then 1013.
            with pytest.raises(ConnectionClosedError) as info:
                async with asyncio.timeout(TIMEOUT):
                    async for _ in slow:
                        pass
            assert info.value.rcvd is not None
            assert info.value.rcvd.code == 1013
            assert info.value.rcvd.reason == "slow consumer"
        # The server and the fast client carry on.
        more = dev.transfers(99)
        assert [r["id"] for r in await fast.results(1, fast_sub)] == [more[0].id]


@pytest.mark.parametrize("limited", [{"max_message_size": 1024}], indirect=True)
async def test_message_too_big_is_closed_1009(limited: Harness) -> None:
    async with limited.serving() as server:
        async with rpc_client(limited.url) as client:
            await client.call("eth_chainId")
            payload = {"jsonrpc": "2.0", "id": 2, "method": "eth_chainId", "x": "y" * 2000}
            await client.send_raw(json.dumps(payload))
            with pytest.raises(ConnectionClosedError) as info:
                await client.any_reply()
            assert info.value.rcvd is not None and info.value.rcvd.code == 1009
        async with rpc_client(limited.url) as other:  # the server is fine
            assert await other.call("eth_chainId") == "0x7a69"
    assert server.stats["message_too_big"] == 1


@pytest.mark.parametrize("limited", [{"max_subscriptions": 3}], indirect=True)
async def test_subscriptions_per_connection(limited: Harness) -> None:
    async with limited.serving() as server, rpc_client(limited.url) as client:
        subs = [await client.call("eth_subscribe", ["newHeads"]) for _ in range(2)]
        subs.append(await client.call("chainwatch_subscribe", [{}]))
        over = await client.request("eth_subscribe", ["logs"])
        assert over["error"]["code"] == -32005
        assert "subscription limit" in over["error"]["message"]
        assert await client.call("eth_unsubscribe", [subs[0]]) is True
        assert await client.call("eth_subscribe", ["logs"])
    assert server.stats["subscription_limit"] == 1


@pytest.mark.parametrize("limited", [{"max_requests_per_second": 5}], indirect=True)
async def test_requests_per_second(limited: Harness) -> None:
    async with limited.serving() as server, rpc_client(limited.url) as client:
        batch = [{"jsonrpc": "2.0", "id": i, "method": "eth_chainId"} for i in range(8)]
        await client.send_raw(json.dumps(batch))
        replies = (await client.any_reply())["batch"]
        assert [r.get("result") for r in replies[:5]] == ["0x7a69"] * 5
        assert [r["error"] for r in replies[5:]] == [
            {"code": -32005, "message": "rate limited"}
        ] * 3
        # Another connection has its own budget.
        async with rpc_client(limited.url) as other:
            assert await other.call("eth_chainId") == "0x7a69"
    assert server.stats["rate_limited"] == 3


@pytest.mark.parametrize("limited", [{"max_connections_per_ip": 3}], indirect=True)
async def test_connections_per_address(limited: Harness) -> None:
    async with limited.serving() as server, contextlib.AsyncExitStack() as stack:
        clients = [await stack.enter_async_context(rpc_client(limited.url)) for _ in range(3)]
        with pytest.raises(InvalidStatus) as info:
            async with rpc_client(limited.url):
                pass
        assert info.value.response.status_code == 429
        for client in clients:  # the ones within the limit are unaffected
            assert await client.call("eth_chainId") == "0x7a69"
        assert server.stats["too_many_connections"] == 1
