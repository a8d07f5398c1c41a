"""The sync engine end to end: create, 1% churn update and a 10M plan, beside a floor.

`sync` runs on SQLite in a temporary directory; `sync-postgres` runs the same create, update
and floor on PostgreSQL, in databases it creates and drops on `AUDIENCE_SYNC_BENCH_DATABASE_URL`
(default postgresql://postgres@127.0.0.1:5432/postgres, the server the tests use): the members
are inserted once into a template database, each platform's run gets a copy of it
(`CREATE DATABASE … TEMPLATE`), never analyzed (the test server runs with autovacuum off).
Both run against each platform's in-process sandbox (rate limits lifted, no processing delay).
The member set is written by direct bulk inserts
(realistic shapes: 8% of profiles with two emails, 90% with a phone, 45% a mobile id, 60% an
external id, names, address, birth date and gender); setup is never part of a figure.

Cases, each in a fresh subprocess so its memory figure is its own:

- **create**: `run_job(CREATE)` of an N-member segment, N = `--rows` (default 1,000,000, the
  target size; `--rows 100000` for a quick look);
- **update**: after 1% churn (0.5% leave, 0.25% join, 0.25% change email), `run_job(UPDATE)`;
- **floor**: the same members' values SHA-256-hashed and their payloads JSON-encoded in
  batches of 10,000 records (lists of hex digests), nothing else: what no engine can beat;
- **plan** (`sync-plan`, in the scale group): `runner.plan_against_snapshot` (the snapshot read
  from the database, then `plan_delta`) for an audience of `--stream-rows` records (default
  10,000,000) with 2% churn (1% gone, 1% new); the current records are built synthetically in
  the runner's shape.

"ours" is the wall time less the sandbox's share: the CPU time of the event loop's thread
inside the emulated platform (`TimedApp.cpu_seconds`), not its wall time. The engine prepares
the next chunk and writes the last checkpoint on threads while the sandbox answers, so the
sandbox's wall time includes waits for the GIL held by the engine: subtracting it would credit
the engine with its own work (measured: 8.2 s of sandbox wall time against 6.4 s of CPU).

`--platform NAME` (repeatable) runs only those platforms. Each platform's cases run `--repeat`
times (default once; on PostgreSQL each run in a fresh copy of the template) and the medians
are reported.

Memory is peak RSS (`VmHWM` from `/proc/self/status`) of the case's own subprocess; before a
timed step the peak is reset to the current RSS (`echo 5 > /proc/self/clear_refs`), so it
includes the interpreter, the imports and whatever the step keeps resident (in the update, the
sandbox's own copy of the audience too). Wall times are single runs (a run takes long enough);
the machine is shared, so compare ratios within one run.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import polars as pl
from cryptography.fernet import Fernet
from sqlalchemy import Engine, insert, text

from audience_sync.config import Settings
from audience_sync.connectors import BaseAudienceConnector, RateLimiters, connector_for
from audience_sync.crypto import CredentialCipher
from audience_sync.domain.models import SyncOperation, SyncPlatform
from audience_sync.sandbox import SandboxSettings, create_app
from audience_sync.sources.members import member_batches
from audience_sync.store import db
from audience_sync.store.repositories import (
    AudienceRepository,
    ConnectionRepository,
    SegmentRepository,
    TenantRepository,
)
from audience_sync.store.stored_identifiers import text_of
from audience_sync.store.tables import (
    PlatformAudience,
    Profile,
    SegmentMember,
)
from audience_sync.sync.jobs import Trigger, trigger_job
from audience_sync.sync.service import connector_options, open_credentials
from audience_sync.testing.support import PREFIXES, SANDBOX_URL, FakeTime
from benchmarks import BenchOptions, Table, peak_kb, register
from benchmarks.bench_connectors import TimedApp
from benchmarks.databases import postgres_database, unique_name

PLATFORMS = ("meta", "google", "tiktok", "snapchat")
ROWS = 1_000_000  # members of the sync cases' segment: the target size
INSERT_ROWS = 50_000
FLOOR_BATCH = 10_000
NOW = datetime(2026, 11, 28, tzinfo=UTC)
# The values each platform hashes (or takes raw) per member, for the floor.
FLOOR_FIELDS = {
    "meta": ("email", "phone", "mobile_id", "external_id", "first_name", "last_name", "city",
             "state", "zip", "country", "date_of_birth", "gender"),
    "google": ("email", "phone", "first_name", "last_name", "country", "zip"),
    "tiktok": ("email", "phone", "mobile_id"),
    "snapchat": ("email", "phone", "mobile_id"),
}  # fmt: skip


# --- measuring --------------------------------------------------------------------------------


def reset_peak() -> None:
    Path("/proc/self/clear_refs").write_text("5")


def peak_mb() -> float:
    kb = peak_kb()
    return kb / 1024 if kb else float("nan")


def timed(step: Any, postgres: bool = False) -> dict[str, float]:
    """The step's wall time and peak RSS; on PostgreSQL, the server's CPU time during it."""
    reset_peak()
    server = server_cpu_seconds() if postgres else float("nan")
    started = time.perf_counter()
    step()
    seconds = time.perf_counter() - started
    server = server_cpu_seconds() - server if postgres else server
    return {"seconds": seconds, "peak_mb": peak_mb(), "database_seconds": server}


def server_cpu_seconds() -> float:
    """The CPU time so far of this machine's PostgreSQL server: every `postgres` process's own
    and its reaped children's (a backend that exits is added to the postmaster's). NaN when no
    server runs here. On two cores the server's work during a step competes with ours."""
    total, found = 0, False
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:  # the process ended
            continue
        name, fields = text[text.find("(") + 1 : text.rfind(")")], text.rsplit(")", 1)[1].split()
        if name == "postgres":
            found = True
            total += sum(int(value) for value in fields[11:15])  # utime stime cutime cstime
    return total / os.sysconf("SC_CLK_TCK") if found else float("nan")


