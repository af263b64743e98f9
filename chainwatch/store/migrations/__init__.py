"""Alembic migrations of the store; :meth:`chainwatch.store.Store.open` runs them to head."""
