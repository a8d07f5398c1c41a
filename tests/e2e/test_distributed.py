"""The distributed mode for real: `audience-sync worker` and two `audience-sync beat` processes
on the real Redis and the real RabbitMQ, PostgreSQL as the database, the sandbox on a socket.

Due audiences are synced exactly once however many beats tick, manual-only audiences never,
a sync asked for through the API runs on a worker, and a worker killed mid-sync loses nothing."""

from __future__ import annotations

import csv
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import kombu
import psutil
import pytest
from cryptography.fernet import Fernet
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session, sessionmaker

from audience_sync.api import create_app
from audience_sync.config import Settings
from audience_sync.crypto import CredentialCipher
from audience_sync.domain.models import SyncPlatform, SyncStatus
from audience_sync.sources.importer import import_profiles
from audience_sync.sources.members import member_batches
from audience_sync.store import db
from audience_sync.store.repositories import (
    ApiKeyRepository,
    AudienceRepository,
    ConnectionRepository,
    SegmentRepository,
    TenantRepository,
)
from audience_sync.store.snapshot import SnapshotRepository
from audience_sync.store.tables import AudienceSyncJob, PlatformAudience
from audience_sync.sync.members import users_of
from audience_sync.sync.service import build_service
from audience_sync.testing import PREFIXES, sandbox_server
from audience_sync.testing.support import expected_identifiers

pytestmark = [pytest.mark.slow, pytest.mark.parametrize("engine", ["postgresql"], indirect=True)]

MEMBERS = 400
KILLED_MEMBERS = 3_000
WAIT_SECONDS = 90


@pytest.fixture
def sandbox() -> Iterator[str]:
    with sandbox_server() as url:
        yield url


class Cluster:
    """Worker and beat processes on one broker queue of their own, and what they share."""

    def __init__(self, engine: Engine, broker: str, tmp_path: Path) -> None:
        self.engine = engine
        self.factory = db.session_factory(engine)
        self.broker = broker
        self.queue = f"audience-sync-test-{uuid.uuid4().hex[:8]}"
        self.key = Fernet.generate_key()
        self.tmp_path = tmp_path
        self.env = {
            **os.environ,
            "AUDIENCE_SYNC_DATABASE_URL": engine.url.render_as_string(hide_password=False),
            "AUDIENCE_SYNC_BROKER_URL": broker,
            "AUDIENCE_SYNC_CELERY_QUEUE": self.queue,
            "AUDIENCE_SYNC_SECRET_KEY": self.key.decode(),
            "AUDIENCE_SYNC_SCHEDULER_TICK_SECONDS": "1",
            "AUDIENCE_SYNC_VAR_DIR": str(tmp_path / "var"),
            "AUDIENCE_SYNC_ALLOW_CONNECTION_BASE_URL": "true",  # connections point at the sandbox
        }
        self.processes: list[tuple[subprocess.Popen[bytes], Path]] = []

    def settings(self) -> Settings:
        return Settings(
            environment="test",
            database_url=self.env["AUDIENCE_SYNC_DATABASE_URL"],
            broker_url=self.broker,
            celery_queue=self.queue,
            secret_key=self.key.decode(),
            var_dir=self.tmp_path / "var",
            allow_connection_base_url=True,
        )

    def start(self, *args: str) -> None:
        log = self.tmp_path / f"{args[0]}-{len(self.processes)}.log"
        command = [sys.executable, "-m", "audience_sync.cli", *args]
        with log.open("wb") as handle:
            process = subprocess.Popen(command, env=self.env, stdout=handle, stderr=handle)
        self.processes.append((process, log))

    def kill(self, number: int) -> None:
        """SIGKILL the `number`th process started and its children (a worker's pool) at once,
        as when its machine or container is lost."""
        process = psutil.Process(self.processes[number][0].pid)
        for one in [process, *process.children(recursive=True)]:
            one.kill()
        self.processes[number][0].wait()
        self.processes.pop(number)

    def logs(self) -> str:
        return "\n".join(f"--- {log.name}\n{log.read_text()[-3000:]}" for _, log in self.processes)

    def stop(self) -> None:
        for process, _ in self.processes:
            process.send_signal(signal.SIGTERM)
        for process, _ in self.processes:
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        with kombu.Connection(self.broker) as connection:
            connection.default_channel.queue_delete(self.queue)

    def wait_for(self, done: Callable[[], bool], what: str) -> None:
        deadline = time.monotonic() + WAIT_SECONDS
        while not done():
            for process, _ in self.processes:
                assert process.poll() is None, f"a process ended early:\n{self.logs()}"
            assert time.monotonic() < deadline, f"timed out waiting for {what}:\n{self.logs()}"
            time.sleep(0.2)


