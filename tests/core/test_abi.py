"""Parsing JSON ABIs into events: canonical types, signatures, topic0, and errors."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from eth_utils import keccak

from chainwatch.core.abi import (
    AbiEvent,
    AbiParam,
    is_hashed_when_indexed,
    load_abi_file,
    parse_abi,
    parse_param_type,
    split_type,
)
from chainwatch.errors import AbiError


def entry(name: str, *inputs: dict[str, Any], anonymous: bool = False) -> dict[str, Any]:
    return {"type": "event", "name": name, "anonymous": anonymous, "inputs": list(inputs)}


def inp(name: str, type_str: str, indexed: bool = False, **extra: Any) -> dict[str, Any]:
    return {"name": name, "type": type_str, "indexed": indexed, **extra}


TRANSFER = entry(
    "Transfer", inp("from", "address", True), inp("to", "address", True), inp("value", "uint256")
)


def test_transfer_event() -> None:
    (event,) = parse_abi([TRANSFER])
    assert event == AbiEvent(
        "Transfer",
        (
            AbiParam("from", "address", True),
            AbiParam("to", "address", True),
            AbiParam("value", "uint256", False),
        ),
        anonymous=False,
    )
    assert event.signature == "Transfer(address,address,uint256)"
    assert event.topic0 == "0xddf252ad1be2c89b69c2b068fc378daa952ba7f163c4a11628f55a4df523b3ef"
    assert event.topic_count == 3


def test_non_events_are_ignored_and_artifact_form_is_accepted() -> None:
    abi = [
        {"type": "function", "name": "transfer", "inputs": [], "outputs": []},
        {"name": "noTypeMeansFunction", "inputs": []},
        {"type": "constructor", "inputs": []},
        {"type": "error", "name": "Nope", "inputs": []},
        TRANSFER,
    ]
    assert [e.name for e in parse_abi(abi)] == ["Transfer"]
    assert parse_abi({"abi": abi, "bytecode": "0x"}) == parse_abi(abi)
    assert parse_abi([]) == []


def test_aliases_are_canonicalised_for_the_signature() -> None:
    (event,) = parse_abi(
        [entry("E", inp("a", "uint"), inp("b", "int[]"), inp("c", "fixed"), inp("d", "byte"))]
    )
    assert [p.type for p in event.inputs] == ["uint256", "int256[]", "fixed128x18", "bytes1"]
    assert event.signature == "E(uint256,int256[],fixed128x18,bytes1)"


def test_tuples_are_expanded_in_the_signature() -> None:
    order = inp(
        "order",
        "tuple[]",
        components=[
            inp("maker", "address"),
            inp("legs", "tuple[2]", components=[inp("id", "uint256"), inp("memo", "string")]),
        ],
    )
    (event,) = parse_abi([entry("Filled", order, inp("note", "bytes", True))])
    assert event.signature == "Filled((address,(uint256,string)[2])[],bytes)"
    assert event.topic0 == "0x" + keccak(text=event.signature).hex()
    assert event.inputs[0].canonical_type == "(address,(uint256,string)[2])[]"
    assert event.inputs[0].components[1].type == "tuple[2]"


def test_anonymous_events_have_no_topic0_in_their_topic_count() -> None:
    (named, anonymous) = parse_abi(
        [
            entry("E", inp("a", "uint8", True), inp("b", "uint8", True)),
            entry("E", inp("a", "uint8", True), inp("b", "uint8", True), anonymous=True),
        ]
    )
    assert (named.topic_count, anonymous.topic_count) == (3, 2)


def test_unnamed_and_missing_optional_fields() -> None:
    (event,) = parse_abi([{"type": "event", "name": "E", "inputs": [{"type": "uint8"}]}])
    assert event == AbiEvent("E", (AbiParam("", "uint8", False),), anonymous=False)
    (event,) = parse_abi([{"type": "event", "name": "Bare"}])
    assert event.inputs == () and event.signature == "Bare()"


@pytest.mark.parametrize(
    ("abi", "message"),
    [
        ("nope", 'expected a list of ABI entries or an object with an "abi" list'),
        ({"bytecode": "0x"}, "expected a list of ABI entries"),
        ([1], "entry 0: expected an object, got int"),
        ([{"type": 3}], "entry 0: 'type' must be a string"),
        ([{"type": "event", "name": "1x"}], "entry 0: event 'name' must be an identifier"),
        ([{"type": "event", "name": "E", "inputs": {}}], r"entry 0 \(event E\): 'inputs' must be"),
        ([entry("E", inp("a", "uint7"))], r"input 0 \(a\): unknown type 'uint7'"),
        ([entry("E", inp("a", "uint264"))], "unknown type 'uint264'"),
        ([entry("E", inp("a", "bytes33"))], "unknown type 'bytes33'"),
        ([entry("E", inp("a", "bytes0"))], "unknown type 'bytes0'"),
        ([entry("E", inp("a", "uint08"))], "unknown type 'uint08'"),
        ([entry("E", inp("a", "fixed128x81"))], "unknown type 'fixed128x81'"),
        ([entry("E", inp("a", "uint256[0]"))], "zero-length array"),
        ([entry("E", inp("a", "uint256[01]"))], "unknown type 'uint256\\[01\\]'"),
        ([entry("E", inp("a", "mapping"))], "unknown type 'mapping'"),
        ([entry("E", inp("a", "tuple"))], "a tuple needs a non-empty 'components' list"),
        ([entry("E", inp("a", 5))], "'type' must be a string"),
        ([entry("E", inp("a", "bool", indexed="yes"))], "'indexed' must be true or false"),
        ([entry("E", inp(7, "bool"))], "'name' must be a string"),  # type: ignore[arg-type]
        ([entry("E", inp("a", "bool"), inp("a", "uint8"))], "duplicate input name 'a'"),
        ([entry("E", inp("", "bool"), inp("arg0", "uint8"))], "duplicate input name 'arg0'"),
        (
            [entry("E", inp("t", "tuple", components=[inp("x", "bool"), inp("x", "bool")]))],
            "duplicate member name 'x'",
        ),
        (
            [entry("E", inp("t", "tuple", components=[inp("x", "bool", True)]))],
            "a tuple member cannot be indexed",
        ),
        ([entry("E", *[inp(f"a{i}", "bool", True) for i in range(4)])], "4 indexed inputs, at"),
        (
            [entry("E", *[inp(f"a{i}", "bool", True) for i in range(5)], anonymous=True)],
            "5 indexed inputs, at most 4",
        ),
        ([{**entry("E"), "anonymous": "no"}], "'anonymous' must be true or false"),
    ],
)
def test_malformed_abis_raise_abi_error_naming_source_and_entry(abi: Any, message: str) -> None:
    with pytest.raises(AbiError, match=message) as caught:
        parse_abi(abi, source="Token.json")
    assert str(caught.value).startswith("Token.json: ")


def test_indexed_limits_are_inclusive() -> None:
    three = entry("E", *[inp(f"a{i}", "bool", True) for i in range(3)])
    four = entry("A", *[inp(f"a{i}", "bool", True) for i in range(4)], anonymous=True)
    assert [e.topic_count for e in parse_abi([three, four])] == [4, 4]


def test_load_abi_file(tmp_path: Path) -> None:
    path = tmp_path / "Token.json"
    path.write_text(json.dumps({"contractName": "Token", "abi": [TRANSFER]}))
    assert load_abi_file(path) == parse_abi([TRANSFER])
    assert load_abi_file(str(path)) == parse_abi([TRANSFER])


def test_load_abi_file_errors(tmp_path: Path) -> None:
    missing = tmp_path / "Missing.json"
    with pytest.raises(AbiError, match=r"Missing.json: cannot read \(No such file"):
        load_abi_file(missing)
    broken = tmp_path / "Broken.json"
    broken.write_text('[{"type": "event",\n "name": }]')
    with pytest.raises(AbiError, match=r"Broken.json: not valid JSON \(line 2: "):
        load_abi_file(broken)
    binary = tmp_path / "Binary.json"
    binary.write_bytes(b"\xff\xfe[]")
    with pytest.raises(AbiError, match=r"Binary\.json: cannot read"):
        load_abi_file(binary)
    bad_entry = tmp_path / "Bad.json"
    bad_entry.write_text(json.dumps([entry("E", inp("a", "uint7"))]))
    with pytest.raises(AbiError, match=r"Bad.json: entry 0 \(event E\): input 0 \(a\): unknown"):
        load_abi_file(bad_entry)


@pytest.mark.parametrize(
    ("type_str", "expected"),
    [
        ("uint256", ("uint256", ())),
        ("uint256[2][]", ("uint256", (2, None))),
        ("tuple[][3]", ("tuple", (None, 3))),
        ("bytes", ("bytes", ())),
    ],
)
def test_split_type(type_str: str, expected: tuple[str, tuple[int | None, ...]]) -> None:
    assert split_type(type_str) == expected


def test_parse_param_type() -> None:
    param = parse_param_type("(uint,(address,bool)[],string)[2]", name="p")
    assert param.name == "p" and param.type == "tuple[2]"
    assert param.canonical_type == "(uint256,(address,bool)[],string)[2]"
    assert [c.type for c in param.components] == ["uint256", "tuple[]", "string"]
    for bad in ("(uint256", "(uint256))", "()", "(uint256)x", "uint7", "(uint256,)"):
        with pytest.raises(ValueError):
            parse_param_type(bad)


@pytest.mark.parametrize(
    ("type_str", "hashed"),
    [
        ("address", False),
        ("uint256", False),
        ("bytes32", False),
        ("bool", False),
        ("string", True),
        ("bytes", True),
        ("uint256[]", True),
        ("uint256[2]", True),
        ("(uint256,uint256)", True),
    ],
)
def test_is_hashed_when_indexed(type_str: str, hashed: bool) -> None:
    assert is_hashed_when_indexed(parse_param_type(type_str)) is hashed
