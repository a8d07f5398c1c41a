"""Many audiences, many workers: every audience due at once, synced by 1, 2 and 4 Celery workers.

```
flock /tmp/bench.lock nice python -m benchmarks --only workers              # the full case
python -m benchmarks --only workers --segments 5 --max-members 5000 --workers 2   # a quick look
```

The setup, never part of a figure: `--segments` segments (default 50) with sizes spread
log-uniformly from 1,000 to `--max-members` (default 200,000), each linked to the four platforms
(200 audiences by default), all due (`auto_sync`, `next_sync_at` in the past), in a PostgreSQL
template database the bench creates and drops on `AUDIENCE_SYNC_BENCH_DATABASE_URL` (default
postgresql://postgres@127.0.0.1:5432/postgres); members are nested prefixes of one profile
table (realistic shapes, `bench_sync.profile_rows`). The sandbox runs in a process of its own
(rate limits lifted, no processing delay), reached over a socket.

Each run gets a fresh `CREATE DATABASE … TEMPLATE` copy (never analyzed: the test server runs
with autovacuum off) and a broker queue of its own on Redis, then starts N `audience-sync worker
--concurrency 1` processes (Celery's prefork pool: a parent and one child each) and one
`audience-sync beat` (a tick every `TICK_SECONDS`, leases of `LEASE_SECONDS`, from the settings).
It ends when every audience has a completed job, a few ticks later; then it checks, from the
database and the sandbox:

- exactly once: every audience has exactly one completed job, none pending or running; a failed
  job is allowed only as the reaper left it (its worker killed, "stopped responding"), resumed by
  that completed job;
- convergence: each platform holds exactly one audience per segment, holding, key by key, the
  values `testing.support.expected_identifiers` gives for the segment's members (compared by
  digests, `/_sandbox/audiences?digest=true`; that reference knows Meta's identity keys, names,
  country and zip, not its city, state, birth date, gender or external id), and every run leaves
  exactly what the first run left (the size and every key, those included);
- throughput: members (summed over the audiences) per second and audiences per minute, over the
  window from the first job's start to the last job's end (the jobs' own timestamps), and their
  ratio to the one-worker run;
- where the CPU went: CPU seconds of the workers (each worker's parent and child), the sandbox,
  the beat and the run's PostgreSQL backends; the seconds the workers spent runnable but waiting
  for a core (`/proc/PID/schedstat`); the machine's busy share (`/proc/stat`) and its load
  (`/proc/loadavg`) sampled every second; the deepest the broker's queue got, and what was left
  in it (messages for jobs already done: every tick sends each due pending job again).

The kill run (`kill`, two workers): once a third of the audiences are done and both workers are
syncing, one worker's process group is killed with SIGKILL. Its job stays `running` until the
tick's reaper fails it (no heartbeat for `LEASE_SECONDS`) and queues a job resuming from the last
confirmed batch (`scheduler/distributed.py`); the same checks must hold.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import kombu
import psutil
from cryptography.fernet import Fernet
from sqlalchemy import Engine, func, insert, select, text
from sqlalchemy.engine import make_url

from audience_sync.crypto import CredentialCipher
from audience_sync.domain.models import SyncPlatform, SyncStatus
from audience_sync.sandbox.controls import identifiers_digest
from audience_sync.sources.members import member_batches
from audience_sync.store import db
from audience_sync.store.repositories import (
    AudienceRepository,
    ConnectionRepository,
    SegmentRepository,
    TenantRepository,
)
from audience_sync.store.tables import AudienceSyncJob, PlatformAudience, Profile, Segment
from audience_sync.sync.members import users_of
from audience_sync.testing.support import PREFIXES, expected_identifiers
from benchmarks import BenchOptions, Table, register
from benchmarks.bench_sync import INSERT_ROWS, profile_rows
from benchmarks.databases import admin_sql, unique_name, url_of
from benchmarks.sandboxes import lift_rate_limits, sandbox_process

PLATFORMS = ("meta", "google", "tiktok", "snapchat")
SMALLEST = 1_000
ACCOUNT = "1234567890"
BROKER = os.environ.get("AUDIENCE_SYNC_BENCH_BROKER_URL", "redis://127.0.0.1:6379/0")
TICK_SECONDS = 30  # the tick queues the due jobs, sends them, reaps (a dead worker's job)
LEASE_SECONDS = 30  # a dead worker's job is reaped this long after its last heartbeat
SETTLE_SECONDS = TICK_SECONDS + 5  # after the last job: one more tick, nothing may run
RUN_TIMEOUT = 4 * 3600
DUE = datetime(2026, 1, 1, tzinfo=UTC)  # every audience's next sync: long past


def segment_sizes(segments: int, largest: int) -> list[int]:
    """`segments` sizes evenly spaced on a log scale from 1,000 (or `largest`) to `largest`."""
    smallest = min(SMALLEST, largest)
    if segments == 1:
        return [largest]
    ratio = largest / smallest
    return [round(smallest * ratio ** (k / (segments - 1))) for k in range(segments)]


def fresh_sandbox(url: str) -> None:
    """Forget every audience, then lift the rate limits (a reset restores them)."""
    httpx.post(f"{url}/_sandbox/reset").raise_for_status()
    lift_rate_limits(url)


# --- the template database ----------------------------------------------------------------------


@dataclass
class World:
    """What every run starts from: the template's name, its segments and what they must hold."""

    template: str
    key: str
    sizes: dict[uuid.UUID, int] = field(default_factory=dict)  # segment id: members
    # (platform, segment id): by wire key, the digest of the values the sandbox must hold
    expected: dict[tuple[str, uuid.UUID], dict[str, str]] = field(default_factory=dict)
    # (platform, segment id): what the first run left on the platform (size, every key's
    # digest); every later run must leave the same
    first: dict[tuple[str, uuid.UUID], tuple[int, dict[str, str]]] = field(default_factory=dict)

    @property
    def audiences(self) -> int:
        return len(self.sizes) * len(PLATFORMS)

    @property
    def members(self) -> int:
        return sum(self.sizes.values()) * len(PLATFORMS)


