"""The event decoder, type family by type family, with logs encoded by eth-abi.

Expected values are written out by hand in the JSON form, so they do not depend on the code
under test; the differential tests compare against eth-abi and web3.py on random ABIs.
"""

from __future__ import annotations

from typing import Any

import pytest
from eth_abi import encode
from eth_utils import keccak

from chainwatch.core.abi import AbiEvent, parse_abi
from chainwatch.core.decoder import AbiDecoder, EventDecoder
from chainwatch.core.model import Log
from chainwatch.core.standards import (
    TRANSFER_BATCH_TOPIC0,
    TRANSFER_SINGLE_TOPIC0,
    TRANSFER_TOPIC0,
    standard_decoder,
)
from chainwatch.errors import AbiError, DecodeError

# EIP-55 test vectors: the checksummed form of each address.
ALICE = "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed"
BOB = "0xfB6916095ca1df60bB79Ce92cE3Ea74c37c5d359"
CAROL = "0xdbF03B407c01E7cD3CBea99509d93f8DDDC8C6FB"


def param(name: str, type_str: str, indexed: bool = False, **extra: Any) -> dict[str, Any]:
    return {"name": name, "type": type_str, "indexed": indexed, **extra}


def event(name: str, *inputs: dict[str, Any], anonymous: bool = False) -> AbiEvent:
    entry = {"type": "event", "name": name, "anonymous": anonymous, "inputs": list(inputs)}
    (parsed,) = parse_abi([entry])
    return parsed


def word(value: int) -> str:
    return "0x" + value.to_bytes(32, "big").hex()


def topic_of(type_str: str, value: Any) -> str:
    return "0x" + encode([type_str], [value]).hex()


def log_of(
    ev: AbiEvent, *values: Any, topics: dict[int, str] | None = None
) -> tuple[list[str], str]:
    """Topics and data of a log of ``ev`` with ``values`` in input order.

    Indexed static values are encoded as their topic; for an indexed reference type the value
    given must be the topic itself (a keccak hash the decoder passes through).
    """
    out_topics = [] if ev.anonymous else [ev.topic0]
    data_types, data_values = [], []
    for p, value in zip(ev.inputs, values, strict=True):
        if not p.indexed:
            data_types.append(p.canonical_type)
            data_values.append(value)
        elif isinstance(value, str) and len(value) == 66:
            out_topics.append(value)
        else:
            out_topics.append(topic_of(p.canonical_type, value))
    return out_topics, "0x" + encode(data_types, data_values).hex()


def decode(ev: AbiEvent, *values: Any) -> dict[str, Any]:
    topics, data = log_of(ev, *values)
    return EventDecoder(ev).decode(topics, data)


# --- elementary types -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("type_str", "value", "expected"),
    [
        ("uint8", 0, "0"),
        ("uint8", 255, "255"),
        ("uint16", 65535, "65535"),
        ("uint64", 2**64 - 1, "18446744073709551615"),
        ("uint160", 2**160 - 1, str(2**160 - 1)),
        ("uint256", 2**256 - 1, str(2**256 - 1)),
        ("int8", -128, "-128"),
        ("int8", 127, "127"),
        ("int8", -1, "-1"),
        ("int24", -887272, "-887272"),
        ("int128", -(2**127), str(-(2**127))),
        ("int256", -(2**255), str(-(2**255))),
        ("int256", 2**255 - 1, str(2**255 - 1)),
        ("bool", True, True),
        ("bool", False, False),
        ("address", ALICE.lower(), ALICE),
        ("address", "0x" + "00" * 20, "0x" + "00" * 20),
        ("bytes1", b"\xab", "0xab"),
        ("bytes4", b"\xde\xad\xbe\xef", "0xdeadbeef"),
        ("bytes32", bytes(range(32)), "0x" + bytes(range(32)).hex()),
        ("bytes", b"", "0x"),
        ("bytes", b"\x01", "0x01"),
        ("bytes", b"\xff" * 32, "0x" + "ff" * 32),
        ("bytes", b"\x07" * 33, "0x" + "07" * 33),
        ("string", "", ""),
        ("string", "hello", "hello"),
        ("string", "héllo wörld ✓ 🦄" * 5, "héllo wörld ✓ 🦄" * 5),
        ("function", b"\x11" * 20 + b"\xa9\x05\x9c\xbb", "0x" + "11" * 20 + "a9059cbb"),
    ],
)
def test_elementary_types_in_data(type_str: str, value: Any, expected: Any) -> None:
    ev = event("E", param("before", "uint256"), param("x", type_str), param("after", "uint8"))
    assert decode(ev, 7, value, 9) == {"before": "7", "x": expected, "after": "9"}


