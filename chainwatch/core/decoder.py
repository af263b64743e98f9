"""Decoding logs into event arguments, in the JSON form of :mod:`chainwatch.core.jsonform`.

Each ABI event is compiled once into an :class:`EventDecoder`: a list of readers, one per
parameter, each specialised for its type and its place in the log (a topic index, or a fixed
offset in the data head). Static values are read straight from the data bytes with
``int.from_bytes`` on slices; addresses in topics are sliced from the hex text and checksummed
through a cache. Dynamic and nested types go through compiled codecs that follow the head/tail
layout of the ABI specification (https://docs.soliditylang.org/en/latest/abi-spec.html).

What is accepted is exactly what eth-abi's strict decoder (the one web3.py uses) accepts, and
the values are the same once converted with :func:`chainwatch.core.jsonform.to_json_value`:

* integers, addresses, bools and ``bytesN`` must have clean padding (zeros, or ``0xff`` for a
  negative ``intN``); a bool must be 0 or 1;
* ``bytes``/``string`` must have their full zero-padded 32-byte words within the data;
* an offset must point inside the data and past the head of its container (the head as
  eth-abi measures it: see ``_Codec.head_count``);
* trailing data after the last value is ignored.

The one difference: a ``string`` that is not UTF-8 decodes with U+FFFD replacements, where
eth-abi raises ``UnicodeDecodeError``.

Whatever the topics and data (strings), decoding returns a value or raises DecodeError: never
another exception.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable, Sequence
from decimal import Decimal
from typing import Any

from chainwatch.core.abi import (
    MAX_TOPICS,
    AbiEvent,
    AbiParam,
    arg_key,
    is_hashed_when_indexed,
    item_param,
    split_type,
)
from chainwatch.core.jsonform import DECIMAL_CONTEXT, checksum_hex40, decimal_json
from chainwatch.core.model import Log
from chainwatch.errors import AbiError, DecodeError

__all__ = ["AbiDecoder", "EventDecoder"]

_from_bytes = int.from_bytes
_ZERO_WORD = bytes(32)
_ONE_WORD = bytes(31) + b"\x01"
_ADDRESS_PADDING = bytes(12)
_ADDRESS_TOPIC_PREFIX = "0x" + "00" * 12

# A reader takes (topics, data bytes) and returns one argument in the JSON form.
Reader = Callable[[Sequence[str], bytes], Any]


def _data_bytes(data: str) -> bytes:
    """The bytes of a log's ``data`` (``"0x"`` + hex); DecodeError if it is not that."""
    if data[:2] != "0x":
        raise DecodeError(f"data is not 0x-hex: {data!r:.40}")
    try:
        raw = bytes.fromhex(data[2:])
    except ValueError:
        raise DecodeError(f"data is not 0x-hex: {data!r:.40}") from None
    # bytes.fromhex skips whitespace between pairs; a log's data has none.
    if 2 * len(raw) != len(data) - 2:
        raise DecodeError(f"data is not 0x-hex: {data!r:.40}")
    return raw


def _topic_word(topics: Sequence[str], index: int) -> bytes:
    topic = topics[index]
    if len(topic) == 66 and topic[:2] == "0x":
        try:
            word = bytes.fromhex(topic[2:])
        except ValueError:
            pass
        else:
            if len(word) == 32:
                return word
    raise DecodeError(f"topic {index} is not 32 bytes of 0x-hex: {topic!r:.70}")


# --- codecs: one per ABI type, compiled once --------------------------------------------------
#
# ``read(raw, pos)`` returns the JSON value of the type at byte ``pos`` of ``raw``. For a static
# type ``pos`` is its place in the head of its container, and the container has already checked
# that ``size`` bytes are there. For a dynamic type ``pos`` is where its own encoding starts
# (where an offset pointed): it checks its own bounds.


