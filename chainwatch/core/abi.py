"""Contract ABIs: the event entries of a Solidity JSON ABI, parsed and checked once.

Only ``"type": "event"`` entries matter to chainwatch; every other entry (functions, errors,
constructor, ...) is skipped. Each event becomes an :class:`AbiEvent` whose parameters carry
*canonical* types: the aliases of the ABI specification are resolved (``uint`` -> ``uint256``,
``int`` -> ``int256``, ``fixed`` -> ``fixed128x18``, ``ufixed`` -> ``ufixed128x18``,
``byte`` -> ``bytes1``) so that :attr:`AbiEvent.signature` and :attr:`AbiEvent.topic0` are the
ones the EVM computes.

Tuple types follow the JSON ABI form: ``type`` is ``"tuple"`` (or ``"tuple[2][]"``...) and the
members are in ``components``; :attr:`AbiParam.canonical_type` gives the expanded form
``"(uint256,address)[2][]"``. A parameter given in expanded form (``"type": "(uint256,address)"``
without ``components``) is accepted and converted, its members unnamed.

Specification: https://docs.soliditylang.org/en/latest/abi-spec.html
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from eth_hash.auto import keccak

from chainwatch.errors import AbiError

__all__ = [
    "AbiEvent",
    "AbiParam",
    "arg_key",
    "is_hashed_when_indexed",
    "item_param",
    "load_abi_file",
    "parse_abi",
    "parse_param_type",
    "split_type",
]

# Non-anonymous events spend one topic on topic0; the EVM allows four topics in all (LOG0..LOG4).
MAX_TOPICS = 4

_IDENTIFIER = re.compile(r"[A-Za-z_$][A-Za-z0-9_$]*\Z")
_ARRAY_SUFFIX = re.compile(r"\[([1-9][0-9]*|0)?\]\Z")
_ALIASES = {
    "uint": "uint256",
    "int": "int256",
    "fixed": "fixed128x18",
    "ufixed": "ufixed128x18",
    "byte": "bytes1",
}
_INT_TYPE = re.compile(r"u?int(\d+)\Z")
_BYTES_TYPE = re.compile(r"bytes(\d+)\Z")
_FIXED_TYPE = re.compile(r"u?fixed(\d+)x(\d+)\Z")


@dataclass(frozen=True, slots=True)
class AbiParam:
    """One event parameter, or one member of a tuple.

    ``type`` is canonical and keeps the JSON ABI's tuple notation: ``"uint256"``, ``"bytes32[]"``,
    ``"tuple"``, ``"tuple[2][]"``; for tuples the members are ``components``. ``indexed`` is only
    ever true for top-level event parameters. ``name`` may be empty.
    """

    name: str
    type: str
    indexed: bool = False
    components: tuple[AbiParam, ...] = ()

    @property
    def canonical_type(self) -> str:
        """The type as it appears in a signature, tuples expanded: ``"(uint256,address)[]"``."""
        if not self.type.startswith("tuple"):
            return self.type
        inner = ",".join(c.canonical_type for c in self.components)
        return f"({inner}){self.type[len('tuple') :]}"


@dataclass(frozen=True, slots=True)
class AbiEvent:
    """One event of an ABI.

    A log of a non-anonymous event has ``topics[0] == topic0`` and one more topic per indexed
    parameter; an anonymous event has no topic0, so its logs can only be recognised by their
    emitter and their number of topics.
    """

    name: str
    inputs: tuple[AbiParam, ...]
    anonymous: bool = False

    @property
    def signature(self) -> str:
        """The canonical signature, e.g. ``"Transfer(address,address,uint256)"``."""
        return f"{self.name}({','.join(p.canonical_type for p in self.inputs)})"

    @property
    def topic0(self) -> str:
        """Keccak-256 of :attr:`signature` as lowercase 0x-hex (computed even if anonymous)."""
        return _signature_topic(self.signature)

    @property
    def topic_count(self) -> int:
        """How many topics a log of this event has: one per indexed input, plus topic0."""
        indexed = sum(1 for p in self.inputs if p.indexed)
        return indexed if self.anonymous else indexed + 1


@lru_cache(maxsize=4096)
def _signature_topic(signature: str) -> str:
    return "0x" + keccak(signature.encode("utf-8")).hex()


def arg_key(param: AbiParam, position: int) -> str:
    """The key of a parameter in decoded args: its name, or ``"arg<position>"`` if unnamed.

    Tuple members are keyed likewise but with the bare position (``"0"``, ``"1"``...); see
    :mod:`chainwatch.core.jsonform`.
    """
    return param.name or f"arg{position}"


def split_type(type_str: str) -> tuple[str, tuple[int | None, ...]]:
    """Split a type into its base and array dimensions, innermost first.

    ``"uint256[2][]"`` -> ``("uint256", (2, None))``: a dynamic array of ``uint256[2]``.
    ``None`` marks a dynamic dimension.
    """
    dims: list[int | None] = []
    base = type_str
    while base.endswith("]"):
        match = _ARRAY_SUFFIX.search(base)
        if match is None:
            break
        dims.append(int(match.group(1)) if match.group(1) else None)
        base = base[: match.start()]
    dims.reverse()
    return base, tuple(dims)


def item_param(param: AbiParam) -> AbiParam:
    """The element type of an array parameter (its outermost dimension removed), unnamed."""
    return AbiParam("", param.type[: param.type.rindex("[")], False, param.components)


def is_hashed_when_indexed(param: AbiParam) -> bool:
    """Whether an indexed parameter's topic is a keccak hash rather than the value itself.

    The ABI specification hashes every reference type: ``string``, ``bytes``, every array
    (fixed-size ones too) and every tuple. Such a topic cannot be decoded back to the value.
    """
    base, dims = split_type(param.type)
    return bool(dims) or base in ("string", "bytes", "tuple")


def _canonical_elementary(base: str) -> str | None:
    """The canonical form of an elementary type name, or None if it is not one."""
    base = _ALIASES.get(base, base)
    if base in ("address", "bool", "string", "bytes", "function"):
        return base
    if match := _INT_TYPE.match(base):
        bits = int(match.group(1))
        ok = 8 <= bits <= 256 and bits % 8 == 0 and match.group(1)[0] != "0"
        return base if ok else None
    if match := _BYTES_TYPE.match(base):
        size = int(match.group(1))
        return base if 1 <= size <= 32 and match.group(1)[0] != "0" else None
    if match := _FIXED_TYPE.match(base):
        bits, places = int(match.group(1)), int(match.group(2))
        ok = 8 <= bits <= 256 and bits % 8 == 0 and 1 <= places <= 80
        return base if ok else None
    return None


def _split_tuple_members(inner: str) -> list[str]:
    """Split ``"uint256,(address,bool)[],string"`` at its top-level commas."""
    members: list[str] = []
    depth = 0
    start = 0
    for i, char in enumerate(inner):
        if char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
            if depth < 0:
                raise ValueError("unbalanced parentheses")
        elif char == "," and depth == 0:
            members.append(inner[start:i])
            start = i + 1
    if depth != 0:
        raise ValueError("unbalanced parentheses")
    members.append(inner[start:])
    return members


def _check_dims(type_str: str, dims: tuple[int | None, ...]) -> None:
    if any(d == 0 for d in dims):
        raise ValueError(f"zero-length array in {type_str!r}")


def parse_param_type(type_str: str, name: str = "", indexed: bool = False) -> AbiParam:
    """An :class:`AbiParam` from a type in signature form, e.g. ``"(uint256,string)[]"``.

    Tuple members come out unnamed. Raises ValueError if ``type_str`` is not an ABI type.
    """
    type_str = type_str.strip()
    if type_str.startswith("("):
        close = type_str.rfind(")")
        if close < 0:
            raise ValueError(f"unbalanced parentheses in {type_str!r}")
        suffix = type_str[close + 1 :]
        base, dims = split_type("tuple" + suffix)
        if base != "tuple":
            raise ValueError(f"bad array suffix in {type_str!r}")
        _check_dims(type_str, dims)
        inner = type_str[1:close]
        members = _split_tuple_members(inner) if inner else []
        if not members:
            raise ValueError(f"empty tuple in {type_str!r}")
        components = tuple(parse_param_type(m) for m in members)
        return AbiParam(name, "tuple" + suffix, indexed, components)
    base, dims = split_type(type_str)
    canonical = _canonical_elementary(base)
    if canonical is None:
        raise ValueError(f"unknown type {type_str!r}")
    _check_dims(type_str, dims)
    return AbiParam(name, canonical + type_str[len(base) :], indexed, ())


def _parse_param(entry: object, where: str, top_level: bool) -> AbiParam:
    if not isinstance(entry, dict):
        raise AbiError(f"{where}: expected an object, got {type(entry).__name__}")
    name = entry.get("name", "")
    if name is None:
        name = ""
    if not isinstance(name, str):
        raise AbiError(f"{where}: 'name' must be a string")
    where = f"{where} ({name})" if name else where
    type_str = entry.get("type")
    if not isinstance(type_str, str):
        raise AbiError(f"{where}: 'type' must be a string")
    indexed = entry.get("indexed", False)
    if not isinstance(indexed, bool):
        raise AbiError(f"{where}: 'indexed' must be true or false")
    if indexed and not top_level:
        raise AbiError(f"{where}: a tuple member cannot be indexed")
    base, dims = split_type(type_str)
    if base != "tuple":
        # Covers elementary types and the expanded tuple form "(uint256,address)[]".
        try:
            parsed = parse_param_type(type_str, name, indexed)
        except ValueError as exc:
            raise AbiError(f"{where}: {exc}") from None
        _check_unique_keys(parsed.components, where)
        return parsed
    try:
        _check_dims(type_str, dims)
    except ValueError as exc:
        raise AbiError(f"{where}: {exc}") from None
    raw_components = entry.get("components")
    if not isinstance(raw_components, list) or not raw_components:
        raise AbiError(f"{where}: a tuple needs a non-empty 'components' list")
    components = tuple(
        _parse_param(c, f"{where}: component {i}", top_level=False)
        for i, c in enumerate(raw_components)
    )
    _check_unique_keys(components, where)
    return AbiParam(name, type_str, indexed, components)


def _check_unique_keys(components: tuple[AbiParam, ...], where: str) -> None:
    # Decoded tuples are objects keyed by member name (or position): two members with one name
    # would silently lose a value.
    keys = [c.name or str(i) for i, c in enumerate(components)]
    duplicates = sorted({k for k in keys if keys.count(k) > 1})
    if duplicates:
        raise AbiError(f"{where}: duplicate member name {duplicates[0]!r}")


def _parse_event(entry: dict[str, Any], where: str) -> AbiEvent:
    name = entry.get("name")
    if not isinstance(name, str) or not _IDENTIFIER.match(name):
        raise AbiError(f"{where}: event 'name' must be an identifier, got {name!r:.60}")
    where = f"{where} (event {name})"
    raw_inputs = entry.get("inputs", [])
    if not isinstance(raw_inputs, list):
        raise AbiError(f"{where}: 'inputs' must be a list")
    anonymous = entry.get("anonymous", False)
    if not isinstance(anonymous, bool):
        raise AbiError(f"{where}: 'anonymous' must be true or false")
    inputs = tuple(
        _parse_param(p, f"{where}: input {i}", top_level=True) for i, p in enumerate(raw_inputs)
    )
    keys = [arg_key(p, i) for i, p in enumerate(inputs)]
    duplicates = sorted({k for k in keys if keys.count(k) > 1})
    if duplicates:
        raise AbiError(f"{where}: duplicate input name {duplicates[0]!r}")
    event = AbiEvent(name, inputs, anonymous)
    indexed = sum(1 for p in inputs if p.indexed)
    if event.topic_count > MAX_TOPICS:
        limit = MAX_TOPICS if anonymous else MAX_TOPICS - 1
        raise AbiError(f"{where}: {indexed} indexed inputs, at most {limit} allowed")
    return event


def parse_abi(abi: object, source: str = "<abi>") -> list[AbiEvent]:
    """The events of a JSON ABI, in ABI order.

    ``abi`` is the decoded JSON: a list of entries, or an object with an ``"abi"`` list (the
    artifact form of Hardhat, Foundry and Truffle). Entries that are not events are ignored.
    Raises AbiError ``"SOURCE: entry N (event NAME): input M (NAME): PROBLEM"`` for the first
    entry that is malformed.
    """
    if isinstance(abi, dict) and "abi" in abi:
        abi = abi["abi"]
    if not isinstance(abi, list):
        raise AbiError(f'{source}: expected a list of ABI entries or an object with an "abi" list')
    events: list[AbiEvent] = []
    for i, entry in enumerate(abi):
        where = f"{source}: entry {i}"
        if not isinstance(entry, dict):
            raise AbiError(f"{where}: expected an object, got {type(entry).__name__}")
        # The specification makes "function" the default type.
        kind = entry.get("type", "function")
        if not isinstance(kind, str):
            raise AbiError(f"{where}: 'type' must be a string")
        if kind == "event":
            events.append(_parse_event(entry, where))
    return events


def load_abi_file(path: str | os.PathLike[str]) -> list[AbiEvent]:
    """The events of a JSON ABI file (see :func:`parse_abi`); AbiError names the file."""
    name = os.fspath(path)
    try:
        with open(path, encoding="utf-8") as file:
            text = file.read()
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise AbiError(f"{name}: cannot read ({reason})") from None
    try:
        document = json.loads(text)
    except json.JSONDecodeError as exc:
        raise AbiError(f"{name}: not valid JSON (line {exc.lineno}: {exc.msg})") from None
    return parse_abi(document, source=name)
