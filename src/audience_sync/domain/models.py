"""Enums and value types shared by every part of Audience Sync (pure: no DB, HTTP or settings)."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any


class SyncPlatform(StrEnum):
    """The ad platforms an audience can be pushed to."""

    META = "meta"
    GOOGLE = "google"
    TIKTOK = "tiktok"
    SNAPCHAT = "snapchat"


class SyncOperation(StrEnum):
    """What a sync job does to the platform audience."""

    CREATE = "create"  # create the audience on the platform, then add every member
    UPDATE = "update"  # add and remove the delta since the last confirmed sync
    REPLACE = "replace"  # replace every member
    DELETE = "delete"  # delete the audience on the platform


class SyncStatus(StrEnum):
    """Where a sync job is in its life."""

    PENDING = "pending"
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def is_final(self) -> bool:
        return self in (SyncStatus.COMPLETED, SyncStatus.FAILED, SyncStatus.CANCELLED)


class TriggeredBy(StrEnum):
    """Who or what started a sync job."""

    MANUAL = "manual"
    SCHEDULED = "scheduled"
    API = "api"


class IdentifierType(StrEnum):
    """The kinds of identifier a profile carries that platforms match on."""

    EMAIL = "email"
    PHONE = "phone"
    MOBILE_ID = "mobile_id"
    EXTERNAL_ID = "external_id"


class MobileIdKind(StrEnum):
    """Which operating system issued a mobile advertising id."""

    IDFA = "idfa"  # Apple
    GAID = "gaid"  # Google (Android advertising id, "AAID" at TikTok)


SYNC_INTERVALS_HOURS: tuple[int, ...] = (1, 6, 12, 24, 168)
"""The schedules an audience may use: hourly, 6 h, 12 h, daily (default), weekly."""


@dataclass(frozen=True, slots=True)
class UserIdentifier:
    """One identifier of a profile, as stored (raw); `kind` only for mobile ids."""

    type: IdentifierType
    value: str
    kind: MobileIdKind | None = None
    e164: str | None = None  # phones only: parsed once when the profile was stored


@dataclass(frozen=True, slots=True)
class AudienceUser:
    """A segment member as a connector sees it: identifiers plus enhanced-matching fields."""

    profile_id: str
    identifiers: tuple[UserIdentifier, ...] = ()
    first_name: str | None = None
    last_name: str | None = None
    country: str | None = None
    city: str | None = None
    state: str | None = None
    zip_code: str | None = None
    date_of_birth: str | None = None  # YYYYMMDD or YYYY-MM-DD
    gender: str | None = None  # m/f
    # What the member allows (`domain.data_use`); None: the audience's or connection's default.
    consent_ad_user_data: str | None = None  # granted / denied (Google)
    consent_ad_personalization: str | None = None  # granted / denied (Google)
    limited_data_use: str | None = None  # off / geolocate / california (Meta)


@dataclass(frozen=True, slots=True)
class AudienceConfig:
    """What a connector needs to create an audience on a platform."""

    name: str
    ad_account_id: str
    description: str | None = None
    identifier_types: tuple[IdentifierType, ...] = tuple(IdentifierType)
    # Platform-specific options (Google consent and list type, Meta customer_file_source, ...).
    options: dict[str, Any] = field(default_factory=dict)


@dataclass(slots=True)
class AudienceSyncResult:
    """What one connector operation did, in our figures and the platform's own."""

    success: bool
    platform_audience_id: str | None = None
    sent: int = 0
    accepted: int = 0
    failed: int = 0
    # The platform's own figures: received counts, invalid entries, request ids, ...
    platform_received: int | None = None
    platform_invalid: int | None = None
    request_ids: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    details: dict[str, Any] = field(default_factory=dict)