# --- the member set ---------------------------------------------------------------------------


def profile_rows(tenant_id: int, start: int, stop: int) -> list[dict[str, Any]]:
    return [
        {
            "id": i,
            "tenant_id": tenant_id,
            "profile_id": f"P{i:08d}",
            "first_name": ("Mary", "José", "Ann", "Li")[i % 4],
            "last_name": f"Smith{i % 997}",
            "city": ("Palo Alto", "Paris", "München")[i % 3],
            "state": ("CA", "IDF", "BY")[i % 3],
            "zip": f"{94000 + i % 999}",
            "country": ("US", "FR", "DE")[i % 3],
            "date_of_birth": f"19{50 + i % 50}{1 + i % 12:02d}{1 + i % 28:02d}",
            "gender": "mf"[i % 2],
            "traits": {},
            "content_hash": f"{i:064x}",
            "created_at": NOW,
            "updated_at": NOW,
            "identifiers": text_of(identifiers_of(i)),
        }
        for i in range(start, stop)
    ]


def identifiers_of(i: int) -> list[tuple[str, str, str | None, str | None]]:
    """Profile `i`'s identifiers: (type, value, e164, kind)."""
    found: list[tuple[str, str, str | None, str | None]] = [
        ("email", f" Person.{i}@Example.com", None, None)
    ]
    if i % 12 == 5:
        found.append(("email", f"work.{i}@example.org", None, None))
    if i % 10:
        number = f"+1650{i % 10_000_000:07d}"
        found.append(("phone", f"(650) {number[5:8]}-{number[8:]}", number, None))
    if i % 20 < 9:
        found.append(
            ("mobile_id", f"{i:08X}-AAAA-4BBB-8CCC-{i:012X}", None, ("idfa", "gaid")[i % 2])
        )
    if i % 5 < 3:
        found.append(("external_id", f"CUST-{i:08d}", None, None))
    return found


def insert_members(engine: Engine, tenant_id: int, segment_id: uuid.UUID, start: int, stop: int):
    """Profiles `start..stop-1` with their identifiers, all members of the segment."""
    with engine.begin() as connection:
        for first in range(start, stop, INSERT_ROWS):
            last = min(first + INSERT_ROWS, stop)
            connection.execute(insert(Profile.__table__), profile_rows(tenant_id, first, last))
            members = [
                {"segment_id": segment_id, "profile_pk": i, "tenant_id": tenant_id,
                 "added_at": NOW}
                for i in range(first, last)
            ]  # fmt: skip
            connection.execute(insert(SegmentMember.__table__), members)


