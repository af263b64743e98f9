"""``chainwatch decode``: node-format logs in, decoded JSON lines out, as a stream.

Input is JSON lines (one node-format log per line, as ``eth_getLogs`` items or
``eth_subscribe("logs")`` results) or one JSON array of such logs. It is read in large binary
chunks and each chunk's lines are decoded and written at once, so that:

* memory stays constant whatever the size of the input (a chunk, its lines and their output;
  an array is parsed item by item in the same way);
* output comes as soon as input does: a read returns what the pipe holds, and its output is
  flushed before the next read, so a line fed to a pipe is answered before the pipe closes.

Each input line gives one output line, in order: the log in the stored JSON form without id,
chain and status (``status: "removed"`` for a removed log), with ``event`` and ``args`` when the
ABI decodes it, or ``event: null`` and an ``error`` when it does not. A line that is not JSON or
not a log gives ``{"line": N, "error": "..."}`` on stdout, one line naming it on stderr, is
counted, and decoding goes on; a summary of those is printed on stderr at the end. Blank lines
are skipped (but counted in line numbers). A malformed JSON array ends the run: its items
cannot be told apart after that point.
"""

from __future__ import annotations

import codecs
import itertools
import json
import re
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import IO, Any, Final

import orjson

from chainwatch.core.decoder import AbiDecoder
from chainwatch.core.jsonform import checksum_hex40
from chainwatch.core.model import parse_log
from chainwatch.errors import DecodeError, InputError, RemoteProtocolError
from chainwatch.render import log_json, stdout_gone

#: Bytes asked of the input per read. A read returns less when a pipe holds less: then the
#: output of what came is written before waiting for more.
CHUNK: Final = 1 << 20
#: An array item may be at most this large (a log is a few KiB): past it, the input is refused
#: rather than held in memory whole.
MAX_ITEM: Final = 64 << 20


@dataclass
class DecodeCounts:
    """What a run did: items read, of which malformed (not JSON, not a log) or undecoded."""

    items: int = 0
    malformed: int = 0
    undecoded: int = 0


Warn = Callable[[str], None]

_dumps: Final = orjson.dumps
_checksum: Final = checksum_hex40

_NEWLINE: Final = orjson.OPT_APPEND_NEWLINE

# The fields of a node's log that go to the output as they are (lowercase hex), in one
# pattern: block hash, transaction hash, block number, transaction index, log index, joined
# by spaces (no field may hold one: exactly four spaces match). parse_log checks a log with
# one pattern per field and builds a Log. Measured in-process on 100,000 ERC-20 transfers
# (a loaded machine): 38 µs a log through parse_log, 31 with all fields in one pattern (hex
# runs of any length cost more in a pattern than fixed ones), 13-17 this way, where the
# decoder's own checks cover the topics and data (tests/test_decodecmd.py holds the two paths
# equal). Any other log (upper case, removed, a missing field, another type, one the ABI does
# not decode) goes through parse_log, which accepts it or names the bad field.
_NODE_FIELDS: Final = re.compile(
    r"0x[0-9a-f]{64} 0x[0-9a-f]{64} 0x[0-9a-f]+ 0x[0-9a-f]+ 0x[0-9a-f]+"
)


