"""Downstream filters: what a subscriber asks for, checked once, then matched against events.

Two filter languages, both parsed from a client's JSON and matched with no I/O:

* :class:`LogFilter`, the node's own (``eth_subscribe("logs", {address, topics})``), with node
  semantics: ``address`` a string or a list, compared case-insensitively; ``topics`` positional,
  ``null`` a wildcard, a nested list an OR; a log with fewer topics than the filter has
  positions never matches (as in go-ethereum's ``filterLogs``).
* :class:`EventFilter`, chainwatch's (``chainwatch_subscribe``): contracts by name or address,
  event names, ``where`` clauses on decoded arguments, finality and a resume cursor.

``where`` clauses are ``[arg, op, value]`` with ``op`` one of ``== != < <= > >= in``. How a value
compares depends on the argument's ABI type, read from the watched ABIs (:class:`ContractSchema`):
integers compare as integers of any size (arguments are decimal strings in the JSON form),
fixed-point numbers and token ``amount`` as exact decimals, addresses and bytes
case-insensitively. A clause that names an argument the named events lack, or an operator its
type does not support, is refused when the filter is parsed (:class:`FilterError`, answered
with JSON-RPC -32602) rather than silently never matching.

``amount`` is the value of an ERC-20 ``Transfer`` scaled by the token's decimals
(:func:`scale_amount`), so ``["amount", ">=", "1000000"]`` means a million tokens whatever the
token's decimals are.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any, Literal

from chainwatch.core.model import JSON, Log, StoredEvent
from chainwatch.errors import FilterError

__all__ = [
    "AMOUNT",
    "FINALITIES",
    "OPERATORS",
    "Catalog",
    "ContractSchema",
    "EventFilter",
    "EventSchema",
    "FilterError",
    "Finality",
    "LogFilter",
    "arg_kind",
    "erc20_value",
    "parse_event_filter",
    "parse_log_filter",
    "parse_where_expr",
    "scale_amount",
]

Finality = Literal["new", "confirmed"]
FINALITIES: tuple[Finality, ...] = ("new", "confirmed")
OPERATORS = ("==", "!=", "<", "<=", ">", ">=", "in")
ORDERING = frozenset(("<", "<=", ">", ">="))
AMOUNT = "amount"

# Bounds on what one filter may hold: matching cost is per clause and per listed value.
MAX_LIST = 1000
MAX_WHERE = 64
MAX_TOPIC_POSITIONS = 4

_ADDRESS_RE = re.compile(r"0[xX][0-9a-fA-F]{40}\Z")
_TOPIC_RE = re.compile(r"0[xX][0-9a-fA-F]{64}\Z")
_HEX_RE = re.compile(r"0[xX](?:[0-9a-fA-F]{2})*\Z")
_INT_RE = re.compile(r"-?[0-9]{1,200}\Z")
_HEX_INT_RE = re.compile(r"0[xX][0-9a-fA-F]{1,200}\Z")

Kind = Literal["int", "decimal", "address", "bool", "string", "bytes", "json", "auto"]


def _show(value: Any) -> str:
    """A short rendering of a client's value for an error message."""
    try:
        text = json.dumps(value)
    except (TypeError, ValueError):
        text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


# --- amounts -----------------------------------------------------------------------------------


def scale_amount(value: int, decimals: int) -> str:
    """``value / 10**decimals`` exactly, as a decimal string without trailing zeros.

    >>> scale_amount(1234500000, 6)
    '1234.5'
    >>> scale_amount(10**18, 18)
    '1'
    """
    if decimals < 0:
        raise ValueError("decimals must be zero or more")
    sign = "-" if value < 0 else ""
    whole, frac = divmod(abs(value), 10**decimals)
    if frac == 0:
        return f"{sign}{whole}"
    digits = str(frac).rjust(decimals, "0").rstrip("0")
    return f"{sign}{whole}.{digits}"


def erc20_value(event: StoredEvent) -> int | None:
    """The raw ``value`` of an ERC-20 ``Transfer`` (three topics, a ``value`` arg), else None."""
    if event.event != "Transfer" or len(event.log.topics) != 3 or event.args is None:
        return None
    raw = event.args.get("value")
    if not isinstance(raw, str) or not _INT_RE.match(raw):
        return None
    return int(raw)


# --- what is watched -------------------------------------------------------------------------


