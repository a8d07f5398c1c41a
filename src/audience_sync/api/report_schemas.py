"""Request and response bodies of the reporting routes: feature flags, exports, a job's
per-identifier diagnostics (the other bodies: `schemas`)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from audience_sync.api.schemas import Platform, Strict
from audience_sync.config import FeatureFlag
from audience_sync.domain.models import IdentifierType
from audience_sync.services import exports
from audience_sync.services.exports import ExportSpec


class FlagState(BaseModel):
    enabled: bool
    source: Literal["operator", "tenant", "default"] = Field(
        description="`operator`: set in the service's settings (turned off there, no tenant can "
        "turn it on); `tenant`: this tenant's override; `default`: neither."
    )


class FlagsOut(BaseModel):
    flags: dict[FeatureFlag, FlagState]


class FlagsIn(Strict):
    flags: dict[FeatureFlag, bool | None] = Field(
        description="Per-tenant overrides; `null` removes the override (back to the default)."
    )


# --- exports ------------------------------------------------------------------------------


class ExportIn(Strict):
    """The export options, plus the platform whose hashing to apply."""

    format: Literal["csv", "json"] = "csv"
    include_traits: bool = True
    include_events: bool = Field(False, description="The 10 latest events: name and time.")
    identifier_types: list[IdentifierType] = Field(
        default_factory=lambda: [IdentifierType.EMAIL, IdentifierType.PHONE],
        min_length=1,
        max_length=4,
    )
    hash_identifiers: bool = True
    platform: Platform | None = Field(
        None,
        description=(
            "Hash exactly as this platform's upload would. Without it, hashed identifiers follow "
            "the platform-neutral normalization (`neutral`); a platform's own matches it best."
        ),
    )

    def spec(self) -> ExportSpec:
        """What the export writer is given (the API's route and the dashboard's form)."""
        return exports.spec_of(
            self.format,
            self.identifier_types,
            self.hash_identifiers,
            self.platform,
            self.include_traits,
            self.include_events,
        )


class ExportOut(BaseModel):
    download_url: str = Field(description="Signed; works without the API key until expires_at.")
    expires_at: datetime
    profile_count: int
    file_size_bytes: int
    normalization: str = Field(
        description="How identifiers were normalized before hashing: meta, google, tiktok, "
        "snapchat, neutral (hashed without a platform), or none (not hashed). Also in the "
        "downloaded file's name: segment-export-<id>.<normalization>.<format>."
    )


class DiagnosticOut(BaseModel):
    """One identifier value a sync job dropped or the platform refused (masked, never raw)."""

    model_config = ConfigDict(from_attributes=True)

    profile_id: str | None = Field(
        description="The customer's id of the profile (null: the profile was deleted since)."
    )
    field: str | None = Field(
        description="The field of the value (`email`, `phone`, `mobile_id`, ...); null for a "
        "record the platform refused."
    )
    reason: str = Field(
        description="As the job's `details.dropped` names it (`invalid_email`, `zeroed_maid`, "
        "`consent_denied`, ...), or `refused` (the platform refused the record)."
    )
    masked_value: str | None = Field(
        description="The value masked (`j***@gmail.com`, `+44 ••• ••31`); null when there is "
        "no value to show (a refused record, a consent)."
    )


class DiagnosticCountOut(BaseModel):
    field: str | None
    reason: str
    count: int = Field(description="Exact, however many entries were kept.")


class DiagnosticsOut(BaseModel):
    """A page of a job's diagnostics, with its exact counts."""

    job_id: uuid.UUID
    counts: list[DiagnosticCountOut] = Field(
        description="Every dropped or refused value of the job by (field, reason), exact."
    )
    truncated: bool = Field(
        description="True when the job found more values than it keeps entries for "
        "(`max_entries`): the counts are exact, the entries are the first ones found."
    )
    max_entries: int = Field(description="Entries a job keeps at most (10,000).")
    total: int = Field(description="Kept entries matching the filters.")
    offset: int
    next_offset: int | None = Field(description="The next page's `offset`; null on the last.")
    items: list[DiagnosticOut]