class _Codec:
    __slots__ = ("dynamic", "head_count", "size")

    def __init__(self, dynamic: bool, size: int = 32, head_count: int = 1) -> None:
        self.dynamic = dynamic
        # Bytes the value takes in its container's head (an offset when dynamic).
        self.size = 32 if dynamic else size
        # How eth-abi counts this member when it checks that offsets point past a tuple's
        # head: 1, except the outer length for a static fixed-size array. It undercounts
        # nested static arrays and static tuples; we count the same way so that exactly the
        # logs eth-abi accepts decode.
        self.head_count = head_count

    def read(self, raw: bytes, pos: int) -> Any:
        raise NotImplementedError

    def read_many(self, raw: bytes, start: int, count: int) -> list[Any]:
        """``count`` consecutive static values from ``start`` (bounds checked by the caller)."""
        size = self.size
        read = self.read
        return [read(raw, start + i * size) for i in range(count)]


class _Uint(_Codec):
    __slots__ = ("bits",)

    def __init__(self, bits: int) -> None:
        super().__init__(dynamic=False)
        self.bits = bits

    def read(self, raw: bytes, pos: int) -> str:
        value = _from_bytes(raw[pos : pos + 32], "big")
        if value >> self.bits:
            raise DecodeError(f"uint{self.bits} has non-zero padding")
        return str(value)

    def read_many(self, raw: bytes, start: int, count: int) -> list[Any]:
        end = start + 32 * count
        if self.bits == 256:
            return [str(_from_bytes(raw[p : p + 32], "big")) for p in range(start, end, 32)]
        return [self.read(raw, p) for p in range(start, end, 32)]


class _Int(_Codec):
    __slots__ = ("bits", "high", "low")

    def __init__(self, bits: int) -> None:
        super().__init__(dynamic=False)
        self.bits = bits
        self.low = -(1 << (bits - 1))
        self.high = 1 << (bits - 1)

    def read(self, raw: bytes, pos: int) -> str:
        value = _from_bytes(raw[pos : pos + 32], "big", signed=True)
        # Out of range means the padding is not the sign extension eth-abi requires.
        if not self.low <= value < self.high:
            raise DecodeError(f"int{self.bits} has bad sign padding")
        return str(value)


class _Fixed(_Codec):
    __slots__ = ("high", "low", "places", "type")

    def __init__(self, type_str: str, bits: int, places: int, signed: bool) -> None:
        super().__init__(dynamic=False)
        self.type = type_str
        self.places = places
        self.low = -(1 << (bits - 1)) if signed else 0
        self.high = 1 << (bits - 1) if signed else 1 << bits

    def read(self, raw: bytes, pos: int) -> str:
        value = _from_bytes(raw[pos : pos + 32], "big", signed=self.low < 0)
        if not self.low <= value < self.high:
            raise DecodeError(f"{self.type} has bad padding")
        return decimal_json(Decimal(value).scaleb(-self.places, DECIMAL_CONTEXT))


class _Address(_Codec):
    __slots__ = ()

    def __init__(self) -> None:
        super().__init__(dynamic=False)

    def read(self, raw: bytes, pos: int) -> str:
        word = raw[pos : pos + 32]
        if word[:12] != _ADDRESS_PADDING:
            raise DecodeError("address has non-zero padding")
        return checksum_hex40(word[12:].hex())


class _Bool(_Codec):
    __slots__ = ()

    def __init__(self) -> None:
        super().__init__(dynamic=False)

    def read(self, raw: bytes, pos: int) -> bool:
        word = raw[pos : pos + 32]
        if word == _ONE_WORD:
            return True
        if word == _ZERO_WORD:
            return False
        raise DecodeError("bool is neither 0 nor 1")


class _FixedBytes(_Codec):
    __slots__ = ("length", "type")

    def __init__(self, type_str: str, length: int) -> None:
        super().__init__(dynamic=False)
        self.type = type_str
        self.length = length

    def read(self, raw: bytes, pos: int) -> str:
        end = pos + self.length
        if raw.count(0, end, pos + 32) != 32 - self.length:
            raise DecodeError(f"{self.type} has non-zero padding")
        return "0x" + raw[pos:end].hex()


