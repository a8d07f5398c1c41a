"""The platform registry: everything the rest of the service knows of a platform, in one entry.

A platform is one package under `connectors/` (its connector, record shape, error table and
messages) and one `PlatformSpec` registered here. The API, the CLI, the sync engine and the
tests read the registry instead of listing the platforms themselves, so a new platform is its
package plus `register_platform(SPEC)` (the built-ins are registered by `connectors/__init__`;
a test registers its own, see `tests/fake_platform/`). An unknown platform is always an
`exceptions.UnknownPlatformError`, never another platform's behaviour.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from audience_sync.config import FeatureFlag
from audience_sync.connectors.base import BaseAudienceConnector, Capabilities
from audience_sync.connectors.columnar import RecordShape
from audience_sync.domain.platforms import register_platform_key, unregister_platform_key
from audience_sync.exceptions import ConfigurationError, UnknownPlatformError
from audience_sync.identifiers.platforms import (
    PlatformRules,
    register_rules,
    unregister_rules,
)


@dataclass(frozen=True)
class MembershipLifetime:
    """How long a platform keeps a member after its last upload, set per audience.

    `option` is the audience option holding the days (what the connector sends on create);
    `default_days` applies when the option is unset; `forever` is the value that means "never
    expires" (Snapchat's 9999), and None days mean the same. `source` names the reference page.
    """

    option: str
    default_days: int | None
    max_days: int | None = None
    forever: int | None = None
    source: str = ""

    def of(self, options: Mapping[str, Any] | None) -> timedelta | None:
        """The lifetime of an audience with these options; None: its members never expire."""
        raw = (options or {}).get(self.option, self.default_days)
        if raw is None or raw == "":
            return None
        days = int(raw)
        if self.forever is not None and days >= self.forever:
            return None
        return timedelta(days=days)


@dataclass(frozen=True)
class InactivityRule:
    """A platform deletes an audience nobody used for `after` (`what` says what "used" means).
    We cannot see ad-set usage, so the deadline counts from the last use we know of, else from
    the audience's creation (`inactivity_deadline`)."""

    after: timedelta
    what: str
    source: str = ""


@dataclass(frozen=True)
class PlatformSpec:
    """One platform, as the service sees it.

    `key` is the value stored in the database and sent over the API (a `SyncPlatform` member
    for the built-ins; a platform registered later brings a `StrEnum` member of its own, which
    behaves alike: `.value`, equality with its string). `variants` picks another connector
    class by an audience option (Google's Ads API path: `{"google_api": {"ads": cls}}`).
    """

    key: StrEnum
    display_name: str
    connector: type[BaseAudienceConnector]
    rules: PlatformRules  # its normalization (`identifiers.platforms`)
    # The `Settings` attribute holding its API address (`AUDIENCE_SYNC_<NAME>_BASE_URL`); None:
    # no setting, the connector's `default_base_url` alone.
    base_url_setting: str | None = None
    flag: FeatureFlag | None = None  # its own feature flag; None: `audience_sync` alone
    connection_settings: frozenset[str] = frozenset()  # its non-secret connection settings
    size_note: str = ""  # what its reported audience size means (health checks)
    variants: Mapping[str, Mapping[str, type[BaseAudienceConnector]]] = field(default_factory=dict)
    # Freshness (docs/freshness.md): how long members stay after their last upload, and when an
    # unused audience is deleted; None: the platform documents no such rule.
    membership: MembershipLifetime | None = None
    inactivity: InactivityRule | None = None

    def membership_lifetime(self, options: Mapping[str, Any] | None) -> timedelta | None:
        """How long the platform keeps a member of an audience with these options after its
        last confirmed upload; None: members never expire."""
        return None if self.membership is None else self.membership.of(options)

    def inactivity_deadline(
        self, created_at: datetime, last_used_at: datetime | None = None
    ) -> datetime | None:
        """When the platform may delete the audience for inactivity, counted from its last known
        use (else its creation); None: the platform documents no such deletion."""
        if self.inactivity is None:
            return None
        return (last_used_at or created_at) + self.inactivity.after

    @property
    def name(self) -> str:
        return self.key.value

    @property
    def capabilities(self) -> Capabilities:
        return self.connector.CAPABILITIES

    @property
    def shape(self) -> RecordShape:
        """How the sync engine builds its records in columns (`connectors.columnar`)."""
        return self.connector.RECORD_SHAPE

    def connector_class(self, options: Mapping[str, Any] | None = None) -> type[Any]:
        """The connector class for an audience's options (a variant's, where one is chosen)."""
        for option, classes in self.variants.items():
            chosen = str((options or {}).get(option))
            if chosen in classes:
                return classes[chosen]
        return self.connector


_SPECS: dict[str, PlatformSpec] = {}


def register_platform(spec: PlatformSpec) -> Callable[[], None]:
    """Add a platform; returns the function that takes it out again (tests). A name taken by
    another spec is refused: one platform, one entry."""
    found = _SPECS.get(spec.name)
    if found is not None and found is not spec:
        raise ConfigurationError(f"Platform {spec.name!r} is already registered")
    _SPECS[spec.name] = spec
    register_platform_key(spec.key)
    register_rules(spec.name, spec.rules)

    def unregister() -> None:
        if _SPECS.get(spec.name) is spec:
            del _SPECS[spec.name]
            unregister_platform_key(spec.key)
            unregister_rules(spec.name)

    return unregister


def platform_spec(platform: object) -> PlatformSpec:
    """The spec of a platform, by its key or name; `UnknownPlatformError` for any other."""
    spec = _SPECS.get(str(platform))
    if spec is None:
        known = ", ".join(_SPECS) or "none"
        raise UnknownPlatformError(f"Unknown platform {platform!r} (registered: {known})")
    return spec


def platforms() -> Iterator[PlatformSpec]:
    """Every registered platform, built-ins first, in the order they were registered."""
    return iter(list(_SPECS.values()))


def platform_names() -> tuple[str, ...]:
    return tuple(_SPECS)


def sync_flags(platform: object) -> tuple[FeatureFlag, ...]:
    """The feature flags a sync on this platform needs: `audience_sync` and its own, if any."""
    own = platform_spec(platform).flag
    return (FeatureFlag.AUDIENCE_SYNC,) if own is None else (FeatureFlag.AUDIENCE_SYNC, own)
