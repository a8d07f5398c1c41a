"""What runs when a job has ended: listeners the layers above register (alerts).

The sync engine cannot import the services; they register here (`on_job_end`) when imported,
and the run boundary calls `job_ended` once a run ended its job. A listener's failure is logged
by its type and never changes how the job ended.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Callable

from audience_sync.sync.context import SyncService

log = logging.getLogger(__name__)

JobEnded = Callable[[SyncService, int, uuid.UUID], None]
_LISTENERS: list[JobEnded] = []


def on_job_end(listener: JobEnded) -> None:
    """Call `listener(service, tenant_id, job_id)` after each job a run ended (once)."""
    if listener not in _LISTENERS:
        _LISTENERS.append(listener)


async def job_ended(service: SyncService, tenant_id: int, job_id: uuid.UUID) -> None:
    """Run the listeners off the event loop (they may send alerts over the network)."""
    for listener in list(_LISTENERS):
        try:
            await asyncio.to_thread(listener, service, tenant_id, job_id)
        except Exception as exc:  # the type only: a message could quote data
            log.error("job %s: a job-end listener failed: %s", job_id, type(exc).__name__)
