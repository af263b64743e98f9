"""Storage of decoded events: SQLite (default) or PostgreSQL, through SQLAlchemy Core.

:class:`Store` is the whole interface; the schema is in :mod:`chainwatch.store.schema` and is
created and upgraded by the alembic migrations in ``migrations/`` when a store is opened.
"""

from chainwatch.store.store import Lease, Store

__all__ = ["Lease", "Store"]
