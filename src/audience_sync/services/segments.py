"""Segments of the built-in CDP, their members, and profile upserts."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from audience_sync.exceptions import ConflictError, NotFoundError
from audience_sync.services import ids
from audience_sync.sources.phones import PhoneParsing
from audience_sync.sources.prepare import Prepared
from audience_sync.sources.prepare_records import prepare_records
from audience_sync.sources.rows import ProfileRecord
from audience_sync.store.db import transaction
from audience_sync.store.profile_writer import ChunkResult, Destination, write_prepared
from audience_sync.store.repositories import (
    AudienceRepository,
    SegmentExistsError,
    SegmentRepository,
    SegmentSummary,
    TenantRepository,
)
from audience_sync.store.tables import Segment, SegmentMember
from audience_sync.sync.context import SyncService

__all__ = [
    "MembersChanged",
    "SegmentSummary",
    "added_since",
    "change_members",
    "create",
    "delete",
    "find",
    "get",
    "list_segments",
    "resolve",
    "upsert_profiles",
]


@dataclass(frozen=True, slots=True)
class MembersChanged:
    added: int
    removed: int
    unknown_profile_ids: list[str]
    member_count: int


def list_segments(service: SyncService, tenant_id: int) -> list[SegmentSummary]:
    """Every segment of the tenant with its member count, by name."""
    with transaction(service.factory) as session:
        return SegmentRepository(session, tenant_id).summaries()


def added_since(service: SyncService, tenant_id: int, since: datetime) -> dict[uuid.UUID, int]:
    """Members added to each segment at or after `since` (`segment_members.added_at`), by
    segment id; a segment with none is left out. A member removed and added again counts from
    its latest addition; one only re-imported keeps its first."""
    with transaction(service.factory) as session:
        rows = session.execute(
            select(SegmentMember.segment_id, func.count())
            .where(SegmentMember.tenant_id == tenant_id, SegmentMember.added_at >= since)
            .group_by(SegmentMember.segment_id)
        ).all()
        return {segment_id: int(n) for segment_id, n in rows}


def get(service: SyncService, tenant_id: int, segment_id: uuid.UUID) -> SegmentSummary:
    with transaction(service.factory) as session:
        return _summary(session, tenant_id, segment_id)


def _summary(session: Session, tenant_id: int, segment_id: uuid.UUID) -> SegmentSummary:
    repo = SegmentRepository(session, tenant_id)
    s = repo.get(segment_id)
    return SegmentSummary(s.id, s.name, s.description, s.is_active, repo.member_count(s.id))


def create(
    service: SyncService, tenant_id: int, name: str, description: str | None = None
) -> SegmentSummary:
    """A new, empty segment; names are unique per tenant (`ConflictError` otherwise)."""
    try:
        with transaction(service.factory) as session:
            segment = SegmentRepository(session, tenant_id).create(name, description)
            return _summary(session, tenant_id, segment.id)
    except (SegmentExistsError, IntegrityError) as exc:
        # Requests with one name at once can all pass `create`'s check; the unique (tenant,
        # name) constraint stops the later ones at their insert or commit: the same conflict.
        raise ConflictError("segment_exists", f"A segment named {name!r} already exists.") from exc


def delete(service: SyncService, tenant_id: int, segment_id: uuid.UUID) -> str:
    """Remove a segment with its memberships and exports (the profiles stay); its name.
    Refused while an audience, deleted ones not yet purged included, uses it."""
    with transaction(service.factory) as session:
        segment = SegmentRepository(session, tenant_id).get(segment_id)
        using = AudienceRepository(session, tenant_id).using_segment(segment.id)
        if using:
            raise ConflictError(
                "segment_in_use",
                f"Segment {segment.name!r} is used by {using} audience(s); delete and purge "
                "them first (`audience-sync audiences list --include-deleted`).",
            )
        name = segment.name
        SegmentRepository(session, tenant_id).delete(segment.id)
        return name


def change_members(
    service: SyncService,
    tenant_id: int,
    segment_id: uuid.UUID,
    add: list[str],
    remove: list[str],
) -> MembersChanged:
    """Add and remove members by the customer's own profile ids (removals apply after adds);
    ids with no profile are reported, not created."""
    with transaction(service.factory) as session:
        repo = SegmentRepository(session, tenant_id)
        added = repo.add_members(segment_id, add)
        removed = repo.remove_members(segment_id, remove) if remove else 0
        count = repo.member_count(segment_id)
        return MembersChanged(added.added, removed, added.unknown_profile_ids, count)


def find(session: Session, tenant_id: int, name_or_id: str) -> Segment:
    """A segment by its name, else by its id or a unique prefix of its id."""
    repo = SegmentRepository(session, tenant_id)
    found = repo.by_name(name_or_id)
    if found is not None:
        return found
    missing = NotFoundError(
        f"No segment named {name_or_id!r}; `audience-sync segments list` shows them."
    )
    if not ids.looks_like_id(name_or_id):
        raise missing
    try:
        return repo.get(ids.resolve(session, tenant_id, Segment, "segment", name_or_id))
    except NotFoundError:
        raise missing from None


def resolve(service: SyncService, tenant_id: int, name_or_id: str) -> uuid.UUID:
    with transaction(service.factory) as session:
        return find(session, tenant_id, name_or_id).id


def upsert_profiles(
    service: SyncService,
    tenant_id: int,
    records: list[ProfileRecord],
    segment_id: uuid.UUID | None,
) -> tuple[Prepared, ChunkResult]:
    """Upsert profiles read from JSON by `profile_id` (into the segment when given): the
    prepared rows (their rejections and warnings) and what was written."""
    with transaction(service.factory) as session:
        region = TenantRepository(session).region_of(tenant_id)
        if segment_id is not None:
            segment_id = SegmentRepository(session, tenant_id).get(segment_id).id
    prepared = prepare_records(records, region)
    with PhoneParsing(workers=1) as parse:  # a request's few phones: parsed in place
        where = Destination(tenant_id, segment_id)
        written = write_prepared(service.factory, where, prepared, parse.e164())
    return prepared, written
