"""Segments of the built-in CDP, their members, and profile upserts (`POST /profiles:batch`)."""

from __future__ import annotations

import json
import uuid
from typing import Any

from fastapi import APIRouter, status

from audience_sync.api.deps import Ctx, TenantId
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
from audience_sync.services import segments
from audience_sync.sources.rows import (
    MAX_LINE_BYTES,
    REFUSED_REASON,
    ProfileRecord,
    Rejection,
    read_object,
)

router = APIRouter(tags=["segments"])


def _segment_out(s: segments.SegmentSummary) -> SegmentOut:
    return SegmentOut(
        id=s.id,
        name=s.name,
        description=s.description,
        is_active=s.is_active,
        member_count=s.member_count,
    )


@router.get("/segments", response_model=list[SegmentOut])
def list_segments(ctx: Ctx, tenant_id: TenantId) -> list[SegmentOut]:
    """Every segment of the tenant with its member count."""
    return [_segment_out(s) for s in segments.list_segments(ctx.service, tenant_id)]


@router.post("/segments", status_code=status.HTTP_201_CREATED, response_model=SegmentOut)
def create_segment(body: SegmentIn, ctx: Ctx, tenant_id: TenantId) -> SegmentOut:
    """A new, empty segment; names are unique per tenant (409 otherwise)."""
    return _segment_out(segments.create(ctx.service, tenant_id, body.name, body.description))


@router.get("/segments/{segment_id}", response_model=SegmentOut)
def get_segment(segment_id: uuid.UUID, ctx: Ctx, tenant_id: TenantId) -> SegmentOut:
    return _segment_out(segments.get(ctx.service, tenant_id, segment_id))


@router.post("/segments/{segment_id}/members", response_model=MembersOut)
def change_members(
    segment_id: uuid.UUID, body: MembersIn, ctx: Ctx, tenant_id: TenantId
) -> MembersOut:
    """Add and remove members by the customer's own profile ids (removals apply after adds)."""
    changed = segments.change_members(ctx.service, tenant_id, segment_id, body.add, body.remove)
    return MembersOut(
        added=changed.added,
        removed=changed.removed,
        unknown_profile_ids=changed.unknown_profile_ids,
        member_count=changed.member_count,
    )


@router.post("/profiles:batch", response_model=ProfilesBatchOut, tags=["profiles"])
def upsert_profiles(body: ProfilesBatchIn, ctx: Ctx, tenant_id: TenantId) -> ProfilesBatchOut:
    """Upsert profiles by `profile_id`, each row read exactly as an import row is.

    A row that cannot be read is reported with its index and reason; every other row is kept.
    """
    records, errors = _read(body.profiles)
    prepared, written = segments.upsert_profiles(ctx.service, tenant_id, records, body.segment_id)
    errors += [RowError(index=r.line - 1, reason=r.reason) for r in prepared.rejections]
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
