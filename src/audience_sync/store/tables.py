"""The schema: SQLAlchemy 2 typed tables. Alembic migrations in `migrations/` must match it."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Text,
    UniqueConstraint,
    false,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from audience_sync.config import FeatureFlag
from audience_sync.domain.models import (
    SyncOperation,
    SyncPlatform,
    SyncStatus,
    TriggeredBy,
)
from audience_sync.store.types import (
    BigIntPK,
    JSONType,
    PlatformName,
    UTCDateTime,
    enum_column,
    json_default,
    utcnow,
)

# Named constraints so migrations can refer to them identically on SQLite and PostgreSQL.
NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

TENANT_FK = "tenants.id"


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


class Timestamps:
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


class Tenant(Timestamps, Base):
    __tablename__ = "tenants"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    slug: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    # Region for phones written without a country code, when the profile has no country.
    default_region: Mapped[str] = mapped_column(String(2), default="US")


class ApiKey(Base):
    __tablename__ = "api_keys"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    tenant_id: Mapped[int] = mapped_column(ForeignKey(TENANT_FK, ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(200), default="default")
    prefix: Mapped[str] = mapped_column(String(16))  # shown to users to tell keys apart
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)  # SHA-256; never the key
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class DashboardSession(Base):
    """A dashboard sign-in: the cookie holds a random token, this row only its SHA-256.

    A session lives while its API key does: revoking the key ends its sessions."""

    __tablename__ = "dashboard_sessions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    tenant_id: Mapped[int] = mapped_column(ForeignKey(TENANT_FK, ondelete="CASCADE"), index=True)
    api_key_id: Mapped[int] = mapped_column(ForeignKey("api_keys.id", ondelete="CASCADE"))
    csrf_token: Mapped[str] = mapped_column(String(64))  # sent back in every form
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    api_key: Mapped[ApiKey] = relationship(lazy="joined")


class OAuthState(Base):
    """A started OAuth flow: the `state` sent to the platform (stored as its SHA-256 only),
    who started it (the tenant, and the dashboard session when started there), its PKCE
    verifier (encrypted) and until when the platform's redirect may come back with it. Used
    once: `used_at` is set by the callback that takes it."""

    __tablename__ = "oauth_states"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    state_hash: Mapped[str] = mapped_column(String(64), unique=True)
    tenant_id: Mapped[int] = mapped_column(ForeignKey(TENANT_FK, ondelete="CASCADE"), index=True)
    platform: Mapped[SyncPlatform] = mapped_column(PlatformName())
    # The SHA-256 of the dashboard session's cookie token (None: started from the API).
    session_hash: Mapped[str | None] = mapped_column(String(64))
    verifier_encrypted: Mapped[str | None] = mapped_column(Text)  # PKCE, where the flow uses it
    redirect_uri: Mapped[str] = mapped_column(String(500))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class Profile(Timestamps, Base):
    """A person in the built-in CDP; `profile_id` is the customer's own id for them."""

    __tablename__ = "profiles"
    __table_args__ = (UniqueConstraint("tenant_id", "profile_id"),)

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    # No foreign key to `tenants` (migration 0016): a profile is written only by the profile
    # writer, under the tenant it has just resolved, and tenants are never deleted. On
    # PostgreSQL the key's check of each row was a third of a first import's `COPY` (a million
    # profiles: ~2.5 s of the server's ~11 s). A tenant delete, if one is ever added, must delete
    # its profiles itself (their identifiers live in the row; memberships cascade from here).
    tenant_id: Mapped[int] = mapped_column(Integer)
    profile_id: Mapped[str] = mapped_column(String(255))
    first_name: Mapped[str | None] = mapped_column(String(255))
    last_name: Mapped[str | None] = mapped_column(String(255))
    city: Mapped[str | None] = mapped_column(String(255))
    state: Mapped[str | None] = mapped_column(String(255))
    zip: Mapped[str | None] = mapped_column(String(32))
    country: Mapped[str | None] = mapped_column(String(64))
    # Kept as written (YYYYMMDD or YYYY-MM-DD); normalization decides per platform.
    date_of_birth: Mapped[str | None] = mapped_column(String(32))
    gender: Mapped[str | None] = mapped_column(String(32))
    # The member's own data-use choices (docs/import.md): Google consent `granted` | `denied`,
    # Meta Limited Data Use `off` | `geolocate` | `california`; null: the connection's default.
    consent_ad_user_data: Mapped[str | None] = mapped_column(String(16))
    consent_ad_personalization: Mapped[str | None] = mapped_column(String(16))
    limited_data_use: Mapped[str | None] = mapped_column(String(16))
    traits: Mapped[dict[str, Any]] = mapped_column(JSONType, default=json_default)
    # SHA-256 of the imported row's canonical form: re-importing the same row changes nothing.
    content_hash: Mapped[str] = mapped_column(String(64))
    # Every identifier of the profile, in its order, as one text (`store.stored_identifiers`).
    identifiers: Mapped[str] = mapped_column(Text, default="", server_default="")


