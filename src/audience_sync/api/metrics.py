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
from sqlalchemy.orm import Session, sessionmaker

from audience_sync.domain.models import SyncStatus
from audience_sync.services import jobs

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
        rows = jobs.totals_by_platform(session)
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
        rows = jobs.durations_by_platform(session, DURATION_BUCKETS)
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
