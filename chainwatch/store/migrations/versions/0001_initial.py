"""The initial schema: events, checkpoints, the recent-blocks window and token metadata.

Revision ID: 0001
Revises:
Create Date: 2026-11-26
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Written out rather than imported from chainwatch.store.schema: a revision is a snapshot and
# must keep creating the schema of its time when schema.py has moved on.
_EVENT_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "events",
        sa.Column("id", _EVENT_ID, primary_key=True, autoincrement=True),
        sa.Column("chain_id", sa.BigInteger(), nullable=False),
        sa.Column("block_number", sa.BigInteger(), nullable=False),
        sa.Column("block_hash", sa.String(66), nullable=False),
        sa.Column("transaction_hash", sa.String(66), nullable=False),
        sa.Column("transaction_index", sa.Integer(), nullable=False),
        sa.Column("log_index", sa.Integer(), nullable=False),
        sa.Column("address", sa.String(42), nullable=False),
        sa.Column("contract", sa.Text(), nullable=True),
        sa.Column("event", sa.Text(), nullable=True),
        sa.Column("args", sa.Text(), nullable=True),
        sa.Column("topics", sa.Text(), nullable=False),
        sa.Column("data", sa.Text(), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("status", sa.String(9), nullable=False, server_default="new"),
        sa.Column("historical", sa.Boolean(), nullable=False, server_default=sa.false()),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
        ),
        sa.PrimaryKeyConstraint("id", name="pk_events"),
        sa.UniqueConstraint(
            "chain_id", "block_hash", "log_index", name="uq_events_chain_id_block_hash_log_index"
        ),
        sa.CheckConstraint("status IN ('new', 'confirmed', 'removed')", name="ck_events_status"),
    )
    op.create_index("ix_events_chain_id_block_number", "events", ["chain_id", "block_number"])
    op.create_index("ix_events_contract_event", "events", ["contract", "event"])
    op.create_index("ix_events_status", "events", ["status"])

    op.create_table(
        "checkpoints",
        sa.Column("chain_id", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("block_number", sa.BigInteger(), nullable=False),
        sa.Column("block_hash", sa.String(66), nullable=False),
        sa.Column(
            "updated_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
        ),
        sa.PrimaryKeyConstraint("chain_id", name="pk_checkpoints"),
    )

    op.create_table(
        "blocks",
        sa.Column("chain_id", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("number", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("hash", sa.String(66), nullable=False),
        sa.Column("parent_hash", sa.String(66), nullable=False),
        sa.PrimaryKeyConstraint("chain_id", "number", name="pk_blocks"),
    )

    op.create_table(
        "tokens",
        sa.Column("chain_id", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("address", sa.String(42), nullable=False),
        sa.Column("symbol", sa.Text(), nullable=True),
        sa.Column("decimals", sa.Integer(), nullable=True),
        sa.PrimaryKeyConstraint("chain_id", "address", name="pk_tokens"),
    )


def downgrade() -> None:
    op.drop_table("tokens")
    op.drop_table("blocks")
    op.drop_table("checkpoints")
    op.drop_index("ix_events_status", table_name="events")
    op.drop_index("ix_events_contract_event", table_name="events")
    op.drop_index("ix_events_chain_id_block_number", table_name="events")
    op.drop_table("events")
