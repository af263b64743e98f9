"""The store: decoded events, per-chain checkpoints, the recent-block window and token metadata.

SQLAlchemy Core over a synchronous engine. The daemon calls it from worker threads
(``asyncio.to_thread``); it is safe for one writer and any number of readers at once: writes
are serialised by a lock and each call takes its own pooled connection.

Backends
    ``sqlite:///chainwatch.db`` (the default): embedded, nothing to install. Every connection is
    set to WAL (readers never wait for the writer), ``synchronous=NORMAL`` (a power cut may lose
    the last commits but never corrupts), ``foreign_keys=ON`` and a busy timeout. Writes begin
    with ``BEGIN IMMEDIATE`` so that a second process writing the same file waits for the lock
    instead of failing half way. The WAL is copied back into the database file by a thread of
    the store's own every ``checkpoint_every`` seconds, not by whichever commit crosses SQLite's
    1,000-page mark: that commit would wait for the copy and its fsync (up to 50 ms here, the
    worst of the alert latency). ``sqlite://`` (in memory) works too, on one shared connection.

    ``postgresql+psycopg://user@host:5432/db`` (``postgresql://`` means the same): the
    production backend. Tables go in the first schema of the role's ``search_path``
    (``public``) unless ``Store.open(url, schema="name")`` is used: then every connection runs
    ``SET search_path TO "name"`` and the schema is created if missing. That is how tests and
    several chainwatch instances share one database. (A ``?options=-csearch_path%3Dname`` URL
    also works, but does not create the schema.)

Transactions
    ``write_batch`` and ``reorg`` each run in one transaction: events, the blocks window and the
    checkpoint commit together or not at all, so after a crash the checkpoint never claims a
    block whose events are missing. The daemon writes one batch per live block and one per chunk
    of history, never one per log.

Errors
    Errors of the database come out as :class:`~chainwatch.errors.StoreError`, with a one-line
    message that never shows a password; the transaction has been rolled back by then.
"""

from __future__ import annotations

import logging
import re
import sqlite3
import threading
import time
from collections.abc import Callable, Collection, Generator, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from operator import attrgetter
from typing import TYPE_CHECKING, Any, Final, TypedDict, cast

import orjson
from alembic.util import CommandError
from sqlalchemy import (
    Delete,
    Insert,
    Select,
    Update,
    bindparam,
    create_engine,
    delete,
    func,
    select,
    text,
)
from sqlalchemy import event as sa_event
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import URL, Connection, Engine, make_url
from sqlalchemy.exc import (
    ArgumentError,
    DBAPIError,
    DisconnectionError,
    NoSuchModuleError,
    SQLAlchemyError,
)
from sqlalchemy.exc import TimeoutError as PoolTimeoutError
from sqlalchemy.pool import NullPool, StaticPool

from chainwatch.core import rpc
from chainwatch.core.model import (
    Change,
    Checkpoint,
    DecodedEvent,
    Head,
    Log,
    Status,
    StoredEvent,
)
from chainwatch.errors import CursorExpired, LeadershipLost, StoreError
from chainwatch.store import bulk, migrate
from chainwatch.store.schema import blocks as blocks_table
from chainwatch.store.schema import change_log as change_log_table
from chainwatch.store.schema import changes as changes_table
from chainwatch.store.schema import checkpoints as checkpoints_table
from chainwatch.store.schema import events as events_table
from chainwatch.store.schema import leases as leases_table
from chainwatch.store.schema import tokens as tokens_table

if TYPE_CHECKING:
    from typing_extensions import Unpack

log = logging.getLogger("chainwatch.store")

#: How long a SQLite connection waits for another process's write lock before giving up.
SQLITE_BUSY_TIMEOUT_MS: Final = 10_000
#: Seconds between two checkpoints of a SQLite file's WAL (see the module's docstring).
SQLITE_CHECKPOINT_EVERY: Final = 1.0
#: A PostgreSQL transaction idle longer than this is ended by the server (a paused process).
PG_IDLE_IN_TRANSACTION_MS: Final = 5_000
#: SQLite added RETURNING in 3.35 (2021-03).
_SQLITE_MIN_VERSION: Final = (3, 35, 0)
#: Block hashes per ``IN (...)``: well under SQLite's and PostgreSQL's bind-parameter limits.
_IN_CHUNK: Final = 500
#: What the database (or the way to it) raises; anything else SQLAlchemy raises is our bug.
_DATABASE_ERRORS: Final = (DBAPIError, DisconnectionError, PoolTimeoutError)
_SCHEMA_RE: Final = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")
#: An execution option the SQLite "begin" hook reads to start a write transaction.
_WRITE_OPTION: Final = "chainwatch_write"

_EVENT_COLUMNS = (
    events_table.c.id,
    events_table.c.chain_id,
    events_table.c.block_number,
    events_table.c.block_hash,
    events_table.c.transaction_hash,
    events_table.c.transaction_index,
    events_table.c.log_index,
    events_table.c.address,
    events_table.c.contract,
    events_table.c.event,
    events_table.c.args,
    events_table.c.topics,
    events_table.c.data,
    events_table.c.error,
    events_table.c.status,
    events_table.c.historical,
)


#: Compact JSON text of decoded args (orjson: the json module was a third of a write's cost).
_dumps: Final = rpc.dumps
#: And back: what the store wrote itself (no nesting guard needed). orjson parses a stored row's
#: topics and args in about a third of the json module's time, which was a third of what a
#: gateway spent on each change it read.
_loads: Final = orjson.loads


def _topics_json(topics: Sequence[str]) -> str:
    """``_dumps(topics)`` for topics already checked to be 0x-hex (nothing to escape)."""
    return '["' + '","'.join(topics) + '"]' if topics else "[]"