def build_template(url: str, rows: int) -> None:
    """The schema and a segment "VIP" of `rows` members, `profile_rows`' rows generated in SQL by
    the database itself (`bench_scale.load_members`; a test holds the two equal): a million
    through `insert_members` took a minute or more."""
    from benchmarks.bench_scale import load_members  # it imports this module

    load_members(url, rows)


# --- the worker (one subprocess per case) -----------------------------------------------------


class Bench:
    """One database, one sandbox, one audience on `platform`."""

    def __init__(self, url: str, platform: str) -> None:
        self.engine = db.make_engine(url)
        self.factory = db.session_factory(engine=self.engine)
        self.platform = SyncPlatform(platform)
        self.sandbox = create_app(SandboxSettings(processing_seconds=0))
        self.timed = TimedApp(self.sandbox)  # the emulated platform's share of the wall time
        self.time = FakeTime()
        from audience_sync.sync.runner import SyncService

        self.service = SyncService(
            self.factory,
            self.engine,
            Settings(),
            CredentialCipher([Fernet.generate_key()]),
            self.connect,
            clock=lambda: NOW,
        )
        with db.transaction(self.factory) as session:
            self.tenant_id = TenantRepository(session).get("default").id
            self.segment_id = SegmentRepository(session, self.tenant_id).ensure("VIP").id
            ConnectionRepository(session, self.tenant_id, self.service.cipher).put(
                self.platform,
                "1234567890",
                {"access_token": "sandbox-token", "developer_token": "d"},
                base_url=SANDBOX_URL + PREFIXES[platform],
                settings={"customer_match_terms_accepted": True},  # Google's; others ignore it
            )
            self.audience_id = (
                AudienceRepository(session, self.tenant_id)
                .add(
                    PlatformAudience(
                        segment_id=self.segment_id,
                        platform=self.platform,
                        platform_audience_name="Bench",
                        ad_account_id="1234567890",
                    )
                )
                .id
            )

    def connect(self, target: Any) -> BaseAudienceConnector:
        return connector_for(
            target.platform,
            self.service.settings,
            open_credentials(self.service.cipher, target),
            ad_account_id=target.ad_account_id,
            options=connector_options(target),
            base_url=target.base_url,
            transport=httpx.ASGITransport(app=self.timed),
            sleep=self.time.sleep,
            clock=self.time.clock,
            limiters=RateLimiters(),
            poll_interval=0.5,
            poll_timeout=30,
        )

    async def lift_rate_limits(self) -> None:
        transport = httpx.ASGITransport(app=self.sandbox)
        async with httpx.AsyncClient(transport=transport, base_url=SANDBOX_URL) as client:
            for family in PREFIXES:
                await client.put("/_sandbox/rate_limits", json={"family": family, "limit": None})

    def sync(self, operation: SyncOperation) -> dict[str, Any]:
        from audience_sync.sync.runner import run_job

        job, _ = trigger_job(
            self.factory, self.tenant_id, self.audience_id, Trigger(operation=operation), NOW
        )
        self.timed.seconds = self.timed.cpu_seconds = 0.0
        done = asyncio.run(run_job(self.service, self.tenant_id, job.id))
        assert done is not None
        assert done.status.value == "completed", done.error_message
        return {
            "sandbox_seconds": self.timed.cpu_seconds,  # see the module's docstring
            "sent": done.profiles_sent,
            "added": done.profiles_added,
            "removed": done.profiles_removed,
        }

    def churn(self, rows: int) -> None:
        """0.5% of members leave, 0.25% change their email, 0.25% new members join."""
        unit = "chr(31)" if self.engine.dialect.name == "postgresql" else "char(31)"
        with self.engine.begin() as connection:
            connection.execute(
                text("DELETE FROM segment_members WHERE profile_pk % 200 = 7"),
            )
            connection.execute(
                text(
                    "UPDATE profiles SET identifiers = replace(identifiers, "
                    f"'email' || {unit}, 'email' || {unit} || 'changed.') WHERE id % 400 = 3"
                )
            )
            # As the importer does for a changed profile: a new content hash (it is how an update
            # knows which members to prepare again).
            connection.execute(
                text("UPDATE profiles SET content_hash = 'f' || substr(content_hash, 2) "
                     "WHERE id % 400 = 3")
            )  # fmt: skip
        insert_members(
            self.engine, self.tenant_id, self.segment_id, rows + 1, rows + rows // 400 + 1
        )

    def floor(self) -> dict[str, float]:
        """Hash every value the platform takes and JSON-encode the batches; time only that."""
        fields = FLOOR_FIELDS[self.platform.value]
        seconds, values = 0.0, 0
        reset_peak()
        for profiles, identifiers in member_batches(self.engine, self.tenant_id, self.segment_id):
            own = (
                identifiers.filter(pl.col("type").is_in(fields))
                .group_by("profile_pk")
                .agg(pl.coalesce("e164", "value").alias("ids"))
            )
            columns = [c for c in fields if c in profiles.columns]
            members = profiles.select("profile_pk", *columns).join(own, on="profile_pk", how="left")
            rows = [(ids or [], more) for _, *more, ids in members.iter_rows()]
            started = time.perf_counter()
            records = []
            for ids, more in rows:
                values += len(ids) + len(more)
                digests = [hashlib.sha256(v.strip().lower().encode()).hexdigest() for v in ids]
                digests += [hashlib.sha256(v.lower().encode()).hexdigest() for v in more if v]
                records.append(digests)
            for start in range(0, len(records), FLOOR_BATCH):
                json.dumps({"data": records[start : start + FLOOR_BATCH]}).encode()
            seconds += time.perf_counter() - started
        return {"seconds": seconds, "peak_mb": peak_mb(), "values": values}


