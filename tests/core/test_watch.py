"""WatchSet: the node filters of one chain, and routing each log to a DecodedEvent."""

from __future__ import annotations

import itertools
from collections.abc import Iterator, Sequence
from typing import Any

import pytest
from eth_abi.abi import encode
from eth_utils.address import to_checksum_address
from eth_utils.crypto import keccak
from hypothesis import given, settings
from hypothesis import strategies as st

from chainwatch.core.abi import AbiEvent, parse_abi
from chainwatch.core.model import JSON, DecodedEvent, Log
from chainwatch.core.watch import WatchSet, wallet_topic

CHAIN_ID = 31337
TOKEN = "0x5fbdb2315678afecb367f032d93f642f64180aa3"
OTHER = "0xe7f1725e7734ce288f8367e1bb143e90bb3f0512"
ZOO = "0x9fe46736679d2d9a65f0992f2272de9f3c7fa6e0"
UNWATCHED = "0xcf7ed3acca5a467e9e704c703e8d87f634fb0fc9"
WALLET = "0x70997970c51812dc3a010c7d01b50e0d17dc79c8"
WALLET2 = "0x3c44cdddb6a900fa2b585dd299e03d12fa4293bc"
STRANGER = "0x90f79bf6eb2c4f870365e9785982e1f101e93b90"
OPERATOR = "0x15d34aaf54267db7d7c367839aaf71a00a2c6a65"


def _sig(signature: str) -> str:
    return "0x" + keccak(text=signature).hex()


TRANSFER = _sig("Transfer(address,address,uint256)")
APPROVAL = _sig("Approval(address,address,uint256)")
TRANSFER_SINGLE = _sig("TransferSingle(address,address,address,uint256,uint256)")
TRANSFER_BATCH = _sig("TransferBatch(address,address,address,uint256[],uint256[])")
PING = _sig("Ping(uint256)")


def _event(name: str, *inputs: tuple[str, str, bool], anonymous: bool = False) -> dict[str, Any]:
    return {
        "type": "event",
        "name": name,
        "anonymous": anonymous,
        "inputs": [{"name": n, "type": t, "indexed": i} for n, t, i in inputs],
    }


ERC20: list[AbiEvent] = parse_abi(
    [
        _event(
            "Transfer",
            ("from", "address", True),
            ("to", "address", True),
            ("value", "uint256", False),
        ),
        _event(
            "Approval",
            ("owner", "address", True),
            ("spender", "address", True),
            ("value", "uint256", False),
        ),
    ]
)
ZOO_ABI: list[AbiEvent] = parse_abi(
    [
        _event("Ping", ("n", "uint256", False)),
        _event("Whisper", ("who", "address", True), ("n", "uint256", False), anonymous=True),
    ]
)


def topic(address: str) -> str:
    return wallet_topic(address)


def word(value: int) -> str:
    return "0x" + value.to_bytes(32, "big").hex()


def data(types: Sequence[str], values: Sequence[Any]) -> str:
    return "0x" + encode(list(types), list(values)).hex()


def make_log(address: str, topics: Sequence[str], data: str = "0x", block: int = 100) -> Log:
    return Log(
        address=address,
        topics=tuple(topics),
        data=data,
        block_number=block,
        block_hash="0x" + f"{block:064x}",
        transaction_hash="0x" + "cd" * 32,
        transaction_index=0,
        log_index=3,
    )


def erc20_transfer(address: str, frm: str, to: str, value: int = 5, block: int = 100) -> Log:
    return make_log(address, [TRANSFER, topic(frm), topic(to)], data(["uint256"], [value]), block)


def erc721_transfer(address: str, frm: str, to: str, token_id: int = 7) -> Log:
    return make_log(address, [TRANSFER, topic(frm), topic(to), word(token_id)])


def transfer_single(address: str, frm: str, to: str, operator: str = OPERATOR) -> Log:
    return make_log(
        address,
        [TRANSFER_SINGLE, topic(operator), topic(frm), topic(to)],
        data(["uint256", "uint256"], [1, 10]),
    )


def transfer_batch(address: str, frm: str, to: str, operator: str = OPERATOR) -> Log:
    return make_log(
        address,
        [TRANSFER_BATCH, topic(operator), topic(frm), topic(to)],
        data(["uint256[]", "uint256[]"], [[1, 2], [10, 20]]),
    )


def contracts_only(*contracts: tuple[str, str, list[AbiEvent], Any, int | None]) -> WatchSet:
    return WatchSet.build(CHAIN_ID, list(contracts))