class Store:
    """Access to the chainwatch database. Make one with :meth:`open`; :meth:`close` it at exit."""

    def __init__(
        self,
        engine: Engine,
        *,
        shown_url: str,
        shared_connection: bool,
        checkpoint_every: float | None = None,
    ) -> None:
        """Use :meth:`open`, which also creates or upgrades the schema."""
        self._engine = engine
        self._write_engine = engine.execution_options(**{_WRITE_OPTION: True})
        # A gateway's reader of the change log: one connection of its own (PostgreSQL).
        self._log_reader: Any = None
        self._log_reader_lock = threading.Lock()
        self._shown_url = shown_url
        self._closed = False
        self._write_lock = threading.Lock()
        # One in-memory SQLite connection is shared by every thread: readers take the lock too.
        self._read_lock: AbstractContextManager[Any] = (
            self._write_lock if shared_connection else nullcontext()
        )
        self._statements = _Statements(engine.dialect.name)
        # bulk.py talks to the driver directly: its errors arrive unwrapped.
        self._database_errors = (*_DATABASE_ERRORS, engine.dialect.loaded_dbapi.Error)
        self._checkpointer = (
            _Checkpointer(engine, checkpoint_every, shown_url) if checkpoint_every else None
        )

    # --- life -------------------------------------------------------------------------------

    @classmethod
    def open(
        cls,
        url: str,
        *,
        schema: str | None = None,
        checkpoint_every: float = SQLITE_CHECKPOINT_EVERY,
    ) -> Store:
        """Connect to the database at ``url``, create or upgrade its schema, and return a Store.

        ``schema`` (PostgreSQL only) puts the tables in that schema, created if missing.
        ``checkpoint_every`` (a SQLite file only): seconds between two checkpoints of its WAL.
        Raises :class:`StoreError` if the database cannot be reached, refuses the migrations or
        is at a schema revision newer than this chainwatch knows.
        """
        try:
            parsed = make_url(url)
        except ArgumentError:
            raise StoreError(
                "storage URL is not a database URL: expected sqlite:///FILE "
                "or postgresql+psycopg://USER@HOST/DB"
            ) from None
        shown = _redact(parsed)
        backend = parsed.get_backend_name()
        if backend not in ("sqlite", "postgresql"):
            raise StoreError(
                f"unsupported database {backend!r} in {shown}: use SQLite or PostgreSQL"
            )
        if schema is not None:
            if backend != "postgresql":
                raise StoreError(f"a schema can only be given for PostgreSQL, not for {shown}")
            if not _SCHEMA_RE.match(schema):
                raise StoreError(f"invalid schema name {schema!r}: letters, digits and _ only")
        if backend == "sqlite" and sqlite3.sqlite_version_info < _SQLITE_MIN_VERSION:
            raise StoreError(
                f"SQLite {sqlite3.sqlite_version} is too old: chainwatch needs 3.35 or newer"
            )

        if parsed.drivername not in (
            "sqlite",
            "sqlite+pysqlite",
            "postgresql",
            "postgresql+psycopg",
        ):
            raise StoreError(
                f"unsupported driver {parsed.drivername!r} in {shown}: "
                "use sqlite:/// or postgresql+psycopg://"
            )
        shared = backend == "sqlite" and parsed.database in (None, "", ":memory:")
        try:
            if backend == "sqlite":
                engine = _sqlite_engine(parsed, in_memory=shared)
            else:
                if parsed.drivername == "postgresql":
                    parsed = parsed.set(drivername="postgresql+psycopg")
                if schema is not None:
                    _create_schema(parsed, schema)
                engine = _postgresql_engine(parsed, schema)
            # A write transaction (BEGIN IMMEDIATE on SQLite; an advisory lock on PostgreSQL) so
            # that two processes opening a new database do not both try to create the tables.
            with engine.execution_options(**{_WRITE_OPTION: True}).begin() as conn:
                if backend == "postgresql":
                    conn.execute(text("SELECT pg_advisory_xact_lock(hashtext('chainwatch.store'))"))
                migrate.upgrade(conn)
        except (NoSuchModuleError, ModuleNotFoundError) as exc:
            raise StoreError(f"cannot open {shown}: database driver missing ({exc})") from exc
        except CommandError as exc:
            raise StoreError(f"cannot upgrade the schema of {shown}: {_first_line(exc)}") from exc
        except SQLAlchemyError as exc:
            raise StoreError(f"cannot open {shown}: {_reason(exc)}") from exc
        file = backend == "sqlite" and not shared
        return cls(
            engine,
            shown_url=shown,
            shared_connection=shared,
            checkpoint_every=checkpoint_every if file else None,
        )

    def close(self) -> None:
        """Close every pooled connection. The store cannot be used afterwards."""
        self._closed = True
        with self._log_reader_lock:
            if self._log_reader is not None:
                self._log_reader.invalidate()
                self._log_reader = None
        if self._checkpointer is not None:
            self._checkpointer.stop()
        self._engine.dispose()  # the last connection to close checkpoints the rest

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<Store {self._shown_url}>"

    @property
    def dialect(self) -> str:
        """``"sqlite"`` or ``"postgresql"``."""
        return self._engine.dialect.name

    # --- writes -----------------------------------------------------------------------------
    #
    # Every write that a consumer can see appends to the change log in its own transaction
    # (see schema.py): cursors come from change_log.last_cursor, whose row lock (PostgreSQL)
    # or the database's write lock (SQLite) makes cursor order the commit order. A write for a
    # chain may carry the writer's ``lease``: the transaction then checks, under a row lock,
    # that the lease is still this writer's and unexpired, or raises LeadershipLost (fencing).

    def write_batch(
        self,
        events: Sequence[DecodedEvent],
        checkpoint: Checkpoint | None,
        blocks: Sequence[Head] = (),
        *,
        lease: Lease | None = None,
    ) -> list[Change]:
        """Store a batch of events, the blocks they came with and a checkpoint, in ONE transaction.

        Events whose (chain_id, block_hash, log_index) is stored already are skipped; new ones
        get status ``new``. ``blocks`` join the recent-block window of the checkpoint's chain
        (or, with no checkpoint, of the events' one chain), replacing a stored block of the same
        number, and each is a ``head`` change. Returns the changes written, in cursor order:
        a ``new`` change per inserted event (its id is its cursor), then the heads.

        A log passed in with ``removed=True`` is stored as a ``new`` event all the same.
        """
        with self._write() as conn:
            return self._commit(conn, events, checkpoint, blocks, None, {}, lease)

    def commit_block(
        self,
        events: Sequence[DecodedEvent],
        checkpoint: Checkpoint,
        blocks: Sequence[Head] = (),
        *,
        confirm_through: int | None = None,
        known: Mapping[int, StoredEvent] | None = None,
        lease: Lease | None = None,
    ) -> list[Change]:
        """What the daemon does per block (or history chunk), in ONE transaction: the events,
        the blocks, the checkpoint, and the confirmation of every ``new`` event of the chain at
        or below ``confirm_through``.

        Returns the changes in cursor order: the confirmations of earlier events, a ``new``
        change per inserted event, a ``confirmed`` change per inserted event at or below
        ``confirm_through`` (stored ``confirmed`` at once), then one ``head`` per block.
        Earlier events that this confirms are taken from ``known`` (id -> event, the caller's
        memory) where there, so that no row is read and parsed again on the hot path.
        """
        with self._write() as conn:
            return self._commit(
                conn, events, checkpoint, blocks, confirm_through, known or {}, lease
            )

    def _commit(
        self,
        conn: Connection,
        events: Sequence[DecodedEvent],
        checkpoint: Checkpoint | None,
        blocks: Sequence[Head],
        confirm_through: int | None,
        known: Mapping[int, StoredEvent],
        lease: Lease | None,
    ) -> list[Change]:
        block_chain = self._block_chain(events, checkpoint, blocks)
        stmts = self._statements
        if lease is not None:
            _check_lease(conn, stmts, lease)
        deep = -1 if confirm_through is None else confirm_through
        earlier: list[int] = []
        if confirm_through is not None and checkpoint is not None:
            # Before this batch's rows exist: `new` rows at or below confirm_through are
            # earlier ones (the batch's own are stored with their final status).
            earlier = sorted(
                conn.execute(
                    stmts.confirm_ids,
                    {"b_chain_id": checkpoint.chain_id, "b_block_number": confirm_through},
                ).scalars()
            )
        n_deep = sum(1 for e in events if e.log.block_number <= deep)
        total = len(earlier) + len(events) + n_deep + len(blocks)
        if total == 0:
            if checkpoint is not None:
                _upsert_checkpoint(conn, stmts, checkpoint)
            return []
        cursor = _allocate(conn, stmts, total)
        now = time.time()
        changes: list[Change] = []
        confirmed_earlier = _confirmed_events(conn, earlier, known)
        for event in confirmed_earlier:
            changes.append(Change(cursor, event.chain_id, "confirmed", event, None, None, now))
            cursor += 1
        first_id = cursor
        cursor += len(events)
        rows = [
            (
                first_id + i,
                e.chain_id,
                e.log.block_number,
                e.log.block_hash,
                e.log.transaction_hash,
                e.log.transaction_index,
                e.log.log_index,
                e.log.address,
                e.contract,
                e.event,
                None if e.args is None else _dumps(e.args),
                _topics_json(e.log.topics),
                e.log.data,
                e.error,
                e.historical,
                "confirmed" if e.log.block_number <= deep else "new",
            )
            for i, e in enumerate(events)
        ]  # in the order of bulk.EVENT_INSERT_COLUMNS
        inserted_ids = set(bulk.insert_events(conn, rows)) if rows else set()
        inserted: list[StoredEvent] = []
        for i, e in enumerate(events):
            event_id = first_id + i
            if event_id not in inserted_ids:
                continue  # stored already
            entry = e.log if not e.log.removed else replace(e.log, removed=False)
            inserted.append(
                StoredEvent(
                    event_id, e.chain_id, entry, e.contract, e.event, e.args, e.error, "new",
                    e.historical,
                )
            )  # fmt: skip
        changes += [Change(s.id, s.chain_id, "new", s, None, None, now) for s in inserted]
        for s in inserted:
            if s.log.block_number <= deep:
                confirmed = s.with_status("confirmed")
                changes.append(Change(cursor, s.chain_id, "confirmed", confirmed, None, None, now))
                cursor += 1
        cursor = first_id + len(events) + n_deep
        if blocks:
            conn.execute(
                stmts.upsert_blocks,
                [
                    {
                        "chain_id": block_chain,
                        "number": b.number,
                        "hash": b.hash,
                        "parent_hash": b.parent_hash,
                    }
                    for b in blocks
                ],
            )
            assert block_chain is not None
            for b in blocks:
                changes.append(Change(cursor, block_chain, "head", None, b, None, now))
                cursor += 1
        if checkpoint is not None:
            _upsert_checkpoint(conn, stmts, checkpoint)
        _insert_changes(conn, stmts, changes)
        return changes

    def reorg(
        self,
        chain_id: int,
        orphaned_block_hashes: Collection[str],
        checkpoint: Checkpoint,
        removed_from_block: int,
        *,
        lease: Lease | None = None,
    ) -> list[Change]:
        """Undo orphaned blocks, in ONE transaction.

        Marks the events of ``orphaned_block_hashes`` ``removed``, drops blocks numbered
        ``removed_from_block`` and above from the window, and moves the checkpoint (back) to
        ``checkpoint``. Returns a ``removed`` change per event whose status changed (with the
        status it had before), in cursor order.
        """
        if checkpoint.chain_id != chain_id:
            raise ValueError(
                f"checkpoint of chain {checkpoint.chain_id} given for a reorg of chain {chain_id}"
            )
        stmts = self._statements
        with self._write() as conn:
            if lease is not None:
                _check_lease(conn, stmts, lease)
            changes = _set_status(conn, stmts, chain_id, orphaned_block_hashes, "removed")
            conn.execute(
                stmts.delete_blocks_from, {"chain_id": chain_id, "number": removed_from_block}
            )
            _upsert_checkpoint(conn, stmts, checkpoint)
        return changes

    def prune_blocks(self, chain_id: int, below_number: int) -> None:
        """Drop blocks numbered below ``below_number`` from the window of ``chain_id``."""
        with self._write() as conn:
            conn.execute(
                self._statements.delete_blocks_below, {"chain_id": chain_id, "number": below_number}
            )

    def prune_changes(self, older_than: float) -> int:
        """Drop changes committed more than ``older_than`` seconds ago; returns how many.

        ``change_log.pruned_through`` then says that cursors up to it are gone: a consumer
        resuming from an older cursor gets :class:`CursorExpired`, never a silent gap.
        """
        cutoff = datetime.now(UTC) - timedelta(seconds=older_than)
        c = changes_table.c
        with self._write() as conn:
            last = conn.execute(select(func.max(c.cursor)).where(c.created_at < cutoff)).scalar()
            if last is None:
                return 0
            deleted = conn.execute(delete(changes_table).where(c.cursor <= last)).rowcount
            conn.execute(
                change_log_table.update()
                .where(change_log_table.c.id == 1, change_log_table.c.pruned_through < last)
                .values(pruned_through=last)
            )
        return int(deleted or 0)

    def save_token(
        self, chain_id: int, address: str, symbol: str | None, decimals: int | None
    ) -> None:
        """Remember the ERC-20 metadata of a token (replacing what was stored)."""
        with self._write() as conn:
            conn.execute(
                self._statements.upsert_token,
                {
                    "chain_id": chain_id,
                    "address": address.lower(),
                    "symbol": symbol,
                    "decimals": decimals,
                },
            )

    # --- reads ------------------------------------------------------------------------------

    def checkpoint(self, chain_id: int) -> Checkpoint | None:
        """The last block of ``chain_id`` whose events are all stored, or None."""
        stmt = select(checkpoints_table.c.block_number, checkpoints_table.c.block_hash).where(
            checkpoints_table.c.chain_id == chain_id
        )
        with self._read() as conn:
            row = conn.execute(stmt).first()
        return None if row is None else Checkpoint(chain_id, row.block_number, row.block_hash)

    def recent_blocks(self, chain_id: int, limit: int) -> list[Head]:
        """Up to ``limit`` blocks of the window of ``chain_id``, newest first."""
        stmt = (
            select(blocks_table.c.number, blocks_table.c.hash, blocks_table.c.parent_hash)
            .where(blocks_table.c.chain_id == chain_id)
            .order_by(blocks_table.c.number.desc())
            .limit(limit)
        )
        with self._read() as conn:
            rows = conn.execute(stmt).all()
        return [Head(number=r.number, hash=r.hash, parent_hash=r.parent_hash) for r in rows]

    def query(
        self,
        *,
        since_id: int | None = None,
        order: str = "asc",
        **filters: Unpack[EventFilters],
    ) -> list[StoredEvent]:
        """Stored events matching every filter given (:class:`EventFilters`), ordered by id
        (``order="desc"``: newest first).

        ``from_block``/``to_block`` are inclusive; ``since_id`` returns ids strictly greater
        (the resume cursor); ``address`` is compared case-insensitively.
        """
        stmt = _query_statement(filters, since_id, order)
        with self._read() as conn:
            rows = conn.execute(stmt).all()
        return [_stored(r) for r in rows]

    def stream(
        self, *, batch: int = 1000, **filters: Unpack[EventFilters]
    ) -> Generator[list[StoredEvent]]:
        """:meth:`query` in id order, ``batch`` events at a time, in constant memory whatever
        the number of rows: PostgreSQL reads them from a server-side cursor, SQLite steps
        through them. The connection (and a PostgreSQL transaction, hence its snapshot) is held
        until the generator is exhausted or closed."""
        stmt = _query_statement(filters, None, "asc")
        with self._read() as conn:
            result = conn.execution_options(yield_per=batch).execute(stmt)
            for rows in result.partitions():
                yield [_stored(r) for r in rows]

    def last_cursor(self) -> int:
        """The greatest cursor handed out by a committed transaction (0 for a new store):
        where a consumer that wants only what comes next starts."""
        with self._read() as conn:
            value = conn.execute(select(change_log_table.c.last_cursor)).scalar()
        return int(value or 0)

    def changes_after(
        self, cursor: int, *, limit: int = 1000, chain_id: int | None = None
    ) -> list[Change]:
        """The changes with a cursor greater than ``cursor``, in cursor (commit) order, at most
        ``limit`` (of ``chain_id`` only, if given). Never skips a committed change.

        Raises :class:`CursorExpired` when changes after ``cursor`` were pruned.
        """
        rows: Sequence[Sequence[Any]]
        if self.dialect == "postgresql":
            rows, pruned = self._changes_postgresql(cursor, limit, chain_id)
        else:
            c = changes_table.c
            e = events_table.c
            stmt = (
                select(c.cursor, c.chain_id, c.kind, c.prior, c.head, c.created_at, *_EVENT_COLUMNS)
                .select_from(changes_table.outerjoin(events_table, e.id == c.event_id))
                .where(c.cursor > cursor)
                .order_by(c.cursor)
                .limit(limit)
            )
            if chain_id is not None:
                stmt = stmt.where(c.chain_id == chain_id)
            with self._read() as conn:
                rows = conn.execute(stmt).all()
                # Read after the rows: a prune that committed before the rows were read (and
                # took some) shows here, so a gap is always an error, never silent.
                pruned = conn.execute(select(change_log_table.c.pruned_through)).scalar() or 0
        if cursor < pruned:
            raise CursorExpired(cursor, int(pruned))
        out = []
        for row in rows:
            at, chain, kind, prior, head, created = row[:6]
            when = _unix_time(created)
            if kind == "head":
                out.append(Change(at, chain, kind, None, _head_of(head), None, when))
                continue
            if row[6] is None:
                continue  # an event row that is gone: cannot happen, events are never deleted
            event = _stored(row[6:])
            removed = kind == "removed"
            if event.log.removed != removed:  # as it was at this change, not as it is now
                event = replace(event, log=replace(event.log, removed=removed))
            event = event.with_status(kind)
            out.append(Change(at, chain, kind, event, None, prior, when))
        return out

    def _changes_postgresql(
        self, cursor: int, limit: int, chain_id: int | None
    ) -> tuple[list[tuple[Any, ...]], int]:
        """The rows of :meth:`changes_after` and then ``pruned_through``, on a connection kept
        for it, in autocommit, with server-prepared statements handed straight to the driver.

        A gateway reads the log many times a second. Through a pooled SQLAlchemy connection
        each read cost five round trips (pre-ping, BEGIN, the rows, the prune mark, ROLLBACK)
        and SQLAlchemy's row processing: about 72 µs of the gateway's CPU a change in
        ``benchmarks/bench_gateway.py``, against about 10 for the same query through psycopg
        alone. This is that: two statements, rows as tuples.
        """
        import psycopg

        sql = _PG_CHANGES_CHAIN_SQL if chain_id is not None else _PG_CHANGES_SQL
        params = (cursor, limit, chain_id) if chain_id is not None else (cursor, limit)
        with self._log_reader_lock, self._errors():
            raw = self._log_reader
            if raw is None:
                raw = self._engine.raw_connection()
                assert raw.driver_connection is not None
                raw.driver_connection.autocommit = True
                self._log_reader = raw
            try:
                with psycopg.RawCursor(raw.driver_connection) as cur:
                    cur.execute(sql, params, prepare=True)
                    rows = cur.fetchall()
                    # After the rows (see changes_after): a gap is always an error.
                    cur.execute(_PG_PRUNED_SQL, prepare=True)
                    mark = cur.fetchone()
            except BaseException:
                self._log_reader = None
                raw.invalidate()
                raise
        return rows, int(mark[0]) if mark else 0

    def oldest_cursor(self) -> int:
        """The oldest cursor a consumer may resume from (changes after it are all kept)."""
        with self._read() as conn:
            value = conn.execute(select(change_log_table.c.pruned_through)).scalar()
        return int(value or 0)

    def heads(self) -> dict[int, Head]:
        """Each chain's stored head: its checkpoint, with the parent from the block window."""
        cp = checkpoints_table.c
        b = blocks_table.c
        stmt = select(cp.chain_id, cp.block_number, cp.block_hash, b.parent_hash).select_from(
            checkpoints_table.outerjoin(
                blocks_table, (b.chain_id == cp.chain_id) & (b.number == cp.block_number)
            )
        )
        with self._read() as conn:
            rows = conn.execute(stmt).all()
        return {
            r.chain_id: Head(number=r.block_number, hash=r.block_hash,
                             parent_hash=r.parent_hash or "")
            for r in rows
        }  # fmt: skip

    # --- leadership (PostgreSQL) --------------------------------------------------------------

    def acquire_lease(self, chain_id: int, holder: str, ttl: float) -> Lease | None:
        """Take the lead of ``chain_id``'s ingest for ``ttl`` seconds if nobody holds it (or
        its lease ran out); returns the lease, or None when another process leads."""
        self._need_postgresql("leadership")
        sql = text(
            "INSERT INTO leases (chain_id, holder, epoch, expires_at) "
            "VALUES (:chain_id, :holder, 1, now() + make_interval(secs => :ttl)) "
            "ON CONFLICT (chain_id) DO UPDATE SET holder = :holder, "
            "epoch = leases.epoch + 1, expires_at = now() + make_interval(secs => :ttl) "
            "WHERE leases.expires_at <= now() OR leases.holder = :holder "
            "RETURNING epoch"
        )
        with self._write() as conn:
            conn.exec_driver_sql("SET LOCAL lock_timeout = '2s'")
            epoch = conn.execute(sql, {"chain_id": chain_id, "holder": holder, "ttl": ttl}).scalar()
        return None if epoch is None else Lease(chain_id, holder, int(epoch))

    def renew_lease(self, lease: Lease, ttl: float) -> bool:
        """Extend ``lease`` by ``ttl`` seconds from now; False when it is no longer ours."""
        self._need_postgresql("leadership")
        sql = text(
            "UPDATE leases SET expires_at = now() + make_interval(secs => :ttl) "
            "WHERE chain_id = :chain_id AND holder = :holder AND epoch = :epoch "
            "AND expires_at > now()"
        )
        with self._write() as conn:
            conn.exec_driver_sql("SET LOCAL lock_timeout = '2s'")
            result = conn.execute(
                sql,
                {"chain_id": lease.chain_id, "holder": lease.holder, "epoch": lease.epoch,
                 "ttl": ttl},
            )  # fmt: skip
        return bool(result.rowcount)

    def release_lease(self, lease: Lease) -> None:
        """Give the lead up at once (a standby takes over at its next try)."""
        self._need_postgresql("leadership")
        sql = text(
            "UPDATE leases SET expires_at = now() - interval '1 second' "
            "WHERE chain_id = :chain_id AND holder = :holder AND epoch = :epoch"
        )
        with self._write() as conn:
            conn.execute(
                sql, {"chain_id": lease.chain_id, "holder": lease.holder, "epoch": lease.epoch}
            )
            conn.execute(text("SELECT pg_notify(current_schema() || '.chainwatch_leases', '')"))

    def leaders(self) -> dict[int, tuple[str, int, float]]:
        """chain id -> (holder, epoch, seconds left) of every unexpired lease."""
        if self.dialect != "postgresql":
            return {}
        sql = text(
            "SELECT chain_id, holder, epoch, "
            "extract(epoch FROM expires_at - now()) AS left_s FROM leases "
            "WHERE expires_at > now()"
        )
        with self._read() as conn:
            rows = conn.execute(sql).all()
        return {r.chain_id: (r.holder, int(r.epoch), float(r.left_s)) for r in rows}

    def wait_for_changes(self, stop: threading.Event, wake: Callable[[], None]) -> None:
        """Call ``wake`` whenever a transaction that wrote changes commits, until ``stop`` is
        set (PostgreSQL ``LISTEN``; meant for a thread of its own). Returns on ``stop``;
        raises StoreError if the connection fails (the caller polls meanwhile, and retries:
        a listener that was away has missed notifications, so it must not be the only way)."""
        self._need_postgresql("listening for changes")
        with self._errors():
            raw = self._engine.raw_connection()
            try:
                driver = raw.driver_connection
                assert driver is not None
                driver.commit()
                driver.autocommit = True
                schema = driver.execute("SELECT current_schema()").fetchone()
                channel = f"{schema[0] if schema else 'public'}.chainwatch_changes"
                driver.execute(f'LISTEN "{channel}"')
                wake()  # anything committed before LISTEN is read by the caller now
                while not stop.is_set():
                    for _ in driver.notifies(timeout=0.5, stop_after=1):
                        wake()
            finally:
                raw.invalidate()  # a LISTENing connection does not go back to the pool

    def _need_postgresql(self, what: str) -> None:
        if self.dialect != "postgresql":
            raise StoreError(f"{what} needs PostgreSQL, not {self._shown_url}")

    def token(self, chain_id: int, address: str) -> tuple[str | None, int | None] | None:
        """(symbol, decimals) saved for a token, or None if it was never saved."""
        stmt = select(tokens_table.c.symbol, tokens_table.c.decimals).where(
            tokens_table.c.chain_id == chain_id, tokens_table.c.address == address.lower()
        )
        with self._read() as conn:
            row = conn.execute(stmt).first()
        return None if row is None else (row.symbol, row.decimals)

    def known_contract_names(self) -> set[str]:
        """The contract names of every stored event (to tell the user about renamed ones)."""
        contract = events_table.c.contract
        stmt = select(contract).where(contract.is_not(None)).distinct()
        with self._read() as conn:
            return set(conn.execute(stmt).scalars())

    # --- plumbing ---------------------------------------------------------------------------

    @contextmanager
    def _write(self) -> Iterator[Connection]:
        """A write transaction: committed on exit, rolled back if the block raises."""
        with self._write_lock, self._errors(), self._write_engine.begin() as conn:
            yield conn

    @contextmanager
    def _read(self) -> Iterator[Connection]:
        with self._read_lock, self._errors(), self._engine.connect() as conn:
            yield conn

    @contextmanager
    def _errors(self) -> Iterator[None]:
        if self._closed:
            raise StoreError(f"the store {self._shown_url} is closed")
        try:
            yield
        except self._database_errors as exc:
            raise StoreError(f"database error on {self._shown_url}: {_reason(exc)}") from exc

    @staticmethod
    def _block_chain(
        events: Sequence[DecodedEvent], checkpoint: Checkpoint | None, blocks: Sequence[Head]
    ) -> int | None:
        """The chain the blocks belong to; checks that the batch is about one chain."""
        chain = checkpoint.chain_id if checkpoint is not None else None
        if chain is not None or blocks:
            for e in events:
                if chain is None:
                    chain = e.chain_id
                elif e.chain_id != chain:
                    raise ValueError(f"an event of chain {e.chain_id} in a batch of chain {chain}")
        if blocks and chain is None:
            raise ValueError("blocks need a checkpoint or events to tell their chain")
        return chain


