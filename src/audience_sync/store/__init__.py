"""Storage: SQLAlchemy 2 tables, tenant-scoped repositories, and Alembic migrations."""
