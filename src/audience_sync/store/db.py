"""Engines, sessions and migrations for SQLite and PostgreSQL."""

from __future__ import annotations

import sqlite3
import time
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import ColumnElement, Connection, Engine, Select, create_engine, event, inspect
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, InvalidatePoolError, OperationalError
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.pool import ConnectionPoolEntry

from audience_sync.exceptions import ConfigurationError
from audience_sync.files import private_dir, private_file

MIGRATIONS = "audience_sync.store:migrations"
# A pooled PostgreSQL connection unused for this long is pinged before it is handed out.
PING_AFTER_IDLE_SECONDS = 5.0


def make_engine(url: str, pool: tuple[int, int] | None = None, **kwargs: Any) -> Engine:
    """An engine for `url`; SQLite gets its folder created, foreign keys on, and WAL.
    `pool`: PostgreSQL's connections kept open and opened beyond them at most (SQLAlchemy's
    `pool_size`, `max_overflow`); None: SQLAlchemy's defaults (5 and 10)."""
    kwargs.setdefault("hide_parameters", True)  # SQL errors never quote rows' values (PII)
    try:
        parsed = make_url(url)
        parsed.port  # noqa: B018 - parsed when read: a port that is not a number raises here
    except ArgumentError as exc:
        raise ConfigurationError(
            f"AUDIENCE_SYNC_DATABASE_URL is not a database URL: {exc}"
        ) from exc
    except ValueError as exc:  # its text would quote the URL's port part: not shown
        raise ConfigurationError(
            "AUDIENCE_SYNC_DATABASE_URL is not a database URL: its port is not a number"
        ) from exc
    if parsed.get_backend_name() == "postgresql" and parsed.drivername == "postgresql":
        parsed = parsed.set(drivername="postgresql+psycopg")  # psycopg 3, not psycopg2
    if parsed.get_backend_name() == "sqlite":
        if (
            parsed.database
            and parsed.database != ":memory:"
            and not parsed.database.startswith("file:")
        ):
            _private_sqlite_file(Path(parsed.database))
        engine = create_engine(parsed, **kwargs)
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    if pool is not None:
        kwargs.setdefault("pool_size", pool[0])
        kwargs.setdefault("max_overflow", pool[1])
    engine = create_engine(parsed, **kwargs)
    _ping_when_idle(engine)
    return engine


def _ping_when_idle(engine: Engine) -> None:
    """Ping a pooled connection before handing it out only when it sat unused for
    `PING_AFTER_IDLE_SECONDS`; a failed ping replaces every pooled connection (a restarted
    server), as `pool_pre_ping` does.

    `pool_pre_ping` pinged at every checkout: a round trip of every transaction's, two of the
    eight an API request made (the key, then the route: ping, BEGIN, SELECT, COMMIT each), a
    quarter of a request's time under load (py-spy, docs/performance.md). A connection used
    moments ago is not worth a ping: if the server went away since, the statement fails, and
    SQLAlchemy invalidates the pool on that disconnect just the same."""
    dialect = engine.dialect

    def checked_in(_dbapi: Any, record: ConnectionPoolEntry) -> None:
        record.info["idle_since"] = time.monotonic()

    def checked_out(dbapi: Any, record: ConnectionPoolEntry, _proxy: Any) -> None:
        since = record.info.pop("idle_since", None)
        if since is None or time.monotonic() - since < PING_AFTER_IDLE_SECONDS:
            return  # new, or used moments ago
        try:
            alive = dialect.do_ping(dbapi)
        except dialect.loaded_dbapi.Error as error:
            if not dialect.is_disconnect(error, dbapi, None):
                raise
            alive = False
        if not alive:
            raise InvalidatePoolError("the server did not answer a ping")

    event.listen(engine, "checkin", checked_in)
    event.listen(engine, "checkout", checked_out)


def _private_sqlite_file(path: Path) -> None:
    """The database file (every profile) and its `-wal`/`-shm` companions, owner-only.

    The file is created 0600 before SQLite opens it: SQLite then creates `-wal` and `-shm` with
    the database file's own mode. Files from before are tightened too."""
    private_dir(path.parent)
    private_file(path)
    for companion in (Path(f"{path}-wal"), Path(f"{path}-shm"), Path(f"{path}-journal")):
        if companion.exists():
            private_file(companion)


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA busy_timeout=10000")
    # 64 MB of page cache (the default is 2 MB). The snapshot's key is a random hash, so a
    # chunk of inserts touches pages all over its index; with the default cache they are read
    # again and again. Measured, a million snapshot rows in chunks of 100,000: 22.7 s → 16.4 s.
    # The cache grows only as pages are used.
    cursor.execute("PRAGMA cache_size=-65536")
    cursor.close()