_PG_CHANGES_HEAD = (
    "SELECT c.cursor, c.chain_id, c.kind, c.prior, c.head, c.created_at, "
    + ", ".join(f"e.{column.name}" for column in _EVENT_COLUMNS)
    + " FROM changes c LEFT JOIN events e ON e.id = c.event_id WHERE c.cursor > $1"
)
_PG_CHANGES_SQL: Final = _PG_CHANGES_HEAD + " ORDER BY c.cursor LIMIT $2"
_PG_CHANGES_CHAIN_SQL: Final = _PG_CHANGES_HEAD + " AND c.chain_id = $3 ORDER BY c.cursor LIMIT $2"
_PG_PRUNED_SQL: Final = "SELECT pruned_through FROM change_log WHERE id = 1"


# A literal, not a bound parameter: the planner then knows the partial index of unconfirmed
# events (``ix_events_unconfirmed``) applies.
_STATUS_IS_NEW = text("events.status = 'new'")


class _Statements:
    """The write statements, built once per store so SQLAlchemy compiles each one once."""

    def __init__(self, dialect: str) -> None:
        ins: Callable[..., Any] = postgresql.insert if dialect == "postgresql" else sqlite.insert
        upsert_block = ins(blocks_table)
        self.upsert_blocks: Insert = upsert_block.on_conflict_do_update(
            index_elements=["chain_id", "number"],
            set_={
                "hash": upsert_block.excluded.hash,
                "parent_hash": upsert_block.excluded.parent_hash,
            },
        )
        upsert_checkpoint = ins(checkpoints_table)
        self.upsert_checkpoint: Insert = upsert_checkpoint.on_conflict_do_update(
            index_elements=["chain_id"],
            set_={
                "block_number": upsert_checkpoint.excluded.block_number,
                "block_hash": upsert_checkpoint.excluded.block_hash,
                "updated_at": func.now(),
            },
        )
        upsert_token = ins(tokens_table)
        self.upsert_token: Insert = upsert_token.on_conflict_do_update(
            index_elements=["chain_id", "address"],
            set_={
                "symbol": upsert_token.excluded.symbol,
                "decimals": upsert_token.excluded.decimals,
            },
        )
        self.set_status: Update = (
            events_table.update()
            .where(
                events_table.c.chain_id == bindparam("b_chain_id"),
                events_table.c.block_hash.in_(bindparam("b_block_hashes", expanding=True)),
                events_table.c.status != bindparam("b_status"),
            )
            .values(status=bindparam("b_status"))
            .returning(*_EVENT_COLUMNS)
        )
        # new -> confirmed at or below a block, returning the ids.
        self.confirm_ids: Update = (
            events_table.update()
            .where(
                events_table.c.chain_id == bindparam("b_chain_id"),
                _STATUS_IS_NEW,
                events_table.c.block_number <= bindparam("b_block_number"),
            )
            .values(status="confirmed")
            .returning(events_table.c.id)
        )
        self.delete_blocks_from: Delete = delete(blocks_table).where(
            blocks_table.c.chain_id == bindparam("chain_id"),
            blocks_table.c.number >= bindparam("number"),
        )
        self.delete_blocks_below: Delete = delete(blocks_table).where(
            blocks_table.c.chain_id == bindparam("chain_id"),
            blocks_table.c.number < bindparam("number"),
        )
        self.statuses_of: Select[Any] = select(events_table.c.id, events_table.c.status).where(
            events_table.c.chain_id == bindparam("b_chain_id"),
            events_table.c.block_hash.in_(bindparam("b_block_hashes", expanding=True)),
            events_table.c.status != bindparam("b_status"),
        )
        log_row = change_log_table.c
        self.allocate: Update = (
            change_log_table.update()
            .where(log_row.id == 1)
            .values(last_cursor=log_row.last_cursor + bindparam("n"))
            .returning(log_row.last_cursor)
        )
        self.insert_change: Insert = changes_table.insert()
        self.notify = text("SELECT pg_notify(current_schema() || '.chainwatch_changes', '')")
        lease = leases_table.c
        self.check_lease: Select[Any] = (
            select(lease.epoch)
            .where(
                lease.chain_id == bindparam("chain_id"),
                lease.holder == bindparam("holder"),
                lease.epoch == bindparam("epoch"),
                lease.expires_at > func.now(),
            )
            .with_for_update()
        )