@contextmanager
def running(engine: Engine, broker: str, tmp_path: Path) -> Iterator[Cluster]:
    found = Cluster(engine, broker, tmp_path)
    try:
        yield found
    finally:
        found.stop()


@pytest.fixture
def cluster(engine: Engine, broker: str, tmp_path: Path) -> Iterator[Cluster]:
    """On Redis, then on RabbitMQ."""
    with running(engine, broker, tmp_path) as found:
        yield found


@pytest.fixture
def redis_cluster(engine: Engine, redis_broker: str, tmp_path: Path) -> Iterator[Cluster]:
    """On Redis only: the API's hand-off to the broker is the same code on every broker."""
    with running(engine, redis_broker, tmp_path) as found:
        yield found


def jobs_of(factory: sessionmaker[Session], audience_id: uuid.UUID) -> list[AudienceSyncJob]:
    with db.transaction(factory) as session:
        query = select(AudienceSyncJob).where(AudienceSyncJob.platform_audience_id == audience_id)
        return list(session.scalars(query))


def setup_tenant(cluster: Cluster, sandbox: str, members: int = MEMBERS) -> tuple[int, uuid.UUID]:
    """A tenant with a segment of `members` profiles and a Meta connection to the sandbox."""
    rows = [{"profile_id": f"D{i}", "email": f"d{i}@example.com"} for i in range(members)]
    path = cluster.tmp_path / "d.csv"
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=["profile_id", "email"])
        writer.writeheader()
        writer.writerows(rows)
    import_profiles(cluster.factory, path, tenant="default", segment="D")
    cipher = CredentialCipher([cluster.key])
    with db.transaction(cluster.factory) as session:
        tenant_id = TenantRepository(session).get("default").id
        segment_id = SegmentRepository(session, tenant_id).ensure("D").id
        ConnectionRepository(session, tenant_id, cipher).put(
            SyncPlatform.META,
            "act_1",
            {"access_token": "sandbox-token"},
            base_url=sandbox + PREFIXES["meta"],
        )
    return tenant_id, segment_id


def add_audience(cluster: Cluster, tenant_id: int, segment_id: uuid.UUID, **fields: Any) -> Any:
    with db.transaction(cluster.factory) as session:
        audience = PlatformAudience(
            segment_id=segment_id,
            platform=SyncPlatform.META,
            platform_audience_name=f"A {uuid.uuid4().hex[:6]}",
            ad_account_id="act_1",
            **fields,
        )
        return AudienceRepository(session, tenant_id).add(audience).id


def platform_holds(
    cluster: Cluster, sandbox: str, tenant_id: int, audience_id: uuid.UUID, members: int = MEMBERS
) -> None:
    with db.transaction(cluster.factory) as session:
        audience = AudienceRepository(session, tenant_id).get(audience_id)
        platform_id, segment_id = audience.platform_audience_id, audience.segment_id
    audiences = httpx.get(f"{sandbox}/_sandbox/audiences", params={"platform": "meta"}).json()
    (held,) = [a for a in audiences if a["audience_id"] == platform_id]
    batches = member_batches(cluster.engine, tenant_id, segment_id)
    users = [u for profiles, ids in batches for u in users_of(profiles, ids)]
    assert held["identifiers"] == expected_identifiers("meta", users)
    assert held["size"] == members


def test_beats_and_a_worker_sync_each_due_audience_once(cluster: Cluster, sandbox: str) -> None:
    tenant_id, segment_id = setup_tenant(cluster, sandbox)
    past = datetime.now(UTC) - timedelta(minutes=1)
    due = add_audience(cluster, tenant_id, segment_id, auto_sync=True, next_sync_at=past)
    manual = add_audience(cluster, tenant_id, segment_id, auto_sync=False, next_sync_at=past)
    cluster.start("worker", "--concurrency", "2")
    cluster.start("beat")
    cluster.start("beat")  # two beats ticking every second: still one job per due audience

    def synced() -> bool:
        return [j.status for j in jobs_of(cluster.factory, due)] == [SyncStatus.COMPLETED]

    cluster.wait_for(synced, "the due audience's sync")
    time.sleep(3)  # a few more ticks of both beats: nothing else may run
    (job,) = jobs_of(cluster.factory, due)
    assert job.attempt == 1
    assert job.profiles_added == MEMBERS
    assert jobs_of(cluster.factory, manual) == []
    platform_holds(cluster, sandbox, tenant_id, due)
    with db.transaction(cluster.factory) as session:
        audience = AudienceRepository(session, tenant_id).get(due)
        assert audience.next_sync_at is not None
        assert audience.next_sync_at > datetime.now(UTC) + timedelta(hours=23)
    logs = cluster.logs()
    assert "sandbox-token" not in logs
    assert "@example.com" not in logs
    assert "guest:guest" not in logs  # the broker's password is never printed