def build_template(url: str, sizes: list[int], sandbox: str, key: str) -> World:
    """Profiles 1..max(sizes); segment k holds the first sizes[k]; four audiences a segment."""
    engine = db.make_engine(url)
    db.upgrade(engine)
    factory = db.session_factory(engine)
    cipher = CredentialCipher([key.encode()])
    world = World(template=make_url(url).database or "", key=key)
    with db.transaction(factory) as session:
        tenant_id = TenantRepository(session).get("default").id
        connections = ConnectionRepository(session, tenant_id, cipher)
        for platform in PLATFORMS:
            connections.put(
                SyncPlatform(platform),
                ACCOUNT,
                {"access_token": "sandbox-token", "developer_token": "d"},
                base_url=sandbox + PREFIXES[platform],
                settings={"customer_match_terms_accepted": True},  # Google's; others ignore it
            )
        for number, size in enumerate(sizes):
            segment_id = SegmentRepository(session, tenant_id).ensure(f"S{number:03d}").id
            world.sizes[segment_id] = size
            for platform in PLATFORMS:
                AudienceRepository(session, tenant_id).add(
                    PlatformAudience(
                        segment_id=segment_id,
                        platform=SyncPlatform(platform),
                        platform_audience_name=f"S{number:03d} {platform}",
                        ad_account_id=ACCOUNT,
                        auto_sync=True,
                        next_sync_at=DUE,
                    )
                )
    insert_profiles(engine, tenant_id, max(sizes))
    with engine.begin() as connection:
        for segment_id, size in world.sizes.items():
            connection.execute(
                text(
                    "INSERT INTO segment_members (segment_id, profile_pk, tenant_id, added_at) "
                    "SELECT :segment, g, :tenant, :now FROM generate_series(1, :size) AS g"
                ),
                {"segment": segment_id, "tenant": tenant_id, "now": DUE, "size": size},
            )
    world.expected = expected_digests(engine, tenant_id, world.sizes)
    engine.dispose()
    return world