def _upsert_checkpoint(conn: Connection, stmts: _Statements, checkpoint: Checkpoint) -> None:
    conn.execute(
        stmts.upsert_checkpoint,
        {
            "chain_id": checkpoint.chain_id,
            "block_number": checkpoint.block_number,
            "block_hash": checkpoint.block_hash,
        },
    )


def _set_status(
    conn: Connection,
    stmts: _Statements,
    chain_id: int,
    block_hashes: Collection[str],
    status: Status,
) -> list[Change]:
    """Set the status of the events of those blocks; a change per event that changed, with
    the status it had before (``prior``)."""
    hashes = list(block_hashes)
    prior: dict[int, Status] = {}
    changed: list[Sequence[Any]] = []
    for i in range(0, len(hashes), _IN_CHUNK):
        params = {"b_chain_id": chain_id, "b_block_hashes": hashes[i : i + _IN_CHUNK],
                  "b_status": status}  # fmt: skip
        prior.update((row[0], row[1]) for row in conn.execute(stmts.statuses_of, params))
        changed.extend(conn.execute(stmts.set_status, params).all())
    return _append_status_changes(conn, stmts, _stored_sorted(changed), status, prior)


def _stored(row: Sequence[Any]) -> StoredEvent:
    """The StoredEvent of an events row (columns as in ``_EVENT_COLUMNS``)."""
    (
        row_id,
        chain_id,
        block_number,
        block_hash,
        transaction_hash,
        transaction_index,
        log_index,
        address,
        contract,
        event_name,
        args,
        topics,
        data,
        error,
        status,
        historical,
    ) = row
    return StoredEvent(
        id=row_id,
        chain_id=chain_id,
        log=Log(
            address=address,
            topics=tuple(_loads(topics)),
            data=data,
            block_number=block_number,
            block_hash=block_hash,
            transaction_hash=transaction_hash,
            transaction_index=transaction_index,
            log_index=log_index,
            removed=status == "removed",
        ),
        contract=contract,
        event=event_name,
        args=None if args is None else _loads(args),
        error=error,
        status=cast(Status, status),
        historical=bool(historical),
    )