class _Bytes(_Codec):
    """``bytes`` and ``string``: a length word, then the bytes zero-padded to 32."""

    __slots__ = ("text",)

    def __init__(self, text: bool) -> None:
        super().__init__(dynamic=True)
        self.text = text

    def read(self, raw: bytes, pos: int) -> str:
        name = "string" if self.text else "bytes"
        if pos + 32 > len(raw):
            raise DecodeError(f"{name} length is past the end of data")
        length = _from_bytes(raw[pos : pos + 32], "big")
        start = pos + 32
        end = start + length
        padded_end = start + (length + 31) // 32 * 32
        if padded_end > len(raw):
            raise DecodeError(f"{name} of {length} bytes runs past the end of data")
        if raw.count(0, end, padded_end) != padded_end - end:
            raise DecodeError(f"{name} has non-zero padding")
        if self.text:
            return raw[start:end].decode("utf-8", "replace")
        return "0x" + raw[start:end].hex()


class _Array(_Codec):
    __slots__ = ("item", "length")

    def __init__(self, item: _Codec, length: int | None) -> None:
        dynamic = length is None or item.dynamic
        size = 0 if length is None else length * item.size
        super().__init__(dynamic, size, head_count=1 if dynamic or length is None else length)
        self.item = item
        self.length = length

    def read(self, raw: bytes, pos: int) -> list[Any]:
        end_of_data = len(raw)
        if self.length is None:
            if pos + 32 > end_of_data:
                raise DecodeError("array length is past the end of data")
            count = _from_bytes(raw[pos : pos + 32], "big")
            start = pos + 32
        else:
            count = self.length
            start = pos
        item = self.item
        if not item.dynamic:
            if start + count * item.size > end_of_data:
                raise DecodeError(f"array of {count} items runs past the end of data")
            return item.read_many(raw, start, count)
        # Offsets of dynamic items are relative to the start of the items.
        heads_end = start + 32 * count
        if heads_end > end_of_data:
            raise DecodeError(f"array of {count} items runs past the end of data")
        items = []
        for head in range(start, heads_end, 32):
            target = start + _from_bytes(raw[head : head + 32], "big")
            if target < heads_end or target >= end_of_data:
                raise DecodeError(f"bad offset at byte {head}")
            items.append(item.read(raw, target))
        return items


class _Tuple(_Codec):
    __slots__ = ("fields", "head_size", "offsets_end")

    def __init__(self, fields: tuple[tuple[str, _Codec], ...]) -> None:
        dynamic = any(c.dynamic for _, c in fields)
        size = sum(c.size for _, c in fields)
        super().__init__(dynamic, size)
        self.fields = fields
        self.head_size = size
        # Offsets must point at or past this many bytes from the tuple's start (see head_count).
        self.offsets_end = 32 * sum(c.head_count for _, c in fields)

    def read(self, raw: bytes, pos: int) -> dict[str, Any]:
        out: dict[str, Any] = {}
        head = pos
        if not self.dynamic:
            for key, codec in self.fields:
                out[key] = codec.read(raw, head)
                head += codec.size
            return out
        end_of_data = len(raw)
        if pos + self.head_size > end_of_data:
            raise DecodeError("tuple runs past the end of data")
        lowest = pos + self.offsets_end
        for key, codec in self.fields:
            if codec.dynamic:
                target = pos + _from_bytes(raw[head : head + 32], "big")
                if target < lowest or target >= end_of_data:
                    raise DecodeError(f"bad offset at byte {head}")
                out[key] = codec.read(raw, target)
            else:
                out[key] = codec.read(raw, head)
            head += codec.size
        return out


def _compile(param: AbiParam) -> _Codec:
    base, dims = split_type(param.type)
    if dims:
        return _Array(_compile(item_param(param)), dims[-1])
    if base == "tuple":
        return _Tuple(
            tuple((c.name or str(i), _compile(c)) for i, c in enumerate(param.components))
        )
    if base == "address":
        return _Address()
    if base == "bool":
        return _Bool()
    if base in ("string", "bytes"):
        return _Bytes(text=base == "string")
    if base == "function":
        # An address and a 4-byte selector, encoded as bytes24.
        return _FixedBytes(base, 24)
    if base.startswith("bytes"):
        return _FixedBytes(base, int(base[5:]))
    if base.startswith("uint"):
        return _Uint(int(base[4:]))
    if base.startswith("int"):
        return _Int(int(base[3:]))
    if base.startswith(("fixed", "ufixed")):
        signed = base.startswith("fixed")
        bits, places = base[5 if signed else 6 :].split("x")
        return _Fixed(base, int(bits), int(places), signed)
    raise AbiError(f"cannot decode type {param.type!r}")