def arg_kind(abi_type: str, hashed: bool = False) -> Kind:
    """How an argument of canonical ABI type ``abi_type`` compares in a ``where`` clause.

    ``hashed``: an indexed argument of a reference type, present only as its 32-byte topic.
    """
    if hashed:
        return "bytes"
    if abi_type.endswith("]") or abi_type.startswith(("tuple", "(")):
        return "json"
    if abi_type == "address":
        return "address"
    if abi_type == "bool":
        return "bool"
    if abi_type == "string":
        return "string"
    if abi_type.startswith(("uint", "int")):
        return "int"
    if abi_type.startswith(("ufixed", "fixed")):
        return "decimal"
    if abi_type.startswith("bytes") or abi_type == "function":
        return "bytes"
    return "json"


@dataclass(frozen=True, slots=True)
class EventSchema:
    """One watched event: its name and the kind of each argument, by key in decoded args."""

    name: str
    args: Mapping[str, Kind]

    @property
    def has_amount(self) -> bool:
        """Whether ``amount`` (a token's scaled value) can apply: an ERC-20 style Transfer."""
        return self.name == "Transfer" and self.args.get("value") == "int"


@dataclass(frozen=True, slots=True)
class ContractSchema:
    """A watched contract, or a token standard of wallet watches (``address`` None: any)."""

    name: str
    address: str | None  # lowercase 0x-hex
    events: tuple[EventSchema, ...]


@dataclass(frozen=True, slots=True)
class Catalog:
    """What one chain watches, as filters need it: its contracts and token standards."""

    chain_id: int
    name: str
    contracts: tuple[ContractSchema, ...]
    kinds: Mapping[tuple[str | None, str | None], Mapping[str, Kind]] = field(
        init=False, compare=False, repr=False
    )

    def __post_init__(self) -> None:
        kinds = {(c.name, e.name): e.args for c in self.contracts for e in c.events}
        object.__setattr__(self, "kinds", kinds)


# --- node log filters ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class LogFilter:
    """``eth_subscribe("logs", {address, topics})`` with node semantics."""

    addresses: frozenset[str] | None = None  # lowercase; None: any
    topics: tuple[frozenset[str] | None, ...] = ()  # per position; None: any

    def matches(self, log: Log) -> bool:
        if self.addresses is not None and log.address not in self.addresses:
            return False
        topics = self.topics
        if not topics:
            return True
        if len(topics) > len(log.topics):
            return False
        for wanted, topic in zip(topics, log.topics, strict=False):
            if wanted is not None and topic not in wanted:
                return False
        return True

    @property
    def key(self) -> tuple[Any, ...]:
        """Equal for filters that match the same logs: subscribers sharing it share the work."""
        addresses = tuple(sorted(self.addresses)) if self.addresses is not None else None
        topics = tuple(tuple(sorted(t)) if t is not None else None for t in self.topics)
        return ("logs", addresses, topics)


def _address(value: Any, where: str) -> str:
    if not isinstance(value, str) or not _ADDRESS_RE.match(value):
        raise FilterError(where, f"expected a 20-byte 0x-hex address, got {_show(value)}")
    return value.lower()


def _topic(value: Any, where: str) -> str:
    if not isinstance(value, str) or not _TOPIC_RE.match(value):
        raise FilterError(where, f"expected a 32-byte 0x-hex topic, got {_show(value)}")
    return value.lower()