class EventFilters(TypedDict, total=False):
    """The filters of :meth:`Store.query` and :meth:`Store.stream`, all optional."""

    chain_id: int | None
    contract: str | None
    address: str | None
    event: str | None
    from_block: int | None
    to_block: int | None
    status: Status | None
    limit: int | None


def _query_statement(filters: EventFilters, since_id: int | None, order: str) -> Select[Any]:
    if order not in ("asc", "desc"):
        raise ValueError(f"order must be 'asc' or 'desc', not {order!r}")
    c = events_table.c
    stmt: Select[Any] = select(*_EVENT_COLUMNS)
    chain_id, contract, address = (
        filters.get("chain_id"),
        filters.get("contract"),
        filters.get("address"),
    )
    event, status, limit = filters.get("event"), filters.get("status"), filters.get("limit")
    from_block, to_block = filters.get("from_block"), filters.get("to_block")
    if chain_id is not None:
        stmt = stmt.where(c.chain_id == chain_id)
    if contract is not None:
        stmt = stmt.where(c.contract == contract)
    if address is not None:
        stmt = stmt.where(c.address == address.lower())
    if event is not None:
        stmt = stmt.where(c.event == event)
    if from_block is not None:
        stmt = stmt.where(c.block_number >= from_block)
    if to_block is not None:
        stmt = stmt.where(c.block_number <= to_block)
    if status is not None:
        stmt = stmt.where(c.status == status)
    if since_id is not None:
        stmt = stmt.where(c.id > since_id)
    stmt = stmt.order_by(c.id.asc() if order == "asc" else c.id.desc())
    if limit is not None:
        stmt = stmt.limit(limit)
    return stmt


