"""The JSON form: EIP-55 addresses and the conversion of eth-abi / web3.py values."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from chainwatch.core.abi import AbiParam, parse_param_type
from chainwatch.core.jsonform import checksum_address, decimal_json, to_json_value
from chainwatch.errors import DecodeError

# The test vectors of EIP-55 (https://eips.ethereum.org/EIPS/eip-55).
EIP55_VECTORS = [
    "0x52908400098527886E0F7030069857D2E4169EE7",
    "0x8617E340B3D01FA5F11F306F4090FD50E238070D",
    "0xde709f2102306220921060314715629080e2fb77",
    "0x27b1fdb04752bbc536007a920d24acb045561c26",
    "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed",
    "0xfB6916095ca1df60bB79Ce92cE3Ea74c37c5d359",
    "0xdbF03B407c01E7cD3CBea99509d93f8DDDC8C6FB",
    "0xD1220A0cf47c7B9Be7A2E6BA89F429762e7b9aDb",
]


@pytest.mark.parametrize("expected", EIP55_VECTORS)
def test_checksum_address_eip55_vectors(expected: str) -> None:
    assert checksum_address(expected.lower()) == expected
    assert checksum_address("0x" + expected[2:].upper()) == expected
    assert checksum_address("0X" + expected[2:]) == expected


@pytest.mark.parametrize(
    "bad",
    [
        "",
        "0x",
        "0x" + "ab" * 19,
        "0x" + "ab" * 21,
        "ab" * 21,
        "0y" + "ab" * 20,
        "0x" + "zz" * 20,
        "0x" + "ab " * 13 + "a",
        "0x" + "éé" * 20,
    ],
)
def test_checksum_address_rejects_non_addresses(bad: str) -> None:
    with pytest.raises(DecodeError):
        checksum_address(bad)


def test_decimal_json() -> None:
    assert decimal_json(Decimal("1.50")) == "1.5"
    assert decimal_json(Decimal("1.5E+2")) == "150"
    assert decimal_json(Decimal("1E-18")) == "0.000000000000000001"
    assert decimal_json(Decimal("-0.000")) == "0"
    # Exact at full size: 2**255 has 77 digits, none of them trailing zeros.
    assert decimal_json(Decimal(f"{2**255}E-80")) == "0.000" + str(2**255)


ADDRESS = "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed"


@pytest.mark.parametrize(
    ("type_str", "value", "expected"),
    [
        ("uint256", 2**256 - 1, str(2**256 - 1)),
        ("int8", -128, "-128"),
        ("address", ADDRESS.lower(), ADDRESS),
        ("bool", True, True),
        ("bytes4", b"\x00\x01\x02\x03", "0x00010203"),
        ("bytes", bytearray(b"\xff"), "0xff"),
        ("bytes", b"", "0x"),
        ("function", b"\x01" * 24, "0x" + "01" * 24),
        ("string", "ok", "ok"),
        ("ufixed128x18", Decimal("0.250"), "0.25"),
        ("uint8[2]", (1, 2), ["1", "2"]),
        ("string[][]", [["a"], []], [["a"], []]),
        (
            "(uint8,(bool,address))[]",
            [(1, (False, ADDRESS))],
            [{"0": "1", "1": {"0": False, "1": ADDRESS}}],
        ),
    ],
)
def test_to_json_value(type_str: str, value: Any, expected: Any) -> None:
    assert to_json_value(type_str, value) == expected


def test_to_json_value_keys_tuple_members_by_name_from_sequences_and_mappings() -> None:
    param = AbiParam(
        "order",
        "tuple",
        False,
        (AbiParam("maker", "address"), AbiParam("", "uint8"), AbiParam("legs", "uint16[]")),
    )
    expected = {"maker": ADDRESS, "1": "7", "legs": ["1", "2"]}
    assert to_json_value(param, (ADDRESS.lower(), 7, [1, 2])) == expected
    # web3.py gives tuples as mappings by member name.
    web3_style = {"maker": ADDRESS, "": 7, "legs": [1, 2]}
    assert to_json_value(param, web3_style) == expected


def test_to_json_value_of_indexed_reference_types_is_the_topic() -> None:
    topic = bytes(range(32))
    for type_str in ("string", "bytes", "uint256[]", "(uint256,bool)"):
        param = parse_param_type(type_str, indexed=True)
        assert to_json_value(param, topic) == "0x" + topic.hex()
    # A static indexed type is its value.
    assert to_json_value(parse_param_type("uint8", indexed=True), 5) == "5"


@pytest.mark.parametrize(
    ("type_str", "value"),
    [
        ("uint256", "1"),
        ("uint256", True),
        ("bool", 1),
        ("address", b"\x00" * 20),
        ("string", b"x"),
        ("fixed128x18", 1.5),
        ("uint8[2]", [1]),
        ("uint8[]", "12"),
        ("(uint8,uint8)", (1,)),
        ("bytes", 3),
    ],
)
def test_to_json_value_rejects_values_of_the_wrong_shape(type_str: str, value: Any) -> None:
    with pytest.raises(ValueError):
        to_json_value(type_str, value)
