"""The per-connection JSON-RPC session (chainwatch.core.protocol), with no event loop."""

from __future__ import annotations

import itertools
import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from chainwatch.core.filters import Catalog, ContractSchema, EventSchema
from chainwatch.core.protocol import (
    EventsSpec,
    HeadsSpec,
    LogsSpec,
    Session,
    SessionLimits,
    Subscribe,
    Unsubscribe,
    new_subscription_id,
)
from chainwatch.core.ratelimit import Budget

TOKEN = "0x5fbdb2315678afecb367f032d93f642f64180aa3"
CATALOGS = {
    31337: Catalog(
        31337,
        "dev",
        (
            ContractSchema(
                "Token",
                TOKEN,
                (EventSchema("Transfer", {"from": "address", "to": "address", "value": "int"}),),
            ),
        ),
    ),
    1: Catalog(1, "mainnet", ()),
}


def session(
    heads: dict[int, int] | None = None, budget: Budget | None = None, **limits: Any
) -> Session:
    counter = itertools.count(1)
    return Session(
        31337,
        CATALOGS,
        head_number=(heads if heads is not None else {31337: 17}).get,
        contracts=[{"chain": "dev"}],
        limits=SessionLimits(**limits),
        new_id=lambda: f"0x{next(counter):032x}",
        budget=budget,
    )


def call(s: Session, method: str, params: Any = None, id: Any = 1, now: float = 0.0) -> Any:
    request: dict[str, Any] = {"jsonrpc": "2.0", "id": id, "method": method}
    if params is not None:
        request["params"] = params
    outcome = s.receive(json.dumps(request), now)
    assert outcome.reply is not None
    return json.loads(outcome.reply)


def test_node_methods() -> None:
    s = session()
    assert call(s, "eth_chainId") == {"jsonrpc": "2.0", "id": 1, "result": "0x7a69"}
    assert call(s, "net_version")["result"] == "31337"
    assert call(s, "eth_blockNumber", [])["result"] == "0x11"
    assert call(s, "web3_clientVersion")["result"].startswith("chainwatch/")
    assert call(s, "chainwatch_contracts", [])["result"] == [{"chain": "dev"}]


def test_block_number_before_any_head() -> None:
    reply = call(session(heads={}), "eth_blockNumber")
    assert reply["error"]["code"] == -32002


def test_subscriptions_and_their_effects() -> None:
    s = session()
    outcome = s.receive(
        json.dumps({"jsonrpc": "2.0", "id": 7, "method": "eth_subscribe", "params": ["newHeads"]}),
        0.0,
    )
    sub_id = "0x" + "0" * 31 + "1"
    assert json.loads(outcome.reply or "") == {"jsonrpc": "2.0", "id": 7, "result": sub_id}
    assert outcome.effects == [Subscribe(sub_id, HeadsSpec(31337))]

    logs = s.receive(
        '{"jsonrpc":"2.0","id":8,"method":"eth_subscribe","params":["logs",{"address":"'
        + TOKEN
        + '"}]}',
        0.0,
    )
    (effect,) = logs.effects
    assert isinstance(effect, Subscribe) and isinstance(effect.spec, LogsSpec)
    assert effect.spec.filter.addresses == frozenset({TOKEN})

    events = s.receive(
        json.dumps(
            {
                "jsonrpc": "2.0",
                "id": 9,
                "method": "chainwatch_subscribe",
                "params": [{"events": ["Transfer"], "since": 4, "finality": "confirmed"}],
            }
        ),
        0.0,
    )
    (effect,) = events.effects
    assert isinstance(effect, Subscribe) and isinstance(effect.spec, EventsSpec)
    assert effect.spec.filter.since == 4 and effect.spec.chain_id == 31337

    un = s.receive(
        json.dumps({"jsonrpc": "2.0", "id": 10, "method": "eth_unsubscribe", "params": [sub_id]}),
        0.0,
    )
    assert json.loads(un.reply or "")["result"] is True
    assert un.effects == [Unsubscribe(sub_id)]
    assert call(s, "chainwatch_unsubscribe", [sub_id])["result"] is False
    assert call(s, "eth_unsubscribe", ["0xnope"])["result"] is False
    assert len(s.subscriptions) == 2