def wallets_only(
    standards: Sequence[str] = ("erc20", "erc721", "erc1155"),
    addresses: Sequence[str] = (WALLET,),
    from_block: int | None = None,
) -> WatchSet:
    return WatchSet.build(CHAIN_ID, [], [(addresses, standards, from_block)])


# --- node filters ----------------------------------------------------------------------------


def test_filter_of_one_contract_with_selected_events() -> None:
    watch = contracts_only(("Token", to_checksum_address(TOKEN), ERC20, ["Transfer"], None))
    assert watch.log_filters() == [{"address": TOKEN, "topics": [[TRANSFER]]}]


def test_filter_of_contracts_is_the_union_of_their_topic0s() -> None:
    watch = contracts_only(
        ("Token", TOKEN, ERC20, ["Transfer"], None),
        ("Other", OTHER, ERC20, ["Approval"], None),
    )
    assert watch.log_filters() == [
        {"address": sorted([TOKEN, OTHER]), "topics": [sorted([TRANSFER, APPROVAL])]}
    ]


@pytest.mark.parametrize(
    ("name", "events", "only"),
    [
        ("every event", ERC20, None),
        ("an anonymous event selected", ZOO_ABI, ["Whisper"]),
        ("an anonymous event selected by signature", ZOO_ABI, ["Whisper(address,uint256)"]),
        ("an ABI with an anonymous event", ZOO_ABI, None),
    ],
)
def test_no_topic_filter_when_a_contract_takes_any_log(
    name: str, events: list[AbiEvent], only: list[str] | None
) -> None:
    watch = contracts_only(
        ("Token", TOKEN, ERC20, ["Transfer"], None), (name, ZOO, events, only, None)
    )
    assert watch.log_filters() == [{"address": sorted([TOKEN, ZOO])}]


def test_anonymous_event_not_selected_keeps_the_topic_filter() -> None:
    watch = contracts_only(("Zoo", ZOO, ZOO_ABI, ["Ping"], None))
    assert watch.log_filters() == [{"address": ZOO, "topics": [[PING]]}]


WALLET_TOPICS = sorted([topic(WALLET), topic(WALLET2)])
ERC1155_TOPIC0S = [TRANSFER_SINGLE, TRANSFER_BATCH]


@pytest.mark.parametrize(
    ("standards", "filters"),
    [
        (
            ["erc20"],
            [
                {"topics": [[TRANSFER], WALLET_TOPICS]},  # Transfer.from
                {"topics": [[TRANSFER], None, WALLET_TOPICS]},  # Transfer.to
            ],
        ),
        (
            ["erc721"],
            [
                {"topics": [[TRANSFER], WALLET_TOPICS]},
                {"topics": [[TRANSFER], None, WALLET_TOPICS]},
            ],
        ),
        (
            ["erc1155"],
            [
                {"topics": [ERC1155_TOPIC0S, None, WALLET_TOPICS]},  # TransferSingle/Batch.from
                {"topics": [ERC1155_TOPIC0S, None, None, WALLET_TOPICS]},  # .to
            ],
        ),
        (
            ["erc20", "erc721", "erc1155"],
            [
                {"topics": [[TRANSFER], WALLET_TOPICS]},
                {"topics": [sorted([TRANSFER, *ERC1155_TOPIC0S]), None, WALLET_TOPICS]},
                {"topics": [ERC1155_TOPIC0S, None, None, WALLET_TOPICS]},
            ],
        ),
        ([], []),
    ],
)
def test_wallet_filters(standards: list[str], filters: list[dict[str, JSON]]) -> None:
    watch = wallets_only(standards, [to_checksum_address(WALLET2), WALLET])
    assert unordered(watch.log_filters()) == unordered(filters)


def unordered(filters: list[dict[str, JSON]]) -> list[dict[str, JSON]]:
    """The filters with each topic's alternatives sorted: their order means nothing to a node."""
    return [
        {**f, "topics": [sorted(t) if isinstance(t, list) else t for t in f["topics"]]}
        for f in filters
    ]


def test_contract_and_wallet_filters_together() -> None:
    watch = WatchSet.build(
        CHAIN_ID, [("Token", TOKEN, ERC20, ["Approval"], None)], [([WALLET], ["erc20"], None)]
    )
    assert watch.log_filters() == [
        {"address": TOKEN, "topics": [[APPROVAL]]},
        {"topics": [[TRANSFER], [topic(WALLET)]]},
        {"topics": [[TRANSFER], None, [topic(WALLET)]]},
    ]


