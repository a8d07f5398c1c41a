"""The PostgreSQL databases the benchmarks create and drop on the test server.

`AUDIENCE_SYNC_BENCH_DATABASE_URL` names the server (default: the one the tests use). The
databases are never analyzed: the server runs with autovacuum off, so the plans measured are
those of tables without statistics."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

BENCH_URL = os.environ.get(
    "AUDIENCE_SYNC_BENCH_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)
ADMIN_URL = make_url(BENCH_URL).set(drivername="postgresql+psycopg")


def unique_name(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:8]}"


def url_of(name: str) -> str:
    """The URL of database `name` on the bench's server."""
    return ADMIN_URL.set(database=name).render_as_string(hide_password=False)


def admin_sql(statement: str) -> None:
    """`statement` outside a transaction (CREATE and DROP DATABASE need that)."""
    engine = create_engine(ADMIN_URL, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as connection:
            connection.execute(text(statement))
    finally:
        engine.dispose()


def file_copy() -> str:
    """` STRATEGY FILE_COPY` where the server knows it (15 and later), else nothing."""
    engine = create_engine(ADMIN_URL)
    try:
        with engine.connect() as connection:
            version = int(connection.execute(text("SHOW server_version_num")).scalar_one())
    finally:
        engine.dispose()
    return " STRATEGY FILE_COPY" if version >= 150000 else ""


@contextmanager
def postgres_database(name: str, template: str | None = None) -> Iterator[str]:
    """A new database `name` (a copy of `template`, if given): its URL; dropped afterwards.

    A copy is made by copying the files (`STRATEGY FILE_COPY`, PostgreSQL 15 and later), which
    checkpoints before and after. The default since 15 (`WAL_LOG`) writes the whole template to
    the WAL: a 483 MB copy of a million members brought the next checkpoint into the timed step
    that followed (a Snapchat create's server CPU 3.4-4.5 s against 2.9-3.0 s).
    """
    copied = f' TEMPLATE "{template}"{file_copy()}' if template else ""
    admin_sql(f'CREATE DATABASE "{name}"{copied}')
    try:
        yield url_of(name)
    finally:
        admin_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
