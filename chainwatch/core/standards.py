"""The token standards chainwatch knows without an ABI: ERC-20, ERC-721 and ERC-1155.

Their events are written here as JSON ABI data, with OpenZeppelin's parameter names. They let
chainwatch follow the token transfers of a wallet on *any* contract: subscribe to the transfer
topic0s with the wallet in a ``from``/``to`` topic, and decode with :func:`standard_decoder`.

ERC-20 and ERC-721 ``Transfer`` share their signature, hence topic0; ERC-721 indexes its third
parameter, so its logs have 4 topics where ERC-20's have 3: the decoder and the wallet watches
(:mod:`chainwatch.core.watch`) tell them apart by that count.

* ERC-20: https://eips.ethereum.org/EIPS/eip-20
* ERC-721: https://eips.ethereum.org/EIPS/eip-721
* ERC-1155: https://eips.ethereum.org/EIPS/eip-1155
"""

from __future__ import annotations

from collections.abc import Collection
from functools import cache
from typing import Any, Literal

from chainwatch.core.abi import parse_abi
from chainwatch.core.decoder import AbiDecoder
from chainwatch.errors import AbiError

__all__ = [
    "CONTRACT_NAMES",
    "ERC20_ABI",
    "ERC721_ABI",
    "ERC1155_ABI",
    "STANDARD_ABIS",
    "TRANSFER_BATCH_TOPIC0",
    "TRANSFER_EVENTS",
    "TRANSFER_SINGLE_TOPIC0",
    "TRANSFER_TOPIC0",
    "Standard",
    "standard_decoder",
]

Standard = Literal["erc20", "erc721", "erc1155"]

# keccak("Transfer(address,address,uint256)"), and likewise; test_decoder checks them.
TRANSFER_TOPIC0 = "0xddf252ad1be2c89b69c2b068fc378daa952ba7f163c4a11628f55a4df523b3ef"
TRANSFER_SINGLE_TOPIC0 = "0xc3d58168c5ae7397731d063d5bbf3d657854427343f4c083240f7aacaa2d0f62"
TRANSFER_BATCH_TOPIC0 = "0x4a39dc06d4c0dbc64b70af90fd698a233a518aa5d07e595d983b8c0526c8f7fb"


def _param(name: str, type_str: str, indexed: bool) -> dict[str, Any]:
    return {"name": name, "type": type_str, "indexed": indexed}


def _event(name: str, *inputs: dict[str, Any]) -> dict[str, Any]:
    return {"type": "event", "name": name, "anonymous": False, "inputs": list(inputs)}


ERC20_ABI: list[dict[str, Any]] = [
    _event(
        "Transfer",
        _param("from", "address", True),
        _param("to", "address", True),
        _param("value", "uint256", False),
    ),
    _event(
        "Approval",
        _param("owner", "address", True),
        _param("spender", "address", True),
        _param("value", "uint256", False),
    ),
]

ERC721_ABI: list[dict[str, Any]] = [
    _event(
        "Transfer",
        _param("from", "address", True),
        _param("to", "address", True),
        _param("tokenId", "uint256", True),
    ),
    _event(
        "Approval",
        _param("owner", "address", True),
        _param("approved", "address", True),
        _param("tokenId", "uint256", True),
    ),
    _event(
        "ApprovalForAll",
        _param("owner", "address", True),
        _param("operator", "address", True),
        _param("approved", "bool", False),
    ),
]

ERC1155_ABI: list[dict[str, Any]] = [
    _event(
        "TransferSingle",
        _param("operator", "address", True),
        _param("from", "address", True),
        _param("to", "address", True),
        _param("id", "uint256", False),
        _param("value", "uint256", False),
    ),
    _event(
        "TransferBatch",
        _param("operator", "address", True),
        _param("from", "address", True),
        _param("to", "address", True),
        _param("ids", "uint256[]", False),
        _param("values", "uint256[]", False),
    ),
    _event(
        "ApprovalForAll",
        _param("account", "address", True),
        _param("operator", "address", True),
        _param("approved", "bool", False),
    ),
    _event("URI", _param("value", "string", False), _param("id", "uint256", True)),
]

STANDARD_ABIS: dict[Standard, list[dict[str, Any]]] = {
    "erc20": ERC20_ABI,
    "erc721": ERC721_ABI,
    "erc1155": ERC1155_ABI,
}

# The names to report as the ``contract`` of an event decoded with a standard.
CONTRACT_NAMES: dict[Standard, str] = {"erc20": "ERC20", "erc721": "ERC721", "erc1155": "ERC1155"}

# The events that move tokens, per standard.
TRANSFER_EVENTS: dict[Standard, tuple[str, ...]] = {
    "erc20": ("Transfer",),
    "erc721": ("Transfer",),
    "erc1155": ("TransferSingle", "TransferBatch"),
}


def standard_decoder(standards: Collection[str]) -> AbiDecoder:
    """A decoder of the transfer events of the given standards (``"erc20"``, ``"erc721"``,
    ``"erc1155"``), built once per set of standards and shared.

    AbiError if a standard is unknown or none is given.
    """
    unknown = sorted(set(standards) - set(STANDARD_ABIS))
    if unknown:
        known = ", ".join(STANDARD_ABIS)
        raise AbiError(f"unknown token standard {unknown[0]!r} (known: {known})")
    if not standards:
        raise AbiError("no token standard given")
    return _build(frozenset(standards))


@cache
def _build(standards: frozenset[str]) -> AbiDecoder:
    events = []
    # In a fixed order, so that the decoder does not depend on the caller's iteration order.
    for standard in STANDARD_ABIS:
        if standard in standards:
            wanted = TRANSFER_EVENTS[standard]
            abi = [e for e in STANDARD_ABIS[standard] if e["name"] in wanted]
            events.extend(parse_abi(abi, source=CONTRACT_NAMES[standard]))
    return AbiDecoder(events)