class LogDecoder:
    """Turns node-format logs (parsed JSON) into output lines (bytes ending in a newline)."""

    def __init__(self, decoder: AbiDecoder, warn: Warn) -> None:
        self._decode = decoder.decode
        self._warn = warn
        self.counts = DecodeCounts()

    def malformed(self, number: int, error: str) -> bytes:
        self.counts.malformed += 1
        self._warn(f"line {number}: {error}")
        return orjson.dumps({"line": number, "error": error}, option=_NEWLINE)

    def lines(self, number: int, lines: list[bytes]) -> list[bytes]:
        """The output of ``lines`` (JSON text) of the input, the first of which is line
        ``number``; blank lines give none."""
        loads, json_error, line = orjson.loads, orjson.JSONDecodeError, self.line
        out = []
        for n, text in enumerate(lines, number):
            try:
                obj = loads(text)
            except json_error as exc:
                if text.strip():
                    out.append(self.malformed(n, f"not valid JSON: {exc}"))
                continue
            out.append(line(n, obj))
        self.counts.items += len(out)
        return out

    def line(self, number: int, obj: Any) -> bytes:
        """The output line of the item ``number`` (1-based) of the input."""
        # The fast path: a node's log in its usual form, decoded (see _NODE_FIELDS).
        try:
            topics, address, data = obj["topics"], obj["address"], obj["data"]
            block_hash, tx_hash = obj["blockHash"], obj["transactionHash"]
            block_number, tx_index, log_index = (
                obj["blockNumber"], obj["transactionIndex"], obj["logIndex"]
            )  # fmt: skip
            if (
                type(topics) is list
                and obj.get("removed", False) is False
                and len(address) == 42
                and address[:2] == "0x"
                and _NODE_FIELDS.fullmatch(
                    f"{block_hash} {tx_hash} {block_number} {tx_index} {log_index}"
                )
            ):
                # Topics and data are checked by the decoder as it reads them (DecodeError).
                name, args = self._decode(topics, data)
                return _dumps(
                    {
                        "block_number": int(block_number, 16),
                        "block_hash": block_hash,
                        "transaction_hash": tx_hash,
                        "transaction_index": int(tx_index, 16),
                        "log_index": int(log_index, 16),
                        "address": _checksum(address[2:]),
                        "event": name,
                        "args": args,
                    },
                    option=_NEWLINE,
                )
        except (KeyError, TypeError, AttributeError, DecodeError):
            pass  # said again, field by field, below
        return self.checked_line(number, obj)

    def checked_line(self, number: int, obj: Any) -> bytes:
        """:meth:`line` through parse_log: the path of any log the fast one does not take
        (upper-case hex, removed, malformed, not decoded), and its reference."""
        try:
            entry = parse_log(obj)
        except RemoteProtocolError as exc:
            return self.malformed(number, f"not a log: {exc}")
        try:
            name, args = self._decode(entry.topics, entry.data)
        except DecodeError as exc:
            self.counts.undecoded += 1
            record = log_json(entry, None, None, str(exc))
        else:
            record = log_json(entry, name, args, None)
        try:
            return _dumps(record, option=_NEWLINE)
        except TypeError:  # an integer orjson does not write: a block number past 2**64
            return (json.dumps(record, separators=(",", ":"), ensure_ascii=False) + "\n").encode()


def decode_stream(
    source: IO[bytes], sink: IO[bytes], logs: LogDecoder, chunk: int = CHUNK
) -> DecodeCounts:
    """Decode all of ``source`` (a binary stream) into ``sink``, flushed after each read of at
    most ``chunk`` bytes. Raises InputError if the input cannot be read on."""
    chunks = _chunks(source, chunk)
    blank_lines = 0  # before the first chunk with something in it
    first = b""
    for first in chunks:
        if first.strip():
            break
        blank_lines += first.count(b"\n")
    else:
        return logs.counts
    if first.lstrip().startswith(b"["):
        batches = _array_batches(first.lstrip(), chunks, logs)
    else:
        batches = _line_batches(first, chunks, logs, blank_lines)
    for batch in batches:
        sink.write(b"".join(batch))
        sink.flush()
    return logs.counts


def _chunks(source: IO[bytes], size: int) -> Iterator[bytes]:
    # read1: at most one read of the file or pipe, which returns what it holds (up to size).
    read = getattr(source, "read1", source.read)
    while chunk := read(size):
        yield chunk


def _line_batches(
    first: bytes, chunks: Iterator[bytes], logs: LogDecoder, number: int
) -> Iterator[list[bytes]]:
    """The output of each chunk's complete lines, as soon as the chunk is read."""
    partial: list[bytes] = []  # the start of a line that is not complete yet
    partial_size = 0
    for chunk in itertools.chain((first,), chunks):
        end = chunk.rfind(b"\n")
        if end == -1:
            partial.append(chunk)
            partial_size += len(chunk)
            if partial_size > MAX_ITEM:
                raise InputError(f"line {number + 1}: longer than {MAX_ITEM >> 20} MiB")
            continue
        lines = (b"".join(partial) + chunk[:end] if partial else chunk[:end]).split(b"\n")
        partial, partial_size = [chunk[end + 1 :]], len(chunk) - end - 1
        yield logs.lines(number + 1, lines)
        number += len(lines)
    if partial_size:
        yield logs.lines(number + 1, [b"".join(partial)])


