"""The one rule for a job's rate and ETA, and the one shape of a dry run's preview."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from audience_sync.domain.models import SyncStatus
from audience_sync.services.jobs import Preview, Progress, preview_of, progress_of
from audience_sync.store.tables import AudienceSyncJob

NOW = datetime(2026, 12, 5, 12, tzinfo=UTC)


def job(status: SyncStatus = SyncStatus.RUNNING, **progress: Any) -> AudienceSyncJob:
    fields = {
        "progress_phase": "uploading",
        "progress_unit": "records",
        "progress_done": 300,
        "progress_total": 1000,
        "progress_started_at": NOW - timedelta(seconds=100),
        "progress_at": NOW - timedelta(seconds=10),
        **progress,
    }
    return AudienceSyncJob(status=status, confirmation="none", details={}, **fields)


def test_a_running_job_s_rate_is_done_over_the_phase_s_seconds_and_its_eta_what_is_left() -> None:
    assert progress_of(job(), NOW) == Progress(
        phase="uploading",
        unit="records",
        done=300,
        total=1000,
        started_at=NOW - timedelta(seconds=100),
        updated_at=NOW - timedelta(seconds=10),
        rate_per_second=3.0,
        eta_seconds=234,  # 700 / 3, rounded up
    )


def test_an_unknown_total_has_a_rate_but_no_eta() -> None:
    found = progress_of(job(progress_total=None), NOW)
    assert found is not None
    assert (found.rate_per_second, found.eta_seconds) == (3.0, None)


def test_nothing_done_yet_has_no_eta() -> None:
    found = progress_of(job(progress_done=0), NOW)
    assert found is not None
    assert (found.rate_per_second, found.eta_seconds) == (0.0, None)


def test_a_phase_that_counts_nothing_has_no_rate() -> None:
    found = progress_of(job(progress_phase="planning", progress_unit=None, progress_done=0), NOW)
    assert found is not None
    assert (found.rate_per_second, found.eta_seconds) == (None, None)


def test_a_phase_just_begun_has_no_rate() -> None:
    found = progress_of(job(progress_started_at=NOW, progress_done=0), NOW)
    assert found is not None
    assert found.rate_per_second is None


def test_an_ended_job_s_rate_stops_at_its_last_write_and_it_has_no_eta() -> None:
    found = progress_of(job(SyncStatus.FAILED), NOW)
    assert found is not None
    assert (found.rate_per_second, found.eta_seconds) == (300 / 90, None)


def test_a_completed_job_whose_requests_process_is_still_live() -> None:
    confirming = job(
        SyncStatus.COMPLETED,
        progress_phase="confirming",
        progress_unit="requests",
        progress_done=1,
        progress_total=4,
    )
    confirming.confirmation = "processing"
    found = progress_of(confirming, NOW)
    assert found is not None
    assert (found.rate_per_second, found.eta_seconds) == (0.01, 300)


def test_a_job_that_never_reported_has_no_progress() -> None:
    assert progress_of(AudienceSyncJob(status=SyncStatus.PENDING, progress_done=0), NOW) is None


def test_a_dry_run_s_preview_reads_its_plan_drops_and_warnings() -> None:
    details = {
        "plan": {"adds": 3, "removes": 15, "unchanged": 5, "members_to_add": 3},
        "members": 8,
        "dropped": {"invalid_email": 2},
        "warnings": [{"code": "mass_removal", "message": "refused unless forced"}],
    }
    assert preview_of(AudienceSyncJob(details=details)) == Preview(
        adds=3,
        removes=15,
        unchanged=5,
        members_to_add=3,
        members=8,
        dropped={"invalid_email": 2},
        warnings=[{"code": "mass_removal", "message": "refused unless forced"}],
    )


def test_a_job_without_a_plan_has_no_preview() -> None:
    assert preview_of(AudienceSyncJob(details={"force": False})) is None


def test_jobs_show_prints_a_running_job_s_progress() -> None:
    from audience_sync.cli.common import out
    from audience_sync.cli.sync import print_progress

    with out.capture() as captured:
        print_progress(job(), NOW)
        print_progress(job(SyncStatus.COMPLETED), NOW)  # ended: nothing
    assert captured.get().strip() == (
        "Progress: uploading: 300 of 1,000 records, 3/s, about 234 s left"
    )