async def test_a_sync_asked_through_the_api_runs_on_a_worker(
    redis_cluster: Cluster, sandbox: str
) -> None:
    cluster = redis_cluster
    tenant_id, segment_id = setup_tenant(cluster, sandbox)
    audience_id = add_audience(cluster, tenant_id, segment_id, auto_sync=False)
    with db.transaction(cluster.factory) as session:
        key = ApiKeyRepository(session).issue(tenant_id)
    cluster.start("worker", "--concurrency", "1")
    settings = cluster.settings()
    api = create_app(settings, cluster.engine, build_service(settings, cluster.engine))
    transport = httpx.ASGITransport(app=api)
    async with httpx.AsyncClient(transport=transport, base_url="http://api") as client:
        answer = await client.post(
            f"/api/v1/audiences/{audience_id}/sync",
            json={"operation": "create"},
            headers={"Authorization": f"Bearer {key}"},
        )
        assert answer.status_code == 202, answer.text
        await api.state.context.launcher.drain()

    def synced() -> bool:
        return [j.status for j in jobs_of(cluster.factory, audience_id)] == [SyncStatus.COMPLETED]

    cluster.wait_for(synced, "the API's sync on the worker")
    platform_holds(cluster, sandbox, tenant_id, audience_id)


def test_a_worker_killed_mid_sync_loses_nothing(cluster: Cluster, sandbox: str) -> None:
    """The designed semantics (`scheduler/distributed.py`): the dead worker's job is failed by
    the tick's reaper once its lease runs out, and a job resuming from the last confirmed batch
    runs on the other worker; one audience on the platform, every member, once."""
    cluster.env["AUDIENCE_SYNC_JOB_LEASE_SECONDS"] = "10"  # the shortest the settings allow
    # As in test_kill_resume: a checkpoint every 1,000 records (25 batches of 40).
    cluster.env["AUDIENCE_SYNC_MAX_BATCH_SIZE"] = "40"
    tenant_id, segment_id = setup_tenant(cluster, sandbox, KILLED_MEMBERS)
    past = datetime.now(UTC) - timedelta(minutes=1)
    due = add_audience(cluster, tenant_id, segment_id, auto_sync=True, next_sync_at=past)
    # Every upload takes 0.2 s: the sync runs for seconds, long enough to be killed mid-way.
    faults = {"kind": "latency", "platform": "meta", "delay_seconds": 0.2, "count": 1_000}
    assert httpx.post(f"{sandbox}/_sandbox/faults", json=faults).status_code == 201
    cluster.start("worker", "--concurrency", "1")  # the victim: the only worker at first
    cluster.start("beat")

    def mid_sync() -> bool:
        jobs = jobs_of(cluster.factory, due)
        return any(j.status is SyncStatus.RUNNING and j.profiles_sent > 0 for j in jobs)

    cluster.wait_for(mid_sync, "the sync's first confirmed batch")
    cluster.kill(0)
    (killed,) = jobs_of(cluster.factory, due)
    assert killed.status is SyncStatus.RUNNING
    assert killed.profiles_sent < KILLED_MEMBERS
    httpx.delete(f"{sandbox}/_sandbox/faults")
    cluster.start("worker", "--concurrency", "1")  # the survivor

    def resumed() -> bool:
        return SyncStatus.COMPLETED in [j.status for j in jobs_of(cluster.factory, due)]

    cluster.wait_for(resumed, "the reaper and the resuming job")
    time.sleep(3)  # a few more ticks: nothing else may run
    jobs = {j.status: j for j in jobs_of(cluster.factory, due)}
    assert sorted(jobs) == sorted([SyncStatus.FAILED, SyncStatus.COMPLETED]), jobs
    failed, completed = jobs[SyncStatus.FAILED], jobs[SyncStatus.COMPLETED]
    assert failed.id == killed.id
    assert "stopped responding" in (failed.error_message or "")
    assert completed.details["resumes"] == str(killed.id)
    # It resumed: what was confirmed is not sent again.
    assert completed.profiles_added < KILLED_MEMBERS
    with db.transaction(cluster.factory) as session:
        assert SnapshotRepository(session, tenant_id).count(due) == KILLED_MEMBERS
    audiences = httpx.get(f"{sandbox}/_sandbox/audiences", params={"platform": "meta"}).json()
    assert len(audiences) == 1, "a killed worker must never leave a second audience"
    platform_holds(cluster, sandbox, tenant_id, due, KILLED_MEMBERS)