def parse_log_filter(obj: JSON) -> LogFilter:
    """Parse the filter object of ``eth_subscribe("logs", ...)``; FilterError names the field.

    ``fromBlock``/``toBlock`` may only be ``"latest"`` (a subscription is live; history is
    ``chainwatch_subscribe`` with ``since``).
    """
    if obj is None:
        return LogFilter()
    if not isinstance(obj, dict):
        raise FilterError("params[1]", "expected a filter object {address?, topics?}")
    for key in obj:
        if key in ("fromBlock", "toBlock"):
            if obj[key] not in (None, "latest"):
                raise FilterError(
                    key, "subscriptions are live only; replay history with chainwatch_subscribe"
                )
        elif key not in ("address", "topics"):
            raise FilterError(_show(key), "unknown field (expected address or topics)")
    addresses: frozenset[str] | None = None
    raw_address = obj.get("address")
    if isinstance(raw_address, list):
        if len(raw_address) > MAX_LIST:
            raise FilterError("address", f"at most {MAX_LIST} addresses")
        if raw_address:
            addresses = frozenset(_address(a, f"address[{i}]") for i, a in enumerate(raw_address))
    elif raw_address is not None:
        addresses = frozenset((_address(raw_address, "address"),))
    topics: list[frozenset[str] | None] = []
    raw_topics = obj.get("topics")
    if raw_topics is not None:
        if not isinstance(raw_topics, list):
            raise FilterError("topics", "expected an array")
        if len(raw_topics) > MAX_TOPIC_POSITIONS:
            raise FilterError("topics", f"at most {MAX_TOPIC_POSITIONS} positions")
        for i, position in enumerate(raw_topics):
            if position is None:
                topics.append(None)
            elif isinstance(position, list):
                if len(position) > MAX_LIST:
                    raise FilterError(f"topics[{i}]", f"at most {MAX_LIST} alternatives")
                if not position or any(t is None for t in position):
                    topics.append(None)  # an empty OR, or one with a wildcard, matches anything
                else:
                    topics.append(
                        frozenset(_topic(t, f"topics[{i}][{j}]") for j, t in enumerate(position))
                    )
            else:
                topics.append(frozenset((_topic(position, f"topics[{i}]"),)))
    return LogFilter(addresses, tuple(topics))


# --- where clauses ---------------------------------------------------------------------------

Converter = Callable[[Any], Any]
Predicate = Callable[[Any], bool]


def _to_int(value: Any) -> int:
    if isinstance(value, bool):
        raise ValueError("a boolean is not an integer")
    if isinstance(value, int):
        return value
    if isinstance(value, str):
        if _INT_RE.match(value):
            return int(value)
        if _HEX_INT_RE.match(value):
            return int(value, 16)
    raise ValueError("not an integer")


