"""Every method over a real connection to a real server, fed from a real SQLite store."""

from __future__ import annotations

import json
from typing import Any

import pytest
from websockets.exceptions import InvalidStatus

from tests.server.conftest import (
    ALICE,
    BOB,
    CAROL,
    CHAIN_ID,
    OTHER_CHAIN_ID,
    TOKEN,
    TRANSFER0,
    USDC,
    Harness,
    rpc_client,
    topic,
)


async def test_node_methods(harness: Harness) -> None:
    async with harness.serving(), rpc_client(harness.url) as client:
        assert not client.ws.protocol.extensions  # no permessage-deflate unless configured
        assert await client.call("eth_chainId") == hex(CHAIN_ID)
        assert await client.call("net_version", []) == str(CHAIN_ID)
        assert (await client.request("eth_blockNumber"))["error"]["code"] == -32002
        harness.dev.transfers(5)
        assert await client.call("eth_blockNumber", []) == "0x1"
        assert (await client.call("web3_clientVersion")).startswith("chainwatch/")
        error = (await client.request("eth_getLogs", [{}]))["error"]
        assert error["code"] == -32601 and "subscriptions only" in error["message"]
        error = (await client.request("eth_call", [{}, "latest"]))["error"]
        assert error["code"] == -32601
        # Still the same open connection, still answering.
        assert await client.call("eth_chainId") == hex(CHAIN_ID)


async def test_paths_select_the_chain(harness: Harness) -> None:
    async with harness.serving():
        async with rpc_client(harness.url + "/other") as client:
            assert await client.call("eth_chainId") == hex(OTHER_CHAIN_ID)
        async with rpc_client(harness.url + "/dev") as client:
            assert await client.call("eth_chainId") == hex(CHAIN_ID)
        with pytest.raises(InvalidStatus) as info:
            async with rpc_client(harness.url + "/nope"):
                pass
        assert info.value.response.status_code == 404
        assert harness.server is not None and harness.server.stats["not_found"] == 1


async def test_chainwatch_contracts(harness: Harness) -> None:
    async with harness.serving(), rpc_client(harness.url) as client:
        watched = await client.call("chainwatch_contracts", [])
    assert [c["chain"] for c in watched] == ["dev", "other"]
    dev = watched[0]
    assert dev["chain_id"] == CHAIN_ID and dev["confirmations"] == 2
    assert dev["contracts"] == [
        {"name": "Token", "address": TOKEN, "events": ["Approval", "Transfer"]}
    ] or dev["contracts"] == [
        {"name": "Token", "address": TOKEN, "events": ["Transfer", "Approval"]}
    ]
    assert dev["wallets"] == [{"addresses": [ALICE], "standards": ["erc20"]}]


async def test_bad_input_gets_errors_on_the_same_connection(harness: Harness) -> None:
    async with harness.serving() as server, rpc_client(harness.url) as client:
        for raw, code in [
            ("{", -32700),
            (b"\xff", -32700),
            ("[]", -32600),
            ('{"jsonrpc":"2.0","id":1}', -32600),
            ('{"jsonrpc":"2.0","id":1,"method":"nope"}', -32601),
            ('{"jsonrpc":"2.0","id":1,"method":"eth_subscribe","params":["logs",{"address":1}]}',
             -32602),
        ]:  # fmt: skip
            await client.send_raw(raw)
            reply = await client.any_reply()
            assert reply["error"]["code"] == code, raw
        assert await client.call("eth_chainId") == hex(CHAIN_ID)
    assert server.stats["parse_error"] == 2
    assert server.stats["invalid_request"] == 2
    assert server.stats["method_not_found"] == 1
    assert server.stats["invalid_params"] == 1


async def test_batch_is_answered_as_a_batch(harness: Harness) -> None:
    async with harness.serving(), rpc_client(harness.url) as client:
        await client.send_raw(
            json.dumps(
                [
                    {"jsonrpc": "2.0", "id": "a", "method": "eth_chainId"},
                    {"jsonrpc": "2.0", "id": "b", "method": "eth_subscribe",
                     "params": ["newHeads"]},
                    {"jsonrpc": "2.0", "id": "c", "method": "eth_nope"},
                ]
            )
        )  # fmt: skip
        batch = (await client.any_reply())["batch"]
        assert [r["id"] for r in batch] == ["a", "b", "c"]
        sub = batch[1]["result"]
        harness.dev.transfers(1)
        note = await client.notification()
        assert note["subscription"] == sub and note["result"]["number"] == "0x1"


