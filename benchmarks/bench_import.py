"""`import profiles` of a `generate-profiles` file on SQLite and PostgreSQL, beside a floor.

One CSV of `--rows` rows (default 1,000,000) from `sources.demo.generate_rows` is written to a
temporary directory once (`benchmarks.generated`, shared with the reader benchmark). Cases, each
in its own subprocess (so its memory figure is its own):

- **floor**: `pl.read_csv(path, infer_schema=False)`, then every phone of the file (cells split
  on `;`) parsed with `phonenumbers` (`parse`, `is_possible_number`, `format_number` E.164, region
  US) on every core (`ProcessPoolExecutor`, forkserver, its start included): reading the file and
  parsing its phones, which every import must do, and nothing else;
- **first**: `import_profiles` into an empty, migrated database;
- **again**: the same file imported again (every row unchanged).

The cases run in `--repeat` rounds — floor, then each database's first import (into a new empty
database) and re-import — and each import's "× floor" is the median over rounds of its time over
its own round's floor, so load that comes and goes on a shared machine weighs on both sides of a
ratio. Wall times are measured inside the subprocess around the call (interpreter start and
imports excluded); the table gives their medians.
Memory is the peak RSS (`VmHWM`) of the importing process and, separately, of the largest of its
descendants (the phone workers and the forkserver), read from `/proc` every 0.1 s while the case
runs (a peak is kept by the kernel, so sampling misses only a descendant's last 0.1 s); the
importing process's own figure is its own `VmHWM` read at its end, exact. (Not
`getrusage(RUSAGE_SELF).ru_maxrss`: Linux carries that across `exec` from the forked copy of the
parent, so under `make bench`, after the identifiers benchmark, every case read the bench
process's ~930 MB, the floor's included.) The largest of the two is what the memory target is
checked against.

PostgreSQL is `AUDIENCE_SYNC_BENCH_DATABASE_URL` (default postgresql://postgres@127.0.0.1:5432/test);
the benchmark creates a database of its own on that server and drops it at the end. The machine
is shared: the load average is printed beside each figure, compare ratios within one run.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import phonenumbers
import polars as pl
import psutil
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from benchmarks import BenchOptions, Table, peak_kb, register
from benchmarks.generated import profiles_csv

POSTGRES_URL = os.environ.get(
    "AUDIENCE_SYNC_BENCH_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/test"
)
# The import's targets: first import within 2× of the floor, re-import under 20 s, memory flat.
FIRST_VS_FLOOR = 2.0
AGAIN_SECONDS = 20.0
MEMORY_MB = 500.0
SAMPLE_SECONDS = 0.1


# --- the floor (runs in a subprocess) ---------------------------------------------------------


def parse_chunk(values: list[str]) -> int:
    """Parse each phone as the floor does; the count of possible numbers (nothing to ship back)."""
    possible = 0
    for value in values:
        try:
            number = phonenumbers.parse(value, "US")
        except phonenumbers.NumberParseException:
            continue
        if phonenumbers.is_possible_number(number):
            phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
            possible += 1
    return possible


def work_floor(path: Path) -> dict[str, Any]:
    started = time.perf_counter()
    frame = pl.read_csv(path, infer_schema=False)
    phones = frame["phone"].drop_nulls().str.split(";").explode().drop_nulls().to_list()
    workers = os.cpu_count() or 1
    size = -(-len(phones) // workers)
    context = multiprocessing.get_context("forkserver")
    with ProcessPoolExecutor(workers, mp_context=context) as pool:
        chunks = [phones[i : i + size] for i in range(0, len(phones), size)]
        possible = sum(pool.map(parse_chunk, chunks))
    return {
        "seconds": time.perf_counter() - started,
        "rows": frame.height,
        "phones": len(phones),
        "possible": possible,
        "self_mb": own_peak_mb(),
    }


# --- an import (runs in a subprocess) ---------------------------------------------------------


def work_import(url: str, path: Path) -> dict[str, Any]:
    from audience_sync.sources.importer import import_profiles
    from audience_sync.store import db

    engine = db.make_engine(url)
    factory = db.session_factory(engine)
    started = time.perf_counter()
    report = import_profiles(factory, path, tenant="default")
    seconds = time.perf_counter() - started
    engine.dispose()
    return {"seconds": seconds, "report": report.as_json(), "self_mb": own_peak_mb()}


def own_peak_mb() -> float:
    """This process's peak RSS since its `exec` (`VmHWM`; see the module's docstring)."""
    return peak_kb() / 1024


# --- the parent: subprocesses and their peaks -------------------------------------------------


def run_case(args: list[str]) -> dict[str, Any]:
    """Run `python -m benchmarks.bench_import ARGS`, sampling the peaks of its descendants."""
    command = [sys.executable, "-m", "benchmarks.bench_import", *args]
    child = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    peaks: dict[int, int] = {}
    watched = psutil.Process(child.pid)
    while child.poll() is None:
        try:
            for process in watched.children(recursive=True):
                peaks[process.pid] = max(peaks.get(process.pid, 0), peak_kb(process.pid))
        except psutil.Error:
            pass  # a descendant ended while being listed
        time.sleep(SAMPLE_SECONDS)
    out, err = child.communicate()
    if child.returncode:
        raise RuntimeError(f"{' '.join(args)} failed:\n{err[-4000:]}")
    found: dict[str, Any] = json.loads(out.strip().splitlines()[-1])
    found["workers_mb"] = max(peaks.values(), default=0) / 1024
    found["load"] = os.getloadavg()[0]
    return found


@contextmanager
def postgres_database() -> Iterator[tuple[str, Any]]:
    """A database of our own on the server (`recreate()` empties it); dropped at the end."""
    from audience_sync.store import db

    admin_url = make_url(POSTGRES_URL).set(drivername="postgresql+psycopg")
    name = f"audience_sync_bench_{uuid.uuid4().hex[:10]}"
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    url = admin_url.set(database=name).render_as_string(hide_password=False)

    def recreate() -> None:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            connection.execute(text(f'CREATE DATABASE "{name}"'))
        engine = db.make_engine(url)
        db.upgrade(engine)
        engine.dispose()

    try:
        yield url, recreate
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@contextmanager
def sqlite_database(folder: Path) -> Iterator[tuple[str, Any]]:
    """A SQLite file (`recreate()` copies a migrated template over it)."""
    from audience_sync.store import db

    template, path = folder / "template.db", folder / "bench.db"
    engine = db.make_engine(f"sqlite:///{template}")
    db.upgrade(engine)
    engine.dispose()

    def recreate() -> None:
        for leftover in folder.glob("bench.db*"):  # the file, its -wal and -shm
            leftover.unlink()
        shutil.copy(template, path)

    yield f"sqlite:///{path}", recreate


def median_of(runs: list[dict[str, Any]], key: str) -> float:
    return statistics.median(run[key] for run in runs)


@register("import")
def bench_import(options: BenchOptions) -> None:
    # One round in `make bench` (its own floor in the round keeps the ratio); the docs' table is
    # the median of `--repeat 3`.
    rows, repeat = options.rows_or(1_000_000), options.repeat_or(1)
    with tempfile.TemporaryDirectory(prefix="bench-import-") as tmp:
        folder = Path(tmp)
        started = time.perf_counter()
        path = profiles_csv(rows)  # shared with the reader benchmark
        size = path.stat().st_size / 1e6
        print(f"setup: {rows:,} rows from generate-profiles, {size:.0f} MB, written in "
              f"{time.perf_counter() - started:.0f} s (not measured)")  # fmt: skip
        load = os.getloadavg()[0]
        print(f"medians of {repeat} round(s); load average (1 min) before: {load:.1f}")
        rounds = measure_rounds(folder, path, repeat)
        floors = [r["floor"] for r in rounds]
        floor = median_of(floors, "seconds")
        print(f"floor: {floors[0]['phones']:,} phones on {os.cpu_count()} cores\n")
        table = Table(
            ["database", "case", "rows", "wall s", "rows/s", "× floor", "importer MB",
             "worker MB", "load", "target"],
            [10, 5, 9, 7, 9, 7, 11, 9, 4, 21],
        )  # fmt: skip
        table.row(
            ["-", "floor", f"{rows:,}", f"{floor:.2f}", f"{rows / floor:,.0f}", "1.0",
             f"{median_of(floors, 'self_mb'):.0f}", f"{median_of(floors, 'workers_mb'):.0f}",
             f"{floors[-1]['load']:.1f}", ""]
        )  # fmt: skip
        verdicts: list[tuple[str, bool]] = []
        notes: list[str] = []
        for name in DATABASES:
            for case, target in (("first", f"≤ {FIRST_VS_FLOOR:.0f}× floor"),
                                 ("again", f"< {AGAIN_SECONDS:.0f} s")):  # fmt: skip
                runs = [r[f"{name} {case}"] for r in rounds]
                seconds = median_of(runs, "seconds")
                # Each round's own floor: the machine's load moves between rounds.
                ratio = statistics.median(
                    r[f"{name} {case}"]["seconds"] / r["floor"]["seconds"] for r in rounds
                )
                importer = median_of(runs, "self_mb")
                workers = median_of(runs, "workers_mb")
                table.row(
                    [name, case, f"{rows:,}", f"{seconds:.2f}", f"{rows / seconds:,.0f}",
                     f"{ratio:.1f}", f"{importer:.0f}", f"{workers:.0f}",
                     f"{runs[-1]['load']:.1f}", target + f", < {MEMORY_MB:.0f} MB"]
                )  # fmt: skip
                if case == "first":
                    met = ratio <= FIRST_VS_FLOOR
                    verdicts.append((f"{name}: first import ≤ {FIRST_VS_FLOOR:.0f}× floor", met))
                else:
                    met = seconds < AGAIN_SECONDS
                    verdicts.append((f"{name}: re-import under {AGAIN_SECONDS:.0f} s", met))
                verdicts.append(
                    (f"{name} {case}: every process under {MEMORY_MB:.0f} MB",
                     max(importer, workers) < MEMORY_MB)
                )  # fmt: skip
            report = rounds[-1][f"{name} again"]["report"]
            notes.append(
                f"{name} re-import: {report['unchanged']:,} unchanged, "
                f"{report['rejected']:,} rejected of {report['lines']:,} lines"
            )
        print("", *notes, sep="\n")
        print("\nImport targets, this run (× floor: the median of each round's ratio):")
        for name, ok in verdicts:
            print(f"  {'met    ' if ok else 'NOT MET'}  {name}")


DATABASES = ("sqlite", "postgresql")


def measure_rounds(folder: Path, path: Path, repeat: int) -> list[dict[str, Any]]:
    """`repeat` rounds of: the floor, then on each database a first import (into an empty
    database) and a re-import. Each import is compared with its own round's floor."""
    rounds: list[dict[str, Any]] = []
    with sqlite_database(folder) as sqlite, postgres_database() as postgres:
        for _ in range(repeat):
            found = {"floor": run_case(["floor", str(path)])}
            for name, (url, recreate) in zip(DATABASES, (sqlite, postgres), strict=True):
                recreate()
                found[f"{name} first"] = run_case(["import", url, str(path)])
                found[f"{name} again"] = run_case(["import", url, str(path)])
            rounds.append(found)
    return rounds


if __name__ == "__main__":
    case, *rest = sys.argv[1:]
    found = work_floor(Path(rest[0])) if case == "floor" else work_import(rest[0], Path(rest[1]))
    print(json.dumps(found))
