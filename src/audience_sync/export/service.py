"""Create an export (file on disk + `exports` row) and resolve a signed link back to its file."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from sqlalchemy import Engine, select
from sqlalchemy.orm import Session, sessionmaker

from audience_sync.exceptions import NotFoundError
from audience_sync.export.links import LinkCheck, check, sign
from audience_sync.export.writer import ExportSpec, write_export
from audience_sync.files import DIR_MODE, private_dir
from audience_sync.store.db import transaction
from audience_sync.store.repositories import SegmentRepository, TenantRepository
from audience_sync.store.tables import Export

LINK_LIFETIME = timedelta(hours=1)
# Slack for a link issued by another process whose clock runs ahead of this one's.
CLOCK_SKEW = timedelta(minutes=5)


@dataclass(frozen=True, slots=True)
class ExportLink:
    export_id: uuid.UUID
    expires: int
    signature: str
    expires_at: datetime
    profile_count: int
    file_size_bytes: int
    normalization: str


def create_export(
    factory: sessionmaker[Session],
    engine: Engine,
    keys: list[bytes],
    folder: Path,
    tenant_id: int,
    segment_id: uuid.UUID,
    spec: ExportSpec,
    now: datetime,
) -> ExportLink:
    """Write the segment's export and sign a link to it valid for `LINK_LIFETIME`."""
    with transaction(factory) as session:
        segment = SegmentRepository(session, tenant_id).get(segment_id)
        region = TenantRepository(session).region_of(tenant_id)
        _forget_expired(session, tenant_id, now)
        export = Export(
            tenant_id=tenant_id,
            segment_id=segment.id,
            format=spec.format,
            platform=spec.platform,
            options={
                "identifier_types": [t.value for t in spec.identifier_types],
                "hash_identifiers": spec.hash_identifiers,
                "include_traits": spec.include_traits,
                "include_events": spec.include_events,
                "normalization": spec.normalization,
            },
            status="running",
            created_at=now,
        )
        session.add(export)
        session.flush()
        export_id = export.id
    path = folder / str(tenant_id) / file_name(str(export_id), spec)
    private_dir(path.parent, tighten=True)
    folder.chmod(DIR_MODE)  # owner-only even if made before (`audience_sync.files`)
    try:
        written = write_export(engine, tenant_id, segment_id, spec, path, region)
    except Exception:
        with transaction(factory) as session:
            session.get_one(Export, export_id).status = "failed"
        raise
    expires_at = now + LINK_LIFETIME
    with transaction(factory) as session:
        done = session.get_one(Export, export_id)
        done.status = "completed"
        done.file_path = str(path)
        done.profile_count = written.profile_count
        done.file_size_bytes = written.file_size_bytes
        done.expires_at = expires_at
    expires, signature = sign(keys, export_id, expires_at)
    return ExportLink(
        export_id,
        expires,
        signature,
        expires_at,
        written.profile_count,
        written.file_size_bytes,
        spec.normalization,
    )


def file_name(stem: str, spec: ExportSpec) -> str:
    """`<stem>.<normalization>.<format>`: the file itself says how its identifiers were
    normalized, however it is later read or passed on (a CSV comment line would break readers)."""
    return f"{stem}.{spec.normalization}.{spec.format}"


def resolve_link(
    factory: sessionmaker[Session],
    keys: list[bytes],
    export_id: uuid.UUID,
    expires: int,
    signature: str,
    now: datetime,
) -> tuple[LinkCheck, Path | None, str]:
    """What a download link leads to: its check, and when valid the file and its format (the
    file's name ends `.<normalization>.<format>`).

    The signature is checked before the database is read, so a forged link learns nothing.
    """
    verdict = check(keys, export_id, expires, signature, now, LINK_LIFETIME + CLOCK_SKEW)
    if verdict is not LinkCheck.VALID:
        return verdict, None, ""
    with transaction(factory) as session:
        export = session.get(Export, export_id)
        if export is None or not export.file_path or not Path(export.file_path).is_file():
            raise NotFoundError("The export no longer exists.")
        return verdict, Path(export.file_path), export.format


def _forget_expired(session: Session, tenant_id: int, now: datetime) -> None:
    """Delete the tenant's expired export files (their rows stay, without a file)."""
    expired = session.scalars(
        select(Export).where(
            Export.tenant_id == tenant_id,
            Export.expires_at < now,
            Export.file_path.is_not(None),
        )
    ).all()
    for export in expired:
        Path(str(export.file_path)).unlink(missing_ok=True)
        export.file_path = None
        export.status = "expired"
