"""`/metrics` for Prometheus, read from the jobs table at scrape time.

The database is the record of every sync whichever process ran it (API, scheduler, CLI, another
machine), so figures are aggregated there rather than counted in one process's memory. No
tenant label: the endpoint is for operators, and one tenant's figures are nobody else's.
"""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client import CollectorRegistry
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector
from sqlalchemy import case, func, select
from sqlalchemy.orm import Session, sessionmaker

from audience_sync.domain.models import SyncStatus
from audience_sync.store.tables import AudienceSyncJob, PlatformAudience

FINISHED = (SyncStatus.COMPLETED, SyncStatus.FAILED, SyncStatus.CANCELLED)
DURATION_BUCKETS = (1, 5, 15, 60, 300, 900, 3600)  # seconds
OUTCOMES = ("sent", "added", "removed", "failed")


class SyncJobsCollector(Collector):
    def __init__(self, factory: sessionmaker[Session]) -> None:
        self.factory = factory

    def collect(self) -> Iterator[Metric]:
        with self.factory() as session:
            yield from self._jobs(session)
            yield from self._durations(session)

    def _jobs(self, session: Session) -> Iterator[Metric]:
        platform = PlatformAudience.platform
        job = AudienceSyncJob
        rows = session.execute(
            select(
                platform,
                job.status,
                func.count(),
                func.coalesce(func.sum(job.profiles_sent), 0),
                func.coalesce(func.sum(job.profiles_added), 0),
                func.coalesce(func.sum(job.profiles_removed), 0),
                func.coalesce(func.sum(job.profiles_failed), 0),
                func.coalesce(func.sum(case((job.attempt > 1, job.attempt - 1), else_=0)), 0),
            )
            .join(PlatformAudience, PlatformAudience.id == job.platform_audience_id)
            .where(job.dry_run.is_(False))
            .group_by(platform, job.status)
        ).all()
        active = GaugeMetricFamily(
            "audience_sync_jobs", "Sync jobs now pending or running.", labels=["platform", "status"]
        )
        finished = CounterMetricFamily(
            "audience_sync_syncs",
            "Sync jobs that ended, by platform and outcome (dry runs excluded).",
            labels=["platform", "status"],
        )
        profiles = CounterMetricFamily(
            "audience_sync_profiles",
            "Profiles sent, added, removed and failed by syncs.",
            labels=["platform", "outcome"],
        )
        retries = CounterMetricFamily(
            "audience_sync_retries", "Job-level retries of transient failures.", labels=["platform"]
        )
        totals: dict[str, list[int]] = {}
        retried: dict[str, int] = {}
        for name, status, count, sent, added, removed, failed, again in rows:
            family = finished if status in FINISHED else active
            family.add_metric([name.value, status.value], int(count))
            sums = totals.setdefault(name.value, [0, 0, 0, 0])
            for index, value in enumerate((sent, added, removed, failed)):
                sums[index] += int(value)
            retried[name.value] = retried.get(name.value, 0) + int(again)
        for name, sums in sorted(totals.items()):
            for outcome, value in zip(OUTCOMES, sums, strict=True):
                profiles.add_metric([name, outcome], value)
            retries.add_metric([name], retried[name])
        yield from (active, finished, profiles, retries)

    def _durations(self, session: Session) -> Iterator[Metric]:
        job = AudienceSyncJob
        buckets = [
            func.sum(case((job.duration_ms <= limit * 1000, 1), else_=0))
            for limit in DURATION_BUCKETS
        ]
        rows = session.execute(
            select(
                PlatformAudience.platform,
                func.count(),
                func.coalesce(func.sum(job.duration_ms), 0),
                *buckets,
            )
            .join(PlatformAudience, PlatformAudience.id == job.platform_audience_id)
            .where(
                job.status == SyncStatus.COMPLETED,
                job.dry_run.is_(False),
                job.duration_ms.is_not(None),
            )
            .group_by(PlatformAudience.platform)
        ).all()
        histogram = HistogramMetricFamily(
            "audience_sync_sync_duration_seconds",
            "How long completed syncs took.",
            labels=["platform"],
        )
        for name, count, total_ms, *cumulative in rows:
            points = [
                (str(float(limit)), float(n or 0))
                for limit, n in zip(DURATION_BUCKETS, cumulative, strict=True)
            ]
            points.append(("+Inf", float(count)))
            histogram.add_metric([name.value], points, sum_value=int(total_ms) / 1000)
        yield histogram


def registry_for(factory: sessionmaker[Session]) -> CollectorRegistry:
    """A registry of the app's own (not the process-global one, so apps can coexist)."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(SyncJobsCollector(factory))
    return registry