# --- readers: one per event parameter -----------------------------------------------------


def _topic_address_reader(index: int) -> Reader:
    prefix = _ADDRESS_TOPIC_PREFIX

    def read(topics: Sequence[str], raw: bytes) -> str:
        topic = topics[index]
        if len(topic) != 66 or not topic.startswith(prefix):
            _topic_word(topics, index)
            raise DecodeError("address has non-zero padding")
        return checksum_hex40(topic[26:])

    return read


def _topic_address_inline(index: int) -> tuple[str, str]:
    """:func:`_topic_address_reader` as an expression, and the check that it may be used."""
    topic = f"topics[{index}]"
    return f"len({topic}) == 66 and {topic}.startswith(_PREFIX)", f"_checksum({topic}[26:])"


def _topic_hash_reader(index: int) -> Reader:
    def read(topics: Sequence[str], raw: bytes) -> str:
        return "0x" + _topic_word(topics, index).hex()

    return read


def _topic_value_reader(index: int, codec: _Codec) -> Reader:
    decode = codec.read

    def read(topics: Sequence[str], raw: bytes) -> Any:
        return decode(_topic_word(topics, index), 0)

    return read


def _is_uint256(codec: _Codec) -> bool:
    return isinstance(codec, _Uint) and codec.bits == 256


def _head_inline(pos: int, codec: _Codec) -> tuple[None, str] | None:
    """:func:`_head_reader` as an expression (no check needed), for a uint256 word."""
    if _is_uint256(codec):
        return None, f'str(_from_bytes(raw[{pos}:{pos + 32}], "big"))'
    return None


def _head_reader(pos: int, codec: _Codec) -> Reader:
    # The decoder has checked that the whole head is within the data.
    if _is_uint256(codec):
        end = pos + 32

        def read_uint256(topics: Sequence[str], raw: bytes) -> str:
            return str(_from_bytes(raw[pos:end], "big"))

        return read_uint256
    decode = codec.read

    def read(topics: Sequence[str], raw: bytes) -> Any:
        return decode(raw, pos)

    return read


def _offset_reader(pos: int, offsets_end: int, codec: _Codec) -> Reader:
    decode = codec.read

    def read(topics: Sequence[str], raw: bytes) -> Any:
        target = _from_bytes(raw[pos : pos + 32], "big")
        if target < offsets_end or target >= len(raw):
            raise DecodeError(f"bad offset at byte {pos}")
        return decode(raw, target)

    return read


FastDecode = Callable[[Sequence[str], bytes], "dict[str, Any] | None"]


def _compile_fast(
    readers: Sequence[tuple[str, Reader]], inline: dict[int, tuple[str | None, str]]
) -> FastDecode:
    """One function that builds an event's arguments in a single dict display: the commonest
    parameters (an address topic, a uint256 head word) as expressions, the others through
    their readers. It returns None when a check fails, and a reader's DecodeError goes through:
    the caller then goes reader by reader, which says which parameter is wrong. Keys and
    readers are passed as names, never written into the source."""
    names: dict[str, Any] = {
        "_PREFIX": _ADDRESS_TOPIC_PREFIX,
        "_checksum": checksum_hex40,
        "_from_bytes": _from_bytes,
    }
    checks, items = [], []
    for n, (key, reader) in enumerate(readers):
        names[f"_k{n}"] = key
        check, expression = inline.get(n, (None, f"_r{n}(topics, raw)"))
        names[f"_r{n}"] = reader
        if check is not None:
            checks.append(check)
        items.append(f"_k{n}: {expression}")
    source = "def fast(topics, raw):\n"
    if checks:
        source += f"    if not ({' and '.join(checks)}):\n        return None\n"
    source += f"    return {{{', '.join(items)}}}\n"
    exec(source, names)  # as dataclasses builds an __init__
    fast: FastDecode = names["fast"]
    return fast


