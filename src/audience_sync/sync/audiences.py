"""The engine's rules about an audience's life: nothing is queued for a deleted one, and when a
platform may delete it for inactivity (docs/freshness.md).

Creating, changing and purging audiences are the application's (`services.audiences`)."""

from __future__ import annotations

from datetime import datetime

from audience_sync.connectors.registry import platform_spec
from audience_sync.exceptions import ValidationError
from audience_sync.store.tables import PlatformAudience


class AudienceDeletedError(ValidationError):
    """The audience was deleted: nothing can be queued for it any more."""

    def __init__(self, name: str) -> None:
        super().__init__(f"Audience {name!r} was deleted; create a new one.")


def inactivity_deadline(audience: PlatformAudience) -> datetime | None:
    """When the platform may delete this audience for inactivity (Meta: custom audiences not
    used in any active ad set for over two years), or None: the platform documents no such
    deletion, or the audience is not on the platform yet.

    Counted from the audience's creation here: we cannot see which ad sets use it, and an
    upload is not a use (the rule speaks of ad sets), so the deadline is the earliest the
    platform could act. For the alerts: raise "about to be deleted for inactivity" when the
    deadline is near (e.g. within 30 days) and the audience is active."""
    if audience.platform_audience_id is None or audience.created_at is None:
        return None
    return platform_spec(audience.platform).inactivity_deadline(audience.created_at)
