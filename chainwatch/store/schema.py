"""The tables of the store, as SQLAlchemy Core ``Table`` objects.

This module describes the schema the code reads and writes; the migrations in
``migrations/versions`` create it. The two are kept equal by a test that compares a migrated
database with :data:`metadata` (``alembic.autogenerate.compare_metadata``): change both
together, and add a new revision rather than editing an applied one.

The change log (``changes``) is the seam between ingest and every consumer: each change a
consumer can see (an event first stored, confirmed or removed, and each new canonical head) is a
row with a ``cursor``, written in the same transaction as the change itself. Cursors are handed
out from the one row of ``change_log`` (``last_cursor``), which every writing transaction
updates before it writes: on PostgreSQL that row's lock is held until commit, so transactions
that write changes commit one after the other and cursors grow in commit order; a reader
tailing ``cursor > C`` never skips a committed change (a ``BIGSERIAL`` would: values are handed
out at insert, not at commit). On SQLite, ``BEGIN IMMEDIATE`` serialises writers anyway.

``events.id`` is the cursor of the event's ``new`` change, given explicitly from the same
counter (the column's own autoincrement is no longer used): ids grow in commit order, and an
event id that an older client passes as ``since`` is exactly the cursor after its first
sighting. Events are never deleted (a reorg marks them ``removed``); changes are pruned by age
(``[storage] changes_retention``), and ``change_log.pruned_through`` says up to which cursor.

``leases`` holds the leadership of each chain's ingest (``Store.acquire_lease`` and its
neighbours; the policy is :mod:`chainwatch.ingest.leader`).
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Column,
    DateTime,
    Index,
    Integer,
    MetaData,
    PrimaryKeyConstraint,
    String,
    Table,
    Text,
    UniqueConstraint,
    false,
    func,
    text,
)

from chainwatch.core.model import STATUSES

#: Constraint and index names are derived, so that every backend (and every migration) names
#: them the same way and a later migration can refer to them.
NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

metadata = MetaData(naming_convention=NAMING_CONVENTION)

#: 64-bit on PostgreSQL; plain INTEGER on SQLite, whose integers are 64-bit anyway and where only
#: ``INTEGER PRIMARY KEY`` makes the column an alias of the rowid.
EventId = BigInteger().with_variant(Integer(), "sqlite")

_STATUS_CHECK = "status IN ({})".format(", ".join(f"'{s}'" for s in STATUSES))

events = Table(
    "events",
    metadata,
    Column("id", EventId, primary_key=True, autoincrement=True),
    Column("chain_id", BigInteger, nullable=False),
    Column("block_number", BigInteger, nullable=False),
    Column("block_hash", String(66), nullable=False),
    Column("transaction_hash", String(66), nullable=False),
    Column("transaction_index", Integer, nullable=False),
    Column("log_index", Integer, nullable=False),
    Column("address", String(42), nullable=False),  # lowercase 0x-hex
    Column("contract", Text, nullable=True),  # the configured contract name
    Column("event", Text, nullable=True),  # the ABI event name; None if undecoded
    Column("args", Text, nullable=True),  # JSON object (chainwatch.core.jsonform)
    Column("topics", Text, nullable=False),  # JSON list of lowercase 0x-hex strings
    Column("data", Text, nullable=False),  # lowercase 0x-hex
    Column("error", Text, nullable=True),  # why the log did not decode
    Column("status", String(9), nullable=False, server_default="new"),
    Column("historical", Boolean, nullable=False, server_default=false()),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    UniqueConstraint("chain_id", "block_hash", "log_index"),
    CheckConstraint(_STATUS_CHECK, name="status"),
    Index(None, "chain_id", "block_number"),
    Index(None, "contract", "event"),
    # The events still `new`: what each block's confirmation looks for (migration 0002).
    Index(
        "ix_events_unconfirmed",
        "chain_id",
        "block_number",
        sqlite_where=text("status = 'new'"),
        postgresql_where=text("status = 'new'"),
    ),
    # The orphaned events, few: what a status filter looks for (migration 0003).
    Index(
        "ix_events_removed",
        "chain_id",
        "block_number",
        sqlite_where=text("status = 'removed'"),
        postgresql_where=text("status = 'removed'"),
    ),
)

checkpoints = Table(
    "checkpoints",
    metadata,
    Column("chain_id", BigInteger, primary_key=True, autoincrement=False),
    Column("block_number", BigInteger, nullable=False),
    Column("block_hash", String(66), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
)

#: The window of recent canonical block hashes that reorg detection compares new heads with.
blocks = Table(
    "blocks",
    metadata,
    Column("chain_id", BigInteger, nullable=False, autoincrement=False),
    Column("number", BigInteger, nullable=False, autoincrement=False),
    Column("hash", String(66), nullable=False),
    Column("parent_hash", String(66), nullable=False),
    PrimaryKeyConstraint("chain_id", "number"),
)

#: ERC-20 metadata, read from the token contract once.
tokens = Table(
    "tokens",
    metadata,
    Column("chain_id", BigInteger, nullable=False, autoincrement=False),
    Column("address", String(42), nullable=False),  # lowercase 0x-hex
    Column("symbol", Text, nullable=True),
    Column("decimals", Integer, nullable=True),
    PrimaryKeyConstraint("chain_id", "address"),
)

#: The kinds of change (``chainwatch.core.model.CHANGE_KINDS``).
_KIND_CHECK = "kind IN ('new', 'confirmed', 'removed', 'head')"

changes = Table(
    "changes",
    metadata,
    Column("cursor", EventId, primary_key=True, autoincrement=False),
    Column("chain_id", BigInteger, nullable=False),
    Column("kind", String(9), nullable=False),
    Column("event_id", BigInteger, nullable=True),  # events.id; None for a head
    Column("prior", String(9), nullable=True),  # a removal: the status before it
    Column("block_number", BigInteger, nullable=False),
    Column("head", Text, nullable=True),  # a head: the node's header object, JSON
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    CheckConstraint(_KIND_CHECK, name="kind"),
    Index(None, "created_at"),
)

#: One row (id 1): the last cursor handed out, and the greatest cursor pruned.
change_log = Table(
    "change_log",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("last_cursor", BigInteger, nullable=False),
    Column("pruned_through", BigInteger, nullable=False),
)

#: Who leads each chain's ingest, under which epoch, until when (the database's clock).
leases = Table(
    "leases",
    metadata,
    Column("chain_id", BigInteger, primary_key=True, autoincrement=False),
    Column("holder", Text, nullable=False),
    Column("epoch", BigInteger, nullable=False),
    Column("expires_at", DateTime(timezone=True), nullable=False),
)