class EventDecoder:
    """One compiled event: decodes the logs it emitted.

    ``decode`` takes the log's topics and data as lowercase 0x-hex strings (as in
    :class:`chainwatch.core.model.Log`) and returns the arguments in the JSON form, keyed by
    parameter name in ABI order (``"arg<i>"`` for an unnamed parameter). It raises DecodeError
    if the log is not one of this event (topic0, number of topics) or does not decode.
    """

    __slots__ = (
        "_fast",
        "_head_size",
        "_readers",
        "_topic0",
        "_topic_count",
        "event",
        "name",
    )

    def __init__(self, event: AbiEvent) -> None:
        self.event = event
        self.name = event.name  # also what a DecodeError message starts with
        self._topic0 = None if event.anonymous else event.topic0
        self._topic_count = event.topic_count
        topic_index = 0 if event.anonymous else 1
        head = 0
        data_codecs: list[tuple[str, int, _Codec]] = []
        readers: list[tuple[str, Reader | None]] = []
        inline: dict[int, tuple[str | None, str]] = {}  # reader index -> (check, expression)
        for position, param in enumerate(event.inputs):
            key = arg_key(param, position)
            codec = _compile(param)
            if not param.indexed:
                expression = _head_inline(head, codec)
                if expression is not None:
                    inline[len(readers)] = expression
                data_codecs.append((key, head, codec))
                head += codec.size
                readers.append((key, None))
                continue
            if is_hashed_when_indexed(param):
                reader = _topic_hash_reader(topic_index)
            elif param.type == "address":
                reader = _topic_address_reader(topic_index)
                inline[len(readers)] = _topic_address_inline(topic_index)
            else:
                reader = _topic_value_reader(topic_index, codec)
            readers.append((key, reader))
            topic_index += 1
        self._head_size = head
        offsets_end = 32 * sum(c.head_count for _, _, c in data_codecs)
        data_readers = {
            key: _offset_reader(pos, offsets_end, c) if c.dynamic else _head_reader(pos, c)
            for key, pos, c in data_codecs
        }
        self._readers: tuple[tuple[str, Reader], ...] = tuple(
            (key, reader if reader is not None else data_readers[key]) for key, reader in readers
        )
        self._fast = _compile_fast(self._readers, inline)

    def decode(self, topics: Sequence[str], data: str) -> dict[str, Any]:
        """The arguments of a log of this event, in the JSON form; DecodeError otherwise."""
        if len(topics) != self._topic_count:
            raise DecodeError(
                f"{self.event.signature} has {self._topic_count} topics, the log {len(topics)}"
            )
        if self._topic0 is not None and topics[0] != self._topic0:
            raise DecodeError(f"topic0 is not the one of {self.event.signature}")
        return self.decode_data(topics, _data_bytes(data))

    def decode_data(self, topics: Sequence[str], raw: bytes) -> dict[str, Any]:
        """:meth:`decode` once the log is known to be of this event and its data are bytes."""
        if len(raw) < self._head_size:
            raise DecodeError(
                f"{self.name}: data is {len(raw)} bytes, shorter than its"
                f" {self._head_size}-byte head"
            )
        try:
            out = self._fast(topics, raw)
        except DecodeError:
            out = None
        if out is not None:
            return out
        # The fast path found something wrong: again reader by reader, to say where.
        out = {}
        key = ""
        try:
            for key, read in self._readers:
                out[key] = read(topics, raw)
        except DecodeError as exc:
            raise DecodeError(f"{self.name}: {key}: {exc}") from None
        return out