@pytest.mark.parametrize(
    ("type_str", "value", "expected"),
    [
        ("address", BOB.lower(), BOB),
        ("uint256", 2**256 - 1, str(2**256 - 1)),
        ("uint8", 200, "200"),
        ("int16", -300, "-300"),
        ("bool", True, True),
        ("bytes32", b"\x01" * 32, "0x" + "01" * 32),
        ("bytes4", b"\x01\x02\x03\x04", "0x01020304"),
    ],
)
def test_elementary_types_in_topics(type_str: str, value: Any, expected: Any) -> None:
    ev = event("E", param("x", type_str, indexed=True), param("y", "uint256"))
    assert decode(ev, value, 1) == {"x": expected, "y": "1"}


def test_fixed_point_types_are_plain_decimal_strings() -> None:
    ev = event("E", param("a", "fixed128x18"), param("b", "ufixed8x1"), param("c", "fixed"))
    data = "0x" + encode(["int256", "uint256", "int256"], [-(15 * 10**17), 255, 10**18]).hex()
    out = EventDecoder(ev).decode([ev.topic0], data)
    assert out == {"a": "-1.5", "b": "25.5", "c": "1"}


def test_invalid_utf8_in_string_is_replaced() -> None:
    # eth-abi raises on this string; chainwatch keeps the event (see jsonform).
    ev = event("E", param("s", "string"))
    data = "0x" + encode(["bytes"], [b"ok \xff\xfe end"]).hex()
    assert EventDecoder(ev).decode([ev.topic0], data) == {"s": "ok \ufffd\ufffd end"}


# --- arrays and tuples ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("type_str", "value", "expected"),
    [
        ("uint256[3]", [1, 2, 3], ["1", "2", "3"]),
        ("address[2]", [ALICE, BOB], [ALICE, BOB]),
        ("uint8[]", [], []),
        ("uint8[]", [1, 2, 255], ["1", "2", "255"]),
        ("int64[]", [-1, 5], ["-1", "5"]),
        ("bool[]", [True, False], [True, False]),
        ("bytes2[]", [b"\x00\x01"], ["0x0001"]),
        ("string[]", ["a", "", "ccc"], ["a", "", "ccc"]),
        ("bytes[2]", [b"\x01", b"\x02" * 40], ["0x01", "0x" + "02" * 40]),
        ("uint256[2][]", [[1, 2], [3, 4]], [["1", "2"], ["3", "4"]]),
        ("uint256[][2]", [[1], [2, 3]], [["1"], ["2", "3"]]),
        ("uint256[][]", [[], [1], [2, 3]], [[], ["1"], ["2", "3"]]),
        ("string[][2]", [["x"], []], [["x"], []]),
        ("address[2][2]", [[ALICE, BOB], [CAROL, ALICE]], [[ALICE, BOB], [CAROL, ALICE]]),
    ],
)
def test_arrays(type_str: str, value: Any, expected: Any) -> None:
    ev = event("E", param("n", "uint256"), param("xs", type_str), param("s", "string"))
    assert decode(ev, 1, value, "end") == {"n": "1", "xs": expected, "s": "end"}


def _pair(name: str, indexed: bool = False, suffix: str = "") -> dict[str, Any]:
    components = [param("amount", "uint256"), param("owner", "address")]
    return param(name, "tuple" + suffix, indexed, components=components)


def test_static_tuple() -> None:
    ev = event("E", _pair("p"), param("n", "uint8"))
    assert decode(ev, (5, ALICE), 3) == {"p": {"amount": "5", "owner": ALICE}, "n": "3"}


def test_arrays_of_tuples() -> None:
    ev = event("E", _pair("fixed", suffix="[2]"), _pair("dynamic", suffix="[]"))
    out = decode(ev, [(1, ALICE), (2, BOB)], [(3, CAROL)])
    assert out == {
        "fixed": [{"amount": "1", "owner": ALICE}, {"amount": "2", "owner": BOB}],
        "dynamic": [{"amount": "3", "owner": CAROL}],
    }


def test_nested_tuples_with_dynamic_members() -> None:
    inner = param(
        "inner",
        "tuple",
        components=[param("label", "string"), param("ids", "uint256[]"), _pair("pair")],
    )
    outer = param("outer", "tuple[]", components=[param("flag", "bool"), inner])
    ev = event("E", outer, param("tail", "bytes"))
    value = [(True, ("first", [1, 2], (9, ALICE))), (False, ("", [], (0, BOB)))]
    assert ev.signature == "E((bool,(string,uint256[],(uint256,address)))[],bytes)"
    assert decode(ev, value, b"\x01\x02") == {
        "outer": [
            {
                "flag": True,
                "inner": {
                    "label": "first",
                    "ids": ["1", "2"],
                    "pair": {"amount": "9", "owner": ALICE},
                },
            },
            {
                "flag": False,
                "inner": {"label": "", "ids": [], "pair": {"amount": "0", "owner": BOB}},
            },
        ],
        "tail": "0x0102",
    }


