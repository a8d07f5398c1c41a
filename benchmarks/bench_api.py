"""The API under load: `serve` on PostgreSQL, Celery workers syncing, 50 clients for 60 s.

Production runs `audience-sync serve` for the API with its syncs on Celery workers
(docs/sync.md, "Distributed"), so the bench does the same, every part a real process on this
machine: the platform sandbox, `audience-sync serve` with `AUDIENCE_SYNC_BROKER_URL` set (Redis
on 127.0.0.1, a queue of the bench's own), one `audience-sync worker --concurrency 1` and one
`audience-sync beat` (a tick every 5 s), on a PostgreSQL database the bench creates and drops on
`AUDIENCE_SYNC_BENCH_DATABASE_URL` (default postgresql://postgres@127.0.0.1:5432/postgres),
never analyzed (the test server runs with autovacuum off: the plans are those of tables without
statistics).

The data: one tenant and its API key, the four platforms connected to the sandbox, 10 segments
of 500 to 5,000 members (27,500 profiles), each synced to the four platforms (40 audiences),
each audience with a year of finished jobs (120 rows); every audience is due at the start, so
the first tick queues 40 scheduled syncs, and the clients trigger more as they go.

The load comes from a second process (`python -m benchmarks.bench_api drive …`: keep-alive
HTTP/1.1 on asyncio's streams, written by hand because httpx took more CPU than the server it
measured): `BENCH_API_CLIENTS` clients (default 50) for `BENCH_API_SECONDS` (default 60), each
sending its next request as soon as the last one is answered (no think time, as `wrk` does),
chosen at random: the audiences list, one audience, one job, an audience's health, `/healthz`,
and sync triggers (`POST /audiences/{id}/sync`), a third of those as three at once for the same
audience. Latency is measured in the client, from send to the whole answer read.
`BENCH_API_THINK_MS=N` gives each client a pause of N ms on average before each request: a load
under what `serve` can answer, whose latency is the requests' own rather than the queue's.

Errors are answers other than 2xx (and transport failures) except the documented 409 and 429,
which are counted apart. A trigger answers 202 with a new job or 200 with the job already pending
or running (docs/api.md); afterwards the database must show no duplicate job: at most one
pending or running job per audience at every moment (no job created while the audience's
previous one was still active) and as many API-triggered jobs as 202 answers.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import resource
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections import defaultdict
from contextlib import AbstractContextManager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import kombu
from cryptography.fernet import Fernet
from sqlalchemy import Engine, insert, text

from audience_sync.crypto import CredentialCipher
from audience_sync.domain.models import SyncOperation, SyncPlatform, SyncStatus, TriggeredBy
from audience_sync.store import db
from audience_sync.store.repositories import (
    ApiKeyRepository,
    AudienceRepository,
    ConnectionRepository,
    SegmentRepository,
    TenantRepository,
)
from audience_sync.store.tables import AudienceSyncJob, PlatformAudience
from audience_sync.testing.support import PREFIXES
from benchmarks import BenchOptions, Table, register
from benchmarks.bench_sync import insert_members
from benchmarks.databases import postgres_database, unique_name
from benchmarks.sandboxes import free_port, lift_rate_limits, sandbox_command

SEGMENTS = 10
SEGMENT_STEP = 500  # segment i holds (i + 1) × this many members
HISTORY_JOBS = 120  # finished jobs per audience: a year of three-day syncs
SECONDS = int(os.environ.get("BENCH_API_SECONDS", "60"))
# A client's mean pause between an answer and its next request (exponential, ms); 0, the
# default, is the issue's load (no think time). With a pause the offered load stays under what
# `serve` can answer, so latency is the requests' own, not the queue's (docs/performance.md).
THINK_MS = float(os.environ.get("BENCH_API_THINK_MS", "0"))
CLIENTS = int(os.environ.get("BENCH_API_CLIENTS", "50"))
READ_TARGET_MS = 100.0
# What a client does next, by weight (reads most of the time, as dashboards and scripts do).
MIX = {
    "GET /audiences": 20,
    "GET /audiences/{id}": 25,
    "GET /sync-jobs/{id}": 20,
    "GET /audiences/{id}/health": 15,
    "GET /healthz": 10,
    "POST /audiences/{id}/sync": 10,
}
READS = tuple(name for name in MIX if name.startswith("GET"))
TRIGGER = "POST /audiences/{id}/sync"
DOCUMENTED = (409, 429)  # answers the API documents for a conflict or a limit: not errors
START_TIMEOUT = 60
KEEP_ALIVE_SECONDS = 4.0  # a connection idle longer is opened again (uvicorn closes at 5 s)


# --- the processes ----------------------------------------------------------------------------


class Processes:
    """Child processes, each logging to a file of its own, stopped together (SIGTERM, then
    SIGKILL after a while)."""

    def __init__(self, folder: Path, env: dict[str, str]) -> None:
        self.folder = folder
        self.env = env
        self.started: list[tuple[str, subprocess.Popen[bytes]]] = []

    def start(self, name: str, command: list[str]) -> subprocess.Popen[bytes]:
        with (self.folder / f"{name}.log").open("wb") as log:
            process = subprocess.Popen(command, env=self.env, stdout=log, stderr=log)
        self.started.append((name, process))
        return process

    def check(self) -> None:
        for name, process in self.started:
            if process.poll() is not None:
                raise RuntimeError(f"{name} ended early (code {process.returncode}):\n"
                                   f"{self.log(name)}")  # fmt: skip

    def log(self, name: str) -> str:
        return (self.folder / f"{name}.log").read_text(errors="replace")[-4000:]

    def stop(self) -> None:
        for _, process in reversed(self.started):
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for _, process in reversed(self.started):
            try:
                process.wait(timeout=40)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def wait_until_up(url: str, processes: Processes) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while True:
        processes.check()
        try:
            if httpx.get(url, timeout=2).status_code < 500:
                return
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline:
            raise RuntimeError(f"{url} did not answer within {START_TIMEOUT} s")
        time.sleep(0.2)


# --- the data ---------------------------------------------------------------------------------


def seed(url: str, sandbox: str, secret: bytes, now: datetime) -> tuple[str, list[str]]:
    """Tenant, key, connections, segments with members, audiences with history; returns the
    API key and the audience ids."""
    engine = db.make_engine(url)
    db.upgrade(engine)
    factory = db.session_factory(engine)
    cipher = CredentialCipher([secret])
    sizes = [(i + 1) * SEGMENT_STEP for i in range(SEGMENTS)]
    with db.transaction(factory) as session:
        tenant_id = TenantRepository(session).get("default").id
        key = ApiKeyRepository(session).issue(tenant_id, name="bench")
        for platform in SyncPlatform:
            ConnectionRepository(session, tenant_id, cipher).put(
                platform,
                "1234567890",
                {"access_token": "sandbox-token", "developer_token": "d"},
                base_url=sandbox + PREFIXES[platform.value],
                settings={"customer_match_terms_accepted": True},  # Google's; others ignore it
            )
        segments = [
            SegmentRepository(session, tenant_id).ensure(f"Segment {i:02d}").id
            for i in range(SEGMENTS)
        ]
        audiences = AudienceRepository(session, tenant_id)
        audience_ids = [
            audiences.add(
                PlatformAudience(
                    segment_id=segment_id,
                    platform=platform,
                    platform_audience_name=f"Bench {n:02d} {platform.value}",
                    ad_account_id="1234567890",
                    sync_interval_hours=72,
                    next_sync_at=now - timedelta(minutes=1),  # due: the first tick queues it
                )
            ).id
            for n, segment_id in enumerate(segments)
            for platform in SyncPlatform
        ]
    first = 1
    for segment_id, size in zip(segments, sizes, strict=True):
        insert_members(engine, tenant_id, segment_id, first, first + size)
        first += size
    insert_history(engine, tenant_id, audience_ids, now)
    engine.dispose()
    return key, [str(a) for a in audience_ids]


def insert_history(
    engine: Engine, tenant_id: int, audience_ids: list[uuid.UUID], now: datetime
) -> None:
    """`HISTORY_JOBS` finished syncs per audience, one every three days back from now."""
    rows = []
    for audience_id in audience_ids:
        for n in range(HISTORY_JOBS):
            ended = now - timedelta(days=3 * (HISTORY_JOBS - n))
            rows.append(
                {
                    "id": uuid.uuid4(),
                    "tenant_id": tenant_id,
                    "platform_audience_id": audience_id,
                    "operation": SyncOperation.UPDATE,
                    "status": SyncStatus.FAILED if n % 17 == 3 else SyncStatus.COMPLETED,
                    "triggered_by": TriggeredBy.SCHEDULED,
                    "profiles_sent": 1000,
                    "started_at": ended - timedelta(seconds=30),
                    "completed_at": ended,
                    "duration_ms": 30_000,
                    "next_retry_at": ended - timedelta(seconds=30),
                    "details": {},
                    "created_at": ended - timedelta(seconds=31),
                    "updated_at": ended,
                }
            )
    with engine.begin() as connection:
        connection.execute(insert(AudienceSyncJob.__table__), rows)


# --- the check after the run ------------------------------------------------------------------


def duplicate_jobs(url: str, since: datetime) -> dict[str, int]:
    """Jobs that broke "one pending or running job per audience": two active at once now, or
    one created while the audience's job before it was still active (its `completed_at` later,
    by more than a second: a trigger's insert takes its time, then waits for the commit of the
    job it would duplicate); the API-triggered jobs, to set against the 202 answers; and the
    jobs made since the start by status."""
    engine = db.make_engine(url)
    with engine.connect() as connection:
        active_twice = connection.execute(
            text(
                "SELECT count(*) FROM (SELECT platform_audience_id FROM audience_sync_jobs "
                "WHERE status IN ('pending', 'running') GROUP BY platform_audience_id "
                "HAVING count(*) > 1) AS twice"
            )
        ).scalar_one()
        overlapping = connection.execute(
            text(
                "SELECT count(*) FROM (SELECT created_at, "
                "lag(completed_at) OVER per_audience AS before_done, "
                "lag(status) OVER per_audience AS before_status FROM audience_sync_jobs "
                "WINDOW per_audience AS (PARTITION BY platform_audience_id ORDER BY created_at)"
                ") AS j WHERE before_status IN ('pending', 'running') "
                "OR created_at < before_done - interval '1 second'"
            )
        ).scalar_one()
        by_api = connection.execute(
            text("SELECT count(*) FROM audience_sync_jobs WHERE triggered_by = 'api'")
        ).scalar_one()
        made = connection.execute(
            text(
                "SELECT status, count(*) FROM audience_sync_jobs WHERE created_at >= :since "
                "GROUP BY status"
            ),
            {"since": since},
        ).all()
    engine.dispose()
    found = {"active_twice": int(active_twice), "overlapping": int(overlapping)}
    found["api_jobs"] = int(by_api)
    found.update({f"jobs_{status}": int(n) for status, n in made})
    return found


# --- the load (the second process) ------------------------------------------------------------


class Stats:
    def __init__(self) -> None:
        self.latencies: dict[str, list[float]] = defaultdict(list)
        self.statuses: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))

    def add(self, name: str, started: float, status: str) -> None:
        self.latencies[name].append((time.perf_counter() - started) * 1000)
        self.statuses[name][status] += 1


class Connection:
    """One keep-alive HTTP/1.1 connection, written by hand on asyncio's streams: the load's
    client must cost the 2-core machine as little as it can (httpx took more CPU than the
    server it measured)."""

    def __init__(self, host: str, port: int, key: str) -> None:
        self.host, self.port = host, port
        self.head = f"Host: {host}:{port}\r\nAuthorization: Bearer {key}\r\n"
        self.streams: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None
        self.used = 0.0

    async def request(self, method: str, path: str, body: bytes = b"") -> tuple[int, bytes]:
        """`(status, body)`; an `OSError` or `asyncio.IncompleteReadError` when the connection
        failed (the next request opens a new one)."""
        if self.streams is not None and time.monotonic() - self.used > KEEP_ALIVE_SECONDS:
            self.close()  # the server may have closed it (uvicorn keeps one 5 s), as browsers do
        if self.streams is None:
            self.streams = await asyncio.open_connection(self.host, self.port)
        reader, writer = self.streams
        extra = f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n" if body else ""
        writer.write(f"{method} {path} HTTP/1.1\r\n{self.head}{extra}\r\n".encode() + body)
        try:
            answer = await self._answer(reader)
        except BaseException:
            self.close()
            raise
        self.used = time.monotonic()
        return answer

    async def _answer(self, reader: asyncio.StreamReader) -> tuple[int, bytes]:
        head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1").split("\r\n")
        status = int(head[0].split(" ", 2)[1])
        headers = {
            name.strip().lower(): value.strip()
            for name, _, value in (line.partition(":") for line in head[1:] if line)
        }
        if headers.get("transfer-encoding", "").lower() == "chunked":
            chunks = []
            while size := int((await reader.readuntil(b"\r\n")).strip(), 16):
                chunks.append(await reader.readexactly(size + 2))
            await reader.readuntil(b"\r\n")
            body = b"".join(chunk[:-2] for chunk in chunks)
        else:
            body = await reader.readexactly(int(headers.get("content-length", "0")))
        if headers.get("connection", "").lower() == "close":
            self.close()
        return status, body

    def close(self) -> None:
        if self.streams is not None:
            self.streams[1].close()
            self.streams = None


async def drive(
    base: str, key: str, audience_ids: list[str], seconds: float, clients: int
) -> dict[str, Any]:
    """`clients` clients for `seconds`; per endpoint its latencies and its answers."""
    stats = Stats()
    host, port = base.removeprefix("http://").rsplit(":", 1)
    names, weights = list(MIX), list(MIX.values())
    # Some job ids to read from the start: the audiences' newest jobs.
    first = Connection(host, int(port), key)
    jobs: list[str] = []
    for audience_id in audience_ids[:10]:
        _, body = await first.request("GET", f"/api/v1/audiences/{audience_id}/jobs?limit=5")
        jobs += [job["id"] for job in json.loads(body)]
    first.close()

    async def call(
        connection: Connection, name: str, method: str, path: str, body: bytes = b""
    ) -> bytes | None:
        started = time.perf_counter()
        try:
            status, answer = await connection.request(method, path, body)
        except (OSError, asyncio.IncompleteReadError, ValueError) as exc:
            stats.add(name, started, type(exc).__name__)
            return None
        stats.add(name, started, str(status))
        return answer if 200 <= status < 300 else None

    async def trigger(connection: Connection, audience_id: str) -> None:
        path = f"/api/v1/audiences/{audience_id}/sync"
        answer = await call(connection, TRIGGER, "POST", path, b'{"operation": "update"}')
        if answer is not None:
            jobs.append(json.loads(answer)["id"])
            del jobs[:-500]

    async def one_client(rng: random.Random, until: float) -> None:
        own = [Connection(host, int(port), key) for _ in range(3)]  # three for a race
        connection = own[0]
        while time.perf_counter() < until:
            if THINK_MS:  # before each request, the first too: the clients start apart
                await asyncio.sleep(rng.expovariate(1000 / THINK_MS))
            name = rng.choices(names, weights)[0]
            audience_id = rng.choice(audience_ids)
            if name == TRIGGER:
                count = 3 if rng.random() < 1 / 3 else 1  # three at once: a race to win
                await asyncio.gather(*(trigger(c, audience_id) for c in own[:count]))
                continue
            path = {
                "GET /audiences": "/api/v1/audiences",
                "GET /audiences/{id}": f"/api/v1/audiences/{audience_id}",
                "GET /sync-jobs/{id}": f"/api/v1/sync-jobs/{rng.choice(jobs)}",
                "GET /audiences/{id}/health": f"/api/v1/audiences/{audience_id}/health",
                "GET /healthz": "/healthz",
            }[name]
            await call(connection, name, "GET", path)
        for connection in own:
            connection.close()

    started = time.perf_counter()
    until = started + seconds
    await asyncio.gather(*(one_client(random.Random(n), until) for n in range(clients)))
    return {
        "seconds": time.perf_counter() - started,
        "latencies": stats.latencies,
        "statuses": {name: dict(found) for name, found in stats.statuses.items()},
    }


# --- the bench --------------------------------------------------------------------------------


def bench_database() -> AbstractContextManager[str]:
    """A database of the bench's own on the test server, dropped afterwards."""
    return postgres_database(unique_name("audience_sync_bench_api"))


