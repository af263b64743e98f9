"""Running the alembic migrations of the store from code.

The migrations live in the package (``chainwatch/store/migrations``), so an installed chainwatch
upgrades its database with no ``alembic.ini`` and no alembic command. The ``Config`` is built
here and the caller's connection is handed to ``migrations/env.py`` through
``config.attributes["connection"]``; the caller owns the transaction, so on PostgreSQL and
SQLite (both have transactional DDL) a failed upgrade leaves the schema as it was.

To add a revision::

    from alembic import command
    from chainwatch.store.migrate import alembic_config
    command.revision(alembic_config(), "what it changes", rev_id="0002")

writes ``versions/0002_what_it_changes.py``; fill in ``upgrade()`` and ``downgrade()`` by hand
(``op.batch_alter_table`` for anything SQLite cannot ALTER) and change ``schema.py`` to match:
``tests/store`` checks that a migrated database equals ``schema.metadata``.
"""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.engine import Connection

MIGRATIONS = Path(__file__).resolve().with_name("migrations")


def alembic_config(connection: Connection | None = None) -> Config:
    """An alembic ``Config`` for the store's migrations, bound to ``connection`` if given."""
    config = Config()
    # ConfigParser interpolates "%"; a path has no business carrying one, but escape it anyway.
    config.set_main_option("script_location", str(MIGRATIONS).replace("%", "%%"))
    config.set_main_option("path_separator", "os")
    if connection is not None:
        config.attributes["connection"] = connection
    return config


def head_revision() -> str:
    """The revision the code expects the database to be at."""
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert head is not None, "the migrations folder has no revision"
    return head


def current_revision(connection: Connection) -> str | None:
    """The revision the database is at; None for a database the store has never opened."""
    return MigrationContext.configure(connection).get_current_revision()


def upgrade(connection: Connection) -> None:
    """Bring the schema up to the head revision; a no-op when it is there already.

    Runs inside the caller's transaction; the caller commits.
    """
    command.upgrade(alembic_config(connection), "head")
