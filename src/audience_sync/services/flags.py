"""Feature flags as a request meets them: each tenant's effective value, beneath the operator's."""

from __future__ import annotations

from typing import Literal

from sqlalchemy.orm import Session, sessionmaker

from audience_sync.config import FeatureFlag, FeatureFlags, Settings
from audience_sync.connectors.registry import sync_flags
from audience_sync.domain.models import SyncPlatform
from audience_sync.exceptions import FeatureDisabledError
from audience_sync.store.db import transaction
from audience_sync.store.repositories import FeatureFlagRepository

__all__ = [
    "changes_for",
    "effective",
    "raised_above_operator",
    "read",
    "require",
    "require_sync",
    "sources",
    "sync_flags",
    "write",
]


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


FlagSource = Literal["operator", "tenant", "default"]


def sources(values: FlagValues, operator: FeatureFlags) -> dict[FeatureFlag, FlagSource]:
    """Where each flag's value comes from: `operator` (the service's settings: a ceiling it
    turned off, or a value it set that the tenant did not override), `tenant` (an override) or
    `default`."""
    overrides, _ = values
    ceiling = operator.operator_off()
    chosen = operator.set_by_operator()
    found: dict[FeatureFlag, FlagSource] = {
        flag: (
            "operator"
            if flag in ceiling or (flag in chosen and flag not in overrides)
            else "tenant"
            if flag in overrides
            else "default"
        )
        for flag in FeatureFlag
    }
    return found


def raised_above_operator(
    changes: dict[FeatureFlag, bool | None], operator: FeatureFlags
) -> FeatureFlag | None:
    """The first flag `changes` turn on that the operator turned off (refused before anything
    is stored: a tenant cannot lift the operator's ceiling), else None."""
    ceiling = operator.operator_off()
    return next((f for f, on in changes.items() if on and f in ceiling), None)


def changes_for(
    wanted: dict[FeatureFlag, bool], operator: FeatureFlags
) -> dict[FeatureFlag, bool | None]:
    """The overrides that give the tenant the `wanted` values (a form of checkboxes): a value
    equal to the operator's default clears the override, another sets it; flags under the
    operator's ceiling are left out (they cannot change)."""
    defaults = operator.as_dict()
    ceiling = operator.operator_off()
    return {
        flag: None if on == defaults[flag] else on
        for flag, on in wanted.items()
        if flag not in ceiling
    }