def environment(url: str, folder: Path, secret: bytes) -> dict[str, str]:
    return {
        **os.environ,
        "AUDIENCE_SYNC_DATABASE_URL": url,
        "AUDIENCE_SYNC_BROKER_URL": os.environ.get("BENCH_API_BROKER", "redis://127.0.0.1:6379/0"),
        "AUDIENCE_SYNC_CELERY_QUEUE": f"audience-sync-bench-{uuid.uuid4().hex[:8]}",
        "AUDIENCE_SYNC_SECRET_KEY": secret.decode(),
        "AUDIENCE_SYNC_SCHEDULER_TICK_SECONDS": "5",
        "AUDIENCE_SYNC_VAR_DIR": str(folder / "var"),
        "AUDIENCE_SYNC_ALLOW_CONNECTION_BASE_URL": "true",  # connections point at the sandbox
        "AUDIENCE_SYNC_MAX_REMOVAL_SHARE": "1.0",
    }


def forget_queue(env: dict[str, str]) -> None:
    """Delete the bench's queue on the broker (messages the tick sent after the worker left)."""
    name = env["AUDIENCE_SYNC_CELERY_QUEUE"]
    with kombu.Connection(env["AUDIENCE_SYNC_BROKER_URL"]) as connection:
        # Declared here first: the Redis transport deletes only the bindings its channel knows.
        queue = kombu.Queue(name, kombu.Exchange(name), routing_key=name)
        bound = queue(connection.default_channel)
        bound.declare()
        bound.delete()


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


