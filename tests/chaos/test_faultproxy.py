"""The fault proxy: its RFC 6455 framing and getLogs policy without I/O, then each fault through
real sockets between a websockets client and a real anvil."""

from __future__ import annotations

import json
import struct
import time
from collections.abc import Iterator
from typing import Any

import pytest
from websockets.exceptions import ConnectionClosed, InvalidHandshake
from websockets.sync.client import ClientConnection, connect

from tests.chaos.conftest import AnvilProcess
from tests.chaos.faultproxy import FaultProxy, getlogs_refusal, strip_extensions
from tests.chaos.wsframe import (
    BINARY,
    CONTINUATION,
    PING,
    TEXT,
    FrameError,
    FrameReader,
    MessageAssembler,
    encode_frame,
    unmask,
)
from tests.helpers import wait_until

MASK = b"\x37\xfa\x21\x3d"


# --- framing, no event loop ---------------------------------------------------------------------


@pytest.mark.parametrize(("size", "header"), [(0, 2), (125, 2), (126, 4), (65535, 4), (65536, 10)])
def test_frame_lengths_round_trip(size: int, header: int) -> None:
    payload = bytes(range(256)) * (size // 256) + bytes(range(size % 256))
    for mask in (None, MASK):
        raw = encode_frame(BINARY, payload, mask=mask)
        assert len(raw) == header + (4 if mask else 0) + size
        [frame] = FrameReader().receive_data(raw)
        assert (frame.fin, frame.opcode, frame.payload, frame.raw) == (True, BINARY, payload, raw)


def test_frame_split_across_reads_is_returned_once_whole() -> None:
    raw = encode_frame(TEXT, b"x" * 70000, mask=MASK) + encode_frame(PING, b"p", mask=MASK)
    reader = FrameReader()
    frames = []
    for i in range(0, len(raw), 7):
        frames += reader.receive_data(raw[i : i + 7])
    assert [(f.opcode, len(f.payload)) for f in frames] == [(TEXT, 70000), (PING, 1)]
    assert reader.buffered == 0


def test_masking_is_the_rfc_example() -> None:
    # RFC 6455 section 5.7: a masked "Hello" from a client.
    raw = bytes.fromhex("818537fa213d7f9f4d5158")
    [frame] = FrameReader().receive_data(raw)
    assert frame.payload == b"Hello"
    assert unmask(unmask(b"Hello", MASK), MASK) == b"Hello"


def test_frame_errors() -> None:
    with pytest.raises(FrameError):
        FrameReader().receive_data(b"\xc1\x00")  # RSV1: compression was not negotiated
    with pytest.raises(FrameError):
        FrameReader().receive_data(b"\x81\x7f" + struct.pack("!Q", 1 << 63))
    with pytest.raises(FrameError):
        FrameReader(max_payload=10).receive_data(encode_frame(TEXT, b"x" * 11))


def test_fragmented_message_with_a_ping_between() -> None:
    messages = MessageAssembler()
    parts = [
        encode_frame(TEXT, b'{"a":', fin=False, mask=MASK),
        encode_frame(PING, b"", mask=MASK),
        encode_frame(CONTINUATION, b"1", fin=False, mask=MASK),
        encode_frame(CONTINUATION, b"}", mask=MASK),
    ]
    out = [messages.add(f) for f in FrameReader().receive_data(b"".join(parts))]
    assert out[0] is None and out[2] is None
    assert out[1] is not None and out[1][0] == PING
    assert out[3] is not None
    opcode, payload, frames = out[3]
    assert (opcode, payload, len(frames)) == (TEXT, b'{"a":1}', 3)
    with pytest.raises(FrameError):
        messages.add(FrameReader().receive_data(encode_frame(CONTINUATION, b"x"))[0])


def _getlogs(first: object, last: object, **extra: Any) -> bytes:
    query = {"fromBlock": first, "toBlock": last, "address": "0x" + "11" * 20, **extra}
    request = {"jsonrpc": "2.0", "id": 42, "method": "eth_getLogs", "params": [query]}
    return json.dumps(request).encode()


def test_getlogs_refusal_policy() -> None:
    answer = getlogs_refusal(_getlogs("0x10", "0x2f"), 10)
    assert answer is not None
    error = json.loads(answer)
    assert error["id"] == 42 and error["error"]["code"] == -32005
    assert error["error"]["message"] == (
        "query returned more than 10000 results. Try with this block range [0x10, 0x19]."
    )
    assert getlogs_refusal(_getlogs("0x10", "0x19"), 10) is None  # exactly 10 blocks
    assert getlogs_refusal(_getlogs("earliest", "0xa"), 10) is not None  # 11 blocks
    assert getlogs_refusal(_getlogs("0x0", "latest"), 10) is None  # only the node knows latest
    assert getlogs_refusal(_getlogs(None, None, blockHash="0x" + "ab" * 32), 1) is None
    assert getlogs_refusal(b'{"jsonrpc":"2.0","id":1,"method":"eth_chainId"}', 1) is None
    assert getlogs_refusal(b"[" + _getlogs("0x0", "0xff") + b"]", 1) is None  # batches pass
    assert getlogs_refusal(b"\xff not json", 1) is None


def test_handshake_loses_only_the_extensions_header() -> None:
    head = (
        b"GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
        b"Sec-WebSocket-Extensions: permessage-deflate\r\n\r\n"
    )
    assert strip_extensions(head) == b"GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n\r\n"


# --- through real sockets to anvil --------------------------------------------------------------

TIMEOUT = 10


def _client(proxy: FaultProxy) -> ClientConnection:
    # The default offers permessage-deflate: the proxy must strip it to read frames.
    return connect(proxy.url, proxy=None, open_timeout=TIMEOUT, ping_interval=None)


@pytest.fixture
def client(proxy: FaultProxy) -> Iterator[ClientConnection]:
    with _client(proxy) as ws:
        yield ws


def _call(ws: ClientConnection, method: str, params: list[Any], timeout: float = TIMEOUT) -> Any:
    ws.send(json.dumps({"jsonrpc": "2.0", "id": 7, "method": method, "params": params}))
    return json.loads(ws.recv(timeout=timeout))


def test_client_reaches_anvil_through_the_proxy(
    proxy: FaultProxy, client: ClientConnection, bare_anvil: AnvilProcess
) -> None:
    assert _call(client, "eth_chainId", [])["result"] == bare_anvil.rpc("eth_chainId", [])
    assert proxy.faults() == {"connections": 1}


def test_drop_all_closes_the_client(proxy: FaultProxy, client: ClientConnection) -> None:
    assert _call(client, "eth_chainId", [])["result"]
    assert proxy.drop_all() == 1
    with pytest.raises(ConnectionClosed):
        client.recv(timeout=TIMEOUT)
    assert proxy.faults()["drop"] == 1
    assert proxy.connections() == 0


def test_stall_holds_the_answer_until_resumed(proxy: FaultProxy, client: ClientConnection) -> None:
    proxy.stall()
    client.send(json.dumps({"jsonrpc": "2.0", "id": 3, "method": "eth_chainId", "params": []}))
    with pytest.raises(TimeoutError):
        client.recv(timeout=0.5)
    proxy.resume()
    assert json.loads(client.recv(timeout=TIMEOUT))["id"] == 3
    assert proxy.faults()["stall"] == 1


def test_stall_for_seconds_ends_by_itself(proxy: FaultProxy, client: ClientConnection) -> None:
    proxy.stall(0.5)
    started = time.monotonic()
    assert _call(client, "eth_chainId", [])["result"]
    assert time.monotonic() - started >= 0.4


def test_refuse_closes_new_connections_and_can_end(proxy: FaultProxy) -> None:
    proxy.refuse(True)
    with pytest.raises((InvalidHandshake, ConnectionClosed, ConnectionError, EOFError)):
        _client(proxy).close()
    assert proxy.faults()["refused"] == 1
    proxy.refuse(False)
    with _client(proxy) as ws:
        assert _call(ws, "eth_chainId", [])["result"]


def test_cut_mid_frame_closes_inside_a_frame(proxy: FaultProxy, client: ClientConnection) -> None:
    proxy.cut_mid_frame()
    client.send(json.dumps({"jsonrpc": "2.0", "id": 1, "method": "eth_chainId", "params": []}))
    with pytest.raises(ConnectionClosed):
        client.recv(timeout=TIMEOUT)
    assert proxy.faults()["cut"] == 1


def test_getlogs_over_the_limit_is_refused_by_the_proxy(
    proxy: FaultProxy, client: ClientConnection
) -> None:
    proxy.getlogs_limit(5)
    answer = _call(client, "eth_getLogs", [{"fromBlock": "0x0", "toBlock": "0x5"}])
    assert answer["error"]["code"] == -32005
    assert answer["error"]["message"].endswith("Try with this block range [0x0, 0x4].")
    assert proxy.faults()["getlogs_refused"] == 1


def test_getlogs_within_the_limit_reaches_anvil(
    proxy: FaultProxy, client: ClientConnection
) -> None:
    proxy.getlogs_limit(5)
    answer = _call(client, "eth_getLogs", [{"fromBlock": "0x0", "toBlock": "0x0"}])
    assert answer["result"] == []
    assert "getlogs_refused" not in proxy.faults()
    proxy.getlogs_limit(None)
    answer = _call(client, "eth_getLogs", [{"fromBlock": "0x0", "toBlock": "0x0"}])
    assert answer["result"] == []


def test_fragmented_and_large_getlogs_requests_are_read(
    proxy: FaultProxy, client: ClientConnection
) -> None:
    proxy.getlogs_limit(5)
    request = _getlogs("0x0", "0x9").decode()
    client.send(iter([request[:20], request[20:50], request[50:]]))
    assert json.loads(client.recv(timeout=TIMEOUT))["error"]["code"] == -32005
    # Over 64 KiB: a 64-bit payload length.
    big = json.loads(_getlogs("0x0", "0x9"))
    big["params"][0]["topics"] = [["0x" + "00" * 32] * 1200]
    client.send(json.dumps(big))
    assert json.loads(client.recv(timeout=TIMEOUT))["error"]["code"] == -32005
    assert proxy.faults()["getlogs_refused"] == 2
    # And the connection still carries ordinary traffic.
    assert _call(client, "eth_chainId", [])["result"]


def test_chaos_injects_faults_reproducibly(proxy: FaultProxy) -> None:
    proxy.chaos(seed=1, rate=20)
    wait_until(lambda: sum(proxy.faults().values()) >= 5, TIMEOUT, "random faults")
    proxy.calm()
    with _client(proxy) as ws:
        assert _call(ws, "eth_chainId", [])["result"]
