"""The distributed mode: Celery workers run sync jobs, Celery beat sends the tick.

The database stays the queue of record; a message only says "look at job X":
- a job is a row (`pending`, due at `next_retry_at`) before any message names it, so a message
  lost with a broker restart costs nothing: every tick sends each due pending job again;
- `start_job` claims a job for one worker only, and only once it is due, so a duplicate or late
  message (a job sent by two ticks, a retry's earlier attempt) does nothing;
- messages are acknowledged when a worker takes them (Celery's default). A worker that dies
  mid-job leaves its job `running`; the tick's reaper fails it once the lease runs out and
  queues a job that resumes from the snapshot. Late acknowledgement would redeliver instead,
  but a sync can outlast RabbitMQ's `consumer_timeout` (30 min) and Redis' visibility timeout
  (1 h), which would then run it twice;
- any number of beats may run: due audiences are claimed with `FOR UPDATE SKIP LOCKED`;
- what a tick sends expires (`message_lifetime`): the next tick sends every job still pending
  again, so an older message is only a duplicate. Without it, a backlog (200 due audiences on
  one worker, ticks every few seconds) filled the queue with hundreds of stale messages and
  ticks, each run in turn, and a job queued late (a reaped job's resumption) waited behind
  them all. The API's own sends do not expire: they are the only message until a tick.

The Celery app is built from the settings by `make_celery`; tasks find their `SyncService`
with `worker_service`, built once per worker process (after the fork, never inherited).
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from functools import cache
from typing import Any

from celery import Celery, Task
from kombu.utils.url import maybe_sanitize_url

from audience_sync.config import Settings, load_settings
from audience_sync.exceptions import ConfigurationError
from audience_sync.log import configure_logging
from audience_sync.scheduler.tick import upkeep
from audience_sync.services import alerts
from audience_sync.services.database import open_engine
from audience_sync.sync.confirm import confirm_due
from audience_sync.sync.runner import SyncService, run_job
from audience_sync.sync.service import build_service

log = logging.getLogger(__name__)

TICK = "audience_sync.tick"
RUN_JOB = "audience_sync.run_job"
# Publishing gives up after ~2 s when the broker is down: the job is already queued in the
# database, so the next tick sends it (the caller is never stuck on a dead broker).
PUBLISH_RETRY = {"max_retries": 3, "interval_start": 0, "interval_step": 0.5, "interval_max": 1}
# A message a tick sends is worth running for two ticks, at least a minute (the hosts' clocks
# may differ by seconds: Celery compares the sender's expiry with the worker's clock).
MIN_MESSAGE_LIFETIME = 60.0
NO_BROKER = (
    "No broker: set AUDIENCE_SYNC_BROKER_URL to a Redis (redis://127.0.0.1:6379/0) or RabbitMQ "
    "(amqp://guest:guest@127.0.0.1:5672//) URL to run workers. Without one, "
    "`audience-sync serve` runs the syncs itself."
)


def make_celery(settings: Settings) -> Celery:
    """The Celery app of these settings, with its two tasks and the beat schedule."""
    if not settings.broker_url:
        raise ConfigurationError(NO_BROKER)
    app = Celery("audience_sync", broker=settings.broker_url, set_as_current=False)
    app.conf.update(
        task_default_queue=settings.celery_queue,
        task_serializer="json",
        accept_content=["json"],
        task_ignore_result=True,  # the outcome is the job's row, not a result backend
        worker_prefetch_multiplier=1,  # a long sync never holds other jobs' messages back
        worker_hijack_root_logger=False,  # our logging (redaction included) stays in place
        broker_connection_retry_on_startup=True,
        broker_connection_timeout=2,
        timezone="UTC",
        beat_schedule={
            "tick": {
                "task": TICK,
                "schedule": float(settings.scheduler_tick_seconds),
                # A tick that waited behind syncs is superseded by a later one.
                "options": {"expires": message_lifetime(settings)},
            },
        },
        # In memory, no schedule file: several beats on one host would share (and could
        # corrupt) a shelve file, and nothing is lost by forgetting when the last tick went out
        # (a restarted beat ticks at once; a tick is safe at any time).
        beat_scheduler="celery.beat:Scheduler",
    )
    app.task(name=TICK, bind=True)(tick)
    app.task(name=RUN_JOB)(run)
    return app


def message_lifetime(settings: Settings) -> float:
    """Seconds a tick's message stays worth running (see the module's docstring)."""
    return max(2.0 * settings.scheduler_tick_seconds, MIN_MESSAGE_LIFETIME)


def broker_label(settings: Settings) -> str:
    """The broker URL without its password, for messages."""
    return str(maybe_sanitize_url(settings.broker_url))


@cache
def worker_service() -> SyncService:
    """This worker process's sync engine, from the environment's settings."""
    settings = load_settings()
    configure_logging(settings.log_level, json=settings.environment == "production")
    return build_service(settings, open_engine(settings))


def tick(task: Task[Any, Any]) -> dict[str, int]:
    """Beat's task: reap silent jobs, queue due audiences, read due confirmations, send every
    due job to a worker."""
    return dispatch_due(worker_service(), task.app)


def run(tenant_id: int, job_id: str) -> str | None:
    """A worker's task: run one job to its end (nothing when another worker has it)."""
    try:
        job = asyncio.run(run_job(worker_service(), tenant_id, uuid.UUID(job_id)))
    except Exception as exc:  # not claimed, or its failure not recorded: left to the reaper
        # The type only: Celery would log the message, which can quote SQL parameters.
        log.error("sync job %s stopped by %s", job_id, type(exc).__name__)
        return None
    return None if job is None else job.status.value