def test_empty_watch_set() -> None:
    watch = WatchSet.build(CHAIN_ID, [])
    assert watch.empty
    assert watch.log_filters() == []
    assert watch.start_block() is None
    assert watch.route(erc20_transfer(TOKEN, WALLET, WALLET2)) is None


def test_wallet_topic() -> None:
    assert wallet_topic(to_checksum_address(WALLET)) == "0x" + "00" * 12 + WALLET[2:]


# --- routing ---------------------------------------------------------------------------------


def test_watched_contract_event_decodes_with_the_contract_name() -> None:
    watch = contracts_only(("Token", to_checksum_address(TOKEN), ERC20, ["Transfer"], None))
    log = erc20_transfer(TOKEN, STRANGER, OPERATOR, 10**30)
    assert watch.route(log, historical=True) == DecodedEvent(
        CHAIN_ID,
        log,
        "Token",
        "Transfer",
        {
            "from": to_checksum_address(STRANGER),
            "to": to_checksum_address(OPERATOR),
            "value": str(10**30),
        },
        None,
        True,
    )


def test_watched_contract_every_event_and_anonymous() -> None:
    watch = contracts_only(("Zoo", ZOO, ZOO_ABI, None, None))
    ping = watch.route(make_log(ZOO, [PING], data(["uint256"], [3])))
    assert ping is not None
    assert (ping.contract, ping.event, ping.args) == ("Zoo", "Ping", {"n": "3"})
    whisper = watch.route(make_log(ZOO, [topic(WALLET)], data(["uint256"], [4])))
    assert whisper is not None
    assert (whisper.event, whisper.args) == (
        "Whisper",
        {"who": to_checksum_address(WALLET), "n": "4"},
    )


def test_events_selected_by_signature() -> None:
    watch = contracts_only(("Zoo", ZOO, ZOO_ABI, ["Whisper(address,uint256)"], None))
    whisper = watch.route(make_log(ZOO, [topic(WALLET)], data(["uint256"], [4])))
    assert whisper is not None
    assert (whisper.event, whisper.error) == ("Whisper", None)


def test_topic0_selected_for_another_contract_is_not_routed() -> None:
    # The node filter lists both addresses and both topic0s, so it sends Approval of Token too.
    watch = contracts_only(
        ("Token", TOKEN, ERC20, ["Transfer"], None),
        ("Other", OTHER, ERC20, ["Approval"], None),
    )
    approval = make_log(TOKEN, [APPROVAL, topic(STRANGER), topic(OPERATOR)], data(["uint256"], [1]))
    assert watch.route(approval) is None
    other = watch.route(make_log(OTHER, approval.topics, approval.data))
    assert other is not None
    assert (other.contract, other.event) == ("Other", "Approval")


def test_unwatched_address_is_not_routed() -> None:
    watch = contracts_only(("Token", TOKEN, ERC20, None, None))
    assert watch.route(erc20_transfer(UNWATCHED, STRANGER, OPERATOR)) is None


@pytest.mark.parametrize(
    ("log", "contract", "event"),
    [
        (erc20_transfer(UNWATCHED, WALLET, STRANGER), "ERC20", "Transfer"),
        (erc20_transfer(UNWATCHED, STRANGER, WALLET), "ERC20", "Transfer"),
        (erc721_transfer(UNWATCHED, WALLET, STRANGER), "ERC721", "Transfer"),
        (erc721_transfer(UNWATCHED, STRANGER, WALLET2), "ERC721", "Transfer"),
        (transfer_single(UNWATCHED, WALLET, STRANGER), "ERC1155", "TransferSingle"),
        (transfer_single(UNWATCHED, STRANGER, WALLET), "ERC1155", "TransferSingle"),
        (transfer_batch(UNWATCHED, WALLET2, STRANGER), "ERC1155", "TransferBatch"),
        (transfer_batch(UNWATCHED, STRANGER, WALLET), "ERC1155", "TransferBatch"),
    ],
)
def test_wallet_transfer_on_an_unwatched_token(log: Log, contract: str, event: str) -> None:
    routed = wallets_only(addresses=[WALLET, WALLET2]).route(log)
    assert routed is not None
    assert (routed.chain_id, routed.log, routed.contract, routed.event, routed.error) == (
        CHAIN_ID,
        log,
        contract,
        event,
        None,
    )