async def test_new_heads(harness: Harness) -> None:
    async with harness.serving(), rpc_client(harness.url) as client:
        sub = await client.call("eth_subscribe", ["newHeads"])
        assert len(sub) == 34 and sub.startswith("0x")
        harness.dev.transfers(1)
        harness.other.transfers(1)  # the other chain's heads are not this path's
        harness.dev.block([])
        first, second = await client.results(2)
        assert first == harness.dev.head(1).raw
        assert second["number"] == "0x2"
        assert await client.call("eth_unsubscribe", [sub]) is True
        assert await client.call("eth_unsubscribe", [sub]) is False


async def test_logs_with_node_semantics(harness: Harness) -> None:
    dev = harness.dev
    async with harness.serving(), rpc_client(harness.url) as client:
        everything = await client.call("eth_subscribe", ["logs"])
        by_address = await client.call("eth_subscribe", ["logs", {"address": [TOKEN]}])
        to_carol = await client.call(
            "eth_subscribe", ["logs", {"topics": [TRANSFER0, None, [topic(CAROL)]]}]
        )  # fmt: skip
        dev.block([dev.transfer_log(1, ALICE, BOB), dev.transfer_log(2, ALICE, CAROL, token=USDC)])
        got: dict[str, list[dict[str, object]]] = {everything: [], by_address: [], to_carol: []}
        for note in [await client.notification() for _ in range(4)]:
            got[note["subscription"]].append(note["result"])
        assert [r["data"][-1:] for r in got[everything]] == ["1", "2"]
        assert [r["address"] for r in got[by_address]] == [TOKEN.lower()]
        assert [r["address"] for r in got[to_carol]] == [USDC.lower()]
        log = got[everything][0]
        assert log == {
            "address": TOKEN.lower(),
            "topics": [TRANSFER0, topic(ALICE), topic(BOB)],
            "data": "0x" + "0" * 63 + "1",
            "blockNumber": "0x1",
            "blockHash": dev.head(1).hash,
            "transactionHash": log["transactionHash"],
            "transactionIndex": "0x0",
            "logIndex": "0x0",
            "removed": False,
        }
        # Confirmation changes nothing for a node subscriber; a reorg re-sends with removed.
        dev.block([])
        dev.block([])
        dev.reorg(0)
        removed = await client.results(2, everything)
        assert [(r["logIndex"], r["removed"]) for r in removed] == [("0x0", True), ("0x1", True)]


async def test_chainwatch_subscribe_with_where_and_amount(harness: Harness) -> None:
    dev = harness.dev
    harness.store.save_token(CHAIN_ID, USDC, "USDC", 6)
    harness.store.save_token(CHAIN_ID, TOKEN, "TKN", 18)
    async with harness.serving(), rpc_client(harness.url) as client:
        whale_filter = {"events": ["Transfer"], "where": [["amount", ">=", "1000000"]]}
        whales = await client.call("chainwatch_subscribe", [whale_filter])
        big_raw = await client.call(
            "chainwatch_subscribe",
            [{"contracts": ["Token"], "where": [["value", ">", str(10**30)], ["to", "==", BOB]]}],
        )
        dev.block([
            dev.transfer_log(999_999_999_999, token=USDC),  # 999,999.999999 USDC
            dev.transfer_log(1_000_000_000_000, token=USDC, to=CAROL),  # exactly 1,000,000
            dev.transfer_log(10**30 + 1, to=BOB),  # 1e12 TKN, and value > 1e30
            dev.transfer_log(10**30 + 1, to=CAROL),
            dev.transfer_log(5 * 10**23),  # 500,000 TKN
        ])  # fmt: skip
        notes = [await client.notification() for _ in range(4)]
        by_sub: dict[str, list[dict[str, object]]] = {whales: [], big_raw: []}
        for note in notes:
            by_sub[note["subscription"]].append(note["result"])
        assert [(r["log_index"], r["amount"]) for r in by_sub[whales]] == [
            (1, "1000000"),
            (2, "1000000000000.000000000000000001"),
            (3, "1000000000000.000000000000000001"),
        ]
        (big,) = by_sub[big_raw]
        assert big["log_index"] == 2
        assert big["token"] == {"symbol": "TKN", "decimals": 18}
        assert big["contract"] == "Token" and big["event"] == "Transfer"
        assert big["args"] == {"from": ALICE, "to": BOB, "value": str(10**30 + 1)}
        assert big["confirmations"] == 1 and big["status"] == "new"
        assert big["historical"] is False
        usdc = by_sub[whales][0]
        assert usdc["contract"] == "ERC20" and usdc["address"] == USDC