def dispatch_due(service: SyncService, app: Celery) -> dict[str, int]:
    """One tick of the distributed scheduler: as `tick.process_audience_sync_queue`, but the due
    jobs are sent to the workers instead of run here."""
    done, due = upkeep(service)
    lifetime = message_lifetime(service.settings)
    sent = sum(send_job(app, tenant_id, job_id, expires=lifetime) for tenant_id, job_id in due)
    # Status reads are short and bounded by their budget: the tick reads them itself.
    confirmed = asyncio.run(confirm_due(service))
    sent_alerts = alerts.upkeep(service)
    report = {
        "reaped": len(done.reaped),
        "queued": done.queued,
        "due": len(due),
        "sent": sent,
        "confirmations": confirmed.jobs,
        "status_reads": confirmed.reads,
        "alerts_sent": sent_alerts.get("sent", 0),
    }
    log.info("distributed tick: %s", report)
    return report


def send_job(app: Celery, tenant_id: int, job_id: uuid.UUID, expires: float | None = None) -> bool:
    """Ask a worker to run the job (a worker drops the message unrun once `expires` seconds
    have passed); False (logged) when the broker cannot take it now, in which case the job
    waits in the database for the next tick."""
    try:
        app.send_task(
            RUN_JOB, args=(tenant_id, str(job_id)), retry_policy=PUBLISH_RETRY, expires=expires
        )
    except Exception as exc:  # kombu raises the transport's own errors
        log.warning(
            "could not send sync job %s to the broker (%s); the next tick sends it again",
            job_id,
            type(exc).__name__,
        )
        return False
    return True


def worker_argv(settings: Settings, concurrency: int, pool: str) -> list[str]:
    """`celery worker` arguments for these settings."""
    return [
        "worker",
        f"--loglevel={settings.log_level}",
        f"--concurrency={concurrency}",
        f"--pool={pool}",
        f"--queues={settings.celery_queue}",
        "--without-gossip",  # workers need not know each other: the database coordinates
        "--without-mingle",
    ]


def beat_argv(settings: Settings) -> list[str]:
    return ["beat", f"--loglevel={settings.log_level}"]


def start(app: Celery, argv: list[str]) -> Any:
    """Run `celery worker` or `celery beat` in this process until it is stopped."""
    if argv[0] == "worker":
        return app.worker_main(argv)
    return app.start(argv)