_by_id: Final = attrgetter("id")


def _stored_sorted(rows: Sequence[Sequence[Any]]) -> list[StoredEvent]:
    # UPDATE ... RETURNING comes back in no particular order.
    return sorted((_stored(r) for r in rows), key=_by_id)


# --- the change log ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Lease:
    """This process's leadership of one chain's ingest: who holds it, under which epoch.

    Each taking-over increments the epoch; a write carrying a lease whose holder or epoch is no
    longer the stored one, or whose time ran out, is refused (fencing)."""

    chain_id: int
    holder: str
    epoch: int


def _check_lease(conn: Connection, stmts: _Statements, lease: Lease) -> None:
    """Lock the lease row (until commit: a taking-over waits for this transaction) and check
    that ``lease`` is still the stored, unexpired one."""
    row = conn.execute(
        stmts.check_lease,
        {"chain_id": lease.chain_id, "holder": lease.holder, "epoch": lease.epoch},
    ).first()
    if row is None:
        raise LeadershipLost(
            f"chain {lease.chain_id}: the lease of epoch {lease.epoch} is no longer ours"
        )


def _allocate(conn: Connection, stmts: _Statements, count: int) -> int:
    """Take ``count`` cursors from the counter; returns the first. On PostgreSQL the counter's
    row stays locked until this transaction ends: the commit-order lock."""
    last = int(conn.execute(stmts.allocate, {"n": count}).scalar_one())
    return last - count + 1


