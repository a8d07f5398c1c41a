"""What every request needs (settings, database, the sync engine) and how a queued job starts."""

from __future__ import annotations

import functools
from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from audience_sync.api.metrics import registry_for
from audience_sync.config import Settings
from audience_sync.services.launcher import CeleryLauncher, InProcessLauncher, JobLauncher
from audience_sync.sync.context import SyncService


def default_launcher(settings: Settings, service: SyncService) -> JobLauncher:
    """Celery workers with a broker; else this process (tests, embedding `create_app`): `serve`
    swaps in a `QueuedLauncher` (its syncs run in the embedded worker process)."""
    if not settings.broker_url:
        return InProcessLauncher(service)
    from audience_sync.scheduler.distributed import make_celery, send_job  # Celery: distributed

    return CeleryLauncher(functools.partial(send_job, make_celery(settings)))


@dataclass
class ApiContext:
    settings: Settings
    engine: Engine
    factory: sessionmaker[Session]
    service: SyncService
    launcher: JobLauncher
    registry: CollectorRegistry = field(init=False)

    def __post_init__(self) -> None:
        self.registry = registry_for(self.factory)
