"""Where the store tests put their databases."""

from __future__ import annotations

import os
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.pool import NullPool

from chainwatch.store import Store

PG_URL = os.environ.get("CHAINWATCH_TEST_PG", "postgresql+psycopg://postgres@127.0.0.1:5432/test")


@dataclass(frozen=True)
class Backend:
    """Where a test's database is: ``Store.open(url, schema=schema)`` opens it."""

    name: str  # "sqlite" | "postgresql"
    url: str
    schema: str | None = None

    def open(self) -> Store:
        return Store.open(self.url, schema=self.schema)

    def engine(self) -> sa.Engine:
        """A plain engine on the same tables, for looking at them from outside the store."""
        if self.schema is None:
            return sa.create_engine(self.url, poolclass=NullPool)
        return sa.create_engine(
            self.url,
            poolclass=NullPool,
            connect_args={"options": f"-csearch_path={self.schema}"},
        )