def _insert_changes(conn: Connection, stmts: _Statements, changes: Sequence[Change]) -> None:
    if not changes:
        return
    conn.execute(
        stmts.insert_change,
        [
            {
                "cursor": ch.cursor,
                "chain_id": ch.chain_id,
                "kind": ch.kind,
                "event_id": ch.event.id if ch.event is not None else None,
                "prior": ch.prior,
                "block_number": (
                    ch.event.log.block_number
                    if ch.event is not None
                    else ch.head.number
                    if ch.head is not None
                    else 0
                ),
                "head": _head_json(ch.head) if ch.head is not None else None,
            }
            for ch in changes
        ],
    )
    if conn.dialect.name == "postgresql":
        # Delivered at commit, to every gateway LISTENing (schema-qualified: stores in
        # several schemas of one database do not wake each other's gateways).
        conn.execute(stmts.notify)


def _unix_time(value: datetime | None) -> float:
    if value is None:
        return 0.0
    if value.tzinfo is None:  # SQLite keeps UTC without a zone
        value = value.replace(tzinfo=UTC)
    return value.timestamp()


def _head_json(head: Head) -> str:
    raw = head.raw or {
        "number": hex(head.number),
        "hash": head.hash,
        "parentHash": head.parent_hash,
        "timestamp": hex(head.timestamp),
    }
    return _dumps(raw)


def _head_of(text_value: str) -> Head:
    raw = _loads(text_value)
    return Head(
        number=int(raw["number"], 16),
        hash=raw["hash"],
        parent_hash=raw.get("parentHash", ""),
        timestamp=int(raw.get("timestamp", "0x0"), 16),
        raw=raw if "parentHash" in raw else {},
    )


def _confirmed_events(
    conn: Connection, ids: Sequence[int], known: Mapping[int, StoredEvent]
) -> list[StoredEvent]:
    """The events of ``ids`` as confirmed: from ``known`` where there, else read back."""
    missing = [i for i in ids if i not in known]
    read = {e.id: e for e in _by_ids(conn, missing)} if missing else {}
    out = []
    for event_id in ids:
        event = known.get(event_id) or read.get(event_id)
        if event is not None:
            out.append(event.with_status("confirmed"))
    return out