def test_unnamed_members_and_params_are_keyed_by_position() -> None:
    tup = param("", "tuple", components=[param("", "uint8"), param("named", "string")])
    ev = event("E", param("", "address", indexed=True), param("x", "uint8"), tup)
    assert decode(ev, ALICE, 1, (2, "s")) == {
        "arg0": ALICE,
        "x": "1",
        "arg2": {"0": "2", "named": "s"},
    }


def test_signature_form_tuple_type_is_accepted() -> None:
    ev = event("E", param("t", "(uint256,string)[]"))
    assert ev.signature == "E((uint256,string)[])"
    assert decode(ev, [(1, "a")]) == {"t": [{"0": "1", "1": "a"}]}


# --- indexed reference types: their topic is a hash ---------------------------------------


@pytest.mark.parametrize(
    "type_str", ["string", "bytes", "uint256[]", "uint256[2]", "tuple", "tuple[]", "string[2]"]
)
def test_indexed_reference_types_come_out_as_their_topic(type_str: str) -> None:
    extra = {"components": [param("a", "uint256")]} if type_str.startswith("tuple") else {}
    ev = event("E", param("h", type_str, indexed=True, **extra), param("v", "uint8"))
    topic = "0x" + keccak(text="whatever the value was").hex()
    assert decode(ev, topic, 4) == {"h": topic, "v": "4"}


# --- matching logs to events --------------------------------------------------------------


def test_erc20_and_erc721_transfer_are_told_apart_by_topic_count() -> None:
    decoder = standard_decoder(["erc20", "erc721"])
    assert decoder.topic0s == frozenset({TRANSFER_TOPIC0})
    sender, receiver = topic_of("address", ALICE), topic_of("address", BOB)
    erc20 = ([TRANSFER_TOPIC0, sender, receiver], word(10**18))
    erc721 = ([TRANSFER_TOPIC0, sender, receiver, word(42)], "0x")
    assert decoder.decode(*erc20) == ("Transfer", {"from": ALICE, "to": BOB, "value": str(10**18)})
    assert decoder.decode(*erc721) == ("Transfer", {"from": ALICE, "to": BOB, "tokenId": "42"})


def test_standard_decoder_only_knows_the_requested_standards() -> None:
    sender, receiver = topic_of("address", ALICE), topic_of("address", BOB)
    with pytest.raises(DecodeError, match="4 topics, the log 3"):
        standard_decoder(["erc721"]).decode([TRANSFER_TOPIC0, sender, receiver], word(1))
    with pytest.raises(AbiError, match="unknown token standard 'erc777'"):
        standard_decoder(["erc20", "erc777"])
    assert standard_decoder(["erc20"]) is standard_decoder(("erc20",))


def test_erc1155_single_and_batch() -> None:
    decoder = standard_decoder(["erc1155"])
    assert decoder.topic0s == frozenset({TRANSFER_SINGLE_TOPIC0, TRANSFER_BATCH_TOPIC0})
    addresses = [topic_of("address", a) for a in (CAROL, ALICE, BOB)]
    single = [TRANSFER_SINGLE_TOPIC0, *addresses]
    batch = [TRANSFER_BATCH_TOPIC0, *addresses]
    single_data = "0x" + encode(["uint256", "uint256"], [7, 100]).hex()
    batch_data = "0x" + encode(["uint256[]", "uint256[]"], [[1, 2], [10, 20]]).hex()
    who = {"operator": CAROL, "from": ALICE, "to": BOB}
    assert decoder.decode(single, single_data) == (
        "TransferSingle",
        {**who, "id": "7", "value": "100"},
    )
    assert decoder.decode(batch, batch_data) == (
        "TransferBatch",
        {**who, "ids": ["1", "2"], "values": ["10", "20"]},
    )


def test_standard_topic0_constants() -> None:
    assert "0x" + keccak(text="Transfer(address,address,uint256)").hex() == TRANSFER_TOPIC0
    single = "TransferSingle(address,address,address,uint256,uint256)"
    batch = "TransferBatch(address,address,address,uint256[],uint256[])"
    assert "0x" + keccak(text=single).hex() == TRANSFER_SINGLE_TOPIC0
    assert "0x" + keccak(text=batch).hex() == TRANSFER_BATCH_TOPIC0


