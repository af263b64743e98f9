"""The index of every event's status gives way to a partial index of the ``removed`` ones.

Nearly every row is ``confirmed`` or ``new``: an index of the status sorts them into two huge
runs that no query can use (``new`` ones have their own partial index, migration 0002), and
every insert and every confirmation paid to keep it (about 10 % of a block's commit on SQLite).
Orphaned events are few, and finding those of a chain (the reorg window's, which a resuming
subscriber is sent again) is what a status filter is for.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-27
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | Sequence[str] | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_REMOVED = sa.text("status = 'removed'")


def upgrade() -> None:
    op.drop_index("ix_events_status", table_name="events")
    op.create_index(
        "ix_events_removed",
        "events",
        ["chain_id", "block_number"],
        sqlite_where=_REMOVED,
        postgresql_where=_REMOVED,
    )


def downgrade() -> None:
    op.drop_index("ix_events_removed", table_name="events")
    op.create_index("ix_events_status", "events", ["status"])
