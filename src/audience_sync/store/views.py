"""Plain-data views of audiences and jobs (every field of their models), for CLI and API."""

from __future__ import annotations

from datetime import datetime
from enum import Enum
from typing import Any

from audience_sync.store.tables import AudienceSyncJob, PlatformAudience

AUDIENCE_FIELDS = (
    "id", "tenant_id", "segment_id", "platform", "platform_audience_id", "platform_audience_name",
    "ad_account_id", "description", "auto_sync", "sync_interval_hours", "next_sync_at",
    "is_active", "last_sync_at", "last_sync_status", "last_sync_error", "platform_size",
    "matched_size", "match_rate",
)  # fmt: skip
JOB_FIELDS = (
    "id", "tenant_id", "platform_audience_id", "operation", "status", "profiles_sent",
    "profiles_added", "profiles_removed", "profiles_failed", "profiles_refreshed", "match_rate",
    "started_at",
    "completed_at", "duration_ms", "error_message", "triggered_by", "triggered_by_user_id",
    "dry_run", "attempt", "next_retry_at", "created_at", "details", "confirmation",
    "confirmation_next_at", "confirmation_checks",
)  # fmt: skip


def audience_view(audience: PlatformAudience) -> dict[str, Any]:
    return {name: _plain(getattr(audience, name)) for name in AUDIENCE_FIELDS}


def job_view(job: AudienceSyncJob) -> dict[str, Any]:
    return {name: _plain(getattr(job, name)) for name in JOB_FIELDS}


def _plain(value: Any) -> Any:
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, datetime):
        return value.isoformat()
    if value is not None and type(value).__name__ == "UUID":
        return str(value)
    return value