def test_wallet_transfer_args() -> None:
    watch = wallets_only()
    erc20 = watch.route(erc20_transfer(UNWATCHED, WALLET, STRANGER, 9))
    assert erc20 is not None
    assert erc20.args == {
        "from": to_checksum_address(WALLET),
        "to": to_checksum_address(STRANGER),
        "value": "9",
    }
    erc721 = watch.route(erc721_transfer(UNWATCHED, STRANGER, WALLET, 77))
    assert erc721 is not None
    assert erc721.args is not None
    assert erc721.args["tokenId"] == "77"
    batch = watch.route(transfer_batch(UNWATCHED, WALLET, STRANGER))
    assert batch is not None
    assert batch.args is not None
    assert (batch.args["operator"], batch.args["ids"], batch.args["values"]) == (
        to_checksum_address(OPERATOR),
        ["1", "2"],
        ["10", "20"],
    )


@pytest.mark.parametrize(
    "log",
    [
        erc20_transfer(UNWATCHED, STRANGER, OPERATOR),
        erc721_transfer(UNWATCHED, STRANGER, OPERATOR),
        transfer_single(UNWATCHED, STRANGER, OPERATOR),
        # The wallet is the operator of the ERC-1155 transfer, not a party to it.
        transfer_single(UNWATCHED, STRANGER, OPERATOR, operator=WALLET),
        transfer_batch(UNWATCHED, STRANGER, OPERATOR, operator=WALLET),
        # The wallet in the value slot of an ERC-721 transfer (token id == its address).
        make_log(UNWATCHED, [TRANSFER, topic(STRANGER), topic(OPERATOR), topic(WALLET)]),
        # Not a transfer, though the wallet stands in topic 1.
        make_log(UNWATCHED, [APPROVAL, topic(WALLET), topic(STRANGER)], data(["uint256"], [1])),
        # A Transfer with too few topics to be ERC-20 or ERC-721.
        make_log(UNWATCHED, [TRANSFER, topic(WALLET)], data(["uint256"], [1])),
        # A TransferSingle without its operator topic: not ERC-1155's shape.
        make_log(UNWATCHED, [TRANSFER_SINGLE, topic(WALLET), topic(STRANGER)], "0x"),
        make_log(UNWATCHED, [], "0x"),
    ],
)
def test_log_not_involving_the_wallet_is_not_routed(log: Log) -> None:
    assert wallets_only().route(log) is None


@pytest.mark.parametrize(
    ("standards", "log"),
    [
        (["erc20"], erc721_transfer(UNWATCHED, WALLET, STRANGER)),
        (["erc20"], transfer_single(UNWATCHED, WALLET, STRANGER)),
        (["erc721"], erc20_transfer(UNWATCHED, WALLET, STRANGER)),
        (["erc721", "erc1155"], erc20_transfer(UNWATCHED, STRANGER, WALLET)),
        (["erc20", "erc721"], transfer_batch(UNWATCHED, STRANGER, WALLET)),
        ([], erc20_transfer(UNWATCHED, WALLET, STRANGER)),
    ],
)
def test_wallet_transfer_of_an_unwatched_standard_is_not_routed(
    standards: list[str], log: Log
) -> None:
    assert wallets_only(standards).route(log) is None


def test_wallet_transfer_on_a_watched_contract_event_not_selected() -> None:
    # Token is watched for Approval only; its Transfer to the wallet comes through the wallet.
    watch = WatchSet.build(
        CHAIN_ID, [("Token", TOKEN, ERC20, ["Approval"], None)], [([WALLET], ["erc20"], None)]
    )
    routed = watch.route(erc20_transfer(TOKEN, STRANGER, WALLET))
    assert routed is not None
    assert (routed.contract, routed.event) == ("ERC20", "Transfer")


def test_watched_contract_wins_over_the_wallet_watch() -> None:
    watch = WatchSet.build(
        CHAIN_ID, [("Token", TOKEN, ERC20, None, None)], [([WALLET], ["erc20"], None)]
    )
    routed = watch.route(erc20_transfer(TOKEN, STRANGER, WALLET))
    assert routed is not None
    assert (routed.contract, routed.event) == ("Token", "Transfer")


@pytest.mark.parametrize(
    "log",
    [
        make_log(TOKEN, [TRANSFER, topic(STRANGER), topic(OPERATOR)], "0x1234"),  # short data
        make_log(TOKEN, [TRANSFER, topic(STRANGER), topic(OPERATOR), word(1)], word(1)),  # 4 topics
        make_log(TOKEN, [TRANSFER, word(2**200), topic(OPERATOR)], word(1)),  # not an address
    ],
)
def test_bad_log_of_a_watched_contract_comes_back_with_an_error(log: Log) -> None:
    routed = contracts_only(("Token", TOKEN, ERC20, None, None)).route(log, historical=True)
    assert routed is not None
    assert (routed.contract, routed.event, routed.args, routed.historical) == (
        "Token",
        None,
        None,
        True,
    )
    assert routed.error