def work_sync(url: str, platform: str, rows: int) -> dict[str, Any]:
    bench = Bench(url, platform)
    asyncio.run(bench.lift_rate_limits())
    out: dict[str, Any] = {}
    postgres = bench.engine.dialect.name == "postgresql"
    out["create"] = timed(lambda: out.update(create_job=bench.sync(SyncOperation.CREATE)), postgres)
    bench.churn(rows)
    out["update"] = timed(lambda: out.update(update_job=bench.sync(SyncOperation.UPDATE)), postgres)
    for case in ("create", "update"):
        out[case]["sandbox_seconds"] = out[f"{case}_job"]["sandbox_seconds"]
    out["floor"] = bench.floor()
    return out


def setup_plan(path: Path, records: int, keys: Path) -> dict[str, Any]:
    """A snapshot of `records` Snapchat-shaped records in the database; the current records
    after 2% churn (1% gone, 1% new) written to `keys` in the runner's shape."""
    import polars_hash  # noqa: F401  (the `chash` namespace)

    from audience_sync.sync.plan import hash_keys

    bench = Bench(f"sqlite:///{path}", "snapchat")
    emails = pl.DataFrame({"d": [f"user{i}@example.com" for i in range(records)]})
    digests = emails.select(pl.col("d").chash.sha2_256())["d"]  # type: ignore[attr-defined]
    frame = pl.DataFrame({"record": '[["EMAIL_SHA256","' + digests + '"]]'}).with_columns(
        record_hash=pl.col("record").chash.sha2_256()  # type: ignore[attr-defined]
    )
    started = time.perf_counter()
    write_snapshot(bench, frame.sort("record_hash"))
    seconds = time.perf_counter() - started
    gone = records // 100
    fresh = pl.DataFrame(
        {"record": [f'[["EMAIL_SHA256","{i:064x}"]]' for i in range(gone)]}
    ).with_columns(record_hash=pl.col("record").chash.sha2_256())  # type: ignore[attr-defined]
    current = pl.concat([frame.slice(gone), fresh])
    # The runner's shape: 128-bit keys of each record's hash and its owner (members.Current).
    current.select(*hash_keys(), owner=pl.int_range(pl.len(), dtype=pl.Int64)).write_ipc(keys)
    return {"setup_seconds": seconds, "audience_id": str(bench.audience_id)}


