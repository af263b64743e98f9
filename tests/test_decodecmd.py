"""``chainwatch decode``'s stream: its fast path against parse_log's, and any split of the input.

* The fast path of :meth:`LogDecoder.line` (node logs in their usual form) gives exactly what
  :meth:`LogDecoder.checked_line` (parse_log, then the decoder) gives, on valid logs and on
  logs with one field changed in any of the ways a peer may get it wrong.
* :func:`decode_stream` gives the same output whatever the size of its reads (down to one
  byte): lines split across reads, blank lines, CRLF, a last line without a newline, JSON
  arrays split anywhere.
"""

from __future__ import annotations

import io
import json
import random
from typing import Any

import orjson
import pytest
from eth_abi import encode
from hypothesis import given, settings
from hypothesis import strategies as st

from chainwatch.core.abi import parse_abi
from chainwatch.core.decoder import AbiDecoder
from chainwatch.core.standards import ERC20_ABI, ERC721_ABI
from chainwatch.decodecmd import InputError, LogDecoder, decode_stream

DECODER = AbiDecoder(parse_abi([*ERC20_ABI, *ERC721_ABI]))
TRANSFER = "0xddf252ad1be2c89b69c2b068fc378daa952ba7f163c4a11628f55a4df523b3ef"

addresses = st.binary(min_size=20, max_size=20).map(lambda b: "0x" + b.hex())
hashes = st.binary(min_size=32, max_size=32).map(lambda b: "0x" + b.hex())
quantities = st.integers(0, 2**64).map(hex)


@st.composite
def node_logs(draw: st.DrawFn) -> dict[str, Any]:
    """An ERC-20 (3 topics) or ERC-721 (4 topics) Transfer as a node sends it."""
    parties = [draw(addresses), draw(addresses)]
    topics = [TRANSFER, *("0x" + encode(["address"], [a]).hex() for a in parties)]
    value = draw(st.integers(0, 2**256 - 1))
    if draw(st.booleans()):
        topics.append("0x" + encode(["uint256"], [value]).hex())
        data = "0x"
    else:
        data = "0x" + encode(["uint256"], [value]).hex()
    return {
        "address": draw(addresses),
        "topics": topics,
        "data": data,
        "blockHash": draw(hashes),
        "blockNumber": draw(quantities),
        "transactionHash": draw(hashes),
        "transactionIndex": draw(quantities),
        "logIndex": draw(quantities),
        "removed": False,
    }


FIELDS = [
    "address", "topics", "data", "blockHash", "blockNumber", "transactionHash",
    "transactionIndex", "logIndex", "removed",
]  # fmt: skip
# What a field may become: each a function of its value.
CHANGES = {
    "upper case": lambda v: v.upper() if isinstance(v, str) else v,
    "upper-case digits": lambda v: "0x" + v[2:].upper() if isinstance(v, str) else v,
    "0X": lambda v: "0X" + v[2:] if isinstance(v, str) else v,
    "no 0x": lambda v: v[2:] if isinstance(v, str) else v,
    "one digit less": lambda v: v[:-1] if isinstance(v, str) else v,
    "a space": lambda v: v[:4] + " " + v[4:] if isinstance(v, str) else v,
    "not hex": lambda v: v[:-1] + "g" if isinstance(v, str) else v,
    "an underscore": lambda v: v[:3] + "_" + v[3:] if isinstance(v, str) else v,
    "an int": lambda v: 7,
    "null": lambda v: None,
    "a list": lambda v: [v],
    "true": lambda v: True,
    "the string false": lambda v: "false",
    "empty": lambda v: "",
    "0x": lambda v: "0x",
}
TOPIC_CHANGES = {
    "one less": lambda t: t[:-1],
    "one more": lambda t: [*t, t[-1]],
    "five": lambda t: [*t, t[-1], t[-1], t[-1]],
    "topic0 upper": lambda t: [t[0].upper(), *t[1:]],
    "topic1 upper digits": lambda t: [t[0], "0x" + t[1][2:].upper(), *t[2:]],
    "topic1 dirty padding": lambda t: [t[0], "0x01" + t[1][4:], *t[2:]],
    "topic1 short": lambda t: [t[0], t[1][:-2], *t[2:]],
    "topic1 not hex": lambda t: [t[0], t[1][:-1] + "z", *t[2:]],
    "topic1 an int": lambda t: [t[0], 5, *t[2:]],
    "a tuple": lambda t: {"0": t[0]},
}


def both(obj: Any) -> tuple[bytes, bytes, list[str], list[str]]:
    warned: tuple[list[str], list[str]] = ([], [])
    fast = LogDecoder(DECODER, warned[0].append).line(4, obj)
    checked = LogDecoder(DECODER, warned[1].append).checked_line(4, obj)
    return fast, checked, *warned


@settings(max_examples=300)
@given(node_logs())
def test_fast_path_equals_parse_log_on_valid_logs(log: dict[str, Any]) -> None:
    fast, checked, _, _ = both(log)
    assert fast == checked
    assert orjson.loads(fast)["event"] == "Transfer"


@settings(max_examples=600)
@given(node_logs(), st.sampled_from(FIELDS), st.sampled_from(list(CHANGES)))
def test_fast_path_equals_parse_log_on_a_changed_field(
    log: dict[str, Any], field: str, change: str
) -> None:
    log[field] = CHANGES[change](log[field])
    assert both(log)[0] == both(log)[1]
    assert both(log)[2] == both(log)[3]


