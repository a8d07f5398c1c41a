"""Repositories: tenant scoping by construction, API keys, connections, feature flags."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest
from cryptography.fernet import Fernet
from sqlalchemy import event, select
from sqlalchemy.orm import Session, sessionmaker

from audience_sync.config import FeatureFlag, FeatureFlags
from audience_sync.crypto import CredentialCipher
from audience_sync.domain.models import SyncOperation, SyncPlatform, SyncStatus, TriggeredBy
from audience_sync.exceptions import NotFoundError, ValidationError
from audience_sync.store import api_keys
from audience_sync.store.db import transaction
from audience_sync.store.repositories import (
    DEFAULT_TENANT_SLUG,
    ApiKeyRepository,
    AudienceRepository,
    ConnectionRepository,
    FeatureFlagRepository,
    SegmentRepository,
    SyncJobRepository,
    TenantRepository,
)
from audience_sync.store.tables import ApiKey, AudienceSyncJob, PlatformAudience, PlatformConnection


def two_tenants(factory: sessionmaker[Session]) -> tuple[int, int]:
    with transaction(factory) as session:
        tenants = TenantRepository(session)
        return tenants.create("acme").id, tenants.create("globex", default_region="gb").id


def test_the_default_tenant_exists_on_first_use(factory: sessionmaker[Session]) -> None:
    with transaction(factory) as session:
        tenant = TenantRepository(session).get(DEFAULT_TENANT_SLUG)
        assert tenant.default_region == "US"
    with transaction(factory) as session:
        assert TenantRepository(session).get(DEFAULT_TENANT_SLUG).id == tenant.id


def test_an_unknown_tenant_says_how_to_create_it(factory: sessionmaker[Session]) -> None:
    with transaction(factory) as session, pytest.raises(NotFoundError, match="tenants create"):
        TenantRepository(session).get("nobody")


def test_another_tenants_segment_is_not_found(factory: sessionmaker[Session]) -> None:
    acme, globex = two_tenants(factory)
    with transaction(factory) as session:
        segment = SegmentRepository(session, acme).create("VIP")
    with transaction(factory) as session:
        assert SegmentRepository(session, acme).get(segment.id).name == "VIP"
        with pytest.raises(NotFoundError):
            SegmentRepository(session, globex).get(segment.id)
        assert SegmentRepository(session, globex).summaries() == []
        assert SegmentRepository(session, globex).by_name("VIP") is None


def test_segment_names_are_unique_per_tenant_only(factory: sessionmaker[Session]) -> None:
    acme, globex = two_tenants(factory)
    with transaction(factory) as session:
        SegmentRepository(session, acme).create("VIP")
        SegmentRepository(session, globex).create("VIP")
        with pytest.raises(ValidationError, match="already exists"):
            SegmentRepository(session, acme).create("VIP")


def test_api_keys_are_stored_hashed_and_authenticate_their_tenant(
    factory: sessionmaker[Session],
) -> None:
    acme, _ = two_tenants(factory)
    with transaction(factory) as session:
        key = ApiKeyRepository(session).issue(acme)
    with transaction(factory) as session:
        stored = session.scalars(select(ApiKey)).one()
        assert key not in (stored.key_hash, stored.prefix)
        assert stored.key_hash != key
        assert ApiKeyRepository(session).authenticate(key) == acme
        assert ApiKeyRepository(session).authenticate(key + "x") is None


def test_authenticating_writes_the_keys_last_use_at_most_once_a_minute(
    factory: sessionmaker[Session], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every API request authenticates: a write each time made every request wait for a WAL
    flush and for the key's row lock (the API under load, docs/performance.md)."""
    acme, _ = two_tenants(factory)
    with transaction(factory) as session:
        key = ApiKeyRepository(session).issue(acme)
    start = now = datetime(2026, 12, 5, 12, 0, tzinfo=UTC)
    monkeypatch.setattr(api_keys, "utcnow", lambda: now)
    writes: list[str] = []

    def record(_conn: object, _cursor: object, statement: str, *_args: object) -> None:
        if statement.lstrip().upper().startswith("UPDATE API_KEYS"):
            writes.append(statement)

    engine = factory.kw["bind"]
    event.listen(engine, "before_cursor_execute", record)
    try:
        for seconds in (0, 1, 30, 59, 60, 61, 119):
            now = start + timedelta(seconds=seconds)
            with transaction(factory) as session:
                assert ApiKeyRepository(session).authenticate(key) == acme
    finally:
        event.remove(engine, "before_cursor_execute", record)
    assert len(writes) == 2  # the first use, then once the minute has passed (at 60 s)
    with transaction(factory) as session:
        stored = session.scalars(select(ApiKey)).one()
        assert stored.last_used_at == datetime(2026, 12, 5, 12, 1, tzinfo=UTC)


