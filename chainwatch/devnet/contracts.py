"""The test contracts: their build artifacts, deploying them, waiting for transactions."""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from eth_typing import ChecksumAddress
from hexbytes import HexBytes
from web3 import Web3
from web3.contract import Contract
from web3.exceptions import TimeExhausted
from web3.types import RPCEndpoint, TxReceipt

from chainwatch.devnet.node import SOURCE_ROOT
from chainwatch.errors import ChainwatchError

_POLL_INTERVAL = 0.02


def contracts_dir() -> Path:
    """The repository's ``contracts/`` folder, next to the ``chainwatch`` package."""
    folder = SOURCE_ROOT / "contracts"
    if not folder.is_dir():
        raise ChainwatchError(
            f"{folder} not found: the devnet needs chainwatch's source tree, not an installed copy"
        )
    return folder


def abi_path(name: str) -> Path:
    """``contracts/abi/<name>.json``: a standard ABI (ERC20, ...) or a test contract's."""
    return contracts_dir() / "abi" / f"{name}.json"


def load_artifact(name: str) -> dict[str, Any]:
    """``contracts/build/<name>.json``: ``{"contractName", "abi", "bytecode"}``."""
    path = contracts_dir() / "build" / f"{name}.json"
    try:
        artifact: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ChainwatchError(f"{path} not found: run `make contracts`") from None
    except (OSError, ValueError) as exc:
        raise ChainwatchError(f"{path}: cannot read: {exc}") from None
    return artifact


@dataclass(frozen=True, slots=True)
class Deployed:
    """A contract deployed by :func:`deploy`."""

    name: str  # the contract's name in contracts/src, e.g. "TestToken"
    address: ChecksumAddress
    contract: Contract
    tx_hash: HexBytes
    block_number: int


def deploy(
    w3: Web3,
    name: str,
    *args: Any,
    sender: ChecksumAddress | str | None = None,
    timeout: float = 60.0,
) -> Deployed:
    """Deploy ``contracts/build/<name>.json`` with constructor ``args`` and wait until mined.

    ``sender`` defaults to the node's first account, which must be unlocked (anvil's are).
    """
    tx_hash, abi = _send_deployment(w3, name, args, sender)
    return _deployed(w3, name, tx_hash, abi, timeout)


def _send_deployment(
    w3: Web3, name: str, args: Sequence[Any], sender: ChecksumAddress | str | None
) -> tuple[HexBytes, list[dict[str, Any]]]:
    artifact = load_artifact(name)
    factory = w3.eth.contract(abi=artifact["abi"], bytecode=artifact["bytecode"])
    account = Web3.to_checksum_address(sender) if sender is not None else w3.eth.accounts[0]
    tx_hash = factory.constructor(*args).transact({"from": account})
    return tx_hash, artifact["abi"]


def _deployed(
    w3: Web3, name: str, tx_hash: HexBytes, abi: list[dict[str, Any]], timeout: float
) -> Deployed:
    receipt = wait_for_receipt(w3, tx_hash, timeout)
    address = receipt["contractAddress"]
    if address is None:
        raise ChainwatchError(
            f"deploying {name}: transaction {tx_hash.to_0x_hex()} made no contract"
        )
    return Deployed(
        name=name,
        address=address,
        contract=w3.eth.contract(address=address, abi=abi),
        tx_hash=tx_hash,
        block_number=receipt["blockNumber"],
    )


def wait_for_receipt(w3: Web3, tx_hash: HexBytes, timeout: float = 60.0) -> TxReceipt:
    """The receipt of a mined transaction; raises ChainwatchError if it reverted or timed out."""
    try:
        receipt = w3.eth.wait_for_transaction_receipt(tx_hash, timeout=timeout, poll_latency=0.02)
    except TimeExhausted:
        raise ChainwatchError(
            f"transaction {tx_hash.to_0x_hex()} not mined after {timeout:g}s"
        ) from None
    if receipt["status"] != 1:
        raise ChainwatchError(f"transaction {tx_hash.to_0x_hex()} reverted")
    return receipt


def wait_mined(w3: Web3, tx_hashes: Iterable[HexBytes], timeout: float = 60.0) -> int:
    """Wait until every transaction of ``tx_hashes`` is mined; the highest block they are in.

    Raises ChainwatchError if one reverted or is not mined within ``timeout`` seconds. Reads raw
    receipts: web3's receipt formatting costs more than anvil's answer.
    """
    deadline = time.monotonic() + timeout
    highest = -1
    for tx_hash in tx_hashes:
        while True:
            response = w3.provider.make_request(
                RPCEndpoint("eth_getTransactionReceipt"), [tx_hash.to_0x_hex()]
            )
            if "error" in response:
                raise ChainwatchError(f"eth_getTransactionReceipt: {response['error']}")
            receipt = response.get("result")
            if receipt is not None:
                break
            if time.monotonic() > deadline:
                raise ChainwatchError(
                    f"transaction {tx_hash.to_0x_hex()} not mined after {timeout:g}s"
                )
            time.sleep(_POLL_INTERVAL)
        if int(receipt["status"], 16) != 1:
            raise ChainwatchError(f"transaction {tx_hash.to_0x_hex()} reverted")
        highest = max(highest, int(receipt["blockNumber"], 16))
    return highest


@dataclass(frozen=True, slots=True)
class SampleContracts:
    """The contracts :func:`deploy_sample` deploys, in deployment order."""

    token: Deployed  # TestToken "Test Token" (TST), 18 decimals
    usdc: Deployed  # TestToken "USD Coin" (USDC), 6 decimals
    nft: Deployed  # TestNFT
    multi_token: Deployed  # TestMultiToken
    zoo: Deployed  # EventZoo

    def watched(self) -> tuple[tuple[str, Deployed, str], ...]:
        """``(config name, contract, ABI name)`` for each: the standard ABI for tokens."""
        return (
            ("TST", self.token, "ERC20"),
            ("USDC", self.usdc, "ERC20"),
            ("TestNFT", self.nft, "ERC721"),
            ("TestMultiToken", self.multi_token, "ERC1155"),
            ("EventZoo", self.zoo, "EventZoo"),
        )

    @property
    def addresses(self) -> dict[str, ChecksumAddress]:
        """Config name -> address."""
        return {label: deployed.address for label, deployed, _ in self.watched()}


def deploy_sample(
    w3: Web3, *, sender: ChecksumAddress | str | None = None, timeout: float = 60.0
) -> SampleContracts:
    """Deploy the five sample contracts; all are sent before waiting, so this takes one block
    when the node mines on an interval."""
    plan: list[tuple[str, tuple[Any, ...]]] = [
        ("TestToken", ("Test Token", "TST", 18)),
        ("TestToken", ("USD Coin", "USDC", 6)),
        ("TestNFT", ()),
        ("TestMultiToken", ()),
        ("EventZoo", ()),
    ]
    sent = [(name, *_send_deployment(w3, name, args, sender)) for name, args in plan]
    token, usdc, nft, multi_token, zoo = (
        _deployed(w3, name, tx_hash, abi, timeout) for name, tx_hash, abi in sent
    )
    return SampleContracts(token, usdc, nft, multi_token, zoo)
