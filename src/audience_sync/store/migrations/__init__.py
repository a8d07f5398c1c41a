"""Alembic migrations (run with `audience-sync db upgrade`)."""
