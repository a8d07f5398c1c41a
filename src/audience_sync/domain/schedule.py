"""An audience's schedule: which intervals it may use and when its next sync is due.

The one place these rules live: creating and changing an audience, the scheduler queueing a due
one, and a finished sync all move `next_sync_at` with `next_sync_at` below.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from audience_sync.domain.models import SYNC_INTERVALS_HOURS
from audience_sync.exceptions import ValidationError


def check_interval(hours: int, min_interval_hours: int) -> int:
    """A schedule: one of 1, 6, 12, 24, 168 hours, and at least the configured minimum."""
    allowed = [h for h in SYNC_INTERVALS_HOURS if h >= min_interval_hours]
    if hours not in allowed:
        raise ValidationError(
            f"sync_interval_hours must be one of {', '.join(map(str, allowed))} (got {hours})."
        )
    return hours


def next_sync_at(base: datetime, interval_hours: int, auto_sync: bool = True) -> datetime | None:
    """One interval after `base` (the last sync, or now); None for a manual-only audience."""
    return base + timedelta(hours=interval_hours) if auto_sync else None
