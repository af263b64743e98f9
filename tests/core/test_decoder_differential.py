"""chainwatch's decoder against eth-abi and web3.py, on random ABIs, values and corruptions.

Hypothesis builds event definitions (elementary types, fixed and dynamic arrays, nested
tuples, random indexed flags) and values; eth-abi encodes them. Then:

* on valid logs, chainwatch == eth-abi's decoding put in the JSON form with ``to_json_value``,
  and == web3.py's ``process_log`` likewise (on fewer examples: it is slow);
* on corrupted logs, chainwatch accepts exactly what eth-abi accepts, with the same values;
* on arbitrary topics and data, chainwatch returns a value or raises DecodeError.

The reference decodes ``string`` with ``errors="replace"`` like chainwatch; eth-abi's default
raises on bad UTF-8 (see chainwatch.core.jsonform).
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from eth_abi import decoding, encoding
from eth_abi.codec import ABICodec
from eth_abi.grammar import parse as parse_type
from eth_abi.registry import BaseEquals
from eth_abi.registry import registry as default_registry
from eth_utils import keccak
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from web3 import Web3

from chainwatch.core.abi import (
    AbiEvent,
    AbiParam,
    arg_key,
    is_hashed_when_indexed,
    item_param,
    parse_abi,
    split_type,
)
from chainwatch.core.decoder import AbiDecoder, EventDecoder
from chainwatch.core.jsonform import to_json_value
from chainwatch.core.standards import ERC20_ABI, ERC721_ABI, ERC1155_ABI
from chainwatch.errors import DecodeError

# --- the reference: eth-abi, strict, with strings decoded as chainwatch does -----------------


class _ReplacingStringDecoder(decoding.StringDecoder):
    @classmethod
    def from_type_str(cls, abi_type: Any, registry: Any) -> _ReplacingStringDecoder:
        return cls(handle_string_errors="replace")


_registry = default_registry.copy()
_registry.unregister("string")
_registry.register(
    BaseEquals("string"), encoding.TextStringEncoder, _ReplacingStringDecoder, label="string"
)
REFERENCE = ABICodec(_registry)
W3 = Web3()


def reference_decode(event: AbiEvent, topics: list[str], data: str) -> dict[str, Any]:
    """eth-abi's decoding of a log (topics in ABI order), in the JSON form; raises if invalid."""
    data_params = [p for p in event.inputs if not p.indexed]
    values = iter(
        REFERENCE.decode([p.canonical_type for p in data_params], bytes.fromhex(data[2:]))
    )
    topic_values = iter(topics[0 if event.anonymous else 1 :])
    out = {}
    for position, p in enumerate(event.inputs):
        if not p.indexed:
            value = next(values)
        elif is_hashed_when_indexed(p):
            value = bytes.fromhex(next(topic_values)[2:])
        else:
            topic = bytes.fromhex(next(topic_values)[2:])
            (value,) = REFERENCE.decode([p.canonical_type], topic)
        out[arg_key(p, position)] = to_json_value(p, value)
    return out


# --- random events --------------------------------------------------------------------------

ELEMENTARY = st.one_of(
    st.integers(1, 32).map(lambda n: f"uint{8 * n}"),
    st.integers(1, 32).map(lambda n: f"int{8 * n}"),
    st.integers(1, 32).map(lambda n: f"bytes{n}"),
    st.sampled_from(["address", "bool", "bytes", "string", "uint256", "address", "int24"]),
    st.tuples(st.sampled_from(["fixed", "ufixed"]), st.integers(1, 32), st.integers(1, 80)).map(
        lambda t: f"{t[0]}{8 * t[1]}x{t[2]}"
    ),
).map(lambda t: {"type": t})


def _extend(children: st.SearchStrategy[dict[str, Any]]) -> st.SearchStrategy[dict[str, Any]]:
    array = st.tuples(children, st.sampled_from(["[]", "[1]", "[2]", "[3]"])).map(
        lambda c: {**c[0], "type": c[0]["type"] + c[1]}
    )
    tuple_type = st.lists(children, min_size=1, max_size=3).map(
        lambda cs: {"type": "tuple", "components": cs}
    )
    return st.one_of(array, tuple_type)


TYPES = st.recursive(ELEMENTARY, _extend, max_leaves=5)


