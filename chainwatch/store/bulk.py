"""Inserting many events in one statement: ``INSERT ... VALUES (...), (...) ON CONFLICT DO NOTHING
RETURNING``, with positional parameters handed straight to the driver.

This is what SQLAlchemy's "insertmanyvalues" does for an executemany with RETURNING, less the
per-row parameter processing, which was most of the cost of a write (measured with
``tests/store/bench_write.py``: SQLite about 1.4x faster; PostgreSQL 3x, because psycopg parses a
``%(name)s`` query of thousands of placeholders in Python where ``$n`` placeholders go to the
server as they are). The rest of the store uses SQLAlchemy Core statements.

Rows are tuples in the order of :data:`EVENT_INSERT_COLUMNS`, with ``args`` and ``topics``
already JSON text. Each statement carries at most a page of rows, kept under the backend's limit
on parameters per statement (SQLite 32,766 since 3.32; PostgreSQL 65,535).
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache
from itertools import chain
from typing import Any, Final

from sqlalchemy.engine import Connection

from chainwatch.store.schema import events

EVENT_INSERT_COLUMNS: Final = (
    "id",  # the cursor of the event's `new` change (schema.py)
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
    "topics",
    "data",
    "error",
    "historical",
    "status",
)
#: What comes back for each inserted row: its id, given by the caller, tells which event it was.
RETURNED_COLUMNS: Final = ("id",)
#: The duplicate key: a row whose (chain_id, block_hash, log_index) is stored already is skipped.
CONFLICT_COLUMNS: Final = ("chain_id", "block_hash", "log_index")

SQLITE_PAGE_ROWS: Final = 2000  # 30,000 parameters
POSTGRESQL_PAGE_ROWS: Final = 1000  # 15,000 parameters

EventRow = tuple[Any, ...]
Inserted = int  # the id of an inserted row

_WIDTH: Final = len(EVENT_INSERT_COLUMNS)
_HEAD: Final = "INSERT INTO {table} ({columns}) VALUES ".format(
    table=events.name, columns=", ".join(EVENT_INSERT_COLUMNS)
)
_TAIL: Final = " ON CONFLICT ({conflict}) DO NOTHING RETURNING {returning}".format(
    conflict=", ".join(CONFLICT_COLUMNS), returning=", ".join(RETURNED_COLUMNS)
)
assert set(EVENT_INSERT_COLUMNS) | {"created_at"} == set(events.c.keys())


def insert_events(conn: Connection, rows: Sequence[EventRow]) -> list[Inserted]:
    """Insert ``rows`` in the transaction of ``conn``, skipping duplicates.

    Returns the ids of the rows inserted, in no particular order.
    """
    if conn.dialect.name == "postgresql":
        return _insert_postgresql(conn, rows)
    return _insert_sqlite(conn, rows)


def _insert_sqlite(conn: Connection, rows: Sequence[EventRow]) -> list[Inserted]:
    out: list[Inserted] = []
    for start in range(0, len(rows), SQLITE_PAGE_ROWS):
        page = rows[start : start + SQLITE_PAGE_ROWS]
        params = tuple(chain.from_iterable(page))
        out.extend(conn.exec_driver_sql(_sqlite_sql(len(page)), params).scalars())
    return out


def _insert_postgresql(conn: Connection, rows: Sequence[EventRow]) -> list[Inserted]:
    import psycopg

    # The driver's own connection, in the transaction SQLAlchemy began on it. A RawCursor sends
    # "$n" placeholders to the server as they are; parameters go separately, never into the SQL.
    driver = conn.connection.driver_connection
    assert isinstance(driver, psycopg.Connection)
    out: list[Inserted] = []
    with psycopg.RawCursor(driver) as cursor:
        for start in range(0, len(rows), POSTGRESQL_PAGE_ROWS):
            page = rows[start : start + POSTGRESQL_PAGE_ROWS]
            params = list(chain.from_iterable(page))
            cursor.execute(_postgresql_sql(len(page)), params)
            out.extend(row[0] for row in cursor.fetchall())
    return out


# A live block has a few hundred logs at most, and history comes in full pages: a few dozen
# distinct row counts cover a run. The drivers keep the prepared statements.
@lru_cache(maxsize=64)
def _sqlite_sql(nrows: int) -> str:
    one = "(" + ", ".join(["?"] * _WIDTH) + ")"
    return _HEAD + ", ".join([one] * nrows) + _TAIL


@lru_cache(maxsize=64)
def _postgresql_sql(nrows: int) -> str:
    values = ", ".join(
        "(" + ", ".join(f"${base + i}" for i in range(1, _WIDTH + 1)) + ")"
        for base in range(0, nrows * _WIDTH, _WIDTH)
    )
    return _HEAD + values + _TAIL