async def test_finality_confirmed_and_removed(harness: Harness) -> None:
    dev = harness.dev  # confirmations = 2
    async with harness.serving(), rpc_client(harness.url) as client:
        new = await client.call("chainwatch_subscribe", [{"contracts": ["Token"]}])
        confirmed = await client.call(
            "chainwatch_subscribe", [{"contracts": ["Token"], "finality": "confirmed"}]
        )
        got: dict[str, list[tuple[str, str, int]]] = {new: [], confirmed: []}
        ids: dict[str, set[int]] = {}

        async def receive(count: int) -> None:
            for _ in range(count):
                note = await client.notification()
                r = note["result"]
                got[note["subscription"]].append(
                    (r["args"]["value"], r["status"], r["confirmations"])
                )
                ids.setdefault(r["args"]["value"], set()).add(r["id"])

        dev.transfers(1)  # block 1
        await receive(1)
        dev.transfers(2)  # block 2: block 1 is now 2 deep, confirmed
        await receive(2)
        dev.transfers(3)  # block 3: block 2 confirmed
        await receive(2)
        dev.reorg(1)  # orphans blocks 2 and 3: 2 was confirmed, 3 was not
        await receive(3)
        dev.transfers(4)
        await receive(1)
    assert got[new] == [("1", "new", 1), ("2", "new", 1), ("3", "new", 1), ("2", "removed", 0),
                        ("3", "removed", 0), ("4", "new", 1)]  # fmt: skip
    assert got[confirmed] == [("1", "confirmed", 2), ("2", "confirmed", 2), ("2", "removed", 0)]
    assert all(len(v) == 1 for v in ids.values())  # one id through an event's life


async def test_unsubscribe_stops_notifications(harness: Harness) -> None:
    async with harness.serving(), rpc_client(harness.url) as client:
        gone = await client.call("chainwatch_subscribe", [{}])
        kept = await client.call("chainwatch_subscribe", [{"events": ["Transfer"]}])
        assert await client.call("chainwatch_unsubscribe", [gone]) is True
        harness.dev.transfers(7)
        note = await client.notification()
        assert note["subscription"] == kept
        harness.dev.transfers(8)
        assert (await client.notification())["subscription"] == kept


async def test_with_compression(tmp_path: Any) -> None:
    # permessage-deflate: one compressor per client, so frames go through websockets itself.
    harness = Harness(tmp_path, compression=True)
    try:
        async with harness.serving(), rpc_client(harness.url, compression="deflate") as client:
            assert client.ws.protocol.extensions  # negotiated
            sub = await client.call("chainwatch_subscribe", [{}])
            stored = harness.dev.transfers(1, 2, 3)
            results = await client.results(3, sub)
            assert [r["id"] for r in results] == [e.id for e in stored]
        async with harness.serving(), rpc_client(harness.url, compression=None) as plain:
            assert await plain.call("eth_chainId") == hex(CHAIN_ID)
    finally:
        harness.close()


async def test_events_confirmed_as_they_are_stored(tmp_path: Any) -> None:
    # confirmations = 1: ingest stores each event confirmed at once and hands it over as new
    # then confirmed, in one call. Each subscriber still gets it exactly once.
    harness = Harness(tmp_path, confirmations=1)
    try:
        async with harness.serving(), rpc_client(harness.url) as client:
            new = await client.call("chainwatch_subscribe", [{}])
            confirmed = await client.call("chainwatch_subscribe", [{"finality": "confirmed"}])
            logs = await client.call("eth_subscribe", ["logs"])
            stored = harness.dev.transfers(1, 2)
            assert {e.status for e in stored} == {"confirmed"}
            notes = [await client.notification() for _ in range(6)]
            by_sub: dict[str, list[Any]] = {new: [], confirmed: [], logs: []}
            for note in notes:
                result = note["result"]
                by_sub[note["subscription"]].append(result.get("id", result.get("logIndex")))
            assert by_sub[new] == by_sub[confirmed] == [e.id for e in stored]
            assert by_sub[logs] == ["0x0", "0x1"]
            harness.dev.transfers(3)  # the next notifications are block 2's: nothing repeated
            assert (await client.notification())["result"]["args"]["value"] == "3"
    finally:
        harness.close()
