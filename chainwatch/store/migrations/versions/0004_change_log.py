"""The change log: ordered changes with cursors, the cursor counter, and ingest leases.

Existing events get their changes: a ``new`` change whose cursor is the event's id, then a
``confirmed`` or ``removed`` change (in id order, after the greatest id) for those that moved
on, and each chain's checkpoint becomes a ``head`` change. The counter starts after them.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-29
"""

from __future__ import annotations

import json
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | Sequence[str] | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_CURSOR = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "changes",
        sa.Column("cursor", _CURSOR, autoincrement=False, nullable=False),
        sa.Column("chain_id", sa.BigInteger(), nullable=False),
        sa.Column("kind", sa.String(9), nullable=False),
        sa.Column("event_id", sa.BigInteger(), nullable=True),
        sa.Column("prior", sa.String(9), nullable=True),
        sa.Column("block_number", sa.BigInteger(), nullable=False),
        sa.Column("head", sa.Text(), nullable=True),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
        ),
        sa.CheckConstraint(
            "kind IN ('new', 'confirmed', 'removed', 'head')", name="ck_changes_kind"
        ),
        sa.PrimaryKeyConstraint("cursor", name="pk_changes"),
    )
    op.create_index("ix_changes_created_at", "changes", ["created_at"])
    op.create_table(
        "change_log",
        sa.Column("id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("last_cursor", sa.BigInteger(), nullable=False),
        sa.Column("pruned_through", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_change_log"),
    )
    op.create_table(
        "leases",
        sa.Column("chain_id", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("holder", sa.Text(), nullable=False),
        sa.Column("epoch", sa.BigInteger(), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("chain_id", name="pk_leases"),
    )
    conn = op.get_bind()
    conn.execute(
        sa.text(
            "INSERT INTO changes (cursor, chain_id, kind, event_id, block_number) "
            "SELECT id, chain_id, 'new', id, block_number FROM events"
        )
    )
    top = conn.execute(sa.text("SELECT coalesce(max(id), 0) FROM events")).scalar_one()
    moved = conn.execute(
        sa.text(
            "SELECT id, chain_id, status, block_number FROM events WHERE status != 'new' "
            "ORDER BY id"
        )
    ).all()
    rows = [
        {"cursor": top + i, "chain_id": c, "kind": status, "event_id": event_id,
         "prior": None, "block_number": number}
        for i, (event_id, c, status, number) in enumerate(moved, start=1)
    ]  # fmt: skip
    top += len(moved)
    if rows:
        conn.execute(
            sa.text(
                "INSERT INTO changes (cursor, chain_id, kind, event_id, prior, block_number) "
                "VALUES (:cursor, :chain_id, :kind, :event_id, :prior, :block_number)"
            ),
            rows,
        )
    heads = conn.execute(
        sa.text("SELECT chain_id, block_number, block_hash FROM checkpoints ORDER BY chain_id")
    ).all()
    for chain_id, number, block_hash in heads:
        top += 1
        conn.execute(
            sa.text(
                "INSERT INTO changes (cursor, chain_id, kind, block_number, head) "
                "VALUES (:cursor, :chain_id, 'head', :number, :head)"
            ),
            {
                "cursor": top,
                "chain_id": chain_id,
                "number": number,
                "head": json.dumps({"number": hex(number), "hash": block_hash}),
            },
        )
    conn.execute(
        sa.text("INSERT INTO change_log (id, last_cursor, pruned_through) VALUES (1, :top, 0)"),
        {"top": top},
    )


def downgrade() -> None:
    op.drop_table("leases")
    op.drop_table("change_log")
    op.drop_index("ix_changes_created_at", table_name="changes")
    op.drop_table("changes")
