"""The distributed mode's Celery app, built from the settings (no broker needed)."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import pytest

from audience_sync.config import Settings
from audience_sync.exceptions import ConfigurationError
from audience_sync.scheduler import distributed
from audience_sync.scheduler.distributed import (
    RUN_JOB,
    TICK,
    broker_label,
    make_celery,
    worker_argv,
)
from audience_sync.scheduler.tick import TickReport

BROKER = "amqp://sync:s3cret-pass@rabbit.internal:5672//"


def settings(tmp_path: Path, **more: object) -> Settings:
    return Settings(var_dir=tmp_path, broker_url=BROKER, **more)  # type: ignore[arg-type]


def test_without_a_broker_the_error_says_what_to_set(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="AUDIENCE_SYNC_BROKER_URL") as raised:
        make_celery(Settings(var_dir=tmp_path))
    assert "audience-sync serve" in str(raised.value)


def test_the_app_routes_to_the_queue_ticks_on_schedule_and_acks_on_receipt(
    tmp_path: Path,
) -> None:
    app = make_celery(settings(tmp_path, scheduler_tick_seconds=120, celery_queue="prod-sync"))
    conf = app.conf
    assert conf.task_default_queue == "prod-sync"
    assert conf.beat_schedule["tick"] == {
        "task": TICK,
        "schedule": 120.0,
        "options": {"expires": 240.0},  # a tick queued behind syncs is superseded by the next
    }
    assert conf.beat_scheduler == "celery.beat:Scheduler"  # no schedule file to share
    # Acknowledged when taken: a sync can outlast the broker's redelivery timeouts (see module).
    assert not conf.task_acks_late
    assert conf.worker_prefetch_multiplier == 1
    assert conf.accept_content == ["json"]
    assert {TICK, RUN_JOB} <= set(app.tasks)


def test_the_broker_password_is_never_shown(tmp_path: Path) -> None:
    shown = broker_label(settings(tmp_path))
    assert "s3cret-pass" not in shown
    assert "rabbit.internal:5672" in shown


def test_the_worker_listens_on_its_queue_only(tmp_path: Path) -> None:
    argv = worker_argv(settings(tmp_path, celery_queue="q1"), 3, "prefork")
    assert argv[0] == "worker"
    assert {"--queues=q1", "--concurrency=3", "--pool=prefork"} <= set(argv)


def test_a_job_that_breaks_on_a_worker_logs_the_error_type_only(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    async def broken(*_: object) -> None:
        raise RuntimeError("INSERT … ('jane@example.com')")

    monkeypatch.setattr(distributed, "worker_service", lambda: None)
    monkeypatch.setattr(distributed, "run_job", broken)
    job_id = "6f1c1c4e-0000-4000-8000-000000000001"
    assert distributed.run(1, job_id) is None
    assert f"sync job {job_id} stopped by RuntimeError" in caplog.text
    assert "jane@example.com" not in caplog.text


def test_what_a_tick_sends_expires_and_what_the_api_sends_does_not(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Regression: every tick sends each due pending job again, so with a backlog (200 due
    audiences on one worker, ticks every 2 s) the queue held hundreds of stale messages, each run
    in turn, and a reaped job's resumption waited behind them all (docs/performance.md, "Many
    audiences, many workers"). A tick's messages now expire; a later tick has sent them again."""
    app = make_celery(settings(tmp_path, scheduler_tick_seconds=2))
    sent: list[dict[str, Any]] = []
    monkeypatch.setattr(app, "send_task", lambda name, **kwargs: sent.append(kwargs))
    job_id = uuid.uuid4()
    report = TickReport()
    monkeypatch.setattr(distributed, "upkeep", lambda service: (report, [(1, job_id)]))

    async def nothing_to_confirm(service: object) -> Any:
        return type("Confirmed", (), {"jobs": 0, "reads": 0})()

    monkeypatch.setattr(distributed, "confirm_due", nothing_to_confirm)
    monkeypatch.setattr(distributed.alerts, "upkeep", lambda service: {})
    service = type("Service", (), {"settings": settings(tmp_path, scheduler_tick_seconds=2)})()
    assert distributed.dispatch_due(service, app)["sent"] == 1  # type: ignore[arg-type]
    assert sent[0]["args"] == (1, str(job_id))
    assert sent[0]["expires"] == distributed.MIN_MESSAGE_LIFETIME  # 2 ticks, at least a minute
    assert distributed.send_job(app, 1, job_id)  # the API's: the only message until a tick
    assert sent[1]["expires"] is None
