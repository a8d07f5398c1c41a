"""A lease renewal from a wait (`Checkpoints.renew_while_waiting`) that finds SQLite's write lock
held past its busy timeout is skipped, not fatal; any other database error still stops the run,
and a lost lease still does."""

from __future__ import annotations

import sqlite3
import uuid
from types import SimpleNamespace

import pytest
from sqlalchemy.exc import OperationalError

from audience_sync.store.db import is_busy
from audience_sync.sync.checkpoint import Checkpoints
from audience_sync.sync.fence import Heartbeat, LeaseLostError


def sqlite_error(path: str, timeout: float) -> sqlite3.OperationalError:
    """The error SQLite itself raises for a write while another connection holds the lock."""
    holder = sqlite3.connect(path)
    holder.execute("CREATE TABLE t (a)")
    holder.commit()
    holder.execute("BEGIN IMMEDIATE")
    try:
        sqlite3.connect(path, timeout=timeout).execute("INSERT INTO t VALUES (1)")
    except sqlite3.OperationalError as error:
        return error
    finally:
        holder.rollback()
    raise AssertionError("the second write was not refused")


def run_whose_lease(answer: object) -> SimpleNamespace:
    def lease() -> Heartbeat:
        if isinstance(answer, Exception):
            raise answer
        return answer  # type: ignore[return-value]

    return SimpleNamespace(lease=lease, hold=SimpleNamespace(job_id=uuid.uuid4()))


@pytest.fixture
def busy(tmp_path) -> OperationalError:
    return OperationalError(
        "UPDATE audience_sync_jobs …", {}, sqlite_error(str(tmp_path / "x.db"), 0.05)
    )


def test_sqlites_locked_answer_is_busy(busy: OperationalError) -> None:
    assert is_busy(busy)
    assert not is_busy(OperationalError("SELECT 1", {}, sqlite3.OperationalError("no such table")))


async def test_a_busy_database_skips_the_renewal(busy: OperationalError, caplog) -> None:
    await Checkpoints.renew_while_waiting(run_whose_lease(busy))  # type: ignore[arg-type]
    assert "skipped: the database is busy" in caplog.text


async def test_other_errors_and_a_lost_lease_still_stop_the_run() -> None:
    other = OperationalError("UPDATE …", {}, sqlite3.OperationalError("disk I/O error"))
    with pytest.raises(OperationalError):
        await Checkpoints.renew_while_waiting(run_whose_lease(other))  # type: ignore[arg-type]
    with pytest.raises(LeaseLostError):
        await Checkpoints.renew_while_waiting(run_whose_lease(Heartbeat.LOST))  # type: ignore[arg-type]
    await Checkpoints.renew_while_waiting(run_whose_lease(Heartbeat.CONTINUE))  # type: ignore[arg-type]