class Segment(Timestamps, Base):
    __tablename__ = "segments"
    __table_args__ = (UniqueConstraint("tenant_id", "name"),)

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    tenant_id: Mapped[int] = mapped_column(ForeignKey(TENANT_FK, ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(255))
    description: Mapped[str | None] = mapped_column(Text)
    is_active: Mapped[bool] = mapped_column(Boolean, default=True)


class SegmentMember(Base):
    __tablename__ = "segment_members"

    segment_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("segments.id", ondelete="CASCADE"), primary_key=True
    )
    profile_pk: Mapped[int] = mapped_column(
        ForeignKey("profiles.id", ondelete="CASCADE"), primary_key=True, index=True
    )
    tenant_id: Mapped[int] = mapped_column(ForeignKey(TENANT_FK, ondelete="CASCADE"))
    added_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Event(Base):
    __tablename__ = "events"
    __table_args__ = (Index("ix_events_profile_time", "tenant_id", "profile_pk", "occurred_at"),)

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    tenant_id: Mapped[int] = mapped_column(ForeignKey(TENANT_FK, ondelete="CASCADE"))
    profile_pk: Mapped[int] = mapped_column(ForeignKey("profiles.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(255))
    properties: Mapped[dict[str, Any]] = mapped_column(JSONType, default=json_default)
    occurred_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class PlatformConnection(Timestamps, Base):
    """A tenant's account on one platform; credentials are Fernet-encrypted at rest."""

    __tablename__ = "platform_connections"
    __table_args__ = (UniqueConstraint("tenant_id", "platform"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    tenant_id: Mapped[int] = mapped_column(ForeignKey(TENANT_FK, ondelete="CASCADE"))
    platform: Mapped[SyncPlatform] = mapped_column(PlatformName())
    ad_account_id: Mapped[str] = mapped_column(String(255))
    credentials_encrypted: Mapped[str] = mapped_column(Text)
    # What GET may show of each credential ("****" + last 4 of a long secret), computed when
    # they are stored, so reading a connection never decrypts it.
    credentials_hint: Mapped[dict[str, Any] | None] = mapped_column(JSONType)
    base_url: Mapped[str | None] = mapped_column(String(500))  # e.g. the sandbox
    # Non-secret settings of the connection, per platform (Google `login_account_id`, the
    # Customer Match terms acceptance, consent defaults; Meta data processing options).
    settings: Mapped[dict[str, Any] | None] = mapped_column(JSONType)
    status: Mapped[str] = mapped_column(String(32), default="connected")
    status_message: Mapped[str | None] = mapped_column(Text)
    # When the stored access token stops working (None: not known, or it does not expire).
    token_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # The scopes (or permissions) the platform granted, space-separated; None when not known.
    scopes: Mapped[str | None] = mapped_column(Text)
    # Bumped by every change of the stored credentials: a token refresh writes back only if
    # the version is still the one it read (compare-and-swap), so two workers refreshing the
    # same connection at once never lose a token.
    credentials_version: Mapped[int] = mapped_column(Integer, default=0, server_default="0")


class PlatformAudience(Timestamps, Base):
    """Links a CDP segment to a platform custom audience: platform, schedule, last outcome,
    size and match rate."""

    __tablename__ = "platform_audiences"
    __table_args__ = (Index("ix_platform_audiences_due", "auto_sync", "is_active", "next_sync_at"),)

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    tenant_id: Mapped[int] = mapped_column(ForeignKey(TENANT_FK, ondelete="CASCADE"), index=True)
    segment_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("segments.id", ondelete="RESTRICT"))

    platform: Mapped[SyncPlatform] = mapped_column(PlatformName())
    platform_audience_id: Mapped[str | None] = mapped_column(String(255))
    platform_audience_name: Mapped[str] = mapped_column(String(255))
    ad_account_id: Mapped[str] = mapped_column(String(255))
    description: Mapped[str | None] = mapped_column(Text)
    config: Mapped[dict[str, Any]] = mapped_column(JSONType, default=json_default)

    auto_sync: Mapped[bool] = mapped_column(Boolean, default=True)
    sync_interval_hours: Mapped[int] = mapped_column(Integer, default=24)
    next_sync_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    is_active: Mapped[bool] = mapped_column(Boolean, default=True)
    last_sync_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_sync_status: Mapped[SyncStatus | None] = mapped_column(
        enum_column(SyncStatus, "sync_status")
    )
    last_sync_error: Mapped[str | None] = mapped_column(Text)

    platform_size: Mapped[int | None] = mapped_column(BigInteger)
    matched_size: Mapped[int | None] = mapped_column(BigInteger)
    match_rate: Mapped[float | None] = mapped_column(Float)


class AudienceSyncJob(Timestamps, Base):
    """One sync operation on one audience (its metrics, plus bookkeeping)."""

    __tablename__ = "audience_sync_jobs"
    __table_args__ = (
        Index("ix_audience_sync_jobs_audience", "platform_audience_id", "created_at"),
        Index("ix_audience_sync_jobs_status", "status", "next_retry_at"),
        # The tenant's jobs that ended in a window (the Audiences page's 30-day counts), read
        # without walking the tenant's whole history (migration 0023).
        Index("ix_audience_sync_jobs_tenant_completed", "tenant_id", "completed_at"),
        # I3: at most one pending or running job per audience, enforced by the database itself,
        # so two processes (or machines) triggering the same audience cannot both win.
        Index(
            "uq_audience_sync_jobs_one_active",
            "platform_audience_id",
            unique=True,
            sqlite_where=text("status IN ('pending', 'running')"),
            postgresql_where=text("status IN ('pending', 'running')"),
        ),
        # The confirmation step's due read: only jobs whose confirmation is processing are in
        # it, in due order, so the read walks the index whatever the planner's statistics say.
        Index(
            "ix_audience_sync_jobs_confirmation_due",
            "confirmation_next_at",
            sqlite_where=text("confirmation = 'processing'"),
            postgresql_where=text("confirmation = 'processing'"),
        ),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    tenant_id: Mapped[int] = mapped_column(ForeignKey(TENANT_FK, ondelete="CASCADE"), index=True)
    platform_audience_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("platform_audiences.id", ondelete="CASCADE")
    )

    operation: Mapped[SyncOperation] = mapped_column(enum_column(SyncOperation, "sync_operation"))
    status: Mapped[SyncStatus] = mapped_column(
        enum_column(SyncStatus, "sync_status"), default=SyncStatus.PENDING
    )

    profiles_sent: Mapped[int] = mapped_column(BigInteger, default=0)
    profiles_added: Mapped[int] = mapped_column(BigInteger, default=0)
    profiles_removed: Mapped[int] = mapped_column(BigInteger, default=0)
    profiles_failed: Mapped[int] = mapped_column(BigInteger, default=0)
    match_rate: Mapped[float | None] = mapped_column(Float)

    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    completed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    duration_ms: Mapped[int | None] = mapped_column(BigInteger)
    error_message: Mapped[str | None] = mapped_column(Text)

    triggered_by: Mapped[TriggeredBy] = mapped_column(enum_column(TriggeredBy, "triggered_by"))
    triggered_by_user_id: Mapped[int | None] = mapped_column(Integer)

    # Bookkeeping beyond the spec: dry runs, durable retries, leases, cancellation, diagnostics.
    dry_run: Mapped[bool] = mapped_column(Boolean, default=False)
    attempt: Mapped[int] = mapped_column(Integer, default=0)
    next_retry_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    heartbeat_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    cancel_requested: Mapped[bool] = mapped_column(Boolean, default=False)
    # The lease of the run that holds the job: a fresh value at each start (`jobs.start_job`).
    # Every write a run makes checks it in the same statement, so a run whose job was reaped
    # (or started again) writes nothing (`fence.hold_lease`).
    lease_token: Mapped[str | None] = mapped_column(String(32))
    details: Mapped[dict[str, Any]] = mapped_column(JSONType, default=json_default)

    # What the platform made of the accepted requests, learnt after the job ended (Google):
    # none | processing | confirmed | failed; when to read the statuses next, which requests
    # are still processing, and how many times they were read.
    confirmation: Mapped[str] = mapped_column(String(16), default="none", server_default="none")
    confirmation_next_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    confirmation_requests: Mapped[list[str] | None] = mapped_column(JSONType)
    confirmation_checks: Mapped[int] = mapped_column(Integer, default=0, server_default="0")

    # Live progress of the run (or of the platform's processing), written by the worker under
    # the job's lease at most about once a second plus each phase change, and read by the API
    # from its own process (`sync.progress`, `services.jobs.progress_of`). `progress_phase` is
    # a `domain.progress.Phase`; `progress_unit` what `done`/`total` count (a `Unit`, None when
    # the phase counts nothing); `progress_total` None when unknown; `progress_started_at` when
    # the phase began (its rate is `done` over the time since); `progress_at` the last write.
    progress_phase: Mapped[str | None] = mapped_column(String(16))
    progress_unit: Mapped[str | None] = mapped_column(String(16))
    progress_done: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    progress_total: Mapped[int | None] = mapped_column(BigInteger)
    progress_started_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    progress_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    @property
    def profiles_refreshed(self) -> int:
        """Members re-sent only to keep them on the platform before their membership lifetime
        ends (`details.figures.refreshed`, docs/freshness.md); no column of its own."""
        figures = (self.details or {}).get("figures") or {}
        return int(figures.get("refreshed", 0))


class SyncJobDiagnostic(Base):
    """One identifier value a job dropped or the platform refused, for the user to fix: the
    profile (the customer's `profile_id`), the field, the reason as the job's metrics name it,
    and the value MASKED (`identifiers.mask`); the raw value is never stored. A job keeps its
    first `sync.diagnostics.LIMIT` entries; its exact counts are in `details.diagnostics`."""

    __tablename__ = "sync_job_diagnostics"
    __table_args__ = (Index("ix_sync_job_diagnostics_job", "tenant_id", "job_id", "id"),)

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    tenant_id: Mapped[int] = mapped_column(ForeignKey(TENANT_FK, ondelete="CASCADE"))
    job_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("audience_sync_jobs.id", ondelete="CASCADE"), index=True
    )
    profile_id: Mapped[str | None] = mapped_column(String(255))  # None: profile deleted since
    field: Mapped[str | None] = mapped_column(String(32))  # None: a whole record refused
    reason: Mapped[str] = mapped_column(String(64))
    masked_value: Mapped[str | None] = mapped_column(Text)


class SnapshotPart(Base):
    """Records the platform confirmed for an audience, exactly as they were sent: one part per
    confirmed chunk (see `store/snapshot.py`).

    A record is what one upload row carried: a single identifier (Snapchat), or several keys of
    one member (a Meta multi-key row, a Google `userData`, a TikTok row); its text is canonical
    JSON (sorted `[key, value]` pairs: digests, or the raw values a platform takes raw), its
    `record_hash` the SHA-256 of that, `k1`/`k2` the hash's first 128 bits. `data` is LZ4 Arrow
    IPC: an added part holds `k1`, `k2`, `record_hash`, `record`; a removal part (`removes`)
    only the removed records' `k1`, `k2`. What the platform holds is the fold of the parts in
    `id` order: a record's last part says whether it is held.
    """

    __tablename__ = "audience_snapshot_parts"
    __table_args__ = (
        Index("ix_audience_snapshot_parts_audience", "tenant_id", "audience_id", "id"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    tenant_id: Mapped[int] = mapped_column(ForeignKey(TENANT_FK, ondelete="CASCADE"))
    audience_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("platform_audiences.id", ondelete="CASCADE")
    )
    removes: Mapped[bool] = mapped_column(Boolean, default=False)
    rows: Mapped[int] = mapped_column(Integer)
    data: Mapped[bytes] = mapped_column(LargeBinary)
    confirmed_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class MemberStatePart(Base):
    """What an audience's members produced when last prepared: a cache, never the truth.

    One audience's state is an Arrow IPC stream split into numbered parts, each row a
    (`owner` profile pk, `content` = the profile's `content_hash` as an integer, `k1`, `k2` =
    a record's key, null for a member without a usable identifier). An update prepares only the
    members whose `content_hash` changed or who joined, and takes the other members' records from
    here; the snapshot still decides what the platform holds. `fingerprint` names everything else
    the records depend on (platform, audience, fields sent, region, rules version): when it
    differs, the state is ignored and every member is prepared again.
    """

    __tablename__ = "audience_member_state"

    audience_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("platform_audiences.id", ondelete="CASCADE"), primary_key=True
    )
    part: Mapped[int] = mapped_column(Integer, primary_key=True)
    tenant_id: Mapped[int] = mapped_column(ForeignKey(TENANT_FK, ondelete="CASCADE"))
    fingerprint: Mapped[str] = mapped_column(String(64))
    data: Mapped[bytes] = mapped_column(LargeBinary)
    prepared_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    # True once a run confirmed exactly these records: the snapshot then holds the state's keys,
    # and the next update plans against the state instead of reading every snapshot hash.
    # Every write to the snapshot resets it (`SnapshotRepository.confirm`/`clear`).
    converged: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())


class Export(Base):
    __tablename__ = "exports"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    tenant_id: Mapped[int] = mapped_column(ForeignKey(TENANT_FK, ondelete="CASCADE"), index=True)
    segment_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("segments.id", ondelete="CASCADE"))
    format: Mapped[str] = mapped_column(String(8))
    options: Mapped[dict[str, Any]] = mapped_column(JSONType, default=json_default)
    platform: Mapped[SyncPlatform | None] = mapped_column(PlatformName())
    status: Mapped[str] = mapped_column(String(16), default="pending")
    file_path: Mapped[str | None] = mapped_column(String(1000))
    profile_count: Mapped[int | None] = mapped_column(BigInteger)
    file_size_bytes: Mapped[int | None] = mapped_column(BigInteger)
    error_message: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class FeatureFlagOverride(Base):
    """A tenant's override of a feature flag's default from the environment."""

    __tablename__ = "feature_flag_overrides"

    tenant_id: Mapped[int] = mapped_column(
        ForeignKey(TENANT_FK, ondelete="CASCADE"), primary_key=True
    )
    flag: Mapped[FeatureFlag] = mapped_column(
        enum_column(FeatureFlag, "feature_flag"), primary_key=True
    )
    enabled: Mapped[bool] = mapped_column(Boolean)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


