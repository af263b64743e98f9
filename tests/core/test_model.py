"""Node JSON in (parse_log, parse_head), the one JSON form of an event out."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest
from eth_utils.address import to_checksum_address
from hypothesis import given
from hypothesis import strategies as st

from chainwatch.core.model import (
    Head,
    Log,
    StoredEvent,
    _parse_log_checked,
    parse_head,
    parse_log,
    quick_init,
)
from chainwatch.errors import RemoteProtocolError

ADDRESS = "0x5fbdb2315678afecb367f032d93f642f64180aa3"
BLOCK_HASH = "0x" + "ab" * 32
TX_HASH = "0x" + "cd" * 32
TRANSFER = "0xddf252ad1be2c89b69c2b068fc378daa952ba7f163c4a11628f55a4df523b3ef"


def node_log(**changes: Any) -> dict[str, Any]:
    """A log as a node sends it, with some members replaced (or removed when set to ...)."""
    log = {
        "address": ADDRESS,
        "topics": [TRANSFER, "0x" + "00" * 12 + "11" * 20, "0x" + "00" * 12 + "22" * 20],
        "data": "0x" + "00" * 31 + "01",
        "blockNumber": "0x11",
        "blockHash": BLOCK_HASH,
        "transactionHash": TX_HASH,
        "transactionIndex": "0x0",
        "logIndex": "0x1",
        "removed": False,
    }
    log.update(changes)
    return {k: v for k, v in log.items() if v is not ...}


def test_parse_log() -> None:
    assert parse_log(node_log()) == Log(
        address=ADDRESS,
        topics=(TRANSFER, "0x" + "00" * 12 + "11" * 20, "0x" + "00" * 12 + "22" * 20),
        data="0x" + "00" * 31 + "01",
        block_number=17,
        block_hash=BLOCK_HASH,
        transaction_hash=TX_HASH,
        transaction_index=0,
        log_index=1,
        removed=False,
    )


def test_parse_log_normalises_case_and_defaults_removed() -> None:
    log = parse_log(
        node_log(
            address=to_checksum_address(ADDRESS),
            blockHash=BLOCK_HASH.upper().replace("0X", "0x"),
            blockNumber="0X1F",
            data="0xABCD",
            removed=...,
        )
    )
    assert log.address == ADDRESS
    assert log.block_hash == BLOCK_HASH
    assert log.block_number == 31
    assert log.data == "0xabcd"
    assert log.removed is False
    assert parse_log(node_log(removed=True)).removed is True
    assert parse_log(node_log(topics=[], data="0x")).topics == ()


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"address": ...}, "address"),
        ({"address": "0x" + "11" * 19}, "address"),
        ({"address": "0x" + "11" * 21}, "address"),
        ({"address": "11" * 20}, "address"),
        ({"address": "0x" + "zz" * 20}, "address"),
        ({"address": 5}, "address"),
        ({"topics": ...}, "topics"),
        ({"topics": "0x00"}, "topics"),
        ({"topics": [TRANSFER] * 5}, "topics"),
        ({"topics": [TRANSFER, "0x1234"]}, r"topics\[1\]"),
        ({"topics": [None]}, r"topics\[0\]"),
        ({"topics": [TRANSFER[:-2] + "g0"]}, r"topics\[0\]"),
        ({"data": ...}, "data"),
        ({"data": "0x123"}, "data"),
        ({"data": "0xab  cd"}, "data"),  # bytes.fromhex would skip the spaces
        ({"data": "abcd"}, "data"),
        ({"data": None}, "data"),
        ({"blockNumber": ...}, "blockNumber"),
        ({"blockNumber": None}, "blockNumber"),  # a pending log
        ({"blockNumber": 17}, "blockNumber"),
        ({"blockNumber": "17"}, "blockNumber"),
        ({"blockNumber": "0x"}, "blockNumber"),
        ({"blockNumber": "0xg"}, "blockNumber"),
        ({"blockNumber": "0x-1"}, "blockNumber"),
        ({"blockNumber": "0x1_0"}, "blockNumber"),  # int() would read 16
        ({"blockNumber": "0x1 "}, "blockNumber"),  # int() would strip the space
        ({"blockNumber": "0x\u0663"}, "blockNumber"),  # int() reads an Arabic-Indic 3
        ({"blockHash": ...}, "blockHash"),
        ({"blockHash": "0x" + "ab" * 31}, "blockHash"),
        ({"transactionHash": TX_HASH + "00"}, "transactionHash"),
        ({"transactionHash": None}, "transactionHash"),
        ({"transactionIndex": ...}, "transactionIndex"),
        ({"transactionIndex": 0}, "transactionIndex"),
        ({"logIndex": ...}, "logIndex"),
        ({"logIndex": "1"}, "logIndex"),
        ({"removed": "false"}, "removed"),  # bool("false") is True
        ({"removed": 0}, "removed"),
    ],
)
def test_parse_log_names_the_bad_field(changes: dict[str, Any], field: str) -> None:
    with pytest.raises(RemoteProtocolError, match=f"^{field}: "):
        parse_log(node_log(**changes))


@pytest.mark.parametrize("obj", [None, [], "0x", 1])
def test_parse_log_wants_an_object(obj: Any) -> None:
    with pytest.raises(RemoteProtocolError, match=r"^log: expected an object"):
        parse_log(obj)


def test_parse_log_error_is_cut_short() -> None:
    with pytest.raises(RemoteProtocolError) as info:
        parse_log(node_log(data="0x" + "z" * 10_000))
    assert len(str(info.value)) < 120


hex32 = st.binary(min_size=32, max_size=32).map(lambda b: "0x" + b.hex())
logs = st.builds(
    Log,
    address=st.binary(min_size=20, max_size=20).map(lambda b: "0x" + b.hex()),
    topics=st.lists(hex32, max_size=4).map(tuple),
    data=st.binary(max_size=200).map(lambda b: "0x" + b.hex()),
    block_number=st.integers(min_value=0, max_value=2**64 - 1),
    block_hash=hex32,
    transaction_hash=hex32,
    transaction_index=st.integers(min_value=0, max_value=2**32),
    log_index=st.integers(min_value=0, max_value=2**32),
    removed=st.booleans(),
)


@given(logs)
def test_log_round_trips_through_the_node_form(log: Log) -> None:
    assert parse_log(log.to_rpc()) == log


field_values = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.just([]),
    st.lists(st.sampled_from([TRANSFER, "0x1", "0X" + "AB" * 32, 7]), max_size=6),
    st.text(alphabet="0xXabcdefABCDEFg_ 19", max_size=70),
    st.sampled_from(["0x", "0x0", "0X1f", "0x" + "Ab" * 20, "0x" + "ab" * 32, "0x_1"]),
)


@given(st.sampled_from(list(node_log())), field_values | st.just(...))
def test_parse_log_fast_path_agrees_with_the_field_checks(field: str, value: Any) -> None:
    """parse_log checks a log with one pattern per field and falls back to the checks that
    name the bad field: on any log, both accept the same and return the same."""
    obj = node_log(**{field: value})
    try:
        expected: Log | str = _parse_log_checked(obj)
    except RemoteProtocolError as exc:
        expected = str(exc)
    try:
        got: Log | str = parse_log(obj)
    except RemoteProtocolError as exc:
        got = str(exc)
    assert got == expected


def test_log_key() -> None:
    assert parse_log(node_log()).key == (BLOCK_HASH, 1)


# --- heads -----------------------------------------------------------------------------------


def test_parse_head() -> None:
    raw = {
        "number": "0x10",
        "hash": BLOCK_HASH,
        "parentHash": TX_HASH,
        "timestamp": "0x6553f100",
        "miner": ADDRESS,
    }
    head = parse_head(raw)
    assert head == Head(16, BLOCK_HASH, TX_HASH, 0x6553F100)
    assert head.raw == raw
    assert parse_head({"number": "0x0", "hash": BLOCK_HASH, "parentHash": TX_HASH}).timestamp == 0


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"number": None}, "number"),
        ({"number": "0xq"}, "number"),
        ({"hash": "0x12"}, "hash"),
        ({"parentHash": 1}, "parentHash"),
        ({"timestamp": "1700000000"}, "timestamp"),
    ],
)
def test_parse_head_names_the_bad_field(changes: dict[str, Any], field: str) -> None:
    raw = {"number": "0x10", "hash": BLOCK_HASH, "parentHash": TX_HASH, **changes}
    with pytest.raises(RemoteProtocolError, match=f"^{field}: "):
        parse_head(raw)


def test_parse_head_wants_an_object() -> None:
    with pytest.raises(RemoteProtocolError, match=r"^head: expected an object"):
        parse_head(["0x10"])


# --- the JSON form ---------------------------------------------------------------------------

JSON_KEYS = [
    "id",
    "chain_id",
    "block_number",
    "block_hash",
    "transaction_hash",
    "transaction_index",
    "log_index",
    "address",
    "contract",
    "event",
    "args",
    "status",
]


def test_stored_event_json_form() -> None:
    log = parse_log(node_log())
    args = {"from": to_checksum_address("0x" + "11" * 20), "value": "1"}
    event = StoredEvent(42, 31337, log, "Token", "Transfer", args, None, "new", historical=True)
    assert event.to_json() == {
        "id": 42,
        "chain_id": 31337,
        "block_number": 17,
        "block_hash": BLOCK_HASH,
        "transaction_hash": TX_HASH,
        "transaction_index": 0,
        "log_index": 1,
        "address": "0x5FbDB2315678afecb367f032d93F642f64180aa3",
        "contract": "Token",
        "event": "Transfer",
        "args": args,
        "status": "new",
    }
    assert list(event.to_json()) == JSON_KEYS


def test_stored_event_json_form_of_an_undecoded_log() -> None:
    log = parse_log(node_log(removed=True))
    event = StoredEvent(7, 1, log, "Token", None, None, "data too short", "removed")
    out = event.to_json()
    assert list(out) == [*JSON_KEYS, "error"]
    assert out["event"] is None
    assert out["args"] is None
    assert out["error"] == "data too short"
    assert out["status"] == "removed"


@given(logs, st.sampled_from(["new", "confirmed", "removed"]))
def test_stored_event_address_is_eip55(log: Log, status: Any) -> None:
    out = StoredEvent(1, 1, log, None, None, None, None, status).to_json()
    assert out["address"] == to_checksum_address(log.address)
    assert list(out) == JSON_KEYS


def _record_class(name: str) -> Any:
    """A fresh frozen slots dataclass (quick_init changes the class it is given)."""

    @dataclasses.dataclass(frozen=True, slots=True)
    class Record:
        a: int
        b: tuple[str, ...]
        c: str = "c"
        d: bool = False

    Record.__name__ = Record.__qualname__ = name
    return Record


_Plain = _record_class("_Plain")
_Quick = quick_init(_record_class("_Quick"))


@given(st.integers(), st.lists(st.text(max_size=3)).map(tuple), st.text(), st.booleans())
def test_quick_init_builds_what_the_dataclass_init_builds(
    a: int, b: tuple[str, ...], c: str, d: bool
) -> None:
    for args, kwargs in [((a, b), {}), ((a, b, c), {"d": d}), ((), {"b": b, "a": a, "c": c})]:
        quick, plain = _Quick(*args, **kwargs), _Plain(*args, **kwargs)
        assert dataclasses.astuple(quick) == dataclasses.astuple(plain)
        assert quick == _Quick(*args, **kwargs)
        assert hash(quick) == hash(_Quick(*args, **kwargs))
        assert dataclasses.replace(quick, d=not quick.d).d is not quick.d


def test_quick_init_keeps_the_class_frozen_and_its_errors() -> None:
    quick = _Quick(1, ())
    with pytest.raises(dataclasses.FrozenInstanceError):
        quick.a = 2
    with pytest.raises(TypeError, match="missing 1 required positional argument: 'b'"):
        _Quick(1)
    with pytest.raises(TypeError, match="unexpected keyword argument 'e'"):
        _Quick(1, (), e=3)
    assert repr(quick) == "_Quick(a=1, b=(), c='c', d=False)"


def test_quick_init_refuses_a_default_factory() -> None:
    @dataclasses.dataclass(frozen=True, slots=True)
    class WithFactory:
        a: list[int] = dataclasses.field(default_factory=list)

    with pytest.raises(TypeError, match="default_factory"):
        quick_init(WithFactory)
