"""How events look at a terminal: one readable line each, or one JSON object per line."""

from __future__ import annotations

import csv
import io
import json
import os
import sys
from collections.abc import Iterable, Mapping
from typing import Any, TextIO

from chainwatch.core.jsonform import checksum_address
from chainwatch.core.model import Log

_STATUS_MARK = {"new": "", "confirmed": " ✓", "removed": " [REMOVED]"}


def short(value: str, keep: int = 6) -> str:
    """``0x1234…cdef`` for hashes; addresses and short values are kept whole."""
    if isinstance(value, str) and value.startswith("0x") and len(value) > 42:
        return f"{value[: 2 + keep]}…{value[-4:]}"
    return value


def format_args(args: Mapping[str, Any] | None) -> str:
    if not args:
        return ""
    parts = []
    for key, value in args.items():
        if isinstance(value, (dict, list)):
            shown = json.dumps(value, separators=(",", ":"))
        else:
            shown = short(value) if isinstance(value, str) else json.dumps(value)
        parts.append(f"{key}={shown}")
    return " ".join(parts)


def event_line(event: Mapping[str, Any]) -> str:
    """``#123.4 Token.Transfer from=0x… to=0x… value=1000 ✓`` from an event's JSON form."""
    block = event.get("block_number")
    index = event.get("log_index")
    where = event.get("contract") or event.get("address") or "?"
    name = event.get("event")
    status = _STATUS_MARK.get(str(event.get("status", "new")), f" [{event.get('status')}]")
    if name is None:
        error = event.get("error", "not decoded")
        return f"#{block}.{index} {where} ?? ({error}){status}"
    line = f"#{block}.{index} {where}.{name} {format_args(event.get('args'))}".rstrip()
    token = event.get("token")
    if isinstance(token, Mapping) and event.get("amount") is not None:
        line += f" ({event['amount']} {token.get('symbol') or ''})".rstrip()
    return line + status


def stdout_gone() -> None:
    """After a BrokenPipeError on stdout (``| head``): the reader has gone, so point stdout at
    /dev/null, where Python's flush at exit cannot fail and print a traceback."""
    os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())


def json_line(obj: Any) -> str:
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False)


def log_json(entry: Log, event: str | None, args: Any, error: str | None) -> dict[str, Any]:
    """A log decoded outside the store (``chainwatch decode`` and ``watch``): the stored JSON
    form without id, chain and status, ``status`` only for a removed log, ``error`` when it did
    not decode."""
    obj: dict[str, Any] = {
        "block_number": entry.block_number,
        "block_hash": entry.block_hash,
        "transaction_hash": entry.transaction_hash,
        "transaction_index": entry.transaction_index,
        "log_index": entry.log_index,
        "address": checksum_address(entry.address),
        "event": event,
        "args": args,
    }
    if entry.removed:
        obj["status"] = "removed"
    if error is not None:
        obj["error"] = error
    return obj


TABLE_COLUMNS = ("id", "block_number", "log_index", "contract", "event", "status", "args")
CSV_COLUMNS = (
    "id", "chain_id", "block_number", "block_hash", "transaction_hash", "transaction_index",
    "log_index", "address", "contract", "event", "args", "status",
)  # fmt: skip


def write_table(rows: Iterable[Mapping[str, Any]], out: TextIO, width: int = 160) -> int:
    cells = []
    for row in rows:
        args = format_args(row.get("args")) if row.get("event") else f"error: {row.get('error')}"
        values = [str(row.get(c, "")) if c != "args" else args for c in TABLE_COLUMNS]
        cells.append(values)
    if not cells:
        return 0
    widths = [max(len(c), *(len(r[i]) for r in cells)) for i, c in enumerate(TABLE_COLUMNS)]
    widths[-1] = min(widths[-1], max(20, width - sum(widths[:-1]) - 2 * len(widths)))
    header = ("id", "block", "log", "contract", "event", "status", "args")
    out.write("  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)).rstrip() + "\n")
    for values in cells:
        values[-1] = (
            values[-1] if len(values[-1]) <= widths[-1] else values[-1][: widths[-1] - 1] + "…"
        )
        out.write(
            "  ".join(v.ljust(w) for v, w in zip(values, widths, strict=True)).rstrip() + "\n"
        )
    return len(cells)


def write_csv(rows: Iterable[Mapping[str, Any]], out: TextIO) -> int:
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(CSV_COLUMNS)
    count = 0
    for row in rows:
        writer.writerow(
            [
                json_line(row[c]) if c == "args" and row[c] is not None else row[c]
                for c in CSV_COLUMNS
            ]
        )
        count += 1
    out.write(buffer.getvalue())
    return count