@settings(max_examples=300)
@given(node_logs(), st.sampled_from(list(TOPIC_CHANGES)))
def test_fast_path_equals_parse_log_on_changed_topics(log: dict[str, Any], change: str) -> None:
    log["topics"] = TOPIC_CHANGES[change](log["topics"])
    fast, checked, fast_warned, checked_warned = both(log)
    assert (fast, fast_warned) == (checked, checked_warned)


@given(node_logs(), st.sampled_from(FIELDS))
def test_fast_path_equals_parse_log_without_a_field(log: dict[str, Any], field: str) -> None:
    del log[field]
    fast, checked, fast_warned, checked_warned = both(log)
    assert (fast, fast_warned) == (checked, checked_warned)


def test_not_a_log_names_the_line_on_both_outputs() -> None:
    warned: list[str] = []
    logs = LogDecoder(DECODER, warned.append)
    out = logs.line(9, [1, 2])
    assert orjson.loads(out) == {"line": 9, "error": "not a log: log: expected an object, got list"}
    assert warned == ["line 9: not a log: log: expected an object, got list"]
    assert (logs.counts.malformed, logs.counts.undecoded) == (1, 0)


# --- the stream ---------------------------------------------------------------------------------


def sample_lines(count: int) -> list[str]:
    rng = random.Random(5)
    lines = []
    for i in range(count):
        parties = ["0x" + encode(["address"], ["0x" + rng.randbytes(20).hex()]).hex()] * 2
        log = {
            "address": "0x" + rng.randbytes(20).hex(),
            "topics": [TRANSFER, *parties],
            "data": "0x" + encode(["uint256"], [rng.randrange(2**256)]).hex(),
            "blockHash": "0x" + rng.randbytes(32).hex(),
            "blockNumber": hex(i),
            "transactionHash": "0x" + rng.randbytes(32).hex(),
            "transactionIndex": "0x0",
            "logIndex": hex(i),
        }
        lines.append(json.dumps(log))
    return lines


LINES = sample_lines(6)
UNDECODED = json.dumps({**json.loads(LINES[0]), "topics": [TRANSFER]})
TEXT = "\n".join(
    ["", LINES[0], LINES[1], "", "not json", LINES[2] + "\r", UNDECODED, "[1]", "  ", *LINES[3:]]
)


def run(data: bytes, chunk: int) -> tuple[bytes, LogDecoder, list[str]]:
    warned: list[str] = []
    logs = LogDecoder(DECODER, warned.append)
    sink = io.BytesIO()
    decode_stream(io.BytesIO(data), sink, logs, chunk=chunk)
    return sink.getvalue(), logs, warned


def test_lines_out_one_for_one_with_line_numbers() -> None:
    out, logs, warned = run(TEXT.encode(), 1 << 20)
    records = [orjson.loads(line) for line in out.splitlines()]
    assert [r.get("line") for r in records] == [None, None, 5, None, None, 8, None, None, None]
    assert records[4]["event"] is None and "topics" in records[4]["error"]
    assert [r["event"] for r in records if "block_number" in r].count("Transfer") == 6
    assert [w[:24] for w in warned] == ["line 5: not valid JSON: ", "line 8: not a log: log: "]
    assert (logs.counts.items, logs.counts.malformed, logs.counts.undecoded) == (9, 2, 1)


@pytest.mark.parametrize("chunk", [1, 2, 3, 7, 64, 1000])
@pytest.mark.parametrize("end", ["", "\n", "\n\n"])
def test_any_read_size_gives_the_same_output(chunk: int, end: str) -> None:
    data = (TEXT + end).encode()
    expected, _, expected_warned = run(data, 1 << 20)
    out, logs, warned = run(data, chunk)
    assert (out, warned) == (expected, expected_warned)
    assert logs.counts.items == 9


@pytest.mark.parametrize("chunk", [1, 5, 64, 1 << 20])
@pytest.mark.parametrize("space", ["", " ", "\n  "])
def test_an_array_gives_what_its_items_give_as_lines(chunk: int, space: str) -> None:
    items = [*LINES[:3], UNDECODED, "[1]", *LINES[3:]]
    array = space + "[" + space + ("," + space).join(items) + space + "]" + space
    out, logs, warned = run(array.encode(), chunk)
    expected, _, expected_warned = run("\n".join(items).encode(), 1 << 20)
    assert (out, warned) == (expected, expected_warned)
    assert logs.counts.items == len(items)


@pytest.mark.parametrize(
    ("array", "message"),
    [
        ("[{}, {} {}]", "item 3: expected ',' or ']', got '{'"),
        ("[{}, {]", "item 2: not valid JSON"),
        ("[{}, ", "item 2: the array is not closed"),
        ("[{}, {}] []", "item 2: data after the end of the array"),
        ("[{},]", "item 2: not valid JSON"),
    ],
)
@pytest.mark.parametrize("chunk", [1, 1 << 20])
def test_a_malformed_array_stops_after_the_items_before(
    array: str, message: str, chunk: int
) -> None:
    warned: list[str] = []
    logs = LogDecoder(DECODER, warned.append)
    sink = io.BytesIO()
    with pytest.raises(InputError, match=message.replace("[", r"\[").replace("(", r"\(")):
        decode_stream(io.BytesIO(array.encode()), sink, logs, chunk=chunk)
    assert logs.counts.malformed >= 1 and sink.getvalue().count(b'"line":1,') == 1


@pytest.mark.parametrize("data", [b"", b"\n\n  \n", b"[]", b" [ ]\n"])
def test_nothing_in_nothing_out(data: bytes) -> None:
    out, logs, warned = run(data, 1)
    assert (out, logs.counts.items, warned) == (b"", 0, [])
