"""A stored part goes into its row from its file a piece at a time (`store.ipc.insert_part`):
on both databases the row holds the file's bytes exactly, beside the other values given."""

from __future__ import annotations

import os
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker
from tests.integration.test_snapshot import audience

from audience_sync.store import ipc
from audience_sync.store.db import transaction
from audience_sync.store.tables import Base, MemberStatePart, SnapshotPart

NOW = datetime(2026, 12, 6, 9, 30, 15, 123456, tzinfo=UTC)


def snapshot_values(tenant_id: int, audience_id: object) -> dict[str, object]:
    return {
        "tenant_id": tenant_id,
        "audience_id": audience_id,
        "removes": True,
        "rows": 7,
        "confirmed_at": NOW,
    }


def state_values(tenant_id: int, audience_id: object) -> dict[str, object]:
    return {
        "audience_id": audience_id,
        "part": 3,
        "tenant_id": tenant_id,
        "fingerprint": "a\tb\\c\nd é",  # tabs, a backslash, a newline, non-ASCII: as given
        "prepared_at": NOW,
        "converged": True,
    }


@pytest.mark.parametrize(
    ("model", "values_of", "size", "piece"),
    [
        (SnapshotPart, snapshot_values, 0, 4096),
        (SnapshotPart, snapshot_values, 1, 4096),
        (SnapshotPart, snapshot_values, 10_000, 4096),
        (SnapshotPart, snapshot_values, 3 * 4096 + 17, 4096),  # several pieces a file
        (MemberStatePart, state_values, 2500, 1000),
    ],
)
def test_a_part_row_holds_its_files_bytes_and_values(
    factory: sessionmaker[Session],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    model: type[Base],
    values_of: object,
    size: int,
    piece: int,
) -> None:
    monkeypatch.setattr(ipc, "PIECE", piece)
    assert callable(values_of)
    values = values_of(*audience(factory))
    path = tmp_path / "part.arrow"
    path.write_bytes(os.urandom(size))
    with transaction(factory) as session:
        ipc.insert_part(session, model, values, path)
    with transaction(factory) as session:
        part = session.scalars(select(model)).one()
        stored = {name: getattr(part, name) for name in values}
        assert (stored, bytes(part.data)) == (values, path.read_bytes())


@pytest.mark.parametrize("engine", ["postgresql"], indirect=True)  # SQLite: a blob, no types
def test_a_postgresql_connection_reads_a_tables_column_types_once(
    factory: sessionmaker[Session], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The catalog is asked once a connection and table, not at every part's insert."""
    tenant_id, audience_id = audience(factory)
    path = tmp_path / "part.arrow"
    path.write_bytes(b"x")
    with transaction(factory) as session:
        assert session.get_bind().dialect.name == "postgresql"
        raw = session.connection().connection.dbapi_connection
        asked: list[str] = []
        execute = raw.execute

        def noted(query: str, *args: object, **kwargs: object) -> object:
            asked.append(query)
            return execute(query, *args, **kwargs)

        monkeypatch.setattr(raw, "execute", noted)
        ipc._TYPES.pop(raw, None)
        for number in range(3):
            ipc.insert_part(session, SnapshotPart, snapshot_values(tenant_id, audience_id), path)
            values = state_values(tenant_id, audience_id) | {"part": number}
            ipc.insert_part(session, MemberStatePart, values, path)
        assert sum("pg_attribute" in query for query in asked) == 2  # once a table