def session_factory(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(engine, expire_on_commit=False)


@contextmanager
def transaction(factory: sessionmaker[Session]) -> Iterator[Session]:
    """A session whose work commits on success and rolls back on any error."""
    with factory() as session, session.begin():
        yield session


def is_busy(error: OperationalError) -> bool:
    """Whether `error` is SQLite's busy answer: another connection held the write lock past
    the busy timeout (`PRAGMA busy_timeout` above). PostgreSQL waits for row locks instead."""
    code = getattr(error.orig, "sqlite_errorcode", None)
    return code in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED)


@contextmanager
def reading(factory: sessionmaker[Session]) -> Iterator[Session]:
    """A session for reads, each statement committed on its own (autocommit): no BEGIN and no
    COMMIT, one round trip a statement instead of a transaction's three for a single SELECT.

    What a read gives up is nothing on PostgreSQL: at READ COMMITTED (the default) every
    statement of a transaction takes a snapshot of its own anyway (PostgreSQL's manual, 13.2.1
    "Read Committed Isolation Level"). On SQLite a transaction would read all its statements
    from one snapshot: use this only where the statements need no common one. Writes in such
    a session commit statement by statement; use `transaction` for anything that must be
    atomic."""
    with factory() as session:
        session.connection(execution_options={"isolation_level": "AUTOCOMMIT"})
        yield session


def alembic_config(engine: Engine) -> Config:
    config = Config()
    config.set_main_option("script_location", MIGRATIONS)
    config.attributes["engine"] = engine
    return config


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Apply migrations up to `revision` (idempotent)."""
    command.upgrade(alembic_config(engine), revision)


def downgrade(engine: Engine, revision: str) -> None:
    command.downgrade(alembic_config(engine), revision)


def is_migrated(engine: Engine) -> bool:
    return inspect(engine).has_table("alembic_version")


def driver_rows(
    connection: Connection, sql: str, params: Sequence[object], batch_rows: int
) -> Iterator[list[Any]]:
    """Rows of `sql` (with `?` placeholders) in lists of `batch_rows`, on the driver's own cursor.

    For reads of millions of rows: SQLAlchemy's result objects cost several times the driver's
    own fetch. PostgreSQL gets a named (server-side) cursor; on SQLite a UUID parameter is passed
    as the 32-digit hex SQLAlchemy stores there, and its cursor steps lazily anyway.

    Not faster readers for SQLite that bundle their own SQLite (ADBC's driver, connectorx,
    DuckDB's scanner): two SQLite libraries in one process break each other's POSIX locks
    (docs/sync.md, Performance)."""
    dbapi: Any = connection.connection.dbapi_connection
    sql = driver_sql(connection, sql)
    if connection.dialect.name == "postgresql":
        cursor = dbapi.cursor(name=f"rows_{uuid.uuid4().hex}")
    else:
        cursor = dbapi.cursor()
        params = [p.hex if isinstance(p, uuid.UUID) else p for p in params]
    try:
        cursor.execute(sql, tuple(params))
        while rows := cursor.fetchmany(batch_rows):
            yield rows
    finally:
        cursor.close()


def bound(connection: Connection, column: ColumnElement[Any], value: object) -> object:
    """`value` as the driver receives it for `column` (SQLite takes UUIDs and timestamps as
    text): what SQLAlchemy would bind, computed once rather than per row."""
    # The dialect's own type: a TypeDecorator's `bind_processor` would run only its own step
    # (UTCDateTime gives back a datetime, which sqlite3 then adapts per row, slowly and in
    # another text form than SQLAlchemy writes).
    process = column.type.dialect_impl(connection.dialect).bind_processor(connection.dialect)
    return process(value) if process else value


def driver_sql(connection: Connection, sql: str) -> str:
    """`sql` written with `?` placeholders, in the connection's driver's own paramstyle (psycopg
    takes `%s`; sqlite3 takes `?`)."""
    return sql.replace("?", "%s") if connection.dialect.name == "postgresql" else sql


def binary_rows(session: Session, statement: Select[*tuple[Any, ...]]) -> list[tuple[Any, ...]]:
    """The rows of `statement` in the session's transaction; for the reads of stored parts.

    On PostgreSQL the rows come in psycopg's binary format: in the text format a `bytea` comes
    as hex, twice its size, and decoding it took ~3× as long as the binary read (a 14 MB part:
    0.13–0.19 s against 0.04–0.07 s on the test server). Elsewhere, the session's own rows."""
    connection = session.connection()
    if connection.dialect.name != "postgresql":
        return [tuple(row) for row in session.execute(statement)]
    compiled = statement.compile(dialect=connection.dialect)
    dbapi: Any = connection.connection.dbapi_connection
    with dbapi.cursor(binary=True) as cursor:
        cursor.execute(str(compiled), compiled.params)
        return [tuple(row) for row in cursor.fetchall()]
