"""Opening a store: migrations, SQLite settings, schemas, and the errors a user may see."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from store_backends import PG_URL, Backend
from store_changes import new_events
from store_testdata import block_events, checkpoint

from chainwatch.errors import StoreError
from chainwatch.store import Store
from chainwatch.store.migrate import alembic_config, current_revision, head_revision
from chainwatch.store.schema import metadata
from tests.helpers import wait_until

ALL_TABLES = {
    "events",
    "checkpoints",
    "blocks",
    "tokens",
    "changes",
    "change_log",
    "leases",
    "alembic_version",
}


def table_names(backend: Backend) -> set[str]:
    engine = backend.engine()
    try:
        with engine.connect() as conn:
            if backend.schema is None:
                return set(sa.inspect(conn).get_table_names())
            return set(sa.inspect(conn).get_table_names(schema=backend.schema))
    finally:
        engine.dispose()


def test_open_creates_the_schema_at_head(store: Store, backend: Backend) -> None:
    assert table_names(backend) >= ALL_TABLES
    engine = backend.engine()
    with engine.connect() as conn:
        assert current_revision(conn) == head_revision() == "0004"
    engine.dispose()


def test_migrations_build_exactly_the_tables_of_schema_py(store: Store, backend: Backend) -> None:
    """The migrations and schema.py describe the same database (columns, types, indexes)."""
    engine = backend.engine()
    with engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"compare_type": True})
        assert compare_metadata(context, metadata) == []
    engine.dispose()


def test_the_migrations_downgrade_to_nothing_and_upgrade_again(
    store: Store, reopen: Callable[[], Store], backend: Backend
) -> None:
    store.close()
    engine = backend.engine()
    with engine.begin() as conn:
        command.downgrade(alembic_config(conn), "base")
    engine.dispose()
    assert table_names(backend) == {"alembic_version"}
    again = reopen()
    assert new_events(again.write_batch(block_events(1, 1), checkpoint(1)))
    assert table_names(backend) >= ALL_TABLES


def test_reopening_is_a_no_op_and_keeps_the_data(
    store: Store, reopen: Callable[[], Store], backend: Backend
) -> None:
    stored = new_events(store.write_batch(block_events(7, 3), checkpoint(7)))
    store.close()
    again = reopen()
    assert again.query() == stored
    assert again.checkpoint(1) == checkpoint(7)
    engine = backend.engine()
    with engine.connect() as conn:
        assert current_revision(conn) == head_revision()
    engine.dispose()


def test_two_stores_on_one_database_see_each_others_writes(
    store: Store, reopen: Callable[[], Store]
) -> None:
    other = reopen()
    written = new_events(store.write_batch(block_events(1, 2), checkpoint(1)))
    assert other.query() == written
    assert other.checkpoint(1) == checkpoint(1)


def test_sqlite_is_in_wal_mode(tmp_path: Path) -> None:
    path = tmp_path / "wal.db"
    with Store.open(f"sqlite:///{path}") as store:
        store.write_batch(block_events(1, 1), checkpoint(1))
        assert Path(f"{path}-wal").exists()
    # journal_mode=WAL is a property of the file: any other connection sees it.
    outside = sqlite3.connect(path)
    try:
        assert outside.execute("PRAGMA journal_mode").fetchone() == ("wal",)
    finally:
        outside.close()


def test_sqlite_finds_a_chains_removed_events_through_their_own_index(tmp_path: Path) -> None:
    """The partial index of removed events (migration 0003) is what a chain's status filter
    uses: confirmed and new rows, the bulk, are not indexed by status."""
    path = tmp_path / "plan.db"
    Store.open(f"sqlite:///{path}").close()
    outside = sqlite3.connect(path)
    try:
        indexes = {row[1] for row in outside.execute("PRAGMA index_list(events)")}
        assert "ix_events_removed" in indexes
        assert "ix_events_status" not in indexes
        plan = outside.execute(
            "EXPLAIN QUERY PLAN SELECT id FROM events WHERE chain_id = ? AND status = ? "
            "ORDER BY id",
            (1, "removed"),
        ).fetchall()
        assert "ix_events_removed" in " ".join(str(step[3]) for step in plan)
    finally:
        outside.close()


def _write_blocks(store: Store, first: int, count: int, per_block: int = 300) -> None:
    for number in range(first, first + count):
        store.write_batch(block_events(number, per_block), checkpoint(number))


def test_sqlite_commits_leave_the_wal_to_the_checkpointer(tmp_path: Path) -> None:
    """No commit copies the WAL into the database (its fsync would hold that commit up), even
    past SQLite's own 1,000-page mark; closing the store does it, and loses nothing."""
    path = tmp_path / "wal.db"
    with Store.open(f"sqlite:///{path}", checkpoint_every=3600) as store:
        size_after_open = path.stat().st_size
        _write_blocks(store, 1, 20)  # 6,000 events: several MB of WAL
        assert Path(f"{path}-wal").stat().st_size > 1000 * 4096
        assert path.stat().st_size == size_after_open
    assert path.stat().st_size > size_after_open
    with Store.open(f"sqlite:///{path}") as again:
        assert len(again.query(limit=10_000)) == 6000


