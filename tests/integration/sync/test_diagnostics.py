"""A job lists which profiles' values it dropped or the platform refused, masked, bounded, with
exact counts (sync/diagnostics.py)."""

from __future__ import annotations

import csv
import dataclasses
import io
import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import delete, select
from typer.testing import CliRunner, Result

from audience_sync import cli
from audience_sync.domain.models import SyncOperation, SyncPlatform
from audience_sync.services import audiences
from audience_sync.store.db import transaction
from audience_sync.store.diagnostics import DiagnosticsRepository, Entry
from audience_sync.store.tables import AudienceSyncJob, PlatformAudience, SyncJobDiagnostic
from audience_sync.sync import diagnostics
from audience_sync.testing.conformance import corrupt

from .world import World, row

Invoke = Callable[..., Result]

RAW = {
    "email": "jane.doe.example.com",  # no @
    "phone": "+999 1234 5678",  # no such country code
    "mobile_id": "00000000-0000-0000-0000-000000000000",  # a limit-ad-tracking device
}


def bad_rows() -> list[dict[str, str]]:
    """P0-P9 good; P10 a bad email, P11 a bad phone, P12 a zeroed IDFA (and good emails)."""
    return [
        *(row(i) for i in range(10)),
        row(10, email=RAW["email"]),
        {**row(11), "phone": RAW["phone"]},
        {**row(12), "mobile_id": RAW["mobile_id"], "mobile_id_kind": "idfa"},
    ]


def entries(world: World, job: AudienceSyncJob) -> list[Entry]:
    with transaction(world.factory) as session:
        return DiagnosticsRepository(session, world.tenant_id).page(job.id)


def stored_text(world: World) -> str:
    """Every diagnostic row and every job's details, as one text (to look for raw values)."""
    with transaction(world.factory) as session:
        rows = session.scalars(select(SyncJobDiagnostic)).all()
        details = session.scalars(select(AudienceSyncJob.details)).all()
        cells = [[r.profile_id, r.field, r.reason, r.masked_value] for r in rows]
    return json.dumps([cells, details])


async def test_a_sync_lists_each_dropped_value_with_its_profile_field_reason_and_mask(
    world: World,
) -> None:
    world.load(bad_rows())
    audience = world.audience(SyncPlatform.META)
    job = await world.sync(audience, SyncOperation.CREATE)
    assert sorted(entries(world, job), key=lambda e: e.profile_id or "") == [
        Entry("P10", "email", "invalid_email", "j***m"),
        Entry("P11", "phone", "invalid_phone", "••• ••78"),
        Entry("P12", "mobile_id", "zeroed_maid", "0***0"),
    ]
    summary = job.details["diagnostics"]
    assert summary["counts"] == [
        {"field": "email", "reason": "invalid_email", "count": 1},
        {"field": "phone", "reason": "invalid_phone", "count": 1},
        {"field": "mobile_id", "reason": "zeroed_maid", "count": 1},
    ]
    assert (summary["entries"], summary["truncated"]) == (3, False)
    text = stored_text(world)
    for raw in RAW.values():
        assert raw not in text


