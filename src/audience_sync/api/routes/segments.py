"""Segments of the built-in CDP, their members, and profile upserts (`POST /profiles:batch`)."""

from __future__ import annotations

import json
import uuid
from typing import Any

from fastapi import APIRouter, status
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from audience_sync.api.deps import Ctx, TenantId
from audience_sync.api.errors import conflict
from audience_sync.api.schemas import (
    ImportWarning,
    MembersIn,
    MembersOut,
    ProfilesBatchIn,
    ProfilesBatchOut,
    RowError,
    SegmentIn,
    SegmentOut,
)
from audience_sync.sources.phones import PhoneParsing
from audience_sync.sources.prepare_records import prepare_records
from audience_sync.sources.rows import (
    MAX_LINE_BYTES,
    REFUSED_REASON,
    ProfileRecord,
    Rejection,
    read_object,
)
from audience_sync.store.db import transaction
from audience_sync.store.profile_writer import Destination, write_prepared
from audience_sync.store.repositories import (
    SegmentExistsError,
    SegmentRepository,
    TenantRepository,
)

router = APIRouter(tags=["segments"])


def _segment_out(session: Session, tenant_id: int, segment_id: uuid.UUID) -> SegmentOut:
    repo = SegmentRepository(session, tenant_id)
    segment = repo.get(segment_id)
    return SegmentOut(
        id=segment.id,
        name=segment.name,
        description=segment.description,
        is_active=segment.is_active,
        member_count=repo.member_count(segment.id),
    )


@router.get("/segments", response_model=list[SegmentOut])
def list_segments(ctx: Ctx, tenant_id: TenantId) -> list[SegmentOut]:
    """Every segment of the tenant with its member count."""
    with transaction(ctx.factory) as session:
        summaries = SegmentRepository(session, tenant_id).summaries()
    return [
        SegmentOut(
            id=s.id,
            name=s.name,
            description=s.description,
            is_active=s.is_active,
            member_count=s.member_count,
        )
        for s in summaries
    ]


@router.post("/segments", status_code=status.HTTP_201_CREATED, response_model=SegmentOut)
def create_segment(body: SegmentIn, ctx: Ctx, tenant_id: TenantId) -> SegmentOut:
    """A new, empty segment; names are unique per tenant (409 otherwise)."""
    try:
        with transaction(ctx.factory) as session:
            segment = SegmentRepository(session, tenant_id).create(body.name, body.description)
            return _segment_out(session, tenant_id, segment.id)
    except (SegmentExistsError, IntegrityError) as exc:
        # Requests with one name at once can all pass `create`'s check; the unique (tenant,
        # name) constraint stops the later ones at their insert or commit: the same 409.
        raise conflict("segment_exists", f"A segment named {body.name!r} already exists.") from exc


@router.get("/segments/{segment_id}", response_model=SegmentOut)
def get_segment(segment_id: uuid.UUID, ctx: Ctx, tenant_id: TenantId) -> SegmentOut:
    with transaction(ctx.factory) as session:
        return _segment_out(session, tenant_id, segment_id)


@router.post("/segments/{segment_id}/members", response_model=MembersOut)
def change_members(
    segment_id: uuid.UUID, body: MembersIn, ctx: Ctx, tenant_id: TenantId
) -> MembersOut:
    """Add and remove members by the customer's own profile ids (removals apply after adds)."""
    with transaction(ctx.factory) as session:
        repo = SegmentRepository(session, tenant_id)
        added = repo.add_members(segment_id, body.add)
        removed = repo.remove_members(segment_id, body.remove) if body.remove else 0
        return MembersOut(
            added=added.added,
            removed=removed,
            unknown_profile_ids=added.unknown_profile_ids,
            member_count=repo.member_count(segment_id),
        )


@router.post("/profiles:batch", response_model=ProfilesBatchOut, tags=["profiles"])
def upsert_profiles(body: ProfilesBatchIn, ctx: Ctx, tenant_id: TenantId) -> ProfilesBatchOut:
    """Upsert profiles by `profile_id`, each row read exactly as an import row is.

    A row that cannot be read is reported with its index and reason; every other row is kept.
    """
    records, errors = _read(body.profiles)
    with transaction(ctx.factory) as session:
        region = TenantRepository(session).region_of(tenant_id)
        segment_id = None
        if body.segment_id is not None:
            segment_id = SegmentRepository(session, tenant_id).get(body.segment_id).id

    prepared = prepare_records(records, region)
    errors += [RowError(index=r.line - 1, reason=r.reason) for r in prepared.rejections]
    with PhoneParsing(workers=1) as parse:  # a request's few phones: parsed in place
        where = Destination(tenant_id, segment_id)
        written = write_prepared(ctx.factory, where, prepared, parse.e164())
    errors += [RowError(index=line - 1, reason=REFUSED_REASON) for line in written.refused]
    return ProfilesBatchOut(
        created=written.counts.created,
        updated=written.counts.updated,
        unchanged=written.counts.unchanged,
        rejected=len(errors),
        errors=sorted(errors, key=lambda e: e.index),
        warnings=[
            ImportWarning(field=w.field, reason=w.reason, value=w.value, count=count)
            for w, count in sorted(prepared.warnings.items())
        ],
    )


def _read(rows: list[Any]) -> tuple[list[ProfileRecord], list[RowError]]:
    """Each row read as an import's JSON Lines row is, by the importer's own rules.

    `read_object` first: it refuses values too deep or too odd to encode without a
    RecursionError or ValueError; then a good row's JSON line must fit the line limit."""
    records: list[ProfileRecord] = []
    errors: list[RowError] = []
    for index, row in enumerate(rows):
        result = read_object(index + 1, row)
        if isinstance(result, ProfileRecord) and len(json.dumps(row)) > MAX_LINE_BYTES:
            result = Rejection(index + 1, f"line longer than {MAX_LINE_BYTES} bytes")
        if isinstance(result, Rejection):
            errors.append(RowError(index=index, reason=result.reason))
        else:
            records.append(result)
    return records, errors