def work_plan(path: Path, keys: Path, audience: str) -> dict[str, Any]:
    """Time `runner.plan_against_snapshot` in a process holding only the current keys."""
    from audience_sync.sync.runner import plan_against_snapshot

    engine = db.make_engine(f"sqlite:///{path}")
    factory = db.session_factory(engine)
    with db.transaction(factory) as session:
        tenant_id = TenantRepository(session).get("default").id
    current = pl.read_ipc(keys)
    found: dict[str, Any] = {}

    def plan() -> None:
        done = plan_against_snapshot(factory, tenant_id, uuid.UUID(audience), current)
        found.update(adds=len(done.adds), removes=len(done.removes), held=done.held)

    return {"plan": timed(plan) | found}


def write_snapshot(bench: Bench, frame: pl.DataFrame) -> None:
    """The snapshot's parts, as compaction writes them (setup only)."""
    from audience_sync.store.snapshot import PART_ROWS, SnapshotRepository

    with db.transaction(bench.factory) as session:
        snapshot = SnapshotRepository(session, bench.tenant_id)
        for chunk in frame.iter_slices(PART_ROWS):
            snapshot.confirm_records(bench.audience_id, NOW, chunk.select("record_hash", "record"))


def worker(args: list[str]) -> dict[str, Any]:
    command = [sys.executable, "-m", "benchmarks.bench_sync", *args]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode:
        raise RuntimeError(f"{' '.join(args)} failed:\n{done.stderr[-4000:]}")
    found: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return found


@register("sync")
def bench_sync(options: BenchOptions) -> None:
    """Create, update and floor of each platform on SQLite (one run each)."""
    rows = options.rows_or(ROWS)
    with tempfile.TemporaryDirectory(prefix="bench-sync-") as tmp:
        template = Path(tmp) / "template.db"
        started = time.perf_counter()
        build_template(f"sqlite:///{template}", rows)
        print(f"setup: {rows:,} members inserted in {time.perf_counter() - started:.0f} s")
        print("run_job on SQLite against the in-process sandbox; peak RSS per subprocess\n")

        @contextmanager
        def sqlite_copy(platform: str) -> Iterator[str]:
            path = Path(tmp) / f"{platform}.db"
            shutil.copy(template, path)
            try:
                yield f"sqlite:///{path}"
            finally:
                path.unlink()

        print_verdicts(sync_cases(options, sqlite_copy, repeat=options.repeat_or(1)))


@register("sync-plan", group="scale")
def bench_sync_plan(options: BenchOptions) -> None:
    """`plan_against_snapshot` of a `--stream-rows`-record audience (default 10,000,000)."""
    planned = options.stream_rows
    with tempfile.TemporaryDirectory(prefix="bench-plan-") as tmp:
        path = Path(tmp) / "plan.db"
        engine = db.make_engine(f"sqlite:///{path}")
        db.upgrade(engine)
        engine.dispose()
        keys = Path(tmp) / "current.arrow"
        got = worker(["plan-setup", str(path), str(planned), str(keys)])
        got |= worker(["plan", str(path), str(keys), got["audience_id"]])
        plan = got["plan"]
        print(
            f"plan of {planned:,} records, 2% churn (snapshot written in "
            f"{got['setup_seconds']:.0f} s, not measured)\n"
        )
        table = Table(["case", "records", "adds", "removes", "wall s", "peak MB"])
        table.row(
            [
                "plan",
                f"{planned:,}",
                f"{plan['adds']:,}",
                f"{plan['removes']:,}",
                f"{plan['seconds']:.2f}",
                f"{plan['peak_mb']:.0f}",
            ]
        )
        print_verdicts(
            [(f"plan of {planned:,} under 30 s in under 1.5 GB",
              plan["seconds"] < 30 and plan["peak_mb"] < 1536)]
        )  # fmt: skip