async def test_past_the_bound_the_first_entries_are_kept_and_the_counts_stay_exact(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(diagnostics, "LIMIT", 4)
    world.load([row(i, email=f"broken-{i}") for i in range(9)])
    audience = world.audience(SyncPlatform.SNAPCHAT)
    job = await world.sync(audience, SyncOperation.CREATE)
    kept = entries(world, job)
    assert len(kept) == 4
    assert {e.reason for e in kept} == {"invalid_email"}
    summary = job.details["diagnostics"]
    assert summary["counts"] == [{"field": "email", "reason": "invalid_email", "count": 9}]
    assert (summary["entries"], summary["max_entries"], summary["truncated"]) == (4, 4, True)


async def test_an_update_lists_the_unchanged_members_dropped_values_too(world: World) -> None:
    """The member state keeps only counts of an unchanged member's drops: the update reads
    those members again for their entries, and its counts match a run preparing everyone."""
    world.load(bad_rows())
    audience = world.audience(SyncPlatform.META)
    await world.sync(audience, SyncOperation.CREATE)
    world.load([row(3, email="also broken"), row(13)])
    updated = await world.sync(audience)
    assert updated.details["prepared_members"] == 2  # P3 changed, P13 joined
    found = {(e.profile_id, e.field, e.reason) for e in entries(world, updated)}
    assert found == {
        ("P3", "email", "invalid_email"),
        ("P10", "email", "invalid_email"),
        ("P11", "phone", "invalid_phone"),
        ("P12", "mobile_id", "zeroed_maid"),
    }
    everyone = await world.sync(audience, SyncOperation.REPLACE, dry_run=True)
    assert updated.details["diagnostics"]["counts"] == everyone.details["diagnostics"]["counts"]
    assert {(e.profile_id, e.field, e.reason) for e in entries(world, everyone)} == found


async def test_a_record_the_platform_refused_names_its_profile(world: World) -> None:
    world.load([row(i) for i in range(12)])
    audience = world.audience(SyncPlatform.SNAPCHAT)
    build = world.connect

    def connect(target: Any) -> Any:
        connector = build(target)
        original = connector.prepared_from_texts

        def spoiled(texts: Any) -> Any:  # the chunk's first record (one of P0's) is malformed
            prepared = original(texts)
            prepared.records[0] = corrupt(prepared.records[0])
            return prepared

        connector.prepared_from_texts = spoiled
        return connector

    world.service = dataclasses.replace(world.service, connect=connect)
    job = await world.sync(audience, SyncOperation.CREATE)
    assert entries(world, job) == [Entry("P0", None, "refused", None)]
    assert job.details["diagnostics"]["counts"] == [
        {"field": None, "reason": "refused", "count": 1}
    ]


async def test_the_entries_go_with_their_job_and_audience(world: World) -> None:
    world.load(bad_rows())
    audience = world.audience(SyncPlatform.META)
    first = await world.sync(audience, SyncOperation.CREATE)
    second = await world.sync(audience)
    assert len(entries(world, first)) == len(entries(world, second)) == 3
    with transaction(world.factory) as session:
        session.execute(delete(AudienceSyncJob).where(AudienceSyncJob.id == first.id))
    assert entries(world, first) == []
    assert len(entries(world, second)) == 3
    await world.sync(audience, SyncOperation.DELETE)
    audiences.purge(world.service, world.tenant_id, audience)
    with transaction(world.factory) as session:
        assert session.scalars(select(SyncJobDiagnostic)).all() == []
        assert session.get(PlatformAudience, audience) is None


async def test_a_dry_run_lists_what_a_sync_would_drop(world: World) -> None:
    world.load(bad_rows())
    audience = world.audience(SyncPlatform.TIKTOK)
    job = await world.sync(audience, SyncOperation.CREATE, dry_run=True)
    assert {(e.profile_id, e.reason) for e in entries(world, job)} == {
        ("P10", "invalid_email"),
        ("P11", "invalid_phone"),
        ("P12", "zeroed_maid"),
    }


@pytest.fixture
def invoke(world: World, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Invoke]:
    """The CLI in `tmp_path`, on the world's database."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("AUDIENCE_SYNC_DATABASE_URL", world.engine.url.render_as_string(False))
    monkeypatch.setenv("AUDIENCE_SYNC_VAR_DIR", str(tmp_path / "var"))
    cli.context.cache_clear()
    runner = CliRunner()
    yield lambda *args: runner.invoke(cli.app, list(args))
    if cli.context.cache_info().currsize:
        cli.context().engine.dispose()
    cli.context.cache_clear()


async def test_the_cli_shows_the_entries_and_writes_them_as_csv(
    world: World, invoke: Invoke, tmp_path: Path
) -> None:
    world.load(bad_rows())
    audience = world.audience(SyncPlatform.META)
    job = await world.sync(audience, SyncOperation.CREATE)
    shown = invoke("audiences", "diagnostics", str(job.id), "--reason", "zeroed_maid")
    assert shown.exit_code == 0, shown.output
    assert "P12" in shown.stdout
    assert "0***0" in shown.stdout
    assert "P10" not in shown.stdout  # another reason
    assert "invalid_email" in shown.stdout  # the job's counts, whatever the filter
    path = tmp_path / "out.csv"
    written = invoke("audiences", "diagnostics", str(job.id), "--csv", str(path))
    assert written.exit_code == 0, written.output
    rows = list(csv.reader(io.StringIO(path.read_text())))
    assert rows[0] == ["profile_id", "field", "reason", "masked_value"]
    assert sorted(r[0] for r in rows[1:]) == ["P10", "P11", "P12"]
    assert path.stat().st_mode & 0o777 == 0o600
    as_json = json.loads(invoke("audiences", "diagnostics", str(job.id), "--json").stdout)
    assert len(as_json["items"]) == 3
    for output in (shown.stdout, path.read_text(), json.dumps(as_json)):
        for raw in RAW.values():
            assert raw not in output
    other = invoke("audiences", "diagnostics", str(job.id), "--tenant", "nobody")
    assert other.exit_code != 0
    assert "Traceback" not in other.output


async def test_a_replace_names_the_members_refused_but_not_the_unusable_ones(world: World) -> None:
    """A platform replace (Meta's) reports failed users by position among every member; those
    without a record (P10: its one email is broken) are unusable, not refused."""
    world.load(bad_rows())
    audience = world.audience(SyncPlatform.META)
    await world.sync(audience, SyncOperation.CREATE)
    build = world.connect

    def connect(target: Any) -> Any:
        connector = build(target)
        original = connector.replace_audience

        async def replace(audience_id: str, users: Any) -> Any:
            result = await original(audience_id, users)
            refused = [i for i, user in enumerate(users) if user.profile_id == "P3"]
            result.details["failed_users"] = sorted({*result.details["failed_users"], *refused})
            return result

        connector.replace_audience = replace
        return connector

    world.service = dataclasses.replace(world.service, connect=connect)
    job = await world.sync(audience, SyncOperation.REPLACE)
    found = {(e.profile_id, e.reason) for e in entries(world, job)}
    assert found == {
        ("P3", "refused"),
        ("P10", "invalid_email"),
        ("P11", "invalid_phone"),
        ("P12", "zeroed_maid"),
    }
