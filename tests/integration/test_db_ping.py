"""PostgreSQL connections are pinged only after sitting idle in the pool (issue 23, the API under
load): a ping at every checkout was a round trip of every transaction's, a quarter of an API
request's time under load. A connection the server dropped is still replaced before use once it
sat idle, and right after use the failed statement invalidates the pool."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import Engine, event, text
from sqlalchemy.exc import OperationalError
from tests.integration.sources.test_import_plans import fresh_postgres

from audience_sync.store import db

pytestmark = pytest.mark.postgres


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def postgres() -> Iterator[Engine]:
    with fresh_postgres() as engine:
        yield engine


@pytest.fixture
def engine(postgres: Engine) -> Iterator[Engine]:
    """An engine with a pool of its own (the pings counted from its first connection)."""
    own = db.make_engine(postgres.url.render_as_string(hide_password=False))
    yield own
    own.dispose()


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    clock = Clock()
    monkeypatch.setattr(db.time, "monotonic", clock)
    return clock


def counted_pings(engine: Engine, monkeypatch: pytest.MonkeyPatch) -> list[int]:
    pings: list[int] = []
    ping = engine.dialect.do_ping

    def counting(dbapi_connection: Any) -> bool:
        pings.append(1)
        return ping(dbapi_connection)

    monkeypatch.setattr(engine.dialect, "do_ping", counting)
    return pings


def backend_pid(engine: Engine) -> int:
    with engine.connect() as connection:
        return int(connection.execute(text("SELECT pg_backend_pid()")).scalar_one())


def terminate(engine: Engine, pid: int) -> None:
    admin = db.make_engine(engine.url.set(database="postgres").render_as_string(False))
    try:
        with admin.connect() as connection:
            connection.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
            connection.commit()
    finally:
        admin.dispose()


def test_a_connection_used_moments_ago_is_not_pinged(
    engine: Engine, clock: Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    pings = counted_pings(engine, monkeypatch)
    for _ in range(5):
        clock.now += db.PING_AFTER_IDLE_SECONDS / 2
        assert backend_pid(engine) > 0
    assert pings == []
    clock.now += db.PING_AFTER_IDLE_SECONDS
    backend_pid(engine)
    assert pings == [1]


def test_an_idle_connection_the_server_dropped_is_replaced_before_use(
    engine: Engine, clock: Clock
) -> None:
    first = backend_pid(engine)
    terminate(engine, first)
    clock.now += db.PING_AFTER_IDLE_SECONDS
    assert backend_pid(engine) != first  # the ping failed: a new connection answered


def test_a_connection_dropped_right_after_use_fails_once_then_is_replaced(
    engine: Engine, clock: Clock
) -> None:
    first = backend_pid(engine)
    terminate(engine, first)
    with pytest.raises(OperationalError):
        backend_pid(engine)
    assert backend_pid(engine) != first  # the disconnect invalidated the pool


def test_a_burst_of_requests_reuses_the_pools_connections(postgres: Engine) -> None:
    """`serve` runs its routes on up to 40 threads, each holding a connection for its request.
    With SQLAlchemy's default pool (5 kept, 10 more opened and closed again), every burst above
    five opened new server connections, a PostgreSQL process each (docs/performance.md). The
    configured pool (`AUDIENCE_SYNC_DATABASE_POOL_SIZE`, 20 by default) keeps them open."""
    from audience_sync.config import Settings
    from audience_sync.services.database import open_engine

    url = postgres.url.render_as_string(hide_password=False)
    engine = open_engine(Settings(database_url=url))
    opened: list[object] = []
    event.listen(engine, "connect", lambda *_: opened.append(1))
    try:
        for _burst in range(3):
            held = [engine.connect() for _ in range(15)]  # 15 requests at once
            for connection in held:
                connection.execute(text("SELECT 1"))
            for connection in held:
                connection.close()
        assert len(opened) == 15
        assert (engine.pool.size(), engine.pool.checkedin()) == (20, 15)
    finally:
        engine.dispose()
