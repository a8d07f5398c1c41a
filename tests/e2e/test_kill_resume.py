"""I4: a syncing process killed with SIGKILL mid-job loses nothing — the lease expires, a resuming
job is queued, and the next run converges with nothing lost or sent twice."""

from __future__ import annotations

import csv
import dataclasses
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import httpx
import pytest

from audience_sync.config import Settings
from audience_sync.domain.models import SyncPlatform, SyncStatus
from audience_sync.sources.importer import import_profiles
from audience_sync.sources.members import member_batches
from audience_sync.store import db
from audience_sync.store.repositories import (
    AudienceRepository,
    SyncJobRepository,
    TenantRepository,
)
from audience_sync.store.snapshot import SnapshotRepository
from audience_sync.sync.members import users_of
from audience_sync.sync.reaper import reap_stale_jobs
from audience_sync.sync.runner import run_job
from audience_sync.sync.service import build_service
from audience_sync.testing import PREFIXES, sandbox_server
from audience_sync.testing.support import expected_identifiers

MEMBERS = 3_000


@pytest.fixture
def sandbox() -> Iterator[str]:
    with sandbox_server() as url:
        yield url


def cli(env: dict[str, str], *args: str, **kwargs: object) -> subprocess.Popen[bytes]:
    command = [sys.executable, "-m", "audience_sync.cli", *args]
    return subprocess.Popen(command, env=env, **kwargs)  # type: ignore[call-overload]


async def test_a_killed_sync_resumes_and_converges(sandbox: str, tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/kill.db"
    env = {
        **os.environ,
        "AUDIENCE_SYNC_DATABASE_URL": url,
        "AUDIENCE_SYNC_VAR_DIR": str(tmp_path / "var"),
        "AUDIENCE_SYNC_MAX_BATCH_SIZE": "40",  # a checkpoint every 1,000 records (25 batches)
        "AUDIENCE_SYNC_ALLOW_CONNECTION_BASE_URL": "true",  # the connection points at the sandbox
    }
    settings = Settings(
        database_url=url,
        var_dir=tmp_path / "var",
        max_batch_size=40,
        allow_connection_base_url=True,
    )
    engine = db.make_engine(url)
    db.upgrade(engine)
    factory = db.session_factory(engine)
    rows = [{"profile_id": f"K{i}", "email": f"k{i}@example.com"} for i in range(MEMBERS)]
    with (tmp_path / "k.csv").open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=["profile_id", "email"])
        writer.writeheader()
        writer.writerows(rows)
    import_profiles(factory, tmp_path / "k.csv", tenant="default", segment="K")
    base = sandbox + PREFIXES["meta"]
    assert cli(env, "connections", "set", "meta", "--ad-account", "act_1",
               "--access-token", "sandbox-token", "--base-url", base).wait() == 0  # fmt: skip
    created = cli(env, "audiences", "create", "--segment", "K", "--platform", "meta",
                  "--name", "K", "--ad-account", "act_1", "--no-auto-sync",
                  stdout=subprocess.PIPE)  # fmt: skip
    created.communicate()
    with db.transaction(factory) as session:
        tenant_id = TenantRepository(session).get("default").id
        (audience,) = AudienceRepository(session, tenant_id).list()
        audience_id, segment_id = audience.id, audience.segment_id
    httpx.post(f"{sandbox}/_sandbox/reset")  # forget that first create: start from empty
    with db.transaction(factory) as session:
        stored = AudienceRepository(session, tenant_id).get(audience_id)
        stored.platform_audience_id = None
        SnapshotRepository(session, tenant_id).clear(audience_id)

    # Every upload now takes 0.25 s: the job runs for seconds; kill it after a checkpoint.
    faults = {"kind": "latency", "platform": "meta", "delay_seconds": 0.25, "count": 1_000}
    assert httpx.post(f"{sandbox}/_sandbox/faults", json=faults).status_code == 201
    victim = cli(env, "audiences", "sync", str(audience_id), "--operation", "create",
                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    deadline = time.monotonic() + 60
    while True:
        with db.transaction(factory) as session:
            jobs = SyncJobRepository(session, tenant_id).for_audience(audience_id)
            running = [j for j in jobs if j.status is SyncStatus.RUNNING]
            if running and running[0].profiles_sent > 0:
                killed_id = running[0].id
                break
        assert victim.poll() is None, "the sync finished before it could be killed"
        assert time.monotonic() < deadline
        time.sleep(0.05)
    victim.send_signal(signal.SIGKILL)
    victim.wait()
    httpx.delete(f"{sandbox}/_sandbox/faults")

    service = build_service(settings, engine)
    later = service.clock() + timedelta(seconds=settings.job_lease_seconds + 1)
    (resumed,) = reap_stale_jobs(factory, later, settings.job_lease_seconds, settings.max_resumes)
    with db.transaction(factory) as session:
        killed = SyncJobRepository(session, tenant_id).get(killed_id)
        assert killed.status is SyncStatus.FAILED
        assert "stopped responding" in (killed.error_message or "")
        confirmed_before = SnapshotRepository(session, tenant_id).count(audience_id)
    assert 0 < confirmed_before < MEMBERS

    # The resuming job is due at `later` (the reaper's time): the run's clock is there too.
    service = dataclasses.replace(service, clock=lambda: later)
    done = await run_job(service, tenant_id, resumed)
    assert done is not None
    assert done.status is SyncStatus.COMPLETED, done.error_message
    assert done.profiles_added <= MEMBERS - confirmed_before + 1_000  # only what was not confirmed
    with db.transaction(factory) as session:
        platform_id = AudienceRepository(session, tenant_id).get(audience_id).platform_audience_id
        assert SnapshotRepository(session, tenant_id).count(audience_id) == MEMBERS
    audiences = httpx.get(f"{sandbox}/_sandbox/audiences", params={"platform": "meta"}).json()
    assert len(audiences) == 1, "a crash must never create a second audience"
    (held,) = [a for a in audiences if a["audience_id"] == platform_id]
    users = [u for p, i in member_batches(engine, tenant_id, segment_id) for u in users_of(p, i)]
    assert held["identifiers"] == expected_identifiers(SyncPlatform.META.value, users)
    assert held["size"] == MEMBERS
    engine.dispose()
