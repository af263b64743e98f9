"""JSON-RPC 2.0 messages, both sides, without an event loop."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from chainwatch.core import rpc
from chainwatch.core.rpc import InvalidRequest, Notification, Request, Response
from chainwatch.errors import RemoteProtocolError, RpcError

# --- client side: what a node sends us -------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('{"jsonrpc":"2.0","id":1,"result":"0x1"}', Response(1, result="0x1")),
        ('{"jsonrpc":"2.0","id":"a","result":null}', Response("a", result=None)),
        ('{"jsonrpc":"2.0","id":7,"result":[]}', Response(7, result=[])),
        (
            '{"jsonrpc":"2.0","id":2,"error":{"code":-32005,"message":"limit"}}',
            Response(2, error={"code": -32005, "message": "limit"}),
        ),
        (
            '{"jsonrpc":"2.0","id":null,"error":{"code":-32700,"message":"Parse error"}}',
            Response(None, error={"code": -32700, "message": "Parse error"}),
        ),
        (
            '{"jsonrpc":"2.0","id":3,"error":{"code":3,"message":"reverted","data":"0x08c3"}}',
            Response(3, error={"code": 3, "message": "reverted", "data": "0x08c3"}),
        ),
        (
            '{"jsonrpc":"2.0","method":"eth_subscription",'
            '"params":{"subscription":"0xabc","result":{"number":"0x1"}}}',
            Notification("0xabc", {"number": "0x1"}),
        ),
        (
            '{"jsonrpc":"2.0","method":"eth_subscription",'
            '"params":{"subscription":"0xabc","result":null}}',
            Notification("0xabc", None),
        ),
        (b'{"jsonrpc":"2.0","id":1,"result":true}', Response(1, result=True)),
    ],
)
def test_parse_incoming(text: str | bytes, expected: Response | Notification) -> None:
    assert rpc.parse_incoming(text) == expected


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("", "invalid JSON"),
        ("{", "invalid JSON"),
        ("not json", "invalid JSON"),
        (b"\xff\xfe\x00", "invalid JSON"),
        ("[" * 100_000 + "]" * 100_000, "invalid JSON"),  # deeper than the parser recurses
        ('{"jsonrpc":"2.0","id":1,"result":NaN}', "invalid JSON"),
        ('{"jsonrpc":"2.0","id":1,"result":-Infinity}', "invalid JSON"),
        ('[{"jsonrpc":"2.0","id":1,"result":1}]', "expected a JSON object, got list"),
        ('"0x1"', "expected a JSON object, got str"),
        ("null", "expected a JSON object, got NoneType"),
        ('{"id":1,"result":"0x1"}', "missing jsonrpc"),
        ('{"jsonrpc":"1.0","id":1,"result":"0x1"}', "missing jsonrpc"),
        ('{"jsonrpc":2.0,"id":1,"result":"0x1"}', "missing jsonrpc"),
        ('{"jsonrpc":"2.0","method":"eth_foo","params":{}}', "unexpected notification method"),
        ('{"jsonrpc":"2.0","method":"eth_subscription"}', "without params.subscription"),
        (
            '{"jsonrpc":"2.0","method":"eth_subscription","params":{"result":1}}',
            "without params.subscription",
        ),
        (
            '{"jsonrpc":"2.0","method":"eth_subscription","params":{"subscription":1,"result":1}}',
            "without params.subscription",
        ),
        (
            '{"jsonrpc":"2.0","method":"eth_subscription","params":{"subscription":"0x1"}}',
            "without params.result",
        ),
        ('{"jsonrpc":"2.0","result":"0x1"}', "neither a response nor a notification"),
        ('{"jsonrpc":"2.0","id":1}', "without result or error"),
        ('{"jsonrpc":"2.0","id":1,"error":"boom"}', "not an error object"),
        ('{"jsonrpc":"2.0","id":1,"error":{"message":"boom"}}', "not an error object"),
        ('{"jsonrpc":"2.0","id":1,"error":{"code":"-1","message":"boom"}}', "not an error object"),
    ],
)
def test_parse_incoming_rejects_malformed(text: str | bytes, problem: str) -> None:
    with pytest.raises(RemoteProtocolError, match=problem):
        rpc.parse_incoming(text)


def test_remote_protocol_error_is_an_rpc_error() -> None:
    with pytest.raises(RpcError):
        rpc.parse_incoming("{}")


def test_unexpected_method_is_cut_short() -> None:
    with pytest.raises(RemoteProtocolError) as info:
        rpc.parse_incoming(json.dumps({"jsonrpc": "2.0", "method": "x" * 1000}))
    assert len(str(info.value)) < 120


def test_encode_request() -> None:
    text = rpc.encode_request(5, "eth_getLogs", [{"fromBlock": "0x1"}])
    assert " " not in text
    assert json.loads(text) == {
        "jsonrpc": "2.0",
        "id": 5,
        "method": "eth_getLogs",
        "params": [{"fromBlock": "0x1"}],
    }


# --- server side: what a downstream client sends us ------------------------------------------


@pytest.mark.parametrize(
    ("obj", "expected"),
    [
        (
            {"jsonrpc": "2.0", "id": 1, "method": "eth_subscribe", "params": ["logs", {}]},
            Request("eth_subscribe", ["logs", {}], 1),
        ),
        (
            {"jsonrpc": "2.0", "id": "x", "method": "m", "params": {"a": 1}},
            Request("m", {"a": 1}, "x"),
        ),
        ({"jsonrpc": "2.0", "id": None, "method": "m"}, Request("m", [], None)),
        ({"jsonrpc": "2.0", "id": 0, "method": "m"}, Request("m", [], 0)),
        (
            {"jsonrpc": "2.0", "method": "m", "params": [1]},
            Request("m", [1], None, is_notification=True),
        ),
    ],
)
def test_parse_request(obj: Any, expected: Request) -> None:
    assert rpc.parse_request(obj) == expected


@pytest.mark.parametrize(
    ("obj", "request_id", "problem"),
    [
        ([], None, "must be a JSON object"),
        ("m", None, "must be a JSON object"),
        (None, None, "must be a JSON object"),
        ({"jsonrpc": "2.0", "id": True, "method": "m"}, None, "id must be"),
        ({"jsonrpc": "2.0", "id": [1], "method": "m"}, None, "id must be"),
        ({"jsonrpc": "2.0", "id": {}, "method": "m"}, None, "id must be"),
        ({"jsonrpc": "2.0", "id": 1.5, "method": "m"}, None, "id must be"),
        ({"id": 1, "method": "m"}, 1, 'jsonrpc must be "2.0"'),
        ({"jsonrpc": "1.0", "id": "a", "method": "m"}, "a", 'jsonrpc must be "2.0"'),
        ({"jsonrpc": "2.0", "id": 2}, 2, "method must be a string"),
        ({"jsonrpc": "2.0", "id": 2, "method": 7}, 2, "method must be a string"),
        ({"jsonrpc": "2.0", "id": 3, "method": "m", "params": "x"}, 3, "params must be"),
        ({"jsonrpc": "2.0", "id": 3, "method": "m", "params": None}, 3, "params must be"),
        ({"jsonrpc": "2.0", "id": 3, "method": "m", "params": 1}, 3, "params must be"),
    ],
)
def test_parse_request_rejects(obj: Any, request_id: rpc.RequestId, problem: str) -> None:
    with pytest.raises(InvalidRequest, match=problem) as info:
        rpc.parse_request(obj)
    assert info.value.request_id == request_id


def test_encode_result_and_error() -> None:
    assert json.loads(rpc.encode_result(1, {"a": [1]})) == {
        "jsonrpc": "2.0",
        "id": 1,
        "result": {"a": [1]},
    }
    assert json.loads(rpc.encode_error(None, rpc.PARSE_ERROR, "Parse error")) == {
        "jsonrpc": "2.0",
        "id": None,
        "error": {"code": -32700, "message": "Parse error"},
    }
    assert json.loads(rpc.encode_error("q", rpc.INVALID_PARAMS, "bad", {"at": 0})) == {
        "jsonrpc": "2.0",
        "id": "q",
        "error": {"code": -32602, "message": "bad", "data": {"at": 0}},
    }


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=12,
)


@given(subscription=st.text(), result=json_values)
def test_encode_notification_is_the_dict_form(subscription: str, result: Any) -> None:
    text = rpc.encode_notification(subscription, rpc.dumps(result))
    assert json.loads(text) == {
        "jsonrpc": "2.0",
        "method": "eth_subscription",
        "params": {"subscription": subscription, "result": result},
    }
    # What we send, a node-like client parses back (integers beyond 64 bits come back as
    # floats: rpc.loads is for node messages, whose quantities are hex strings).
    if not _has_big_int(result):
        assert rpc.parse_incoming(text) == Notification(subscription, result)


def _has_big_int(value: Any) -> bool:
    if isinstance(value, bool):
        return False
    if isinstance(value, int):
        return not -(2**63) <= value < 2**64
    if isinstance(value, list):
        return any(_has_big_int(v) for v in value)
    if isinstance(value, dict):
        return any(_has_big_int(v) for v in value.values())
    return False


@pytest.mark.parametrize(
    "value",
    [2**70, -(2**64), {"a": [2**256 - 1]}, "\ud800 lone surrogate", {"\udfff": 1}],
)
def test_dumps_takes_what_the_fast_encoder_refuses(value: Any) -> None:
    assert json.loads(rpc.dumps(value)) == value
    assert rpc.dumps_bytes(value) == json.dumps(value, separators=(",", ":")).encode()


def test_dumps_is_compact_utf8() -> None:
    value = {"symbol": "€URO", "n": [1, None, True]}
    assert rpc.dumps_bytes(value) == '{"symbol":"€URO","n":[1,null,true]}'.encode()
    assert json.loads(rpc.dumps(value)) == value
