"""Sinks: idempotent, batched writers to PostgreSQL, Redis and the graph."""
