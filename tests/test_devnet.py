"""The devnet against a real anvil: the node, the sample contracts, the traffic, the config.

Also pins down what anvil does on a reorg, which the daemon's reorg handling relies on.
"""

from __future__ import annotations

import json
import os
import tomllib
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from eth_utils.crypto import keccak
from web3.logs import DISCARD
from websockets.sync.client import ClientConnection, connect

from chainwatch.devnet import (
    Anvil,
    SampleContracts,
    Traffic,
    abi_path,
    contracts_dir,
    deploy_sample,
    devnet_config_text,
    find_anvil,
    wait_mined,
    write_devnet_config,
)
from chainwatch.errors import ChainwatchError, ProviderUnreachable, RpcErrorResponse

REPO = Path(__file__).resolve().parent.parent


def topic0(signature: str) -> str:
    return "0x" + keccak(text=signature).hex()


TRANSFER = topic0("Transfer(address,address,uint256)")
APPROVAL = topic0("Approval(address,address,uint256)")
TRANSFER_SINGLE = topic0("TransferSingle(address,address,address,uint256,uint256)")
TRANSFER_BATCH = topic0("TransferBatch(address,address,address,uint256[],uint256[])")
ZOO_EVENTS = {
    topic0("Dynamic(string,string,bytes)"): "Dynamic",
    topic0("Arrays(uint256[],address[3],bytes32[])"): "Arrays",
    topic0("Nested(uint256,(address,uint128,bytes,uint8[2]),(address,uint128,bytes,uint8[2])[])"): (
        "Nested"
    ),
    topic0("Signed(int256,int8,int24)"): "Signed",
}


def get_logs(anvil: Anvil, from_block: int, to_block: int | str = "latest") -> list[dict[str, Any]]:
    """Raw eth_getLogs: lowercase hex strings, as chainwatch sees logs."""
    end = to_block if isinstance(to_block, str) else hex(to_block)
    logs: list[dict[str, Any]] = anvil.rpc(
        "eth_getLogs", [{"fromBlock": hex(from_block), "toBlock": end}]
    )
    return logs


def subscribe(ws: ClientConnection, *params: Any) -> str:
    ws.send(json.dumps({"jsonrpc": "2.0", "id": 1, "method": "eth_subscribe", "params": params}))
    answer = json.loads(ws.recv(timeout=5))
    assert isinstance(answer["result"], str), answer
    return str(answer["result"])


def notifications(ws: ClientConnection, count: int, quiet: float = 0.15) -> list[dict[str, Any]]:
    """The next ``count`` notifications, checking that no other follows within ``quiet`` s."""
    out: list[dict[str, Any]] = [
        json.loads(ws.recv(timeout=5))["params"]["result"] for _ in range(count)
    ]
    with pytest.raises(TimeoutError):
        extra = ws.recv(timeout=quiet)
        pytest.fail(f"unexpected notification after {count}: {extra!r}")
    return out


# --- the node ---------------------------------------------------------------------------------


def test_anvil_answers(anvil: Anvil) -> None:
    assert anvil.running
    assert anvil.w3.eth.chain_id == 31337
    assert anvil.rpc("eth_chainId") == "0x7a69"
    assert len(anvil.accounts) == 10
    assert anvil.accounts[1] == "0x70997970C51812dc3A010C7d01b50e0d17dc79C8"
    assert anvil.http_url == f"http://127.0.0.1:{anvil.port}"
    assert anvil.ws_url == f"ws://127.0.0.1:{anvil.port}"


def test_rpc_error_is_mapped(anvil: Anvil) -> None:
    with pytest.raises(RpcErrorResponse) as caught:
        anvil.rpc("no_such_method")
    assert caught.value.code != 0


def test_websocket_answers_eth_subscribe(anvil: Anvil) -> None:
    with connect(anvil.ws_url) as ws:
        subscribe(ws, "newHeads")
        before = anvil.w3.eth.block_number
        anvil.mine(2)
        heads = [int(h["number"], 16) for h in notifications(ws, 2)]
    assert heads == [before + 1, before + 2]


def test_block_time_mines_on_an_interval() -> None:
    with Anvil(block_time=0.2, chain_id=1337) as node:
        assert node.w3.eth.chain_id == 1337
        first = node.w3.eth.block_number
        with connect(node.ws_url) as ws:
            subscribe(ws, "newHeads")
            head = json.loads(ws.recv(timeout=5))["params"]["result"]
        assert int(head["number"], 16) > first


def test_kill_then_restart_on_the_same_port(fresh_anvil: Anvil) -> None:
    port = fresh_anvil.port
    fresh_anvil.mine(3)
    fresh_anvil.kill()
    assert not fresh_anvil.running
    with pytest.raises(ProviderUnreachable):
        fresh_anvil.rpc("eth_blockNumber")
    fresh_anvil.restart()
    assert fresh_anvil.port == port
    assert fresh_anvil.w3.eth.block_number == 0  # a new chain
    fresh_anvil.stop()
    fresh_anvil.stop()