def test_subscription_ids_look_like_a_nodes() -> None:
    ids = {new_subscription_id() for _ in range(100)}
    assert len(ids) == 100
    for sub_id in ids:
        assert len(sub_id) == 34 and sub_id.startswith("0x")
        int(sub_id, 16)


@pytest.mark.parametrize(
    ("text", "code"),
    [
        ("{", -32700),
        ("[1,", -32700),
        ("\ud800", -32700),
        ("[" * 100_000 + "]" * 100_000, -32700),
        ("[" * 100_000, -32700),
        ("[1," * 20_000, -32700),
        ("[" * 33 + "]" * 33, -32700),
        ("1", -32600),
        ('"eth_chainId"', -32600),
        ("null", -32600),
        ("[]", -32600),
        ('{"id":1,"method":"eth_chainId"}', -32600),
        ('{"jsonrpc":"1.0","id":1,"method":"eth_chainId"}', -32600),
        ('{"jsonrpc":"2.0","id":1,"method":5}', -32600),
        ('{"jsonrpc":"2.0","id":1,"method":"eth_chainId","params":"x"}', -32600),
        ('{"jsonrpc":"2.0","id":{},"method":"eth_chainId"}', -32600),
        ('{"jsonrpc":"2.0","id":1,"method":"eth_getLogs","params":[]}', -32601),
        ('{"jsonrpc":"2.0","id":1,"method":"eth_sendRawTransaction","params":[]}', -32601),
        ('{"jsonrpc":"2.0","id":1,"method":"nope"}', -32601),
        ('{"jsonrpc":"2.0","id":1,"method":"eth_subscribe","params":[]}', -32602),
        ('{"jsonrpc":"2.0","id":1,"method":"eth_subscribe","params":{"a":1}}', -32602),
        ('{"jsonrpc":"2.0","id":1,"method":"eth_subscribe","params":["newPendingTransactions"]}',
         -32602),
        ('{"jsonrpc":"2.0","id":1,"method":"eth_subscribe","params":["logs",{"address":"0x1"}]}',
         -32602),
        ('{"jsonrpc":"2.0","id":1,"method":"eth_subscribe","params":["newHeads",{}]}', -32602),
        ('{"jsonrpc":"2.0","id":1,"method":"eth_unsubscribe","params":[]}', -32602),
        ('{"jsonrpc":"2.0","id":1,"method":"eth_unsubscribe","params":[5]}', -32602),
        ('{"jsonrpc":"2.0","id":1,"method":"chainwatch_subscribe","params":[{"x":1}]}', -32602),
        ('{"jsonrpc":"2.0","id":1,"method":"chainwatch_contracts","params":[1]}', -32602),
    ],
)  # fmt: skip
def test_errors(text: str, code: int) -> None:
    outcome = session().receive(text, 0.0)
    reply = json.loads(outcome.reply or "")
    assert reply["error"]["code"] == code
    assert outcome.effects == []
    assert outcome.counts


def test_bytes_messages_are_utf8_json() -> None:
    s = session()
    reply = s.receive(b'{"jsonrpc":"2.0","id":"a","method":"net_version"}', 0.0).reply
    assert json.loads(reply or "") == {"jsonrpc": "2.0", "id": "a", "result": "31337"}
    bad = s.receive(b"\xff\xfe", 0.0).reply
    assert json.loads(bad or "")["error"]["code"] == -32700


