"""``chainwatch events --format json|csv``: stored events out as they are read, in batches.

The rows come from :meth:`chainwatch.store.Store.stream` a batch at a time and each batch is
written before the next is read, so memory stays constant whatever the size of the store. The
output is the same as one event at a time through :mod:`chainwatch.render`: JSON lines of the
stored JSON form, or CSV with a header.
"""

from __future__ import annotations

import csv
import sys
from collections.abc import Generator, Iterable
from typing import IO, Any, Final

import orjson

from chainwatch.core.model import StoredEvent
from chainwatch.render import CSV_COLUMNS, stdout_gone

_NEWLINE: Final = orjson.OPT_APPEND_NEWLINE


def write_events(batches: Generator[list[StoredEvent]], fmt: str) -> int:
    """Write ``batches`` to stdout as ``fmt`` (json or csv); returns the number of events. A
    reader that goes away (``| head``) ends the run quietly; the batches are closed either way
    (the store's connection goes back)."""
    try:
        if fmt == "json":
            return write_json(batches, sys.stdout.buffer)
        return write_csv(batches, sys.stdout)
    except BrokenPipeError:
        stdout_gone()
        return 0
    finally:
        batches.close()


def write_json(batches: Iterable[list[StoredEvent]], sink: IO[bytes]) -> int:
    """One JSON object per line per event to ``sink`` (binary); returns the number written."""
    dumps = orjson.dumps
    count = 0
    for batch in batches:
        sink.write(b"".join([dumps(e.to_json(), option=_NEWLINE) for e in batch]))
        count += len(batch)
    sink.flush()
    return count


def write_csv(batches: Iterable[list[StoredEvent]], sink: IO[str]) -> int:
    """A header, then one CSV row per event to ``sink`` (text); returns the number written."""
    writer = csv.writer(sink)
    writer.writerow(CSV_COLUMNS)
    count = 0
    for batch in batches:
        writer.writerows(_csv_row(e.to_json()) for e in batch)
        count += len(batch)
    sink.flush()
    return count


def _csv_row(obj: dict[str, Any]) -> list[Any]:
    args = obj["args"]
    row = [obj[c] for c in CSV_COLUMNS]
    if args is not None:
        row[_ARGS] = orjson.dumps(args).decode()
    return row


_ARGS: Final = CSV_COLUMNS.index("args")
