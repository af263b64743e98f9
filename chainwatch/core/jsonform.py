"""The one JSON form of decoded event arguments, used by the store, the CLI and downstream alike.

==================  ==========================================================================
ABI type            JSON form
==================  ==========================================================================
``address``         EIP-55 checksummed string, ``"0xdAC17F958D2ee523a2206206994597C13D831ec7"``
``uintN``/``intN``  decimal string, ``"-12"``: a ``uint256`` does not fit a JavaScript number
``ufixedMxN`` ...   decimal string in plain notation without trailing zeros, ``"1.5"``
``bool``            ``true`` / ``false``
``bytesN``/bytes    lowercase 0x-hex, ``"0x00ff"`` (``function`` too, as its 24 bytes)
``string``          string; bytes that are not UTF-8 become U+FFFD (see below)
``T[k]``/``T[]``    list
tuple               object keyed by member name; unnamed members by position: ``"0"``, ``"1"``
==================  ==========================================================================

Decoded events are objects keyed by parameter name; an unnamed parameter is keyed ``"arg<i>"``,
``i`` being its position among all the event's inputs (indexed or not). An indexed parameter of
a reference type (``string``, ``bytes``, arrays, tuples) is only present in the log as the
keccak hash of its value; it comes out as that 32-byte topic, in 0x-hex.

Strings: eth-abi (and so web3.py) raises ``UnicodeDecodeError`` on a ``string`` that is not
valid UTF-8. Solidity does not check UTF-8, so any contract can emit such a string; chainwatch
decodes it with ``errors="replace"`` rather than lose the whole event.
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Context, Decimal
from functools import lru_cache
from typing import Any

from eth_hash.auto import keccak

from chainwatch.core.abi import (
    AbiParam,
    is_hashed_when_indexed,
    item_param,
    parse_param_type,
    split_type,
)
from chainwatch.errors import DecodeError

__all__ = ["checksum_address", "decimal_json", "to_json_value"]

# Enough to divide any 256-bit integer by 10**80 exactly (eth-abi uses the same precision).
DECIMAL_CONTEXT = Context(prec=999)

# Each entry is about 250 bytes: 32768 of them hold the active addresses of a busy chain for
# a few MB, and a hit saves a keccak (several microseconds, most of the cost of a transfer).
CHECKSUM_CACHE_SIZE = 32768

# Byte translations of hex digits to 0x20 (the ASCII case bit) or 0.
_CASE_BIT_IF_HIGH_NIBBLE = bytes.maketrans(b"0123456789abcdef", b"\x00" * 8 + b"\x20" * 8)
_CASE_BIT_IF_LETTER = bytes.maketrans(b"0123456789abcdef", b"\x00" * 10 + b"\x20" * 6)


def checksum_address(address: str) -> str:
    """The EIP-55 checksummed form of a 20-byte address given as 0x-hex in any case.

    https://eips.ethereum.org/EIPS/eip-55. Results are cached. Raises DecodeError if
    ``address`` is not ``0x`` followed by 40 hex digits.
    """
    if len(address) != 42 or address[:2] not in ("0x", "0X"):
        raise DecodeError(f"not a 20-byte 0x-hex address: {address!r:.60}")
    return checksum_hex40(address[2:])


@lru_cache(maxsize=CHECKSUM_CACHE_SIZE)
def checksum_hex40(digits: str) -> str:
    """:func:`checksum_address` of ``"0x" + digits``; ``digits`` are 40 hex digits, any case."""
    lower = digits.lower()
    # bytes.fromhex skips whitespace between pairs: the length check rejects that.
    if len(lower) != 40:
        raise DecodeError(f"not a 20-byte address: 0x{digits!s:.60}")
    try:
        if len(bytes.fromhex(lower)) != 20:
            raise ValueError
    except ValueError:
        raise DecodeError(f"not a 20-byte address: 0x{digits!s:.60}") from None
    ascii_digits = lower.encode("ascii")
    # EIP-55: a letter is upper case when the matching nibble of keccak(digits) is >= 8.
    # Done on the 40 ASCII bytes as integers: flipping bit 0x20 of a-f upper-cases it, and
    # the masks keep digits and low nibbles as they are.
    hash_nibbles = keccak(ascii_digits).hex()[:40].encode("ascii")
    high_nibbles = int.from_bytes(hash_nibbles.translate(_CASE_BIT_IF_HIGH_NIBBLE), "big")
    letters = int.from_bytes(ascii_digits.translate(_CASE_BIT_IF_LETTER), "big")
    checksummed = int.from_bytes(ascii_digits, "big") ^ (high_nibbles & letters)
    return "0x" + checksummed.to_bytes(40, "big").decode("ascii")


def decimal_json(value: Decimal) -> str:
    """A decimal in plain notation with no trailing zeros: ``Decimal("1.50E+2")`` -> ``"150"``."""
    text = format(value.normalize(DECIMAL_CONTEXT), "f")
    return "0" if text in ("-0", "0") else text


def to_json_value(abi_type: AbiParam | str, value: Any) -> Any:
    """Convert a value as eth-abi or web3.py decode it to the JSON form of ``abi_type``.

    ``abi_type`` is an :class:`AbiParam` (tuple members keyed by their names) or a type in
    signature form such as ``"(uint256,address)[]"`` (members keyed ``"0"``, ``"1"``...).
    Accepted values: ``int`` for integers, ``Decimal`` for fixed-point, ``str`` for addresses
    (any case) and strings, ``bytes`` for bytes types (an indexed reference type is its topic),
    sequences for arrays, and for tuples a sequence (eth-abi) or a mapping by member name
    (web3.py). Raises ValueError if the value does not fit the type.

    Public API that chainwatch itself does not call: its decoder compiles a reader per type
    (:mod:`chainwatch.core.decoder`) and gives the same values directly. This is the readable
    definition of the JSON form, for code that decodes with eth-abi or web3.py and wants what
    chainwatch stores; the decoder's differential tests and benchmark hold it to this.
    """
    param = parse_param_type(abi_type) if isinstance(abi_type, str) else abi_type
    if param.indexed and is_hashed_when_indexed(param):
        return _hex(value)
    return _convert(param, value)


def _hex(value: Any) -> str:
    if isinstance(value, str):
        return "0x" + bytes.fromhex(value.removeprefix("0x")).hex()
    if isinstance(value, bytes | bytearray | memoryview):
        # bytes(...) first: HexBytes.hex() has prefixed "0x" in some versions.
        return "0x" + bytes(value).hex()
    raise ValueError(f"expected bytes, got {type(value).__name__}")


def _convert(param: AbiParam, value: Any) -> Any:
    base, dims = split_type(param.type)
    if dims:
        item = item_param(param)
        if isinstance(value, str | bytes) or not hasattr(value, "__iter__"):
            raise ValueError(f"{param.type}: expected a sequence, got {type(value).__name__}")
        items = list(value)
        if dims[-1] is not None and len(items) != dims[-1]:
            raise ValueError(f"{param.type}: expected {dims[-1]} items, got {len(items)}")
        return [_convert(item, v) for v in items]
    if base == "tuple":
        if isinstance(value, Mapping):
            values = [value[c.name] for c in param.components]
        else:
            values = list(value)
            if len(values) != len(param.components):
                raise ValueError(f"{param.canonical_type}: expected {len(param.components)} items")
        return {
            c.name or str(i): _convert(c, v)
            for i, (c, v) in enumerate(zip(param.components, values, strict=True))
        }
    if base.startswith(("uint", "int")):
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError(f"{base}: expected int, got {type(value).__name__}")
        return str(value)
    if base == "address":
        if not isinstance(value, str):
            raise ValueError(f"address: expected str, got {type(value).__name__}")
        return checksum_address(value)
    if base == "bool":
        if not isinstance(value, bool):
            raise ValueError(f"bool: expected bool, got {type(value).__name__}")
        return value
    if base == "string":
        if not isinstance(value, str):
            raise ValueError(f"string: expected str, got {type(value).__name__}")
        return value
    if base.startswith(("fixed", "ufixed")):
        if not isinstance(value, Decimal):
            raise ValueError(f"{base}: expected Decimal, got {type(value).__name__}")
        return decimal_json(value)
    # bytes, bytesN, function
    return _hex(value)