def _by_ids(conn: Connection, ids: Collection[int]) -> list[StoredEvent]:
    stmt = select(*_EVENT_COLUMNS).where(events_table.c.id.in_(sorted(ids)))
    return _stored_sorted(conn.execute(stmt).all())


def _append_status_changes(
    conn: Connection,
    stmts: _Statements,
    events: Sequence[StoredEvent],
    kind: Status,
    prior: Mapping[int, Status],
) -> list[Change]:
    """Append a change per event (already updated to ``kind``), in id order."""
    if not events:
        return []
    cursor = _allocate(conn, stmts, len(events))
    now = time.time()
    changes = [
        Change(cursor + i, e.chain_id, kind, e, None, prior.get(e.id), now)
        for i, e in enumerate(events)
    ]
    _insert_changes(conn, stmts, changes)
    return changes


# --- engines ----------------------------------------------------------------------------------


def _sqlite_engine(url: URL, *, in_memory: bool) -> Engine:
    if in_memory:
        # Every connection to ":memory:" is a database of its own: share one.
        engine = create_engine(url, poolclass=StaticPool, connect_args={"check_same_thread": False})
    else:
        # Connections move between the daemon's worker threads, one thread at a time.
        engine = create_engine(url, connect_args={"check_same_thread": False})
    sa_event.listen(engine, "connect", _sqlite_on_connect)
    sa_event.listen(engine, "begin", _sqlite_on_begin)
    return engine


def _sqlite_on_connect(dbapi_connection: Any, _record: Any) -> None:
    # Let SQLAlchemy's "begin" hook issue BEGIN itself: the sqlite3 module would otherwise
    # begin lazily before the first INSERT/UPDATE only, so reads were outside the transaction.
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
    cursor.execute("PRAGMA wal_autocheckpoint=0")  # the store's checkpointer does it
    cursor.close()


class _Checkpointer:
    """A thread that copies a SQLite file's WAL back into the database every ``every`` seconds
    (PASSIVE: it waits for no reader and no writer, and commits go on meanwhile)."""

    def __init__(self, engine: Engine, every: float, shown_url: str) -> None:
        self._engine = engine
        self._every = every
        self._shown_url = shown_url
        self._stop = threading.Event()
        self._failures = 0
        self._thread = threading.Thread(target=self._run, name="sqlite-checkpoint", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self._every):
            self.checkpoint()

    def checkpoint(self) -> None:
        try:
            raw = self._engine.raw_connection()
            try:
                cursor = raw.cursor()
                cursor.execute("PRAGMA wal_checkpoint(PASSIVE)")
                cursor.fetchall()
                cursor.close()
            finally:
                raw.close()
        except Exception as exc:  # a busy or vanished file: try again next time
            self._failures += 1
            if self._failures in (1, 10, 100) or self._failures % 1000 == 0:
                log.warning(
                    "%s: WAL checkpoint failed (%d so far): %s",
                    self._shown_url,
                    self._failures,
                    _first_line(exc),
                )

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(30)


def _sqlite_on_begin(conn: Connection) -> None:
    # A write takes the database's write lock at BEGIN: a deferred transaction that read first
    # could not wait for the lock when it later writes (SQLITE_BUSY at once, whatever the timeout).
    if conn.get_execution_options().get(_WRITE_OPTION):
        conn.exec_driver_sql("BEGIN IMMEDIATE")
    else:
        conn.exec_driver_sql("BEGIN")


def _postgresql_engine(url: URL, schema: str | None) -> Engine:
    # pre_ping: a pooled connection that a server restart closed is replaced, not used.
    engine = create_engine(url, pool_pre_ping=True)
    if not hasattr(engine.dialect.loaded_dbapi, "RawCursor"):
        raise StoreError(
            "PostgreSQL storage needs psycopg 3.2 or newer (pip install 'psycopg>=3.2')"
        )
    if schema is not None:

        def set_search_path(dbapi_connection: Any, _record: Any) -> None:
            autocommit = dbapi_connection.autocommit
            dbapi_connection.autocommit = True
            with dbapi_connection.cursor() as cursor:
                cursor.execute(f'SET SESSION search_path TO "{schema}"')
            dbapi_connection.autocommit = autocommit

        # insert=True: before SQLAlchemy's own first-connect hook reads current_schema().
        sa_event.listen(engine, "connect", set_search_path, insert=True)
    sa_event.listen(engine, "connect", _postgresql_on_connect)
    return engine


def _postgresql_on_connect(dbapi_connection: Any, _record: Any) -> None:
    # A process paused inside a transaction (SIGSTOP, a frozen VM) must not hold its locks -
    # the lease row above all, which a standby needs to take over: the server ends such a
    # transaction, and the paused process's write then fails (see chainwatch.ingest.leader).
    autocommit = dbapi_connection.autocommit
    dbapi_connection.autocommit = True
    with dbapi_connection.cursor() as cursor:
        cursor.execute(
            f"SET SESSION idle_in_transaction_session_timeout = {PG_IDLE_IN_TRANSACTION_MS}"
        )
    dbapi_connection.autocommit = autocommit


def _create_schema(url: URL, schema: str) -> None:
    """Create a PostgreSQL schema if it is missing (on a connection of its own, not pooled)."""
    engine = create_engine(url, poolclass=NullPool)
    try:
        with engine.begin() as conn:
            exists = conn.execute(
                text("SELECT 1 FROM pg_namespace WHERE nspname = :name"), {"name": schema}
            ).first()
            if exists is None:
                conn.exec_driver_sql(f'CREATE SCHEMA IF NOT EXISTS "{schema}"')
    finally:
        engine.dispose()


# --- messages ---------------------------------------------------------------------------------


def _redact(url: URL) -> str:
    """The URL without password or query (where secrets may be), safe to log."""
    return url.set(query={}).render_as_string(hide_password=True)


def _first_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return lines[0].strip() if lines else type(exc).__name__


def _reason(exc: BaseException) -> str:
    """The database's own one-line reason, without SQLAlchemy's SQL and parameter dump."""
    if isinstance(exc, DBAPIError) and exc.orig is not None:
        return _first_line(exc.orig)
    return _first_line(exc)
