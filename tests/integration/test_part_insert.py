"""A stored part goes into its row from its file a piece at a time (`store.ipc.insert_part`):
on both databases the row holds the file's bytes exactly, beside the other values given."""

from __future__ import annotations

import os
import uuid
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from audience_sync.domain.models import SyncPlatform
from audience_sync.store import ipc
from audience_sync.store.db import transaction
from audience_sync.store.repositories import AudienceRepository, SegmentRepository, TenantRepository
from audience_sync.store.tables import MemberStatePart, PlatformAudience, SnapshotPart

NOW = datetime(2026, 12, 6, 9, 30, 15, 123456, tzinfo=UTC)


def audience(factory: sessionmaker[Session]) -> tuple[int, uuid.UUID]:
    with transaction(factory) as session:
        tenant_id = TenantRepository(session).get("default").id
        segment = SegmentRepository(session, tenant_id).ensure("VIP")
        created = AudienceRepository(session, tenant_id).add(
            PlatformAudience(
                segment_id=segment.id,
                platform=SyncPlatform.TIKTOK,
                platform_audience_name="VIP",
                ad_account_id="a",
            )
        )
        return tenant_id, created.id


@pytest.mark.parametrize("size", [0, 1, 10_000, 3 * 4096 + 17])
def test_a_part_row_holds_its_files_bytes(
    factory: sessionmaker[Session], tmp_path: Path, monkeypatch: pytest.MonkeyPatch, size: int
) -> None:
    monkeypatch.setattr(ipc, "PIECE", 4096)  # several pieces a file
    tenant_id, audience_id = audience(factory)
    path = tmp_path / "part.arrow"
    path.write_bytes(os.urandom(size))
    values = {
        "tenant_id": tenant_id,
        "audience_id": audience_id,
        "removes": True,
        "rows": 7,
        "confirmed_at": NOW,
    }
    with transaction(factory) as session:
        ipc.insert_part(session, SnapshotPart, values, path)
    with transaction(factory) as session:
        part = session.scalars(select(SnapshotPart)).one()
        stored = {name: getattr(part, name) for name in values}
        assert (stored, bytes(part.data)) == (values, path.read_bytes())


def test_a_member_state_row_holds_its_files_bytes_and_text(
    factory: sessionmaker[Session], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(ipc, "PIECE", 1000)
    tenant_id, audience_id = audience(factory)
    path = tmp_path / "state.arrow"
    path.write_bytes(os.urandom(2500))
    values = {
        "audience_id": audience_id,
        "part": 3,
        "tenant_id": tenant_id,
        "fingerprint": "a\tb\\c\nd é",  # tabs, a backslash, a newline, non-ASCII: as given
        "prepared_at": NOW,
        "converged": True,
    }
    with transaction(factory) as session:
        ipc.insert_part(session, MemberStatePart, values, path)
    with transaction(factory) as session:
        part = session.scalars(select(MemberStatePart)).one()
        stored = {name: getattr(part, name) for name in values}
        assert (stored, bytes(part.data)) == (values, path.read_bytes())