def test_sqlite_checkpointer_copies_the_wal_into_the_database(tmp_path: Path) -> None:
    path = tmp_path / "wal.db"
    threads_before = sum(t.name == "sqlite-checkpoint" for t in threading.enumerate())
    with Store.open(f"sqlite:///{path}", checkpoint_every=0.05) as store:
        size_after_open = path.stat().st_size
        _write_blocks(store, 1, 2)
        wait_until(
            lambda: path.stat().st_size > size_after_open, 10, "the WAL copied into the file"
        )
    # Closing the store stops its thread.
    assert sum(t.name == "sqlite-checkpoint" for t in threading.enumerate()) == threads_before


def test_sqlite_in_memory_works(tmp_path: Path) -> None:
    with Store.open("sqlite://") as store:
        written = new_events(store.write_batch(block_events(1, 2), checkpoint(1)))
        assert store.query() == written


@pytest.mark.postgres
def test_the_schema_argument_puts_the_tables_in_that_schema(postgres_backend: Backend) -> None:
    backend = postgres_backend
    with backend.open() as store:
        store.write_batch(block_events(1, 1), checkpoint(1))
    engine = sa.create_engine(PG_URL)
    with engine.connect() as conn:
        names = (
            conn.execute(
                sa.text(
                    "SELECT table_name FROM information_schema.tables WHERE table_schema = :schema"
                ),
                {"schema": backend.schema},
            )
            .scalars()
            .all()
        )
        count = conn.exec_driver_sql(f'SELECT count(*) FROM "{backend.schema}".events').scalar()
    engine.dispose()
    assert set(names) == ALL_TABLES
    assert count == 1


def test_an_unreachable_server_is_a_one_line_store_error_without_the_password() -> None:
    with pytest.raises(StoreError) as info:
        Store.open("postgresql+psycopg://chainwatch:s3cret-pw@127.0.0.1:1/chainwatch")
    message = str(info.value)
    assert "s3cret-pw" not in message
    assert "\n" not in message
    assert message.startswith("cannot open postgresql+psycopg://chainwatch:***@127.0.0.1:1/")


def test_a_missing_sqlite_directory_is_a_store_error(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="unable to open database file"):
        Store.open(f"sqlite:///{tmp_path / 'no' / 'such' / 'dir.db'}")


@pytest.mark.parametrize(
    ("url", "schema", "problem"),
    [
        ("not a url", None, "not a database URL"),
        ("mysql://root@127.0.0.1/chainwatch", None, "unsupported database 'mysql'"),
        ("postgresql+psycopg2://u@127.0.0.1/db", None, "unsupported driver"),
        ("sqlite:///x.db", "myschema", "only be given for PostgreSQL"),
        (PG_URL, 'bad"; DROP', "invalid schema name"),
    ],
)
def test_bad_urls_and_schemas_are_refused_before_connecting(
    url: str, schema: str | None, problem: str
) -> None:
    with pytest.raises(StoreError, match=problem):
        Store.open(url, schema=schema)


def test_a_closed_store_refuses_calls(tmp_path: Path) -> None:
    store = Store.open(f"sqlite:///{tmp_path / 'closed.db'}")
    store.close()
    with pytest.raises(StoreError, match="closed"):
        store.query()
    with pytest.raises(StoreError, match="closed"):
        store.write_batch([], checkpoint(1))
