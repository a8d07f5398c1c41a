"""`SegmentRepository.add_members`, added for the API: tenant-scoped and idempotent."""

from __future__ import annotations

import pytest
from sqlalchemy.orm import Session, sessionmaker

from audience_sync.exceptions import NotFoundError
from audience_sync.sources.phones import PhoneParsing
from audience_sync.sources.prepare_records import prepare_records
from audience_sync.sources.rows import IdentifierValue, ProfileRecord
from audience_sync.store.db import transaction
from audience_sync.store.profile_writer import Destination, write_in_session
from audience_sync.store.repositories import SegmentRepository, TenantRepository


def profiles(session: Session, tenant_id: int, *ids: str) -> None:
    records = [ProfileRecord(1, pid, {}, list[IdentifierValue]()) for pid in ids]
    prepared = prepare_records(records, "US")
    write_in_session(session, Destination(tenant_id), prepared, PhoneParsing(workers=1).e164())


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