def _anonymous_abi() -> list[AbiEvent]:
    return [
        event("Named", param("a", "uint256", indexed=True)),
        event("Anon", param("who", "address", indexed=True), param("n", "uint8"), anonymous=True),
        event("Anon2", param("x", "uint256", indexed=True), anonymous=True),
        event("Anon3", param("y", "bytes32", indexed=True), anonymous=True),
        event("Bare", param("n", "uint8"), anonymous=True),
    ]


def test_anonymous_event_matched_when_unambiguous() -> None:
    events = _anonymous_abi()
    decoder = AbiDecoder(events)
    assert decoder.has_anonymous
    assert decoder.topic0s == frozenset({events[0].topic0})
    assert decoder.decode([], word(3)) == ("Bare", {"n": "3"})
    # Restricting to one of the two 1-topic anonymous events removes the ambiguity.
    only = AbiDecoder(events, only=["Anon", "Named"])
    assert only.decode([topic_of("address", ALICE)], word(5)) == ("Anon", {"who": ALICE, "n": "5"})
    # A named event's logs still go to the named event.
    assert only.decode([events[0].topic0, word(1)], "0x") == ("Named", {"a": "1"})


def test_anonymous_event_ambiguous_is_an_error() -> None:
    decoder = AbiDecoder(_anonymous_abi())
    with pytest.raises(DecodeError, match="ambiguous: 3 anonymous events have 1 topics"):
        decoder.decode([topic_of("address", ALICE)], word(5))


def test_only_selects_by_name_or_signature_and_rejects_unknown_names() -> None:
    events = [
        event("Transfer", param("from", "address", True), param("value", "uint256")),
        event("Transfer", param("value", "uint8")),
    ]
    by_signature = AbiDecoder(events, only=["Transfer(uint8)"])
    assert by_signature.events == (events[1],)
    assert AbiDecoder(events, only={"Transfer"}).events == tuple(events)
    with pytest.raises(AbiError, match="no event 'Approval' in the ABI"):
        AbiDecoder(events, only=["Approval"])


def test_duplicate_events_count_once_and_colliding_ones_are_tried_in_order() -> None:
    # Same signature and topic count, different indexed parameter: only the data tells.
    first = event("T", param("a", "uint256", True), param("b", "string"))
    second = event("T", param("a", "uint256"), param("b", "string", True))
    decoder = AbiDecoder([first, first, second])
    assert decoder.events == (first, second)
    hashed = "0x" + keccak(text="b").hex()
    topics, data = log_of(second, 7, hashed)
    assert decoder.decode(topics, data) == ("T", {"a": "7", "b": hashed})
    topics, data = log_of(first, 7, "s")
    assert decoder.decode(topics, data) == ("T", {"a": "7", "b": "s"})


def test_decode_log() -> None:
    ev = event("Ping", param("n", "uint16"))
    log = Log(
        address="0x" + "11" * 20,
        topics=(ev.topic0,),
        data=word(9),
        block_number=1,
        block_hash="0x" + "22" * 32,
        transaction_hash="0x" + "33" * 32,
        transaction_index=0,
        log_index=0,
    )
    assert AbiDecoder([ev]).decode_log(log) == ("Ping", {"n": "9"})


# --- logs that do not decode --------------------------------------------------------------

TRANSFER = event(
    "Transfer",
    param("from", "address", True),
    param("to", "address", True),
    param("value", "uint256"),
)
TOPICS = [TRANSFER.topic0, topic_of("address", ALICE), topic_of("address", BOB)]


@pytest.mark.parametrize(
    ("topics", "data", "message"),
    [
        (TOPICS, "0x" + "00" * 31, "data is 31 bytes, shorter than its 32-byte head"),
        (TOPICS, "0x", "data is 0 bytes"),
        (TOPICS[:2], word(1), r"has 3 topics, the log 2"),
        ([*TOPICS, word(1)], word(1), r"has 3 topics, the log 4"),
        (["0x" + "ab" * 32, *TOPICS[1:]], word(1), "no event of the ABI has topic0 0xabab"),
        ([], word(1), "without topics"),
        ([*TOPICS, word(1), word(2)], word(1), "at most 4 topics"),
        (TOPICS, "0x0", "data is not 0x-hex"),
        (TOPICS, "0xzz" + "00" * 31, "data is not 0x-hex"),
        (TOPICS, "00" * 32, "data is not 0x-hex"),
        (TOPICS, "0x" + "00 " * 31 + "00", "data is not 0x-hex"),
        ([TOPICS[0], word(1) + "00", TOPICS[2]], word(1), "from: topic 1 is not 32 bytes"),
        ([TOPICS[0], "0x" + "00" * 12 + "zz" * 20, TOPICS[2]], word(1), "from: not a 20-byte"),
        ([TOPICS[0], TOPICS[1], word(2**160)], word(1), "to: address has non-zero padding"),
    ],
)
def test_malformed_logs_raise_decode_error(topics: list[str], data: str, message: str) -> None:
    with pytest.raises(DecodeError, match=message):
        AbiDecoder([TRANSFER]).decode(topics, data)


