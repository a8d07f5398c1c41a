"""A run's hold on its job: the lease every write of the run checks first (the fence).

`start_job` gives each run a fresh `lease_token`. Every write the run makes (checkpoint,
counters, final status) first renews the lease with an UPDATE that checks the token and the
`running` status in the same statement (`hold_lease`, `fenced`); no row matched means the job was
reaped or started again, and the transaction rolls back (`LeaseLostError`) with whatever else it
wrote.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any, cast

from sqlalchemy import CursorResult, select, update
from sqlalchemy.orm import Session, sessionmaker

from audience_sync.domain.models import SyncStatus
from audience_sync.store.db import transaction
from audience_sync.store.tables import AudienceSyncJob


class LeaseLostError(Exception):
    """The job is no longer this run's (reaped after a missed lease, or started again): the
    transaction that found it out rolls back, and the run stops without writing."""


@dataclass(frozen=True, slots=True)
class Lease:
    """A run's hold on its job: the token `start_job` gave it."""

    tenant_id: int
    job_id: uuid.UUID
    token: str | None


class Heartbeat(StrEnum):
    """What a running worker should do after reporting in."""

    CONTINUE = "continue"
    CANCEL = "cancel"  # a cancel was requested: stop at this batch boundary
    LOST = "lost"  # the job is no longer ours (reaped after a missed lease): stop now
    SHUTDOWN = "shutdown"  # this process is stopping: checkpoint, then `release_job`


def heartbeat(
    factory: sessionmaker[Session],
    tenant_id: int,
    job_id: uuid.UUID,
    now: datetime,
    lease_token: str | None = None,
) -> Heartbeat:
    """Renew the running job's lease; say whether to go on, cancel, or stop (lease lost).
    With `lease_token`, only the run holding that lease renews it."""
    try:
        with transaction(factory) as session:
            return hold_lease(session, Lease(tenant_id, job_id, lease_token), now)
    except LeaseLostError:
        return Heartbeat.LOST


def hold_lease(session: Session, lease: Lease, now: datetime) -> Heartbeat:
    """Renew the lease in this transaction, checking in the same UPDATE that the job still runs
    under this lease (the fence); go on or cancel. Raises `LeaseLostError` when the job is no
    longer ours. On PostgreSQL the UPDATE also locks the job's row until commit, so the reaper
    cannot fail the job between the check and the commit. `fenced` calls it first; a checkpoint
    (`Checkpoints.checkpoint`) calls it last, after its part's insert, so that the row is locked
    only for the commit: the fence is the same (the transaction commits only if the run held
    its job when it checked), and the run's other writes do not wait for the part's."""
    owned = [
        AudienceSyncJob.tenant_id == lease.tenant_id,
        AudienceSyncJob.id == lease.job_id,
        AudienceSyncJob.status == SyncStatus.RUNNING,
    ]
    if lease.token is not None:
        owned.append(AudienceSyncJob.lease_token == lease.token)
    renewed = execute(
        session,
        update(AudienceSyncJob)
        .where(*owned)
        .values(heartbeat_at=now)
        .execution_options(synchronize_session=False),
    )
    if renewed.rowcount != 1:
        raise LeaseLostError(f"job {lease.job_id} is no longer held by this run")
    cancel = session.scalar(
        select(AudienceSyncJob.cancel_requested).where(
            AudienceSyncJob.tenant_id == lease.tenant_id, AudienceSyncJob.id == lease.job_id
        )
    )
    return Heartbeat.CANCEL if cancel else Heartbeat.CONTINUE


@contextmanager
def fenced(factory: sessionmaker[Session], lease: Lease, now: datetime) -> Iterator[Session]:
    """A transaction that writes only while the run holds its job: the lease is checked (and
    renewed) first; `LeaseLostError` when lost, and nothing in the transaction commits."""
    with transaction(factory) as session:
        hold_lease(session, lease, now)
        yield session


def execute(session: Session, statement: Any) -> CursorResult[Any]:
    """Run an UPDATE and keep its row count (how we know a conditional update won)."""
    return cast(CursorResult[Any], session.execute(statement))