def print_verdicts(verdicts: list[tuple[str, bool]]) -> None:
    print("\nSync targets, this run:")
    for name, ok in verdicts:
        print(f"  {'met    ' if ok else 'NOT MET'}  {name}")


def sync_cases(
    options: BenchOptions,
    database: Callable[[str], AbstractContextManager[str]],
    repeat: int,
) -> list[tuple[str, bool]]:
    """Create, update and floor of each platform, `repeat` times each in a fresh `database`
    (a context giving its URL); prints the table of medians and returns the verdicts."""
    rows = options.rows_or(ROWS)
    table = Table(["platform", *CASE_HEADERS])
    verdicts: list[tuple[str, bool]] = []
    for platform in options.platforms or PLATFORMS:
        runs = []
        for _ in range(repeat):
            with database(platform) as url:
                runs.append(worker(["sync", url, platform, str(rows)]))
        got = median_run(runs)
        floor = got["floor"]
        engine_create = got["create"]["seconds"] - got["create"]["sandbox_seconds"]
        verdicts += [
            (f"{platform}: 1% update under 10 s", got["update"]["seconds"] < 10),
            (
                f"{platform}: create within 3× the floor (ours)",
                engine_create < 3 * floor["seconds"],
            ),
        ]
        for case in ("create", "update"):
            table.row(case_row(platform, case, rows, got[case], floor["seconds"]))
    return verdicts


# The columns of a create's or update's row, after what it names (a platform, a database).
CASE_HEADERS = ["case", "members", "wall s", "sandbox s", "ours s", "database s", "peak MB",
                "floor s", "wall/floor", "ours/floor"]  # fmt: skip


def case_row(label: str, case: str, rows: int, figures: dict[str, Any], floor: float) -> list[str]:
    """A create's or update's cells (`CASE_HEADERS`), "ours" being wall − the sandbox's CPU."""
    wall, sandbox = figures["seconds"], figures["sandbox_seconds"]
    return [
        label,
        case,
        f"{rows:,}",
        f"{wall:.2f}",
        f"{sandbox:.2f}",
        f"{wall - sandbox:.2f}",
        database_seconds(figures),
        f"{figures['peak_mb']:.0f}",
        f"{floor:.2f}",
        f"{wall / floor:.1f}",
        f"{(wall - sandbox) / floor:.1f}",
    ]


def database_seconds(figures: dict[str, Any]) -> str:
    """The PostgreSQL server's CPU during the step; SQLite's work is in "ours" (in process)."""
    seconds = figures.get("database_seconds", float("nan"))
    return "—" if seconds != seconds else f"{seconds:.2f}"  # NaN: no server on this machine


def median_run(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Each figure of the cases (create, update, floor) as its median over `runs`."""
    return {
        case: {name: statistics.median(run[case][name] for run in runs) for name in runs[0][case]}
        for case in ("create", "update", "floor")
    }


@register("sync-postgres")
def bench_sync_postgres(options: BenchOptions) -> None:
    """`sync`'s create, update and floor on PostgreSQL (see the module's docstring)."""
    rows, repeat = options.rows_or(ROWS), options.repeat_or(1)
    stem = unique_name("audience_sync_bench")

    def copy(platform: str) -> AbstractContextManager[str]:
        return postgres_database(f"{stem}_{platform}", template=stem)

    with postgres_database(stem) as url:
        started = time.perf_counter()
        build_template(url, rows)
        print(f"setup: {rows:,} members inserted in {time.perf_counter() - started:.0f} s")
        print(
            f"run_job on PostgreSQL (never analyzed) against the in-process sandbox; medians of "
            f"{repeat} run(s); peak RSS per subprocess\n"
        )
        print_verdicts(sync_cases(options, copy, repeat=repeat))


if __name__ == "__main__":
    case, *rest = sys.argv[1:]
    if case == "sync":
        result = work_sync(rest[0], rest[1], int(rest[2]))
    elif case == "plan-setup":
        result = setup_plan(Path(rest[0]), int(rest[1]), Path(rest[2]))
    else:
        result = work_plan(Path(rest[0]), Path(rest[1]), rest[2])
    print(json.dumps(result))
