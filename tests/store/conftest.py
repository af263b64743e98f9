"""Fixtures of the store tests: every test runs on SQLite (a file in tmp_path) and on PostgreSQL
(a schema of its own in the ``test`` database, dropped afterwards).

The PostgreSQL cases are skipped, with the reason, only when the server cannot be reached;
``CHAINWATCH_TEST_PG`` overrides its URL.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.pool import NullPool
from store_backends import PG_URL, Backend

from chainwatch.store import Store


@pytest.fixture(scope="session")
def postgres_unreachable() -> str | None:
    """Why the PostgreSQL server cannot be used, or None when it can."""
    engine = sa.create_engine(PG_URL, poolclass=NullPool, connect_args={"connect_timeout": 5})
    try:
        with engine.connect() as conn:
            conn.exec_driver_sql("SELECT 1")
    except Exception as exc:  # any failure to connect means the same thing here
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        return f"PostgreSQL at {engine.url.render_as_string()} is unreachable: {first}"
    finally:
        engine.dispose()
    return None


@contextmanager
def _postgres_schema(unreachable: str | None) -> Iterator[Backend]:
    if unreachable:
        pytest.skip(unreachable)
    schema = f"cw_test_{uuid.uuid4().hex[:16]}"
    try:
        yield Backend("postgresql", PG_URL, schema)
    finally:
        engine = sa.create_engine(PG_URL, poolclass=NullPool)
        with engine.begin() as conn:
            conn.exec_driver_sql(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        engine.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def backend(
    request: pytest.FixtureRequest, tmp_path: Path, postgres_unreachable: str | None
) -> Iterator[Backend]:
    """Each test that uses it runs twice: on a SQLite file and on a PostgreSQL schema."""
    if request.param == "sqlite":
        yield Backend("sqlite", f"sqlite:///{tmp_path / 'chainwatch.db'}")
    else:
        with _postgres_schema(postgres_unreachable) as pg:
            yield pg


@pytest.fixture
def postgres_backend(postgres_unreachable: str | None) -> Iterator[Backend]:
    """A PostgreSQL schema of the test's own (for tests about PostgreSQL only)."""
    with _postgres_schema(postgres_unreachable) as pg:
        yield pg


@pytest.fixture
def store(backend: Backend) -> Iterator[Store]:
    opened = backend.open()
    try:
        yield opened
    finally:
        opened.close()


@pytest.fixture
def reopen(backend: Backend) -> Iterator[Callable[[], Store]]:
    """Open the test's database again, as another process would (closed at the end)."""
    opened: list[Store] = []

    def open_again() -> Store:
        opened.append(backend.open())
        return opened[-1]

    yield open_again
    for s in opened:
        s.close()