class AlertRule(Base):
    """A tenant's change to one alert rule's default: on or off, and its threshold. A rule
    without a row is on, at its default threshold (`services.alerts.rules.DEFAULTS`)."""

    __tablename__ = "alert_rules"

    tenant_id: Mapped[int] = mapped_column(
        ForeignKey(TENANT_FK, ondelete="CASCADE"), primary_key=True
    )
    rule: Mapped[str] = mapped_column(String(32), primary_key=True)
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    threshold: Mapped[float | None] = mapped_column(Float)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


class AlertChannel(Base):
    """Where a tenant's alerts go: a webhook (its URL and signing secret) or e-mail addresses.

    The target is Fernet-encrypted like a connection's credentials (a Slack webhook's URL is
    itself a secret); `hint` is what reading a channel may show, computed when it is stored."""

    __tablename__ = "alert_channels"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    tenant_id: Mapped[int] = mapped_column(ForeignKey(TENANT_FK, ondelete="CASCADE"), index=True)
    kind: Mapped[str] = mapped_column(String(16))  # webhook | email
    name: Mapped[str] = mapped_column(String(200), default="")
    target_encrypted: Mapped[str] = mapped_column(Text)
    hint: Mapped[dict[str, Any]] = mapped_column(JSONType, default=json_default)
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class AlertIncident(Base):
    """One incident of a rule on one subject (an audience, a connection): raised once, resolved
    once. The database holds at most one open incident per (tenant, rule, subject), so two
    evaluations at once cannot raise it twice."""

    __tablename__ = "alert_incidents"
    __table_args__ = (
        Index(
            "uq_alert_incidents_one_open",
            "tenant_id",
            "rule",
            "subject",
            unique=True,
            sqlite_where=text("state = 'open'"),
            postgresql_where=text("state = 'open'"),
        ),
        Index("ix_alert_incidents_tenant", "tenant_id", "opened_at"),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    tenant_id: Mapped[int] = mapped_column(ForeignKey(TENANT_FK, ondelete="CASCADE"))
    rule: Mapped[str] = mapped_column(String(32))
    subject: Mapped[str] = mapped_column(String(64))  # an audience id, or "connection:<platform>"
    audience_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("platform_audiences.id", ondelete="CASCADE")
    )
    state: Mapped[str] = mapped_column(String(16), default="open")  # open | resolved
    title: Mapped[str] = mapped_column(Text)
    # What the alert says: names, figures, job ids; never an identifier or a token.
    facts: Mapped[dict[str, Any]] = mapped_column(JSONType, default=json_default)
    opened_at: Mapped[datetime] = mapped_column(UTCDateTime)
    resolved_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class AlertDelivery(Base):
    """The outbox: one message (an incident raised or resolved, or a test) to one channel.

    Written in the transaction that opens or resolves its incident, so nothing is lost; sent by
    whoever claims it (`claim_token`, `claimed_until`: a compare-and-swap), retried with backoff.
    `id` is the idempotency key receivers dedupe by (`X-Audience-Sync-Delivery`)."""

    __tablename__ = "alert_deliveries"
    __table_args__ = (
        Index("ix_alert_deliveries_due", "status", "next_attempt_at"),
        Index("ix_alert_deliveries_incident", "incident_id"),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    tenant_id: Mapped[int] = mapped_column(ForeignKey(TENANT_FK, ondelete="CASCADE"))
    incident_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("alert_incidents.id", ondelete="CASCADE")
    )
    channel_id: Mapped[int] = mapped_column(ForeignKey("alert_channels.id", ondelete="CASCADE"))
    event: Mapped[str] = mapped_column(String(16))  # raised | resolved | test
    status: Mapped[str] = mapped_column(String(16), default="pending")  # pending | sent | failed
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(UTCDateTime)
    claim_token: Mapped[str | None] = mapped_column(String(32))
    claimed_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_error: Mapped[str | None] = mapped_column(Text)  # never a URL, a secret or a body
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