def insert_profiles(engine: Engine, tenant_id: int, count: int) -> None:
    with engine.begin() as connection:
        for first in range(1, count + 1, INSERT_ROWS):
            last = min(first + INSERT_ROWS, count + 1)
            connection.execute(insert(Profile.__table__), profile_rows(tenant_id, first, last))


def expected_digests(
    engine: Engine, tenant_id: int, sizes: dict[uuid.UUID, int]
) -> dict[tuple[str, uuid.UUID], dict[str, str]]:
    """Each (platform, segment)'s expected listing digest. Segments are nested prefixes, so the
    largest one's members are read once and the listing grows segment by segment."""
    largest = max(sizes, key=lambda s: sizes[s])
    ranked: list[tuple[int, Any]] = []
    for profiles, identifiers in member_batches(engine, tenant_id, largest):
        users = users_of(profiles, identifiers)
        ranked += zip(profiles["profile_pk"].to_list(), users, strict=True)
    ranked.sort(key=lambda pair: pair[0])
    users = [user for _, user in ranked]
    found: dict[tuple[str, uuid.UUID], dict[str, str]] = {}
    for platform in PLATFORMS:
        held: dict[str, set[str]] = {}
        done = 0
        for segment_id, size in sorted(sizes.items(), key=lambda item: item[1]):
            for key, values in expected_identifiers(platform, users[done:size]).items():
                held.setdefault(key, set()).update(values)
            done = size
            listing = {key: sorted(values) for key, values in sorted(held.items())}
            found[(platform, segment_id)] = identifiers_digest(listing)
    return found


# --- one run ------------------------------------------------------------------------------------


class Cpu:
    """CPU seconds of processes, by role, summed over every process ever seen in the role."""

    def __init__(self) -> None:
        self.seen: dict[tuple[str, int], float] = {}
        # Seconds spent runnable but waiting for a core (`/proc/PID/schedstat`'s second field):
        # what a saturated machine costs each process.
        self.waits: dict[tuple[str, int], float] = {}
        self.before: tuple[dict[tuple[str, int], float], ...] = ({}, {})  # `mark`

    def sample(self, role: str, process: psutil.Process) -> None:
        with contextlib.suppress(psutil.Error):
            for one in [process, *process.children(recursive=True)]:
                with contextlib.suppress(psutil.Error, OSError):
                    times = one.cpu_times()
                    self.seen[(role, one.pid)] = times.user + times.system
                    schedstat = Path(f"/proc/{one.pid}/schedstat").read_text().split()
                    self.waits[(role, one.pid)] = int(schedstat[1]) / 1e9

    def sample_backends(self, database: str) -> None:
        """The PostgreSQL backends serving this run's database (their title names it)."""
        for one in psutil.process_iter(["name", "cmdline"]):
            with contextlib.suppress(psutil.Error):
                title = " ".join(one.info["cmdline"] or ())
                if one.info["name"] == "postgres" and f" {database} " in title:
                    times = one.cpu_times()
                    self.seen[("postgres", one.pid)] = times.user + times.system

    def mark(self) -> None:
        """What was sampled so far is the run's start (the sandbox outlives the runs)."""
        self.before = dict(self.seen), dict(self.waits)

    def of(self, role: str) -> float:
        start = self.before[0]
        return sum(s - start.get((r, p), 0) for (r, p), s in self.seen.items() if r == role)

    def waited(self, role: str) -> float:
        start = self.before[1]
        return sum(s - start.get((r, p), 0) for (r, p), s in self.waits.items() if r == role)


def machine_busy() -> tuple[float, float]:
    """(busy, total) jiffies of the whole machine, from /proc/stat."""
    fields = [int(v) for v in Path("/proc/stat").read_text().split("\n")[0].split()[1:]]
    idle = fields[3] + fields[4]  # idle, iowait
    return sum(fields) - idle, sum(fields)


def loadavg() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