def _to_decimal(value: Any) -> Decimal:
    if isinstance(value, Decimal):
        return value
    if isinstance(value, bool):
        raise ValueError("a boolean is not a number")
    if isinstance(value, int):
        return Decimal(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError("not a finite number")
        return Decimal(repr(value))  # the shortest form that reads back: what was written
    if isinstance(value, str) and len(value) <= 200:
        try:
            result = Decimal(value.strip())
        except InvalidOperation:
            raise ValueError("not a decimal number") from None
        if result.is_finite() and abs(result.adjusted()) <= 1000:
            return result
    raise ValueError("not a decimal number")


def _to_address(value: Any) -> str:
    if isinstance(value, str) and _ADDRESS_RE.match(value):
        return value.lower()
    raise ValueError("not an address")


def _to_bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    raise ValueError("not a boolean")


def _to_string(value: Any) -> str:
    if isinstance(value, str):
        return value
    raise ValueError("not a string")


def _to_bytes(value: Any) -> str:
    if isinstance(value, str) and _HEX_RE.match(value):
        return value.lower()
    raise ValueError("not 0x-hex bytes")


def _to_json(value: Any) -> str:
    # Compared by canonical text: JSON values are not all hashable, and 1 == 1.0 == true in
    # Python but not in the JSON form.
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


_CONVERTERS: dict[str, tuple[Converter, str]] = {
    "int": (_to_int, "an integer (a number or a decimal string)"),
    "decimal": (_to_decimal, "a decimal number (a number or a string)"),
    "address": (_to_address, "a 20-byte 0x-hex address"),
    "bool": (_to_bool, "true or false"),
    "string": (_to_string, "a string"),
    "bytes": (_to_bytes, "0x-hex bytes"),
    "json": (_to_json, "a JSON value"),
}

_COMPARE: dict[str, Callable[[Any, Any], bool]] = {
    "==": lambda a, b: bool(a == b),
    "!=": lambda a, b: bool(a != b),
    "<": lambda a, b: bool(a < b),
    "<=": lambda a, b: bool(a <= b),
    ">": lambda a, b: bool(a > b),
    ">=": lambda a, b: bool(a >= b),
    "in": lambda a, b: a in b,
}


@dataclass(frozen=True, slots=True)
class Where:
    """One clause as given, checked for shape (not yet for the argument's type)."""

    index: int
    arg: str
    op: str
    value: JSON

    @property
    def key(self) -> tuple[str, str, str]:
        return (self.arg, self.op, _to_json(self.value))

    def compile(self, kind: Kind) -> Predicate:
        """A predicate on the argument's value in the JSON form; FilterError if ``kind`` does
        not support the operator or the value does not fit ``kind``."""
        if kind == "auto":
            return self._auto()
        if self.op in ORDERING and kind not in ("int", "decimal"):
            raise FilterError(
                f"where[{self.index}][1]",
                f"operator {self.op} does not apply to {kind} argument {self.arg!r}",
            )
        convert, expected = _CONVERTERS[kind]
        if self.op == "in":
            target: Any = frozenset(self._convert_each(convert, expected))
        else:
            try:
                target = convert(self.value)
            except ValueError:
                raise FilterError(
                    f"where[{self.index}][2]",
                    f"expected {expected} for argument {self.arg!r}, got {_show(self.value)}",
                ) from None
        compare = _COMPARE[self.op]

        def predicate(raw: Any) -> bool:
            try:
                return compare(convert(raw), target)
            except (ValueError, TypeError, ArithmeticError):
                return False

        return predicate

    def _convert_each(self, convert: Converter, expected: str) -> list[Any]:
        out = []
        for j, item in enumerate(self.value):
            try:
                out.append(convert(item))
            except ValueError:
                raise FilterError(
                    f"where[{self.index}][2][{j}]",
                    f"expected {expected} for argument {self.arg!r}, got {_show(item)}",
                ) from None
        return out

    def _auto(self) -> Predicate:
        """For events whose ABI is not known here (stored under a contract name no longer
        configured): compare as the first kind, in this order, that both sides fit."""
        options: list[tuple[Converter, Predicate]] = []
        for kind in ("int", "decimal", "address", "bytes", "string", "bool", "json"):
            try:
                options.append((_CONVERTERS[kind][0], self.compile(kind)))
            except FilterError:
                continue

        def predicate(raw: Any) -> bool:
            for convert, pred in options:
                try:
                    convert(raw)
                except (ValueError, TypeError):
                    continue
                return pred(raw)
            return False

        return predicate


def _parse_where(raw: Any) -> list[Where]:
    if not isinstance(raw, list):
        raise FilterError("where", "expected an array of [arg, op, value] clauses")
    if len(raw) > MAX_WHERE:
        raise FilterError("where", f"at most {MAX_WHERE} clauses")
    clauses = []
    for i, clause in enumerate(raw):
        if not isinstance(clause, list) or len(clause) != 3:
            raise FilterError(f"where[{i}]", "expected [arg, op, value]")
        arg, op, value = clause
        if not isinstance(arg, str) or not arg or len(arg) > 256:
            raise FilterError(f"where[{i}][0]", f"expected an argument name, got {_show(arg)}")
        if op not in OPERATORS:
            raise FilterError(
                f"where[{i}][1]", f"unknown operator {_show(op)} (use {', '.join(OPERATORS)})"
            )
        if op == "in":
            if not isinstance(value, list):
                raise FilterError(f"where[{i}][2]", "'in' takes an array of values")
            if len(value) > MAX_LIST:
                raise FilterError(f"where[{i}][2]", f"at most {MAX_LIST} values")
        clauses.append(Where(i, arg, op, value))
    return clauses


def parse_where_expr(text: str) -> list[JSON]:
    """``"value >= 1000"`` -> ``["value", ">=", "1000"]``: the ``--where`` form of the CLI.

    The value is taken as JSON when it parses (``true``, ``["0xA", "0xB"]``), else as text;
    for ``in``, a comma-separated list is accepted too. ValueError if there is no operator.
    """
    match = re.match(r"\s*([^\s=!<>]+)\s*(==|!=|<=|>=|<|>|\bin\b)\s*(.*?)\s*\Z", text, re.S)
    if match is None:
        raise ValueError(f"expected 'ARG OP VALUE' with OP one of {' '.join(OPERATORS)}")
    arg, op, raw = match.groups()
    if not raw:
        raise ValueError(f"no value after {op!r}")
    value: JSON
    try:
        value = json.loads(raw)
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            value = raw  # numbers travel as decimal strings: exact at any size
    except ValueError:
        value = raw
    if op == "in" and not isinstance(value, list):
        value = [v.strip() for v in raw.split(",") if v.strip()]
    return [arg, op, value]


# --- chainwatch_subscribe filters -----------------------------------------------------------


@dataclass(slots=True, eq=False)
class EventFilter:
    """A parsed ``chainwatch_subscribe`` filter on one chain.

    ``matches`` is called for every event of the chain: clauses are compiled once per
    (contract, event) pair met and cached.
    """

    chain_id: int
    names: frozenset[str] | None = None  # contract names
    addresses: frozenset[str] | None = None  # lowercase
    events: frozenset[str] | None = None
    where: tuple[Where, ...] = ()
    finality: Finality = "new"
    since: int | None = None
    kinds: Mapping[tuple[str | None, str | None], Mapping[str, Kind]] = field(default_factory=dict)
    # (arg, lowercase address) of a clause ``[arg, "==", address]`` on an argument that is an
    # address in every watched event that has it: an event can only match if its ``arg`` is
    # that address, so routing looks the filter up by it instead of trying it on every event.
    equals: tuple[str, str] | None = None
    _compiled: dict[tuple[str | None, str | None], tuple[tuple[str, Predicate], ...] | None] = (
        field(default_factory=dict)
    )

    @property
    def key(self) -> tuple[Any, ...]:
        """Equal for filters that select the same events the same way (``since`` aside)."""
        return (
            "events",
            self.chain_id,
            tuple(sorted(self.names)) if self.names is not None else None,
            tuple(sorted(self.addresses)) if self.addresses is not None else None,
            tuple(sorted(self.events)) if self.events is not None else None,
            tuple(sorted(w.key for w in self.where)),
            self.finality,
        )

    def selects(self, event: StoredEvent) -> bool:
        """Contract and event name tests (what ``where`` needs no ABI for)."""
        if self.names is not None or self.addresses is not None:
            by_name = self.names is not None and event.contract in self.names
            by_address = self.addresses is not None and event.log.address in self.addresses
            if not (by_name or by_address):
                return False
        return self.events is None or event.event in self.events

    def matches(self, event: StoredEvent, amount: Decimal | None = None) -> bool:
        """Whether ``event`` passes every test; ``amount`` is its scaled ERC-20 value if any."""
        if not self.selects(event):
            return False
        if not self.where:
            return True
        args = event.args
        if args is None:
            return False
        pair = (event.contract, event.event)
        compiled = self._compiled.get(pair, ())
        if compiled == ():
            compiled = self._compile(pair)
        if compiled is None:
            return False
        for arg, predicate in compiled:
            if arg in args:
                raw = args[arg]
            elif arg == AMOUNT and amount is not None:
                raw = amount
            else:
                return False
            if not predicate(raw):
                return False
        return True

    def _compile(
        self, pair: tuple[str | None, str | None]
    ) -> tuple[tuple[str, Predicate], ...] | None:
        kinds = self.kinds.get(pair)
        out: list[tuple[str, Predicate]] | None = []
        assert out is not None
        for clause in self.where:
            if kinds is None:
                kind: Kind = "decimal" if clause.arg == AMOUNT else "auto"
            elif clause.arg in kinds:
                kind = kinds[clause.arg]
            elif clause.arg == AMOUNT and "value" in kinds:
                kind = "decimal"
            else:
                out = None  # this event lacks the argument: it never matches
                break
            try:
                out.append((clause.arg, clause.compile(kind)))
            except FilterError:
                out = None  # checked at parse time for known events; here, a stray pair
                break
        result = tuple(out) if out is not None else None
        if len(self._compiled) < 4096:
            self._compiled[pair] = result
        return result


def _strings(raw: Any, name: str) -> list[str]:
    if not isinstance(raw, list):
        raise FilterError(name, "expected an array of strings")
    if len(raw) > MAX_LIST:
        raise FilterError(name, f"at most {MAX_LIST} entries")
    for i, item in enumerate(raw):
        if not isinstance(item, str) or not item or len(item) > 256:
            raise FilterError(f"{name}[{i}]", f"expected a non-empty string, got {_show(item)}")
    return raw


_FILTER_KEYS = ("chain_id", "contracts", "events", "where", "finality", "since")


def parse_event_filter(
    obj: JSON, catalogs: Mapping[int, Catalog], default_chain: int
) -> EventFilter:
    """Parse and check a ``chainwatch_subscribe`` filter against what is watched.

    ``catalogs``: what each chain id watches. ``default_chain`` applies when the filter has no
    ``chain_id``. Raises FilterError naming the field for anything a client could fix.
    """
    if obj is None:
        obj = {}
    if not isinstance(obj, dict):
        raise FilterError("params[0]", "expected a filter object")
    for key in obj:
        if key not in _FILTER_KEYS:
            raise FilterError(_show(key), f"unknown field (expected {', '.join(_FILTER_KEYS)})")

    chain_id = obj.get("chain_id", default_chain)
    if isinstance(chain_id, bool) or not isinstance(chain_id, int) or chain_id not in catalogs:
        known = ", ".join(str(c) for c in catalogs)
        raise FilterError("chain_id", f"not a watched chain: {_show(chain_id)} (watched: {known})")
    catalog = catalogs[chain_id]
    chain_name, contracts = catalog.name, catalog.contracts

    finality = obj.get("finality", "new")
    if finality not in FINALITIES:
        raise FilterError("finality", f'expected "new" or "confirmed", got {_show(finality)}')
    since = obj.get("since")
    if since is not None and (isinstance(since, bool) or not isinstance(since, int) or since < 0):
        raise FilterError("since", f"expected a cursor (an integer >= 0), got {_show(since)}")

    # Contracts: which schemas the filter can reach.
    candidates: list[ContractSchema] = list(contracts)
    names: set[str] | None = None
    addresses: set[str] | None = None
    if "contracts" in obj:
        names, addresses = set(), set()
        reached: dict[int, ContractSchema] = {}
        standards = [c for c in contracts if c.address is None]
        for i, entry in enumerate(_strings(obj["contracts"], "contracts")):
            if _ADDRESS_RE.match(entry):
                address = entry.lower()
                addresses.add(address)
                found = [c for c in contracts if c.address == address]
                if not found and not standards:
                    raise FilterError(
                        f"contracts[{i}]", f"{entry} is not watched on chain {chain_name}"
                    )
                for c in found or standards:
                    reached[id(c)] = c
            else:
                found = [c for c in contracts if c.name == entry]
                if not found:
                    watched = ", ".join(c.name for c in contracts) or "none"
                    raise FilterError(
                        f"contracts[{i}]",
                        f"no contract {entry!r} is watched on chain {chain_name} "
                        f"(watched: {watched})",
                    )
                names.add(entry)
                for c in found:
                    reached[id(c)] = c
        candidates = list(reached.values())

    schemas = [(c, e) for c in candidates for e in c.events]
    events: set[str] | None = None
    if "events" in obj:
        events = set()
        known_events = {e.name for _, e in schemas}
        for i, entry in enumerate(_strings(obj["events"], "events")):
            if entry not in known_events:
                raise FilterError(
                    f"events[{i}]",
                    f"no watched contract{' of those named' if names is not None else ''} "
                    f"has an event {entry!r}",
                )
            events.add(entry)
        schemas = [(c, e) for c, e in schemas if e.name in events]

    where = tuple(_parse_where(obj["where"])) if "where" in obj else ()
    equals: tuple[str, str] | None = None
    for clause in where:
        having = [
            e for _, e in schemas if clause.arg in e.args or (clause.arg == AMOUNT and e.has_amount)
        ]
        if (
            equals is None
            and clause.op == "=="
            and isinstance(clause.value, str)
            and _ADDRESS_RE.match(clause.value)
            and having
            and all(e.args.get(clause.arg) == "address" for e in having)
        ):
            equals = (clause.arg, clause.value.lower())
        if events is not None:
            lacking = sorted({e.name for _, e in schemas} - {e.name for e in having})
            if lacking:
                raise FilterError(
                    f"where[{clause.index}][0]",
                    f"event {lacking[0]} has no argument {clause.arg!r}",
                )
        elif not having:
            raise FilterError(
                f"where[{clause.index}][0]",
                f"no watched event{' of those contracts' if names is not None else ''} "
                f"has an argument {clause.arg!r}",
            )
        for e in having:
            kind = e.args.get(clause.arg, "decimal" if clause.arg == AMOUNT else "json")
            clause.compile(kind)  # raises FilterError if the op or value does not fit

    return EventFilter(
        chain_id=chain_id,
        names=frozenset(names) if names is not None else None,
        addresses=frozenset(addresses) if addresses is not None else None,
        events=frozenset(events) if events is not None else None,
        where=where,
        finality=finality,
        since=since,
        kinds=catalog.kinds,
        equals=equals,
    )