def test_find_anvil_honours_the_environment(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    real = find_anvil()
    monkeypatch.setenv("CHAINWATCH_ANVIL", real)
    assert find_anvil() == real
    monkeypatch.setenv("CHAINWATCH_ANVIL", str(tmp_path / "missing"))
    with pytest.raises(ChainwatchError, match="CHAINWATCH_ANVIL"):
        find_anvil()


def test_a_failing_anvil_reports_its_error() -> None:
    with pytest.raises(ChainwatchError, match="anvil exited"):
        Anvil(extra_args=["--no-such-flag"])


# --- contracts and traffic --------------------------------------------------------------------


def test_deploy_sample_puts_code_at_each_address(
    anvil: Anvil, sample_contracts: SampleContracts
) -> None:
    for _, deployed, abi in sample_contracts.watched():
        assert len(anvil.w3.eth.get_code(deployed.address)) > 100
        assert abi_path(abi).is_file()
    token, usdc = sample_contracts.token.contract, sample_contracts.usdc.contract
    assert (token.functions.symbol().call(), token.functions.decimals().call()) == ("TST", 18)
    assert (usdc.functions.symbol().call(), usdc.functions.decimals().call()) == ("USDC", 6)


def test_traffic_makes_one_log_of_every_kind_per_transaction(
    anvil: Anvil, sample_contracts: SampleContracts
) -> None:
    start = anvil.w3.eth.block_number + 1
    traffic = Traffic(anvil.w3, sample_contracts, seed=11)
    hashes = traffic.run(50)
    assert len(set(hashes)) == 50
    assert sum(traffic.counts.values()) == 50
    assert set(traffic.counts) == set(Traffic.KINDS)

    zoo = sample_contracts.zoo.address.lower()
    logs = get_logs(anvil, start)
    assert {log["transactionHash"] for log in logs} == {h.to_0x_hex() for h in hashes}
    assert len(logs) == 50
    seen: Counter[object] = Counter()
    for log in logs:
        topics = log["topics"]
        if topics[0] in ZOO_EVENTS:
            seen[ZOO_EVENTS[topics[0]]] += 1
        elif log["address"] == zoo:
            assert len(topics) == 1, log  # Anon: its only topic is the indexed address
            assert topics[0].startswith("0x" + "00" * 12)
            seen["Anon"] += 1
        else:
            seen[(topics[0], len(topics))] += 1
    for kind in (
        (TRANSFER, 3),  # ERC-20
        (TRANSFER, 4),  # ERC-721
        (APPROVAL, 3),
        (APPROVAL, 4),
        (TRANSFER_SINGLE, 4),
        (TRANSFER_BATCH, 4),
        "Dynamic",
        "Arrays",
        "Nested",
        "Signed",
        "Anon",
    ):
        assert seen[kind] > 0, kind


def test_traffic_is_seeded(fresh_anvil: Anvil) -> None:
    def inputs() -> list[str]:
        sample = deploy_sample(fresh_anvil.w3)
        hashes = Traffic(fresh_anvil.w3, sample, seed=5).run(12)
        return [fresh_anvil.w3.eth.get_transaction(h)["input"].hex() for h in hashes]

    first = inputs()
    fresh_anvil.restart()
    Traffic.forget_streams()  # within the same second, the new chain's blocks are the old ones
    assert inputs() == first


def test_traffic_pays_wallets_and_instances_share_contracts(
    anvil: Anvil, sample_contracts: SampleContracts
) -> None:
    wallet = "0x000000000000000000000000000000000000dEaD"
    start = anvil.w3.eth.block_number + 1
    one = Traffic(anvil.w3, sample_contracts, wallets=[wallet], seed=1)
    two = Traffic(anvil.w3, sample_contracts, wallets=[wallet], seed=1)
    hashes = []
    for _ in range(2):
        hashes += one.run(10, wait=False) + two.run(10, wait=False)
    wait_mined(anvil.w3, hashes)  # raises if any reverted
    padded = "0x" + "00" * 12 + wallet[2:].lower()
    assert any(padded in log["topics"][1:] for log in get_logs(anvil, start))


def test_event_zoo_fire_all(anvil: Anvil, sample_contracts: SampleContracts) -> None:
    zoo = sample_contracts.zoo
    tx_hash = zoo.contract.functions.fireAll().transact({"from": anvil.accounts[0]})
    receipt = anvil.w3.eth.wait_for_transaction_receipt(tx_hash, timeout=10)
    assert [
        ZOO_EVENTS.get("0x" + bytes(log["topics"][0]).hex(), "Anon") for log in receipt["logs"]
    ] == ["Dynamic", "Arrays", "Nested", "Signed", "Anon"]
    (nested,) = zoo.contract.events.Nested().process_receipt(receipt, errors=DISCARD)
    assert nested["args"]["id"] == 7
    assert nested["args"]["orders"][1]["amount"] == 2**128 - 1


# --- reorgs: what the daemon must cope with ---------------------------------------------------


def test_anvil_reorg_sends_new_heads_but_no_removed_logs(fresh_anvil: Anvil) -> None:
    sample = deploy_sample(fresh_anvil.w3)
    traffic = Traffic(fresh_anvil.w3, sample, seed=2)
    with connect(fresh_anvil.ws_url) as heads_ws, connect(fresh_anvil.ws_url) as logs_ws:
        subscribe(heads_ws, "newHeads")
        subscribe(logs_ws, "logs", {})
        traffic.run(4)
        tip = fresh_anvil.w3.eth.get_block("latest")
        notifications(logs_ws, 4)
        notifications(heads_ws, 4)

        zoo = sample.zoo.contract
        replacement = {
            "from": fresh_anvil.accounts[0],
            "to": sample.zoo.address,
            "data": zoo.encode_abi("emitSigned", args=[-1, -2, -3]),
            "gas": 100_000,
        }
        fresh_anvil.reorg(2, [(replacement, 0)])  # type: ignore[list-item]

        heads = notifications(heads_ws, 2)
        new_logs = notifications(logs_ws, 1)
    new_tip = fresh_anvil.w3.eth.get_block("latest")
    assert new_tip["number"] == tip["number"] and new_tip["hash"] != tip["hash"]
    # The replacement blocks are announced again, under the same numbers...
    assert [int(h["number"], 16) for h in heads] == [tip["number"] - 1, tip["number"]]
    # ...and only the new log arrives: nothing says the two old ones were removed.
    assert [(int(log["blockNumber"], 16), log["removed"]) for log in new_logs] == [
        (tip["number"] - 1, False)
    ]
    assert len(get_logs(fresh_anvil, tip["number"] - 1)) == 1


def test_evm_revert_rewinds_silently(fresh_anvil: Anvil) -> None:
    snapshot = fresh_anvil.rpc("evm_snapshot")
    fresh_anvil.mine(3)
    with connect(fresh_anvil.ws_url) as ws:
        subscribe(ws, "newHeads")
        assert fresh_anvil.rpc("evm_revert", [snapshot]) is True
        notifications(ws, 0)
        assert fresh_anvil.w3.eth.block_number == 0
        fresh_anvil.mine(1)
        assert [int(h["number"], 16) for h in notifications(ws, 1)] == [1]


# --- config -----------------------------------------------------------------------------------


def test_write_devnet_config(
    anvil: Anvil, sample_contracts: SampleContracts, tmp_path: Path
) -> None:
    path = write_devnet_config(
        tmp_path / "sub" / "devnet.toml", anvil, sample_contracts, "sqlite:///x.db"
    )
    raw = tomllib.loads(path.read_text())
    assert raw["chains"] == [
        {"name": "devnet", "chain_id": 31337, "providers": [anvil.ws_url], "confirmations": 2}
    ]
    assert {c["name"]: c["address"] for c in raw["contracts"]} == sample_contracts.addresses
    for contract in raw["contracts"]:
        assert (path.parent / contract["abi"]).resolve().is_file()
        assert not os.path.isabs(contract["abi"])
    assert raw["wallets"] == [
        {
            "chain": "devnet",
            "addresses": [anvil.accounts[1]],
            "standards": ["erc20", "erc721", "erc1155"],
        }
    ]


def test_written_config_loads(
    anvil: Anvil, sample_contracts: SampleContracts, tmp_path: Path
) -> None:
    config = pytest.importorskip("chainwatch.config")
    path = write_devnet_config(tmp_path / "devnet.toml", anvil, sample_contracts, "sqlite:///x.db")
    settings = config.load_settings(path)
    assert [c.address for c in settings.contracts] == list(sample_contracts.addresses.values())
    assert settings.wallets[0].addresses == (anvil.accounts[1],)


def test_committed_example_config_is_current(fresh_anvil: Anvil) -> None:
    """config/devnet.toml lists what deploy_sample gives on a fresh anvil."""
    from chainwatch.devnet import EXAMPLE_COMMENT

    sample = deploy_sample(fresh_anvil.w3)
    committed = REPO / "config" / "devnet.toml"
    expected = devnet_config_text(
        committed.parent,
        ws_url="ws://127.0.0.1:8545",
        chain_id=31337,
        sample=sample,
        wallet=fresh_anvil.accounts[1],
        storage_url="sqlite:///devnet.db",
        comment=EXAMPLE_COMMENT,
    )
    assert committed.read_text() == expected, "run `python -m chainwatch.devnet`"
    assert contracts_dir() == REPO / "contracts"