def test_connection_credentials_are_encrypted_at_rest(factory: sessionmaker[Session]) -> None:
    acme, globex = two_tenants(factory)
    cipher = CredentialCipher([Fernet.generate_key()])
    with transaction(factory) as session:
        ConnectionRepository(session, acme, cipher).put(
            SyncPlatform.META, "act_1", {"access_token": "EAAB-very-secret"}
        )
    with transaction(factory) as session:
        row = session.scalars(select(PlatformConnection)).one()
        assert "EAAB-very-secret" not in row.credentials_encrypted
        repo = ConnectionRepository(session, acme, cipher)
        assert repo.credentials(SyncPlatform.META) == {"access_token": "EAAB-very-secret"}
        with pytest.raises(NotFoundError, match="connect the account"):
            ConnectionRepository(session, globex, cipher).get(SyncPlatform.META)


def test_audiences_and_jobs_are_tenant_scoped(factory: sessionmaker[Session]) -> None:
    acme, globex = two_tenants(factory)
    with transaction(factory) as session:
        segment = SegmentRepository(session, acme).create("VIP")
        audience = AudienceRepository(session, acme).add(
            PlatformAudience(
                segment_id=segment.id,
                platform=SyncPlatform.GOOGLE,
                platform_audience_name="VIP",
                ad_account_id="123",
            )
        )
        job = SyncJobRepository(session, acme).add(
            AudienceSyncJob(
                platform_audience_id=audience.id,
                operation=SyncOperation.CREATE,
                triggered_by=TriggeredBy.MANUAL,
            )
        )
    with transaction(factory) as session:
        found = SyncJobRepository(session, acme).get(job.id)
        assert found.status is SyncStatus.PENDING
        assert found.profiles_sent == 0
        assert found.created_at.tzinfo is not None
        assert AudienceRepository(session, acme).get(audience.id).sync_interval_hours == 24
        with pytest.raises(NotFoundError):
            AudienceRepository(session, globex).get(audience.id)
        with pytest.raises(NotFoundError):
            SyncJobRepository(session, globex).get(job.id)
        assert SyncJobRepository(session, globex).for_audience(audience.id) == []
        with pytest.raises(NotFoundError):
            AudienceRepository(session, acme).get(uuid.uuid4())


def test_feature_flags_default_from_settings_and_override_per_tenant(
    factory: sessionmaker[Session],
) -> None:
    acme, globex = two_tenants(factory)
    # The operator turned exports off (a ceiling) and Meta on (a default tenants may lower).
    defaults = FeatureFlags(audience_export=False, audience_sync_meta=True)
    with transaction(factory) as session:
        FeatureFlagRepository(session, acme).set(FeatureFlag.AUDIENCE_EXPORT, True)
        FeatureFlagRepository(session, acme).set(FeatureFlag.AUDIENCE_SYNC_TIKTOK, False)
        FeatureFlagRepository(session, acme).set(FeatureFlag.AUDIENCE_SYNC_META, False)
    with transaction(factory) as session:
        acme_flags = FeatureFlagRepository(session, acme).effective(defaults)
        globex_flags = FeatureFlagRepository(session, globex).effective(defaults)
    assert acme_flags[FeatureFlag.AUDIENCE_EXPORT] is False  # the override cannot lift it
    assert acme_flags[FeatureFlag.AUDIENCE_SYNC_TIKTOK] is False
    assert acme_flags[FeatureFlag.AUDIENCE_SYNC_META] is False
    assert globex_flags[FeatureFlag.AUDIENCE_EXPORT] is False
    assert globex_flags[FeatureFlag.AUDIENCE_SYNC_TIKTOK] is True
    assert globex_flags[FeatureFlag.AUDIENCE_SYNC_META] is True
    with transaction(factory) as session:
        FeatureFlagRepository(session, acme).set(FeatureFlag.AUDIENCE_EXPORT, None)
    with transaction(factory) as session:
        assert FeatureFlagRepository(session, acme).overrides() == {
            FeatureFlag.AUDIENCE_SYNC_TIKTOK: False,
            FeatureFlag.AUDIENCE_SYNC_META: False,
        }
