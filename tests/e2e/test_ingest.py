"""End to end: anvil, the sample contracts, `chainwatch run` and `chainwatch events`.

The store must hold exactly the logs anvil's eth_getLogs returns for what the config watches —
none missing, none extra, none twice — decoded as web3.py decodes them, on SQLite and on
PostgreSQL; history from `from_block` and from while the daemon was stopped is loaded at start.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from eth_utils import to_checksum_address
from web3 import Web3

from chainwatch.config import load_settings
from chainwatch.core.abi import is_hashed_when_indexed, load_abi_file
from chainwatch.core.jsonform import to_json_value
from chainwatch.core.standards import TRANSFER_BATCH_TOPIC0, TRANSFER_SINGLE_TOPIC0, TRANSFER_TOPIC0
from chainwatch.devnet import (
    Anvil,
    Traffic,
    contracts_dir,
    deploy,
    deploy_sample,
    write_devnet_config,
)
from chainwatch.store import Store
from tests.helpers import daemon, events_json, pg_database, stop, wait_until

pytestmark = pytest.mark.e2e
DAEMON_ARGS: tuple[str, ...] = ()


@pytest.fixture(params=["sqlite", "postgres"])
def storage_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'chainwatch.db'}"
    else:
        with pg_database() as url:
            yield url


def _wallet_topic(address: str) -> str:
    return "0x" + "0" * 24 + address.lower()[2:]


def expected_logs(w3: Web3, watched: set[str], wallet: str, to_block: int) -> list[dict[str, Any]]:
    """What the store must hold, worked out from all of anvil's logs independently of chainwatch."""
    wt = _wallet_topic(wallet)
    out = []
    for entry in w3.eth.get_logs({"fromBlock": 0, "toBlock": to_block}):
        topics = ["0x" + bytes(t).hex() for t in entry["topics"]]
        address = entry["address"].lower()
        t0 = topics[0] if topics else None
        wallet_transfer = (
            t0 == TRANSFER_TOPIC0 and len(topics) in (3, 4) and wt in topics[1:3]
        ) or (
            t0 in (TRANSFER_SINGLE_TOPIC0, TRANSFER_BATCH_TOPIC0)
            and len(topics) == 4
            and wt in topics[2:4]
        )
        if address in watched or wallet_transfer:
            out.append(dict(entry))
    return out


def reference_args(abi_path: Path, event_name: str, entry: dict[str, Any]) -> dict[str, Any]:
    """web3.py's decoding of a log, put in chainwatch's JSON form."""
    abi = json.loads(abi_path.read_text())
    abi = abi["abi"] if isinstance(abi, dict) else abi
    w3 = Web3()
    contract = w3.eth.contract(abi=abi)
    event = next(
        e
        for e in load_abi_file(abi_path)
        if e.name == event_name and e.topic_count == len(entry["topics"])
    )
    if event.anonymous:
        pytest.skip("web3.py does not decode anonymous events by name")
    decoded = contract.events[event_name]().process_log(entry)
    out = {}
    for i, param in enumerate(event.inputs):
        key = param.name or f"arg{i}"
        value = decoded["args"][key]
        if param.indexed and is_hashed_when_indexed(param):
            out[key] = "0x" + bytes(value).hex()
        else:
            out[key] = to_json_value(param, value)
    return out


def test_run_stores_exactly_the_watched_logs(tmp_path: Path, storage_url: str) -> None:
    with Anvil() as anvil:
        w3 = anvil.w3
        sample = deploy_sample(w3)
        wallet = anvil.accounts[1]
        # A token nobody watches: only its transfers to or from the wallet may be stored.
        other = deploy(w3, "TestToken", "Other", "OTH", 18)
        traffic = Traffic(w3, sample, wallets=[wallet], seed=7)
        traffic.run(25)  # before the first start: loaded from from_block
        sender = anvil.accounts[0]
        other.contract.functions.mint(sender, 10**21).transact({"from": sender})
        other.contract.functions.transfer(wallet, 5).transact({"from": sender})
        other.contract.functions.transfer(anvil.accounts[2], 7).transact({"from": sender})

        config = tmp_path / "chainwatch.toml"
        write_devnet_config(config, anvil, sample, storage_url, server_port=0)
        settings = load_settings(config)
        chain_id = settings.chains[0].chain_id
        store = Store.open(settings.storage.url)

        def caught_up() -> bool:
            checkpoint = store.checkpoint(chain_id)
            return checkpoint is not None and checkpoint.block_number >= w3.eth.block_number

        log_path = tmp_path / "daemon.log"
        with daemon(config, log_path, *DAEMON_ARGS) as proc:
            wait_until(caught_up, 60, "the history load")
            traffic.run(25)  # live
            other.contract.functions.transfer(wallet, 9).transact({"from": sender})
            wallet_sender = wallet
            other.contract.functions.transfer(anvil.accounts[3], 1).transact(
                {"from": wallet_sender}
            )
            wait_until(caught_up, 60, "the live events")
            stop(proc, log_path)

        traffic.run(20)  # while stopped: loaded at the next start
        with daemon(config, log_path, *DAEMON_ARGS) as proc:
            wait_until(caught_up, 60, "the catch-up after a restart")
            stop(proc, log_path)
        store.close()

        latest = w3.eth.block_number
        watched = {c.address.lower() for c in settings.contracts}
        expected = expected_logs(w3, watched, wallet, latest)
        stored = events_json(config)

    assert len(expected) > 60
    keys = [(e["block_hash"], e["log_index"]) for e in stored]
    assert len(keys) == len(set(keys)), "an event was stored twice"
    want = {("0x" + bytes(e["blockHash"]).hex(), e["logIndex"]): e for e in expected}
    assert set(keys) == set(want), (
        f"missing {sorted(set(want) - set(keys))[:5]}, extra {sorted(set(keys) - set(want))[:5]}"
    )
    assert {e["address"] for e in stored} >= {to_checksum_address(other.address)}
    abi_of = {c.name: c.abi for c in settings.contracts}
    for standard in ("ERC20", "ERC721", "ERC1155"):
        abi_of[standard] = contracts_dir() / "abi" / f"{standard}.json"
    checked = 0
    for row in stored:
        entry = want[(row["block_hash"], row["log_index"])]
        assert row["status"] in ("new", "confirmed")
        assert row["block_number"] == entry["blockNumber"]
        assert row["transaction_hash"] == "0x" + bytes(entry["transactionHash"]).hex()
        assert row["address"] == entry["address"]
        assert row["event"] is not None, row
        abi = json.loads(Path(abi_of[row["contract"]]).read_text())
        if any(
            e.get("anonymous")
            for e in (abi["abi"] if isinstance(abi, dict) else abi)
            if e.get("name") == row["event"]
        ):
            continue
        assert row["args"] == reference_args(Path(abi_of[row["contract"]]), row["event"], entry), (
            row
        )
        checked += 1
    assert checked > 50