class AbiDecoder:
    """Decodes the logs of a contract with the events of its ABI.

    A log is matched by (topic0, number of topics), which tells apart events that share a
    signature but not their indexed parameters, like the ``Transfer`` of ERC-20 (3 topics) and
    ERC-721 (4 topics). A log that matches no named event is matched to an anonymous event of
    the ABI with its number of topics, if there is exactly one.

    ``only`` restricts the decoder to some events, by name or by signature; AbiError if one of
    them is not in the ABI. Events that appear twice (merged ABIs) count once. If two distinct
    events share topic0 and topic count (they differ in which parameters are indexed), a log is
    decoded by the first, in ABI order, that accepts it.
    """

    __slots__ = ("_anonymous", "_by_topic0", "events", "has_anonymous", "topic0s")

    def __init__(self, events: Iterable[AbiEvent], only: Collection[str] | None = None) -> None:
        all_events = tuple(dict.fromkeys(events))
        if only is not None:
            wanted = {only} if isinstance(only, str) else set(only)
            known = {e.name for e in all_events} | {e.signature for e in all_events}
            missing = sorted(wanted - known)
            if missing:
                names = ", ".join(sorted({e.name for e in all_events})) or "none"
                raise AbiError(f"no event {missing[0]!r} in the ABI (its events: {names})")
            all_events = tuple(e for e in all_events if e.name in wanted or e.signature in wanted)
        self.events: tuple[AbiEvent, ...] = all_events
        by_topic0: dict[str, list[list[EventDecoder]]] = {}
        anonymous: dict[int, list[EventDecoder]] = {}
        for event in all_events:
            decoder = EventDecoder(event)
            if event.anonymous:
                anonymous.setdefault(event.topic_count, []).append(decoder)
            else:
                slots = by_topic0.setdefault(event.topic0, [[] for _ in range(MAX_TOPICS + 1)])
                slots[event.topic_count].append(decoder)
        # Indexed by topic count: the decoders of each (topic0, count).
        self._by_topic0: dict[str, tuple[tuple[EventDecoder, ...], ...]] = {
            topic0: tuple(tuple(s) for s in slots) for topic0, slots in by_topic0.items()
        }
        self._anonymous: dict[int, tuple[EventDecoder, ...]] = {
            count: tuple(decoders) for count, decoders in anonymous.items()
        }
        self.topic0s: frozenset[str] = frozenset(self._by_topic0)
        self.has_anonymous: bool = bool(anonymous)

    def decode(self, topics: Sequence[str], data: str) -> tuple[str, dict[str, Any]]:
        """(event name, arguments in the JSON form) of a log; DecodeError if none matches.

        ``topics`` and ``data`` are lowercase 0x-hex as in :class:`chainwatch.core.model.Log`.
        """
        raw = _data_bytes(data)
        count = len(topics)
        if count > MAX_TOPICS:
            raise DecodeError(f"a log has at most {MAX_TOPICS} topics, this one {count}")
        if count:
            slots = self._by_topic0.get(topics[0])
            if slots is not None:
                candidates = slots[count]
                if candidates:
                    return _first_match(candidates, topics, raw)
                if count not in self._anonymous:
                    expected = " or ".join(str(n) for n, s in enumerate(slots) if s)
                    name = next(s for s in slots if s)[0].event.signature
                    raise DecodeError(f"{name} has {expected} topics, the log {count}")
        anonymous = self._anonymous.get(count)
        if anonymous is None:
            if count:
                raise DecodeError(f"no event of the ABI has topic0 {topics[0]:.66}")
            raise DecodeError("a log without topics, and the ABI has no anonymous event for it")
        if len(anonymous) > 1:
            names = ", ".join(d.event.name for d in anonymous)
            raise DecodeError(
                f"ambiguous: {len(anonymous)} anonymous events have {count} topics ({names})"
            )
        return _first_match(anonymous, topics, raw)

    def decode_log(self, log: Log) -> tuple[str, dict[str, Any]]:
        """:meth:`decode` of a :class:`~chainwatch.core.model.Log`."""
        return self.decode(log.topics, log.data)


def _first_match(
    decoders: tuple[EventDecoder, ...], topics: Sequence[str], raw: bytes
) -> tuple[str, dict[str, Any]]:
    if len(decoders) == 1:  # the usual case, no collision: its own error is the answer
        decoder = decoders[0]
        return decoder.name, decoder.decode_data(topics, raw)
    errors = []
    for decoder in decoders:
        try:
            return decoder.name, decoder.decode_data(topics, raw)
        except DecodeError as exc:
            errors.append(exc)
    # There is always at least one candidate; report why the first one failed.
    raise errors[0]