def test_invalid_params_name_the_field() -> None:
    reply = call(
        session(), "chainwatch_subscribe", [{"events": ["Transfer"], "where": [["to", "<", 1]]}]
    )
    assert reply["error"] == {
        "code": -32602,
        "message": "invalid params: filter: where[0][1]: operator < does not apply to address "
        "argument 'to'",
    }
    reply = call(session(), "eth_subscribe", ["logs", {"topics": [None, "0x1"]}])
    assert reply["error"]["message"].startswith("invalid params: logs filter: topics[1]:")


def test_unknown_eth_method_says_subscriptions_only() -> None:
    message = call(session(), "eth_getBlockByNumber", ["latest", False])["error"]["message"]
    assert "subscriptions only" in message and "eth_getBlockByNumber" in message


def test_batch_is_answered_as_a_batch() -> None:
    s = session()
    batch = [
        {"jsonrpc": "2.0", "id": 1, "method": "eth_chainId"},
        {"jsonrpc": "2.0", "method": "eth_chainId"},  # a notification: no response
        {"jsonrpc": "2.0", "id": 2, "method": "nope"},
        5,
        {"jsonrpc": "2.0", "id": 3, "method": "eth_subscribe", "params": ["newHeads"]},
    ]
    outcome = s.receive(json.dumps(batch), 0.0)
    replies = json.loads(outcome.reply or "")
    assert [r.get("id") for r in replies] == [1, 2, None, 3]
    assert replies[0]["result"] == "0x7a69"
    assert replies[1]["error"]["code"] == -32601
    assert replies[2]["error"]["code"] == -32600
    assert len(outcome.effects) == 1


def test_batch_of_notifications_gets_no_reply() -> None:
    outcome = session().receive('[{"jsonrpc":"2.0","method":"eth_chainId"}]', 0.0)
    assert outcome.reply is None


def test_rate_limit() -> None:
    s = session(max_requests_per_second=5)
    codes = [call(s, "eth_chainId", now=0.0).get("error", {}).get("code") for _ in range(7)]
    assert codes == [None] * 5 + [-32005] * 2
    assert call(s, "eth_chainId", now=0.0)["error"]["message"] == "rate limited"
    assert "result" in call(s, "eth_chainId", now=0.2)  # one token back after 1/5 s
    # Each request of a batch counts.
    s = session(max_requests_per_second=3)
    outcome = s.receive(json.dumps([{"jsonrpc": "2.0", "id": i, "method": "eth_chainId"}
                                    for i in range(5)]), 0.0)  # fmt: skip
    replies = json.loads(outcome.reply or "")
    assert ["result" in r for r in replies] == [True, True, True, False, False]
    assert outcome.counts == ["rate_limited", "rate_limited"]


def test_work_is_charged_before_it_is_done() -> None:
    # Garbage, and invalid items of a batch, cost a request each like valid ones.
    s = session(max_requests_per_second=4)
    assert call_raw(s, "{not json")["error"]["code"] == -32700
    replies = json.loads(s.receive("[1, 1, 1]", 0.0).reply or "")
    assert [r["error"]["code"] for r in replies] == [-32600, -32600, -32600]
    # The budget is spent: the next message is refused unread, whatever it holds.
    for message in ("[" * 10_000, '{"jsonrpc":"2.0","id":9,"method":"eth_chainId"}', b"\xff"):
        outcome = s.receive(message, 0.0)
        assert json.loads(outcome.reply or "") == {
            "jsonrpc": "2.0", "id": None, "error": {"code": -32005, "message": "rate limited"}
        }  # fmt: skip
        assert outcome.counts == ["rate_limited"]


def call_raw(s: Session, text: str) -> Any:
    return json.loads(s.receive(text, 0.0).reply or "")


