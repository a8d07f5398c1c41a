"""Feature flags as a request meets them: each tenant's effective value, beneath the operator's."""

from __future__ import annotations

from sqlalchemy.orm import Session, sessionmaker

from audience_sync.config import FeatureFlag, FeatureFlags, Settings
from audience_sync.connectors.registry import sync_flags
from audience_sync.domain.models import SyncPlatform
from audience_sync.exceptions import FeatureDisabledError
from audience_sync.store.db import transaction
from audience_sync.store.repositories import FeatureFlagRepository

__all__ = ["effective", "read", "require", "require_sync", "sync_flags", "write"]


def effective(session: Session, tenant_id: int, operator: FeatureFlags) -> dict[FeatureFlag, bool]:
    """Every flag's value for the tenant: its override over the default, under the operator's
    ceiling (`FeatureFlagRepository.effective`)."""
    return FeatureFlagRepository(session, tenant_id).effective(operator)


def require(session: Session, tenant_id: int, settings: Settings, *flags: FeatureFlag) -> None:
    """`FeatureDisabledError` naming the first of `flags` that is off for the tenant."""
    on = effective(session, tenant_id, settings.feature_flags)
    for flag in flags:
        if not on[flag]:
            by_operator = flag in settings.feature_flags.operator_off()
            raise FeatureDisabledError(flag.value, by_operator=by_operator)


def require_sync(
    session: Session, tenant_id: int, settings: Settings, platform: SyncPlatform
) -> None:
    """The flags a sync on `platform` needs (the runner checks the same pair when it runs)."""
    require(session, tenant_id, settings, *sync_flags(platform))


def overrides(session: Session, tenant_id: int) -> dict[FeatureFlag, bool]:
    return FeatureFlagRepository(session, tenant_id).overrides()


def set_overrides(
    session: Session, tenant_id: int, changes: dict[FeatureFlag, bool | None]
) -> None:
    """Set (true/false) or clear (None) the tenant's overrides; flags not named are unchanged.
    Turning on a flag the operator turned off is the caller's to refuse first."""
    repo = FeatureFlagRepository(session, tenant_id)
    for flag, enabled in changes.items():
        repo.set(flag, enabled)
    session.flush()


FlagValues = tuple[dict[FeatureFlag, bool], dict[FeatureFlag, bool]]


def read(factory: sessionmaker[Session], tenant_id: int, operator: FeatureFlags) -> FlagValues:
    """The tenant's overrides and every flag's effective value."""
    with transaction(factory) as session:
        return overrides(session, tenant_id), effective(session, tenant_id, operator)


def write(
    factory: sessionmaker[Session],
    tenant_id: int,
    changes: dict[FeatureFlag, bool | None],
    operator: FeatureFlags,
) -> FlagValues:
    """Store the changes (see `set_overrides`); the values after them."""
    with transaction(factory) as session:
        set_overrides(session, tenant_id, changes)
        return overrides(session, tenant_id), effective(session, tenant_id, operator)