@register("api-load")
def bench_api_load(options: BenchOptions) -> None:
    """`serve` on PostgreSQL with Celery workers syncing, under 50 clients (module docstring)."""
    del options  # the load's size: BENCH_API_CLIENTS, BENCH_API_SECONDS
    secret = Fernet.generate_key()
    now = datetime.now(UTC)
    with tempfile.TemporaryDirectory(prefix="bench-api-") as tmp, bench_database() as url:
        folder = Path(tmp)
        processes = Processes(folder, environment(url, folder, secret))
        try:
            sandbox_port, api_port = free_port(), free_port()
            processes.start("sandbox", sandbox_command(sandbox_port))
            sandbox = f"http://127.0.0.1:{sandbox_port}"
            wait_until_up(f"{sandbox}/_sandbox/rate_limits", processes)
            lift_rate_limits(sandbox)
            started = time.perf_counter()
            key, audience_ids = seed(url, sandbox, secret, now)
            print(f"setup: {len(audience_ids)} audiences, "
                  f"{sum((i + 1) * SEGMENT_STEP for i in range(SEGMENTS)):,} members, "
                  f"{len(audience_ids) * HISTORY_JOBS:,} past jobs in "
                  f"{time.perf_counter() - started:.0f} s")  # fmt: skip
            cli = [sys.executable, "-m", "audience_sync.cli"]
            serve = processes.start("serve", [*cli, "serve", "--port", str(api_port)])
            processes.start("worker", [*cli, "worker", "--concurrency", "1"])
            processes.start("beat", [*cli, "beat"])
            base = f"http://127.0.0.1:{api_port}"
            wait_until_up(f"{base}/healthz", processes)
            profiler = profile(serve.pid, folder)
            serve_cpu = cpu_seconds(serve.pid)
            load_before = Path("/proc/loadavg").read_text().split()[:3]
            result = run_driver(base, key, audience_ids)
            result["serve_cpu"] = cpu_seconds(serve.pid) - serve_cpu
            result["load"] = (load_before, Path("/proc/loadavg").read_text().split()[:3])
            if profiler is not None:
                profiler.wait()
            processes.check()
            time.sleep(1)  # let a job the last trigger made be sent
        finally:
            processes.stop()
            forget_queue(processes.env)
        report(result, duplicate_jobs(url, now))