@dataclass
class Run:
    """One run's processes and what was measured while they ran."""

    name: str
    workers: int
    database: str
    url: str
    queue: str
    logs: Path
    processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    cpu: Cpu = field(default_factory=Cpu)
    loads: list[float] = field(default_factory=list)
    busy_share: float = 0.0
    killed: str = ""
    left_in_queue: int = 0
    deepest_queue: int = 0  # messages waiting on the broker, the most seen

    def env(self, key: str) -> dict[str, str]:
        return {
            **os.environ,
            "AUDIENCE_SYNC_DATABASE_URL": self.url,
            "AUDIENCE_SYNC_BROKER_URL": BROKER,
            "AUDIENCE_SYNC_CELERY_QUEUE": self.queue,
            "AUDIENCE_SYNC_SECRET_KEY": key,
            "AUDIENCE_SYNC_SCHEDULER_TICK_SECONDS": str(TICK_SECONDS),
            "AUDIENCE_SYNC_JOB_LEASE_SECONDS": str(LEASE_SECONDS),
            "AUDIENCE_SYNC_LOG_LEVEL": "WARNING",
            "AUDIENCE_SYNC_VAR_DIR": str(self.logs / "var"),
            "AUDIENCE_SYNC_ALLOW_CONNECTION_BASE_URL": "true",  # connections point at the sandbox
        }

    def start(self, role: str, key: str, *args: str) -> None:
        command = [sys.executable, "-m", "audience_sync.cli", *args]
        with (self.logs / f"{self.name}-{role}.log").open("wb") as log:
            # A session of its own: the kill takes the worker's parent and child together.
            self.processes[role] = subprocess.Popen(
                command, env=self.env(key), stdout=log, stderr=log, start_new_session=True
            )

    def kill(self, role: str) -> None:
        os.killpg(self.processes[role].pid, signal.SIGKILL)
        self.processes[role].wait()
        self.killed = role

    def stop(self) -> None:
        for process in self.processes.values():
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
        for process in self.processes.values():
            try:
                process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
        with kombu.Connection(BROKER) as connection:
            channel = connection.default_channel
            with contextlib.suppress(Exception):
                self.left_in_queue = channel.queue_declare(self.queue, passive=True).message_count
            # Purged first: kombu's Redis `queue_delete` only removes the bindings this
            # connection declared (none), which left the messages behind.
            channel.queue_purge(self.queue)
            channel.queue_delete(self.queue)

    def sample(self, sandbox: psutil.Process) -> None:
        for role, process in self.processes.items():
            if role != self.killed:
                self.cpu.sample(
                    "beat" if role == "beat" else "workers", psutil.Process(process.pid)
                )
                if role != "beat":
                    self.cpu.sample(role, psutil.Process(process.pid))
        self.cpu.sample("sandbox", sandbox)
        self.cpu.sample_backends(self.database)
        self.loads.append(float(Path("/proc/loadavg").read_text().split()[0]))
        with kombu.Connection(BROKER) as connection, contextlib.suppress(Exception):
            waiting = connection.default_channel.queue_declare(self.queue, passive=True)
            self.deepest_queue = max(self.deepest_queue, waiting.message_count)

    def crashed(self) -> str | None:
        for role, process in self.processes.items():
            if role != self.killed and process.poll() is not None:
                log = (self.logs / f"{self.name}-{role}.log").read_text()[-3000:]
                return f"{role} ended early:\n{log}"
        return None


def job_counts(engine: Engine) -> dict[str, int]:
    with engine.connect() as connection:
        rows = connection.execute(
            select(AudienceSyncJob.status, func.count()).group_by(AudienceSyncJob.status)
        ).all()
    return {status.value: count for status, count in rows}


def mid_run(counts: dict[str, int], workers: int, audiences: int) -> bool:
    """A third of the audiences done and every worker syncing: a kill now stops a sync."""
    return counts.get("running", 0) == workers and counts.get("completed", 0) >= audiences // 3