def test_event_decoder_checks_topic0() -> None:
    approval = event("Approval", *[param(p.name, p.type, p.indexed) for p in TRANSFER.inputs])
    with pytest.raises(DecodeError, match="topic0 is not the one of Approval"):
        EventDecoder(approval).decode(TOPICS, word(1))


@pytest.mark.parametrize(
    ("type_str", "bad_word", "message"),
    [
        ("address", 2**160, "address has non-zero padding"),
        ("bool", 2, "bool is neither 0 nor 1"),
        ("bool", 2**255 + 1, "bool is neither 0 nor 1"),
        ("uint8", 256, "uint8 has non-zero padding"),
        ("uint248", 2**248, "uint248 has non-zero padding"),
        ("int8", 128, "int8 has bad sign padding"),
        ("int8", 2**256 - 129, "int8 has bad sign padding"),
        ("bytes4", 1, "bytes4 has non-zero padding"),
        ("bytes31", 1, "bytes31 has non-zero padding"),
        ("ufixed8x1", 256, "ufixed8x1 has bad padding"),
    ],
)
def test_dirty_padding_is_rejected(type_str: str, bad_word: int, message: str) -> None:
    in_data = event("E", param("x", type_str))
    with pytest.raises(DecodeError, match=f"E: x: {message}"):
        EventDecoder(in_data).decode([in_data.topic0], word(bad_word))
    in_topic = event("E", param("x", type_str, indexed=True))
    with pytest.raises(DecodeError, match=message):
        EventDecoder(in_topic).decode([in_topic.topic0, word(bad_word)], "0x")


def _string_event() -> AbiEvent:
    return event("S", param("n", "uint256"), param("s", "string"))


def _corrupt(data: str, word_index: int, value: int) -> str:
    raw = bytearray(bytes.fromhex(data[2:]))
    raw[32 * word_index : 32 * word_index + 32] = value.to_bytes(32, "big")
    return "0x" + raw.hex()


@pytest.mark.parametrize(
    ("word_index", "value", "message"),
    [
        (1, 0, "bad offset at byte 32"),  # points into the head
        (1, 32, "bad offset at byte 32"),
        (1, 128, "bad offset at byte 32"),  # points at the end of the data
        (1, 2**256 - 1, "bad offset at byte 32"),
        (2, 33, "string of 33 bytes runs past the end"),  # the string's length
        (2, 2**255, "string of [0-9]+ bytes runs past the end"),
        (3, int.from_bytes(b"abc" + b"\x01" + bytes(28), "big"), "string has non-zero padding"),
    ],
)
def test_bad_offsets_and_lengths(word_index: int, value: int, message: str) -> None:
    ev = _string_event()
    topics, data = log_of(ev, 1, "abc")
    assert EventDecoder(ev).decode(topics, data) == {"n": "1", "s": "abc"}
    with pytest.raises(DecodeError, match=f"S: s: {message}"):
        EventDecoder(ev).decode(topics, _corrupt(data, word_index, value))


def test_truncated_dynamic_data() -> None:
    ev = event(
        "E", param("xs", "uint256[]"), param("t", "tuple", components=[param("s", "string")])
    )
    topics, data = log_of(ev, [1, 2, 3], ("hello",))
    decoder = EventDecoder(ev)
    assert decoder.decode(topics, data) == {"xs": ["1", "2", "3"], "t": {"s": "hello"}}
    for cut in range(64, len(data), 64):
        with pytest.raises(DecodeError):
            decoder.decode(topics, data[:cut])


def test_array_length_beyond_data_is_rejected_without_allocating() -> None:
    for type_str in ("uint256[]", "string[]"):
        ev = event("E", param("xs", type_str))
        data = "0x" + word(32)[2:] + word(2**255)[2:]
        with pytest.raises(DecodeError, match=r"array of \d+ items runs past the end of data"):
            EventDecoder(ev).decode([ev.topic0], data)


def test_trailing_data_is_ignored_as_eth_abi_does() -> None:
    ev = event("E", param("n", "uint8"))
    assert EventDecoder(ev).decode([ev.topic0], word(1) + "ff" * 40) == {"n": "1"}