def test_bad_wallet_transfer_comes_back_with_an_error() -> None:
    log = make_log(UNWATCHED, [TRANSFER, topic(WALLET), topic(STRANGER)], "0x00")
    routed = wallets_only().route(log)
    assert routed is not None
    assert (routed.contract, routed.event, routed.args) == ("ERC20", None, None)
    assert routed.error


def test_from_block() -> None:
    watch = WatchSet.build(
        CHAIN_ID,
        [("Token", TOKEN, ERC20, None, 100), ("Other", OTHER, ERC20, None, None)],
        [([WALLET], ["erc20"], 250), ([WALLET2], ["erc20"], 200)],
    )
    assert watch.start_block() == 100
    assert watch.route(erc20_transfer(TOKEN, STRANGER, OPERATOR, block=99)) is None
    assert watch.route(erc20_transfer(TOKEN, STRANGER, OPERATOR, block=100)) is not None
    assert watch.route(erc20_transfer(OTHER, STRANGER, OPERATOR, block=0)) is not None
    # The wallets' history starts at the lowest from_block of their watches.
    assert watch.route(erc20_transfer(UNWATCHED, WALLET, STRANGER, block=199)) is None
    assert watch.route(erc20_transfer(UNWATCHED, WALLET, STRANGER, block=200)) is not None


def test_start_block_of_wallets_alone() -> None:
    assert wallets_only(from_block=5).start_block() == 5
    assert wallets_only().start_block() is None
    assert contracts_only(("Token", TOKEN, ERC20, None, 7)).start_block() == 7


# --- the node filters cover everything route accepts -----------------------------------------


def matches(flt: dict[str, JSON], log: Log) -> bool:
    """eth_getLogs / eth_subscribe filter semantics: a list is OR, None or absent is any."""
    address = flt.get("address")
    if address is not None:
        addresses = [address] if isinstance(address, str) else address
        if log.address not in addresses:
            return False
    for position, wanted in enumerate(flt.get("topics", [])):
        if wanted is None:
            continue
        if position >= len(log.topics):
            return False
        options = [wanted] if isinstance(wanted, str) else wanted
        if log.topics[position] not in options:
            return False
    return True


COVERAGE_WATCH = WatchSet.build(
    CHAIN_ID,
    [
        ("Token", TOKEN, ERC20, ["Transfer"], None),
        ("Other", OTHER, ERC20, ["Approval"], None),
        ("Zoo", ZOO, ZOO_ABI, ["Ping"], None),
    ],
    [([WALLET], ["erc20", "erc1155"], None), ([WALLET2], ["erc721"], None)],
)
TOPIC0S = [TRANSFER, TRANSFER_SINGLE, TRANSFER_BATCH, APPROVAL, PING]
OTHER_TOPICS = [topic(a) for a in (WALLET, WALLET2, STRANGER, OPERATOR)] + [word(7)]


def every_log_shape() -> Iterator[Log]:
    """Every log of up to four topics built from these values, at watched and other addresses.

    Data does not matter here: a watched log that does not decode is routed all the same.
    """
    for address in (TOKEN, OTHER, ZOO, UNWATCHED):
        yield make_log(address, [])
        for count in range(1, 5):
            for rest in itertools.product(OTHER_TOPICS, repeat=count - 1):
                for first in TOPIC0S + OTHER_TOPICS:
                    yield make_log(address, [first, *rest])


def test_filters_cover_every_routed_log() -> None:
    filters = COVERAGE_WATCH.log_filters()
    routed = 0
    for log in every_log_shape():
        if COVERAGE_WATCH.route(log) is not None:
            routed += 1
            assert any(matches(f, log) for f in filters), log
    assert routed > 100  # the shapes do reach every kind of watch


hex32 = st.binary(min_size=32, max_size=32).map(lambda b: "0x" + b.hex())


@settings(max_examples=200)
@given(
    address=st.sampled_from([TOKEN, OTHER, ZOO, UNWATCHED]),
    topics=st.lists(st.sampled_from(TOPIC0S + OTHER_TOPICS) | hex32, max_size=4),
    payload=st.binary(max_size=160),
)
def test_route_takes_any_log(address: str, topics: list[str], payload: bytes) -> None:
    """Whatever a node sends, route answers: None, an event, or an error to store raw."""
    routed = COVERAGE_WATCH.route(make_log(address, topics, "0x" + payload.hex()))
    if routed is not None:
        assert (routed.event is None) == (routed.error is not None)
        assert (routed.args is None) == (routed.error is not None)
