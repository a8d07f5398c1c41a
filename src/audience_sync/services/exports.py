"""Segment exports: a file of the segment's members, written here or behind a signed link."""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from audience_sync.config import FeatureFlag, secret_keys
from audience_sync.domain.models import IdentifierType, SyncPlatform
from audience_sync.export.links import LinkCheck
from audience_sync.export.service import ExportLink, create_export, file_name, resolve_link
from audience_sync.export.writer import ExportSpec, write_export
from audience_sync.services import flags, segments
from audience_sync.store.db import transaction
from audience_sync.store.repositories import TenantRepository
from audience_sync.sync.context import SyncService

__all__ = [
    "ExportLink",
    "ExportSpec",
    "LinkCheck",
    "WrittenFile",
    "create_link",
    "download_path",
    "download_url",
    "open_link",
    "spec_of",
]


@dataclass(frozen=True, slots=True)
class WrittenFile:
    path: Path
    segment_name: str
    normalization: str
    profile_count: int
    file_size_bytes: int


def spec_of(
    format: Literal["csv", "json"],
    identifier_types: Iterable[IdentifierType],
    hash_identifiers: bool,
    platform: SyncPlatform | None,
    include_traits: bool,
    include_events: bool,
) -> ExportSpec:
    """The export options as the writer takes them (each identifier type once, in order)."""
    return ExportSpec(
        format=format,
        identifier_types=tuple(dict.fromkeys(identifier_types)),
        hash_identifiers=hash_identifiers,
        platform=platform,
        include_traits=include_traits,
        include_events=include_events,
    )


def create_link(
    service: SyncService, tenant_id: int, segment_id: uuid.UUID, spec: ExportSpec
) -> ExportLink:
    """Write the segment's export under the service's folder and sign a link to it (the
    `audience_export` flag checked first)."""
    with transaction(service.factory) as session:
        flags.require(session, tenant_id, service.settings, FeatureFlag.AUDIENCE_EXPORT)
    settings = service.settings
    return create_export(
        service.factory,
        service.engine,
        secret_keys(settings),
        settings.var_dir / "exports",
        tenant_id,
        segment_id,
        spec,
        service.clock(),
    )


def download_url(service: SyncService, link: ExportLink) -> str:
    """The link from `AUDIENCE_SYNC_PUBLIC_URL` (the API's `GET /exports/{id}`)."""
    return f"{service.settings.effective_public_url}{download_path(link)}"


def download_path(link: ExportLink) -> str:
    """The signed link without its host: `/exports/{id}?expires=…&signature=…`. The dashboard
    links with it, so the link follows the address the page was served from."""
    query = f"expires={link.expires}&signature={link.signature}"
    return f"/exports/{link.export_id}?{query}"


def open_link(
    service: SyncService, export_id: uuid.UUID, expires: int, signature: str
) -> tuple[LinkCheck, Path | None, str]:
    """What a download link leads to (checked before the database is read)."""
    keys = secret_keys(service.settings)
    return resolve_link(service.factory, keys, export_id, expires, signature, service.clock())


def write_file(
    service: SyncService, tenant_id: int, segment: str, spec: ExportSpec, folder: Path | None
) -> WrittenFile:
    """Write a segment (by name, id or id prefix) to `<folder>/<segment>.<normalization>.<format>`
    (the folder defaults to the service's exports folder)."""
    with transaction(service.factory) as session:
        flags.require(session, tenant_id, service.settings, FeatureFlag.AUDIENCE_EXPORT)
        found = segments.find(session, tenant_id, segment)
        segment_id, name = found.id, found.name
        region = TenantRepository(session).region_of(tenant_id)
    path = (folder or service.settings.var_dir / "exports") / file_name(_slug(name), spec)
    written = write_export(service.engine, tenant_id, segment_id, spec, path, region)
    return WrittenFile(
        path, name, spec.normalization, written.profile_count, written.file_size_bytes
    )


def _slug(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", name.lower()).strip("_") or "segment"