def _named(spec: dict[str, Any], name: str, draw_name: st.DrawFn, always: bool) -> dict[str, Any]:
    """``spec`` with names on itself and its members (unique per level; empty unless always)."""
    out = dict(spec)
    out["name"] = name if always or draw_name(st.booleans()) else ""
    if "components" in spec:
        out["components"] = [
            _named(c, f"m{i}", draw_name, always) for i, c in enumerate(spec["components"])
        ]
    return out


def _web3_can_decode_indexed(spec: dict[str, Any]) -> bool:
    # web3.py reads an indexed value back from its topic unless eth-abi calls its type dynamic;
    # for a static array or a tuple that fails or is wrong (their topic is a hash).
    (p,) = parse_abi([{"type": "event", "name": "X", "inputs": [{**spec, "name": "x"}]}])[0].inputs
    return not is_hashed_when_indexed(p) or parse_type(p.type).is_dynamic


@st.composite
def events(draw: st.DrawFn, for_web3: bool = False) -> AbiEvent:
    anonymous = False if for_web3 else draw(st.booleans())
    specs = draw(st.lists(TYPES, max_size=5))
    inputs = []
    indexed_left = 4 if anonymous else 3
    for i, spec in enumerate(specs):
        param = _named(spec, f"p{i}", draw, always=for_web3)
        can_index = not for_web3 or _web3_can_decode_indexed(spec)
        indexed = indexed_left > 0 and can_index and draw(st.booleans())
        indexed_left -= indexed
        inputs.append({**param, "indexed": indexed})
    entry = {"type": "event", "name": "E", "anonymous": anonymous, "inputs": inputs}
    (event,) = parse_abi([entry])
    return event


def _values(param: AbiParam, text_only: bool) -> st.SearchStrategy[Any]:
    """Values eth-abi can encode for ``param``; strings are given as bytes (see _encoding_type)."""
    base, dims = split_type(param.type)
    if dims:
        item = _values(item_param(param), text_only)
        size = dims[-1]
        return st.lists(item, min_size=size or 0, max_size=size if size is not None else 3)
    if base == "tuple":
        return st.tuples(*(_values(c, text_only) for c in param.components))
    if base == "address":
        return st.binary(min_size=20, max_size=20).map(lambda b: "0x" + b.hex())
    if base == "bool":
        return st.booleans()
    if base == "string":
        text = st.text(max_size=40).map(lambda s: s.encode("utf-8"))
        return text if text_only else st.one_of(text, st.binary(max_size=40))
    if base == "bytes":
        return st.binary(max_size=70)
    if base.startswith("bytes"):
        size = int(base[5:])
        return st.binary(min_size=size, max_size=size)
    if "fixed" in base:
        bits_text, places = base.removeprefix("u").removeprefix("fixed").split("x")
        bits = int(bits_text)
        low, high = (
            (0, 2**bits - 1) if base[0] == "u" else (-(2 ** (bits - 1)), 2 ** (bits - 1) - 1)
        )
        return st.integers(low, high).map(lambda v: Decimal(f"{v}E-{places}"))
    bits = int(base.removeprefix("u").removeprefix("int"))
    if base.startswith("u"):
        return st.integers(0, 2**bits - 1)
    return st.integers(-(2 ** (bits - 1)), 2 ** (bits - 1) - 1)


def _encoding_type(param: AbiParam) -> str:
    # A string is encoded exactly like bytes; encoding it as bytes lets the test produce
    # strings that are not UTF-8.
    return param.canonical_type.replace("string", "bytes")


@st.composite
def logs(draw: st.DrawFn, for_web3: bool = False) -> tuple[AbiEvent, list[str], str]:
    """A random event and a valid log of it: (event, topics, data)."""
    event = draw(events(for_web3))
    topics = [] if event.anonymous else [event.topic0]
    data_types, data_values = [], []
    for p in event.inputs:
        value = draw(_values(p, text_only=for_web3))
        if not p.indexed:
            data_types.append(_encoding_type(p))
            data_values.append(value)
        elif is_hashed_when_indexed(p):
            # Any 32 bytes: the decoder passes the hash through.
            topics.append("0x" + keccak(repr(value).encode()).hex())
        else:
            topics.append("0x" + REFERENCE.encode([_encoding_type(p)], [value]).hex())
    return event, topics, "0x" + REFERENCE.encode(data_types, data_values).hex()


# --- valid logs ------------------------------------------------------------------------------


