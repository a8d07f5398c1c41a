"""`SegmentRepository.add_members`, added for the API: tenant-scoped and idempotent."""

from __future__ import annotations

import pytest
from sqlalchemy.orm import Session, sessionmaker

from audience_sync.exceptions import NotFoundError
from audience_sync.identifiers import normalize_country, parse_phone_e164
from audience_sync.sources.rows import IdentifierValue, ProfileRecord
from audience_sync.store.db import transaction
from audience_sync.store.profile_writer import ProfileWriter
from audience_sync.store.repositories import SegmentRepository, TenantRepository


def profiles(session: Session, tenant_id: int, *ids: str) -> None:
    records = [ProfileRecord(1, pid, {}, list[IdentifierValue]()) for pid in ids]
    ProfileWriter(session, tenant_id, "US", parse_phone_e164, normalize_country).write(records)


def test_add_members_counts_new_members_and_reports_unknown_ids(
    factory: sessionmaker[Session],
) -> None:
    with transaction(factory) as session:
        mine = TenantRepository(session).create("mine").id
        theirs = TenantRepository(session).create("theirs").id
        profiles(session, mine, "A", "B")
        profiles(session, theirs, "C")
        repo = SegmentRepository(session, mine)
        segment = repo.create("S")
        first = repo.add_members(segment.id, ["A", "C", "A", "Z"])
        again = repo.add_members(segment.id, ["A", "B"])
        assert (first.added, first.unknown_profile_ids) == (1, ["C", "Z"])
        assert (again.added, again.unknown_profile_ids) == (1, [])
        assert repo.member_profile_ids(segment.id) == ["A", "B"]
        with pytest.raises(NotFoundError):
            SegmentRepository(session, theirs).add_members(segment.id, ["C"])
