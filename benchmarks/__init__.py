"""Benchmarks of chainwatch against its baselines; see ``python -m benchmarks``."""