def run_case(
    world: World, run: Run, sandbox: tuple[str, psutil.Process], kill: bool
) -> dict[str, Any]:
    engine = db.make_engine(run.url)
    url, sandbox_process_ = sandbox
    fresh_sandbox(url)
    try:
        for number in range(run.workers):
            run.start(f"worker{number}", world.key, "worker", "--concurrency", "1")
        time.sleep(3)  # the workers connect to the broker first: the first tick's jobs find them
        run.sample(sandbox_process_)
        run.cpu.mark()  # the workers' start-up is not part of the run's figures
        busy_before = machine_busy()
        load_start = loadavg()
        run.start("beat", world.key, "beat")
        started = time.monotonic()
        while True:
            counts = job_counts(engine)
            run.sample(sandbox_process_)
            if counts.get("completed", 0) >= world.audiences and not (
                counts.get("pending") or counts.get("running")
            ):
                break
            if kill and not run.killed and mid_run(counts, run.workers, world.audiences):
                run.kill("worker0")
            problem = run.crashed()
            if problem or time.monotonic() - started > RUN_TIMEOUT:
                raise RuntimeError(problem or f"{run.name}: timed out; jobs {counts}")
            time.sleep(1)
        wall = time.monotonic() - started
        time.sleep(SETTLE_SECONDS)
        run.sample(sandbox_process_)
        busy_after = machine_busy()
        run.busy_share = (busy_after[0] - busy_before[0]) / (busy_after[1] - busy_before[1])
        load_end = loadavg()
    finally:
        run.stop()
    checked = check(world, engine, url)
    engine.dispose()
    return {**checked, "wall": wall, "load": f"{load_start} → {load_end}"}


def check(world: World, engine: Engine, sandbox: str) -> dict[str, Any]:
    """Exactly once and convergence (raises on a breach); the jobs' window and figures."""
    factory = db.session_factory(engine)
    with db.transaction(factory) as session:
        jobs = list(session.scalars(select(AudienceSyncJob)))
        audiences = {a.id: a for a in session.scalars(select(PlatformAudience))}
        segments = {s.id: s.name for s in session.scalars(select(Segment))}
    by_audience: dict[uuid.UUID, list[AudienceSyncJob]] = {a: [] for a in audiences}
    for job in jobs:
        by_audience[job.platform_audience_id].append(job)
    problems: list[str] = []
    reaped = 0
    for audience_id, own in by_audience.items():
        completed = [j for j in own if j.status is SyncStatus.COMPLETED]
        failed = [j for j in own if j.status is SyncStatus.FAILED]
        others = [j for j in own if j not in completed and j not in failed]
        if len(completed) != 1 or others:
            problems.append(f"{audience_id}: {[j.status.value for j in own]}")
        for job in failed:
            if "stopped responding" not in (job.error_message or ""):
                problems.append(f"{audience_id}: failed: {job.error_message}")
            reaped += 1
    held = sandbox_holdings(sandbox)
    for audience in audiences.values():
        platform, case = audience.platform.value, (audience.platform.value, audience.segment_id)
        name = f"{segments[audience.segment_id]} {platform}"
        found = held.get((platform, audience.platform_audience_id or ""))
        if found is None:
            problems.append(f"{name}: not on the platform")
            continue
        digests = found["identifiers_sha256"]
        wrong = [k for k, v in world.expected[case].items() if digests.get(k) != v]
        if wrong:
            problems.append(f"{name}: {', '.join(wrong)} differ from the expected")
        if world.first.setdefault(case, (found["size"], digests)) != (found["size"], digests):
            problems.append(f"{name}: the platform holds other members than after the first run")
    if len(held) != world.audiences:
        problems.append(f"the sandbox holds {len(held)} audiences, not {world.audiences}")
    if problems:
        raise AssertionError("\n".join(problems[:20]))
    done = [j for j in jobs if j.status is SyncStatus.COMPLETED]
    first = min(j.started_at for j in jobs if j.started_at is not None)
    last = max(j.completed_at for j in done if j.completed_at is not None)
    return {
        "window": (last - first).total_seconds(),
        "jobs": len(jobs),
        "reaped": reaped,
        "sent": sum(j.profiles_sent for j in jobs),
    }


