"""Ingest: provider connections in, decoded events to the store, then to the sink."""