def test_batch_limits() -> None:
    s = session(max_batch_items=3, max_requests_per_second=1000)
    too_many = s.receive(json.dumps([{"jsonrpc": "2.0", "id": i, "method": "eth_chainId"}
                                     for i in range(4)]), 0.0)  # fmt: skip
    assert json.loads(too_many.reply or "")["error"] == {
        "code": -32600, "message": "batch of 4 requests (at most 3)"
    }  # fmt: skip
    assert too_many.counts == ["batch_limit"]
    # Replies stop growing past max_batch_reply_bytes: later items are refused, not run.
    s = session(max_batch_reply_bytes=100, max_requests_per_second=1000)
    batch = [{"jsonrpc": "2.0", "id": i, "method": "eth_subscribe", "params": ["newHeads"]}
             for i in range(5)]  # fmt: skip
    outcome = s.receive(json.dumps(batch), 0.0)
    replies = json.loads(outcome.reply or "")
    assert ["result" in r for r in replies] == [True, True, False, False, False]
    assert replies[-1]["error"] == {"code": -32005, "message": "batch reply too large"}
    assert len(outcome.effects) == 2


def test_matching_budget_is_shared_by_an_address() -> None:
    budget = Budget(10)
    first, second = session(budget=budget), session(budget=budget)
    where = [["value", ">", "1"], ["from", "==", TOKEN], ["value", "<", "9"]]
    costly = call(first, "chainwatch_subscribe", [{"where": where}])["result"]  # 1 + 3
    assert call(second, "chainwatch_subscribe", [{"where": where}])["result"]
    assert budget.used == 8
    assert call(second, "eth_subscribe", ["newHeads"])["result"]  # 1
    assert call(second, "eth_subscribe", ["logs", {"topics": [None]}])["error"]  # 1 + 1
    assert call(second, "eth_subscribe", ["logs"])["result"]  # 1
    assert budget.used == 10
    over = call(first, "chainwatch_subscribe", [{"where": where[:1]}])["error"]
    assert over["code"] == -32005 and "matching budget" in over["message"]
    assert call(first, "chainwatch_unsubscribe", [costly])["result"] is True
    assert budget.used == 6
    second.close()
    assert budget.used == 0


def test_subscription_limit() -> None:
    s = session(max_subscriptions=2)
    assert "result" in call(s, "eth_subscribe", ["newHeads"])
    sub = call(s, "chainwatch_subscribe", [{}])["result"]
    over = call(s, "eth_subscribe", ["newHeads"])
    assert over["error"]["code"] == -32005
    assert "subscription limit" in over["error"]["message"]
    assert call(s, "chainwatch_unsubscribe", [sub])["result"] is True
    assert "result" in call(s, "eth_subscribe", ["newHeads"])


def test_other_chain_by_filter() -> None:
    s = session()
    outcome = s.receive(
        '{"jsonrpc":"2.0","id":1,"method":"chainwatch_subscribe","params":[{"chain_id":1}]}', 0
    )
    (effect,) = outcome.effects
    assert isinstance(effect, Subscribe) and effect.spec.chain_id == 1


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner,
                                                                max_size=4),
    max_leaves=15,
)  # fmt: skip
methods = st.sampled_from(
    ["eth_chainId", "eth_subscribe", "eth_unsubscribe", "chainwatch_subscribe",
     "chainwatch_unsubscribe", "chainwatch_contracts", "eth_blockNumber", "net_version", "x"]
)  # fmt: skip


@settings(max_examples=300)
@given(
    st.one_of(
        st.binary(max_size=200),
        st.text(max_size=200),
        json_values.map(json.dumps),
        st.builds(
            lambda m, p, i: json.dumps({"jsonrpc": "2.0", "id": i, "method": m, "params": p}),
            methods,
            json_values,
            st.one_of(st.integers(), st.text(max_size=5), st.none()),
        ),
    )
)
def test_any_input_gets_an_answer_never_an_exception(message: str | bytes) -> None:
    s = session()
    outcome = s.receive(message, 0.0)
    if outcome.reply is not None:
        reply = json.loads(outcome.reply)
        items = reply if isinstance(reply, list) else [reply]
        for item in items:
            assert item["jsonrpc"] == "2.0" and ("result" in item) != ("error" in item)
    assert len(s.subscriptions) <= 100