def sandbox_holdings(url: str) -> dict[tuple[str, str], dict[str, Any]]:
    held: dict[tuple[str, str], dict[str, Any]] = {}
    for platform in PLATFORMS:
        params = {"platform": platform, "identifiers": "false", "digest": "true"}
        answer = httpx.get(f"{url}/_sandbox/audiences", params=params, timeout=600)
        for audience in answer.json():
            held[(platform, audience["audience_id"])] = audience
    return held


# --- the benchmark ------------------------------------------------------------------------------


@register("workers", group="scale")
def bench_workers(options: BenchOptions) -> None:
    sizes = segment_sizes(options.segments, options.max_members)
    stem = unique_name("workers_bench")

    with (
        tempfile.TemporaryDirectory(prefix="bench-workers-") as tmp,
        sandbox_process(Path(tmp)) as sandbox,
    ):
        admin_sql(f'CREATE DATABASE "{stem}"')
        try:
            started = time.perf_counter()
            world = build_template(url_of(stem), sizes, sandbox[0], Fernet.generate_key().decode())
            print(
                f"setup: {len(sizes)} segments of {sizes[0]:,}–{sizes[-1]:,} members "
                f"({sum(sizes):,} in all), {world.audiences} audiences, {world.members:,} "
                f"members to sync; template and expected sets in "
                f"{time.perf_counter() - started:.0f} s"
            )
            print(
                f"Celery workers (prefork, concurrency 1 each) on {BROKER}, PostgreSQL never "
                f"analyzed, the sandbox in its own process; tick {TICK_SECONDS} s, "
                f"lease {LEASE_SECONDS} s\n"
            )
            cases = [(f"{n} worker{'s' if n > 1 else ''}", n, False) for n in options.worker_counts]
            cases.append(("2 workers, one killed", 2, True))
            results = []
            table = Table(
                ["run", "jobs", "reaped", "window s", "members/s", "audiences/min", "scaling",
                 "busy", "load (1 min) max", "CPU s workers", "waited for a core",
                 "sandbox", "postgres", "beat", "queue max", "left"]
            )  # fmt: skip
            base: float | None = None
            for name, workers, kill in cases:
                database = f"{stem}_{len(results)}"
                admin_sql(f'CREATE DATABASE "{database}" TEMPLATE "{stem}"')
                run = Run(
                    name=database,
                    workers=workers,
                    database=database,
                    url=url_of(database),
                    queue=f"bench-workers-{uuid.uuid4().hex[:8]}",
                    logs=Path(tmp),
                )
                try:
                    got = run_case(world, run, sandbox, kill)
                finally:
                    admin_sql(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
                rate = world.members / got["window"]
                if workers == 1 and not kill:
                    base = rate
                results.append((name, got, run))
                per_worker = " ".join(f"{run.cpu.of(f'worker{n}'):.0f}" for n in range(workers))
                table.row(
                    [
                        name,
                        str(got["jobs"]),
                        str(got["reaped"]),
                        f"{got['window']:.0f}",
                        f"{rate:,.0f}",
                        f"{world.audiences / got['window'] * 60:.1f}",
                        f"{rate / base:.2f}×" if base else "—",
                        f"{run.busy_share:.0%}",
                        f"{max(run.loads):.1f}",
                        f"{run.cpu.of('workers'):.0f} ({per_worker})",
                        f"{run.cpu.waited('workers'):.0f}",
                        f"{run.cpu.of('sandbox'):.0f}",
                        f"{run.cpu.of('postgres'):.0f}",
                        f"{run.cpu.of('beat'):.0f}",
                        str(run.deepest_queue),
                        str(run.left_in_queue),
                    ]
                )
            print()
            for name, got, _ in results:
                print(f"{name}: wall {got['wall']:.0f} s, load {got['load']}")
            print(
                "\nEvery run: each audience synced exactly once (one completed job; a killed "
                "worker's job failed by the reaper and resumed), every sandbox audience equal "
                "to its segment's expected set."
            )
        finally:
            admin_sql(f'DROP DATABASE IF EXISTS "{stem}" WITH (FORCE)')
