"""The API key's lookup and the read routes run their SELECTs outside a transaction (issue 23,
the API under load).

Each request looked its key up in a transaction (BEGIN, SELECT, COMMIT) and then read in a
second one: six round trips where two SELECTs are needed. At PostgreSQL's READ COMMITTED every
statement takes its own snapshot anyway, so the reads now run in autocommit (`db.reading`):
no statement of these requests may leave a transaction open on its connection (psycopg sends a
BEGIN before the first statement of a transaction, and a COMMIT to end it)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from psycopg.pq import TransactionStatus
from sqlalchemy import Engine, event, insert, text
from sqlalchemy.orm import Session
from tests.integration.api.conftest import Api, Tenant

from audience_sync.domain.models import SyncOperation, SyncStatus, TriggeredBy
from audience_sync.store import db
from audience_sync.store.tables import AudienceSyncJob

# PostgreSQL only: its transactions are what is counted (SQLite begins none for a SELECT).
pytestmark = [
    pytest.mark.postgres,
    pytest.mark.parametrize("engine", ["postgresql"], indirect=True),
]


@pytest.fixture
def postgres(engine: Engine) -> Engine:
    return engine


class Statements:
    """Every statement run on the engine with its connection's state right after it."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, TransactionStatus]] = []

    def __call__(self, conn: Any, _cursor: object, statement: str, *_: object) -> None:
        status = conn.connection.dbapi_connection.info.transaction_status
        self.seen.append((statement.split()[0].upper(), TransactionStatus(status)))


@pytest.fixture
def statements(postgres: Engine) -> Iterator[Statements]:
    recorder = Statements()
    event.listen(postgres, "after_cursor_execute", recorder)
    yield recorder
    event.remove(postgres, "after_cursor_execute", recorder)


async def test_the_key_and_the_reads_run_without_a_transaction(
    client: httpx.AsyncClient, alice: Tenant, postgres: Engine, statements: Statements
) -> None:
    api = Api(client, alice)
    await api.connect()
    audience = await api.audience(await api.segment(profiles=2), sync_now=False)
    job_id = uuid.uuid4()
    moment = datetime.now(UTC)
    with postgres.begin() as connection:
        connection.execute(
            insert(AudienceSyncJob.__table__),
            {
                "id": job_id, "tenant_id": alice.id,
                "platform_audience_id": uuid.UUID(audience["id"]),
                "operation": SyncOperation.UPDATE, "status": SyncStatus.COMPLETED,
                "triggered_by": TriggeredBy.API, "started_at": moment, "completed_at": moment,
                "details": {}, "created_at": moment, "updated_at": moment,
            },
        )  # fmt: skip
    for path in (
        "/healthz",
        "/api/v1/audiences",
        f"/api/v1/audiences/{audience['id']}",
        f"/api/v1/audiences/{audience['id']}/health",
        f"/api/v1/sync-jobs/{job_id}",
    ):
        statements.seen.clear()
        answer = await api.call("GET", path)
        assert answer.status_code == 200, answer.text
        assert statements.seen, path
        assert {kind for kind, _ in statements.seen} <= {"SELECT", "UPDATE"}, path
        assert [status for _, status in statements.seen] == [TransactionStatus.IDLE] * len(
            statements.seen
        ), (path, statements.seen)


def test_a_connection_read_in_autocommit_is_transactional_again(postgres: Engine) -> None:
    """The pool hands the same connection on: a write after a read must get its transaction."""
    url = postgres.url.render_as_string(hide_password=False)
    engine = db.make_engine(url, pool_size=1, max_overflow=0)  # one connection, reused
    factory = db.session_factory(engine)
    try:
        with db.reading(factory) as session:
            session.execute(text("SELECT 1"))
            assert in_transaction(session) is False
        with db.transaction(factory) as session:
            session.execute(text("SELECT 1"))
            assert in_transaction(session) is True
    finally:
        engine.dispose()


def in_transaction(session: Session) -> bool:
    dbapi: Any = session.connection().connection.dbapi_connection
    return bool(dbapi.info.transaction_status != TransactionStatus.IDLE)