def _array_batches(
    first: bytes, chunks: Iterator[bytes], logs: LogDecoder
) -> Iterator[list[bytes]]:
    """The output of one JSON array's items, written before each read as for lines."""
    batch: list[bytes] = []
    number = 0
    try:
        for item in _array_items(first, chunks):
            if item is _READING:
                if batch:
                    yield batch
                    batch = []
                continue
            number += 1
            logs.counts.items += 1
            batch.append(logs.line(number, item))
    except InputError:  # the items before a malformed one go out before its error
        if batch:
            yield batch
        raise
    if batch:
        yield batch


# What _array_items yields before it reads more of the input.
_READING: Final = object()


def _array_items(first: bytes, chunks: Iterator[bytes]) -> Iterator[Any]:
    """The items of one JSON array (``first`` starts with its ``[``) parsed one at a time as the
    chunks come, with :data:`_READING` before each read. The stdlib's ``raw_decode`` parses
    them: orjson parses whole documents only. Raises InputError where the array is malformed."""
    raw_decode = json.JSONDecoder().raw_decode
    utf8 = codecs.getincrementaldecoder("utf-8")(errors="replace").decode
    text, pos, eof = utf8(first), 1, False
    count = 0
    after_comma = False

    def read() -> bool:
        nonlocal text, pos, eof
        chunk = next(chunks, None)
        if chunk is None:
            eof = True
            return False
        text, pos = text[pos:] + utf8(chunk), 0
        return True

    while True:
        pos = _skip_space(text, pos)
        if pos == len(text):
            yield _READING
            if not read():
                raise InputError(f"item {count + 1}: the array is not closed")
            continue
        if text[pos] == "]" and not after_comma:
            if text[pos + 1 :].strip() or any(chunk.strip() for chunk in chunks):
                raise InputError(f"item {count}: data after the end of the array")
            return
        if count and not after_comma:
            if text[pos] != ",":
                raise InputError(f"item {count + 1}: expected ',' or ']', got {text[pos]!r}")
            pos, after_comma = pos + 1, True
            continue
        try:
            item, end = raw_decode(text, pos)
        except ValueError as exc:
            if eof or len(text) - pos > MAX_ITEM:
                raise InputError(f"item {count + 1}: not valid JSON: {exc}") from None
            end = len(text)  # cut by the end of the chunk, maybe: read on and try again
        if end == len(text) and not eof:  # a number may go on in the next chunk
            yield _READING
            read()
            continue
        count += 1
        after_comma = False
        pos = end
        yield item


def _skip_space(text: str, pos: int) -> int:
    while pos < len(text) and text[pos] in " \t\r\n":
        pos += 1
    return pos


def run_decode(decoder: AbiDecoder, path: str) -> DecodeCounts:
    """The command: decode the file at ``path`` (``-``: stdin) to stdout, report on stderr.

    Raises InputError for input that cannot be read (the message names it). A reader that
    goes away (``| head``) ends the run quietly, as with other filters.
    """

    def warn(message: str) -> None:
        print(f"chainwatch: decode: {message}", file=sys.stderr)

    logs = LogDecoder(decoder, warn)
    try:
        source = sys.stdin.buffer if path == "-" else open(path, "rb")  # noqa: SIM115
    except OSError as exc:
        raise InputError(f"{path}: cannot read: {exc.strerror}") from None
    try:
        counts = decode_stream(source, sys.stdout.buffer, logs)
    except BrokenPipeError:
        stdout_gone()
        return logs.counts
    except OSError as exc:
        raise InputError(f"{path}: cannot read: {exc.strerror}") from None
    except InputError as exc:
        raise InputError(f"{path}: {exc}") from None
    finally:
        if source is not sys.stdin.buffer:
            source.close()
    if counts.malformed:
        warn(f"{counts.malformed} of {counts.items} lines were not logs (see the lines above)")
    return counts