def profile(pid: int, folder: Path) -> subprocess.Popen[bytes] | None:
    """`BENCH_API_PROFILE=FILE`: py-spy records `serve` during the load (a flame graph)."""
    target = os.environ.get("BENCH_API_PROFILE")
    if not target:
        return None
    spy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    command = [spy, "record", "--pid", str(pid), "--duration", str(SECONDS),
               "--rate", "50", "--idle", "--output", target]  # fmt: skip
    if target.endswith(".txt"):
        command += ["--format", "raw"]
    with (folder / "py-spy.log").open("wb") as log:
        return subprocess.Popen(command, stdout=log, stderr=log)


def cpu_seconds(pid: int) -> float:
    """The process's CPU time so far (user + system)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def run_driver(base: str, key: str, audience_ids: list[str]) -> dict[str, Any]:
    """The load, from a process of its own (its CPU is not the server's)."""
    command = [sys.executable, "-m", "benchmarks.bench_api", "drive", base, key,
               str(SECONDS), str(CLIENTS), *audience_ids]  # fmt: skip
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode:
        raise RuntimeError(f"the load driver failed:\n{done.stderr[-4000:]}")
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    result: dict[str, Any] = json.loads(done.stdout)
    result["driver_cpu"] = (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)
    return result


def report(result: dict[str, Any], duplicates: dict[str, int]) -> None:
    seconds = result["seconds"]
    total = sum(len(v) for v in result["latencies"].values())
    (start, end), serve_cpu = result["load"], result["serve_cpu"]
    think = f"a mean pause of {THINK_MS:.0f} ms between requests" if THINK_MS else "no think time"
    print(f"\n{CLIENTS} clients, {seconds:.0f} s, {think}; {total:,} requests, "
          f"{total / seconds:.0f} req/s; latency in the client (ms); load {' '.join(start)} "
          f"at the start, {' '.join(end)} at the end; serve's CPU {serve_cpu:.1f} s "
          f"({serve_cpu / total * 1000:.1f} ms a request), the driver's "
          f"{result['driver_cpu']:.1f} s\n")  # fmt: skip
    table = Table(["endpoint", "requests", "p50", "p99", "max", "errors", "409/429", "answers"])
    worst_read, errors = 0.0, 0
    for name in MIX:
        values = result["latencies"].get(name, [])
        statuses = result["statuses"].get(name, {})
        bad = sum(n for s, n in statuses.items() if not s.startswith("2") and
                  not (s.isdigit() and int(s) in DOCUMENTED))  # fmt: skip
        documented = sum(n for s, n in statuses.items() if s.isdigit() and int(s) in DOCUMENTED)
        errors += bad
        if not values:
            table.row([name, "0", "—", "—", "—", str(bad), str(documented), ""])
            continue
        p99 = percentile(values, 0.99)
        if name in READS:
            worst_read = max(worst_read, p99)
        answers = ", ".join(f"{s}: {n:,}" for s, n in sorted(statuses.items()))
        table.row([name, f"{len(values):,}", f"{statistics.median(values):.1f}", f"{p99:.1f}",
                   f"{max(values):.1f}", str(bad), str(documented), answers])  # fmt: skip
    accepted = result["statuses"].get(TRIGGER, {}).get("202", 0)
    print(f"\nafter the run, in the database: {duplicates}; 202 answers: {accepted}")
    duplicated = duplicates["active_twice"] + duplicates["overlapping"]
    mismatch = duplicates["api_jobs"] != accepted
    print(f"\nreads' p99 under {READ_TARGET_MS:.0f} ms: "
          f"{'met' if worst_read < READ_TARGET_MS else 'NOT met'} (worst {worst_read:.1f} ms); "
          f"errors: {errors} ({'met' if errors == 0 else 'NOT met'}); duplicate jobs: "
          f"{duplicated}{', API jobs ≠ 202 answers' if mismatch else ''} "
          f"({'met' if duplicated == 0 and not mismatch else 'NOT met'})")  # fmt: skip


if __name__ == "__main__":
    _, base, key, seconds, clients, *ids = sys.argv[1:]
    print(json.dumps(asyncio.run(drive(base, key, ids, float(seconds), int(clients)))))
