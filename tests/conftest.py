"""Shared fixtures: databases (SQLite and the real PostgreSQL), settings, sessions."""

from __future__ import annotations

import logging
import os
import re
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import kombu
import pytest
from kombu.utils.url import maybe_sanitize_url
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session, sessionmaker

from audience_sync.store import db
from audience_sync.store.tables import Base

POSTGRES_URL = os.environ.get(
    "AUDIENCE_SYNC_TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/test"
)
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
BROKERS = {
    "redis": os.environ.get("AUDIENCE_SYNC_TEST_REDIS_URL", "redis://127.0.0.1:6379/0"),
    "rabbitmq": os.environ.get(
        "AUDIENCE_SYNC_TEST_RABBITMQ_URL", "amqp://guest:guest@127.0.0.1:5672//"
    ),
}


def service_unavailable(reason: str) -> None:
    """Locally a missing service skips the test; under CI=true it fails the run."""
    if IN_CI:
        pytest.fail(f"{reason} (CI=true: integration services are required)")
    pytest.skip(reason)


@pytest.fixture
def openssl_digest() -> ModuleType:
    """The compiled `_digest` module (setup.py builds it when gcc and OpenSSL's headers are
    there); without it the fast path uses the polars-hash plugin, and these tests skip, or fail
    under CI=true, where the build must have it."""
    from audience_sync.identifiers import bulk

    if bulk._DIGEST is None:
        service_unavailable(
            "audience_sync.identifiers._digest is not built: install gcc and OpenSSL's headers "
            "(Debian: libssl-dev), then `make` again"
        )
    assert bulk._DIGEST is not None
    return bulk._DIGEST


@pytest.fixture
def sqlite_columns() -> ModuleType:
    """The compiled `_columns` reader, usable with this Python's sqlite3 (setup.py builds it
    when gcc and SQLite's headers are there; `columns._load` checks the library is the same);
    without it member reads go through the driver, and these tests skip, or fail under CI=true,
    where the build must have it."""
    from audience_sync.sources import columns

    if columns._COLUMNS is None:
        service_unavailable(
            "audience_sync.sources._columns is not usable: install gcc and SQLite's headers "
            "(Debian: libsqlite3-dev), then `make` again"
        )
    assert columns._COLUMNS is not None
    return columns._COLUMNS


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A migrated SQLite file, copied for each test (migrating once is the slow part)."""
    path = tmp_path_factory.mktemp("sqlite") / "template.db"
    engine = db.make_engine(f"sqlite:///{path}")
    db.upgrade(engine)
    engine.dispose()
    return path


@pytest.fixture(scope="session")
def postgres_engine() -> Iterator[Engine]:
    """A throwaway database on the real PostgreSQL, migrated once per test session."""
    admin_url = make_url(POSTGRES_URL).set(drivername="postgresql+psycopg")
    name = f"audience_sync_test_{uuid.uuid4().hex[:10]}"
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as connection:
            connection.execute(text(f'CREATE DATABASE "{name}"'))
    except OperationalError as exc:
        admin.dispose()
        service_unavailable(f"PostgreSQL unreachable at {POSTGRES_URL}: {exc.orig}")
    engine = db.make_engine(admin_url.set(database=name).render_as_string(hide_password=False))
    try:
        db.upgrade(engine)
        yield engine
    finally:
        engine.dispose()
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def reachable_broker(kind: str) -> str:
    """The URL of the real broker of this kind, once it answers."""
    url = BROKERS[kind]
    try:
        with kombu.Connection(url, connect_timeout=2) as connection:
            connection.ensure_connection(max_retries=1)
    except Exception as exc:  # each transport raises its own errors
        service_unavailable(f"{kind} unreachable at {maybe_sanitize_url(url)}: {exc}")
    return url


@pytest.fixture(params=list(BROKERS))
def broker(request: pytest.FixtureRequest) -> str:
    """A reachable Celery broker URL: the real Redis, then the real RabbitMQ."""
    return reachable_broker(request.param)


@pytest.fixture
def redis_broker() -> str:
    return reachable_broker("redis")


@pytest.fixture(params=["sqlite", "postgresql"])
def engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Engine]:
    """Each test gets an empty, migrated database — once on SQLite, once on PostgreSQL."""
    if request.param == "sqlite":
        path = tmp_path / "test.db"
        shutil.copy(request.getfixturevalue("sqlite_template"), path)
        sqlite_engine = db.make_engine(f"sqlite:///{path}")
        yield sqlite_engine
        sqlite_engine.dispose()
        return
    pg: Engine = request.getfixturevalue("postgres_engine")
    _truncate(pg)
    yield pg


def _truncate(engine: Engine) -> None:
    tables = ", ".join(f'"{t.name}"' for t in Base.metadata.sorted_tables)
    with engine.begin() as connection:
        connection.execute(text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))


@pytest.fixture
def factory(engine: Engine) -> sessionmaker[Session]:
    return db.session_factory(engine)


# --- I5: no log record of the whole run carries a token, an API key or a raw email ----------
# Meta's token prefix is matched in capitals only: case-blind, it matched the hex group "eaab-…"
# of a random UUID in an access-log path (a false alarm about once in many runs).
_LEAKS = re.compile(
    r"sandbox-token|sandbox-refresh-token|(?-i:EAAB)[\w-]{4,}|\bas_[\w-]{20,}|"
    r"[\w.+-]+@(?:example\.(?:com|org|fr|es)|[\w-]+\.example)\b",
    re.IGNORECASE,
)


class _LeakWatch(logging.Handler):
    """Sees every record any test's code emits at INFO or above, after formatting."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.leaks: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        if record.name.startswith("test."):  # a test logging a leak on purpose (redaction tests)
            return
        text = self.format(record)
        if record.exc_info and record.exc_info[1] is not None:
            text += f" {record.exc_info[1]}"
        if _LEAKS.search(text):
            self.leaks.append(f"{record.name}: {text[:200]}")


_WATCH = _LeakWatch()


def pytest_sessionstart(session: pytest.Session) -> None:
    root = logging.getLogger()
    root.addHandler(_WATCH)
    root.setLevel(min(root.level, logging.INFO))  # the watch must see INFO records too
    # As `log.configure` sets them in production: httpx logs each request URL at INFO, and a
    # test's own client may put a token in a sandbox URL (the order tests ran in decided it).
    for name in ("httpx", "httpcore"):
        logging.getLogger(name).setLevel(logging.WARNING)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    logging.getLogger().removeHandler(_WATCH)
    if _WATCH.leaks:
        print("\nLOG LEAKS (a token, key or raw email was logged):", *_WATCH.leaks[:20], sep="\n")
        session.exitstatus = 1
