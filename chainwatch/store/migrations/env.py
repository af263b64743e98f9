"""Alembic environment of the store.

The store runs migrations itself (:meth:`chainwatch.store.Store.open`): it builds the alembic
``Config`` in code and hands over an open connection in ``config.attributes["connection"]``, inside
a transaction it commits. So there is no ``alembic.ini``, no URL here, and no offline (SQL script)
mode.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy.engine import Connection

from chainwatch.store.schema import metadata

connection = context.config.attributes.get("connection")
if not isinstance(connection, Connection):
    raise RuntimeError(
        "chainwatch migrations run through chainwatch.store (Store.open or "
        "chainwatch.store.migrate.alembic_config), which passes the connection in"
    )

context.configure(
    connection=connection,
    target_metadata=metadata,
    # SQLite cannot ALTER most things in place: later revisions use op.batch_alter_table,
    # which copies the table on SQLite and alters it directly elsewhere.
    render_as_batch=connection.dialect.name == "sqlite",
    compare_type=True,
)

with context.begin_transaction():
    context.run_migrations()