@settings(deadline=None, max_examples=250, suppress_health_check=[HealthCheck.too_slow])
@given(logs())
def test_same_values_as_eth_abi(case: tuple[AbiEvent, list[str], str]) -> None:
    event, topics, data = case
    expected = reference_decode(event, topics, data)
    assert EventDecoder(event).decode(topics, data) == expected
    assert AbiDecoder([event]).decode(topics, data) == (event.name, expected)


@settings(deadline=None, max_examples=100, suppress_health_check=[HealthCheck.too_slow])
@given(logs(for_web3=True))
def test_same_values_as_web3_process_log(case: tuple[AbiEvent, list[str], str]) -> None:
    event, topics, data = case
    abi = [
        {
            "type": "event",
            "name": event.name,
            "anonymous": False,
            "inputs": [_param_json(p) for p in event.inputs],
        }
    ]
    log = {
        "topics": topics,
        "data": data,
        "address": "0x" + "11" * 20,
        "blockHash": "0x" + "22" * 32,
        "blockNumber": 1,
        "transactionHash": "0x" + "33" * 32,
        "transactionIndex": 0,
        "logIndex": 0,
    }
    decoded = W3.eth.contract(abi=abi).events[event.name]().process_log(log)
    expected = {p.name: to_json_value(p, decoded["args"][p.name]) for p in event.inputs}
    assert EventDecoder(event).decode(topics, data) == expected


def _param_json(p: AbiParam) -> dict[str, Any]:
    out: dict[str, Any] = {"name": p.name, "type": p.type, "indexed": p.indexed}
    if p.components:
        out["components"] = [_param_json(c) for c in p.components]
    return out


# --- corrupted logs: accepted exactly when eth-abi accepts them -------------------------------

INTERESTING_WORDS = [0, 1, 2, 31, 32, 33, 64, 96, 127, 128, 255, 256, 2**160, 2**255, 2**256 - 1]


