"""A partial index of the events still ``new``: confirming a block's events must not scan every
stored event of the chain.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-26
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | Sequence[str] | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_NEW = sa.text("status = 'new'")


def upgrade() -> None:
    op.create_index(
        "ix_events_unconfirmed",
        "events",
        ["chain_id", "block_number"],
        sqlite_where=_NEW,
        postgresql_where=_NEW,
    )


def downgrade() -> None:
    op.drop_index("ix_events_unconfirmed", table_name="events")