@st.composite
def corrupted_logs(draw: st.DrawFn) -> tuple[AbiEvent, list[str], str]:
    event, topics, data = draw(logs())
    raw = bytearray(bytes.fromhex(data[2:]))
    for _ in range(draw(st.integers(1, 3))):
        kind = draw(st.sampled_from(["word", "offset", "byte", "truncate", "append", "topic"]))
        if kind in ("word", "offset") and len(raw) >= 32:
            # Offsets, lengths and padding live in words: set one to a telling value, or to
            # an offset near a word boundary of this data.
            index = draw(st.integers(0, len(raw) // 32 - 1))
            if kind == "word":
                value = draw(st.sampled_from(INTERESTING_WORDS) | st.integers(0, 2**256 - 1))
            else:
                value = 32 * draw(st.integers(0, len(raw) // 32 + 1))
                value = max(0, value + draw(st.sampled_from([0, 0, 0, 1, -1])))
            raw[32 * index : 32 * index + 32] = value.to_bytes(32, "big")
        elif kind == "byte" and raw:
            raw[draw(st.integers(0, len(raw) - 1))] = draw(st.integers(0, 255))
        elif kind == "truncate" and raw:
            del raw[draw(st.integers(0, len(raw) - 1)) :]
        elif kind == "append":
            raw.extend(draw(st.binary(min_size=1, max_size=64)))
        elif kind == "topic" and len(topics) > (0 if event.anonymous else 1):
            index = draw(st.integers(0 if event.anonymous else 1, len(topics) - 1))
            value = draw(st.sampled_from(INTERESTING_WORDS))
            topics[index] = "0x" + value.to_bytes(32, "big").hex()
    return event, topics, "0x" + raw.hex()


@settings(deadline=None, max_examples=400, suppress_health_check=[HealthCheck.too_slow])
@given(corrupted_logs())
def test_accepts_exactly_what_eth_abi_accepts(case: tuple[AbiEvent, list[str], str]) -> None:
    event, topics, data = case
    try:
        expected: dict[str, Any] | None = reference_decode(event, topics, data)
    except Exception:
        expected = None
    try:
        actual: dict[str, Any] | None = EventDecoder(event).decode(topics, data)
    except DecodeError:
        actual = None
    assert actual == expected


# --- arbitrary input: a value or DecodeError, nothing else ------------------------------------

ZOO = [
    {
        "type": "event",
        "name": "Zoo",
        "inputs": [
            {"name": "who", "type": "address", "indexed": True},
            {"name": "n", "type": "int24", "indexed": True},
            {"name": "label", "type": "string", "indexed": True},
            {"name": "flags", "type": "bool[2]"},
            {"name": "blob", "type": "bytes"},
            {
                "name": "orders",
                "type": "tuple[]",
                "components": [
                    {"name": "id", "type": "uint64"},
                    {"name": "tags", "type": "string[]"},
                    {"name": "grid", "type": "uint8[2][]"},
                ],
            },
        ],
    },
    {
        "type": "event",
        "name": "Anon",
        "anonymous": True,
        "inputs": [
            {"name": "a", "type": "bytes4", "indexed": True},
            {"name": "xs", "type": "int256[][]"},
        ],
    },
]
DECODERS = [
    AbiDecoder(parse_abi(ERC20_ABI + ERC721_ABI + ERC1155_ABI)),
    AbiDecoder(parse_abi(ZOO)),
]
KNOWN_TOPIC0S = sorted(set().union(*(d.topic0s for d in DECODERS)))

HEX = "0123456789abcdefABCDEF"
WORDS = st.one_of(
    st.sampled_from(INTERESTING_WORDS).map(lambda v: v.to_bytes(32, "big").hex()),
    st.binary(min_size=32, max_size=32).map(bytes.hex),
    st.binary(min_size=12, max_size=12).map(lambda b: "00" * 12 + b.hex()),
)
TOPICS = st.one_of(
    st.sampled_from(KNOWN_TOPIC0S),
    WORDS.map(lambda w: "0x" + w),
    st.text(alphabet=HEX + "x _-", max_size=70),
    st.text(max_size=70),
)
DATA = st.one_of(
    st.lists(WORDS, max_size=12).map(lambda ws: "0x" + "".join(ws)),
    st.binary(max_size=300).map(lambda b: "0x" + b.hex()),
    st.text(alphabet=HEX + "x _", max_size=200),
    st.text(max_size=100),
)


@settings(deadline=None, max_examples=1000)
@given(st.sampled_from(DECODERS), st.lists(TOPICS, max_size=5), DATA)
def test_arbitrary_input_gives_a_value_or_decode_error(
    decoder: AbiDecoder, topics: list[str], data: str
) -> None:
    try:
        name, args = decoder.decode(topics, data)
    except DecodeError as exc:
        assert str(exc)
    else:
        assert name in {e.name for e in decoder.events}
        assert isinstance(args, dict)


# eth-abi checks that an offset points past its container's head, but counts a static
# fixed-size array as its outer length in words and a static tuple as one word. These layouts
# put such members before dynamic ones, and zeros where an offset into the head would land, so
# that such offsets decode instead of failing on a garbage length.
HEAD_LAYOUTS = [
    (["uint256[2][2]", "string"], [[[0, 0], [0, 0]], "abc"]),
    (["(uint256,uint256,uint256)", "bytes"], [(0, 0, 0), b"\x01"]),
    (["(uint8[2][2],string)"], [([[0, 0], [0, 0]], "xy")]),
    (["(bool,(uint256,uint256,uint256),string)[]"], [[(False, (0, 0, 0), "q")]]),
    (["string[2]", "uint256[3]", "bytes"], [["", "a"], [0, 0, 0], b""]),
]


def test_every_offset_word_is_checked_like_eth_abi() -> None:
    for types, values in HEAD_LAYOUTS:
        inputs = [{"name": f"p{i}", "type": t} for i, t in enumerate(types)]
        (event,) = parse_abi([{"type": "event", "name": "E", "inputs": inputs}])
        valid = REFERENCE.encode(types, values)
        words = len(valid) // 32
        accepted = 0
        for index in range(words):
            for target in range(0, 32 * (words + 1), 32):
                raw = bytearray(valid)
                raw[32 * index : 32 * index + 32] = target.to_bytes(32, "big")
                data = "0x" + raw.hex()
                try:
                    expected: dict[str, Any] | None = reference_decode(event, [event.topic0], data)
                except Exception:
                    expected = None
                try:
                    actual = EventDecoder(event).decode([event.topic0], data)
                except DecodeError:
                    actual = None
                assert actual == expected, (types, index, target)
                accepted += expected is not None
        # The layouts are built so that some corrupted offsets still decode.
        assert accepted > words
