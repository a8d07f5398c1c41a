"""`make bench`: Audience Sync's performance figures, each with a baseline measured in the same run.

A benchmark is a function taking `BenchOptions`, registered with `@register("name")` in a module
`benchmarks/bench_<topic>.py`; `python -m benchmarks` imports every such module and runs what was
registered, in name order (`--only NAME` runs one). Benchmarks print their own table and return
nothing; they never assert timings (the figures vary with the machine and its load).

Every benchmark belongs to one group: `default` (what `make bench` runs, about ten minutes on
2 cores) or `scale` (the ten-million-member and many-worker cases, tens of minutes:
`python -m benchmarks --only scale`). `--only` takes a benchmark's name or a group's.
"""

from __future__ import annotations

import re
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True, slots=True)
class BenchOptions:
    """What the command line asked for."""

    rows: int | None = None  # values per measured case (None: each benchmark's own default)
    repeat: int | None = None  # timed runs per case, the median reported (None: its default)
    stream_rows: int = 10_000_000  # values hashed for the peak-memory figure
    platforms: tuple[str, ...] = ()  # sync benchmarks: only these platforms (empty: all)
    segments: int = 50  # workers: segments, each linked to the four platforms
    max_members: int = 200_000  # workers: the largest segment (the smallest is 1,000)
    worker_counts: tuple[int, ...] = (1, 2, 4)  # workers: the runs, by worker processes
    scale_rows: int = 10_000_000  # sync-10m: the large segment's members
    scale_base: int = 1_000_000  # sync-10m: the baseline segment's members, in the same run
    scale_databases: tuple[str, ...] = ("sqlite", "postgresql")  # sync-10m: where it runs

    def rows_or(self, default: int) -> int:
        """`--rows` if given, else the benchmark's own default."""
        return default if self.rows is None else self.rows

    def repeat_or(self, default: int) -> int:
        """`--repeat` if given (at least 1), else the benchmark's own default."""
        return default if self.repeat is None else max(self.repeat, 1)


Bench = Callable[[BenchOptions], None]
REGISTRY: dict[str, Bench] = {}
GROUPS = ("default", "scale")
GROUP_OF: dict[str, str] = {}


def register(name: str, group: str = "default") -> Callable[[Bench], Bench]:
    """Register a benchmark under `name` in `group` (`--only name` runs it alone, `--only group`
    its whole group)."""
    if group not in GROUPS:
        raise ValueError(f"benchmark group {group!r} is not one of {GROUPS}")

    def decorate(bench: Bench) -> Bench:
        if name in REGISTRY or name in GROUPS:
            raise ValueError(f"benchmark {name!r} registered twice or named as a group")
        REGISTRY[name] = bench
        GROUP_OF[name] = group
        return bench

    return decorate


def selected(only: list[str] | None) -> list[str]:
    """The benchmarks to run, in name order: those `only` names (or whose group it names), else
    the default group."""
    wanted = set(only or ("default",))
    return [n for n in sorted(REGISTRY) if n in wanted or GROUP_OF[n] in wanted]


def peak_kb(pid: int | str = "self") -> int:
    """The peak resident memory (`VmHWM`, kB) of process `pid` (this one by default) since its
    `exec`; 0 once it is gone or where `/proc` has no such figure. Not `ru_maxrss`: Linux
    carries that across `exec` from the parent, which in `make bench` holds every earlier
    benchmark's data."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return 0
    found = re.search(r"VmHWM:\s+(\d+) kB", status)
    return int(found.group(1)) if found else 0


def median_seconds(run: Callable[[], Any], repeat: int) -> float:
    """The median wall time of `repeat` calls of `run`."""
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


class Table:
    """A Markdown table printed a row at a time (a long benchmark shows progress as it goes)."""

    def __init__(self, headers: list[str], widths: list[int] | None = None) -> None:
        given = (widths or []) + [0] * len(headers)
        self.widths = [max(w, len(h)) for w, h in zip(given, headers, strict=False)]
        self.row(headers)
        print("|" + "|".join("-" * (w + 1) + ":" for w in self.widths) + "|", flush=True)

    def row(self, cells: list[str]) -> None:
        padded = (c.rjust(w) for c, w in zip(cells, self.widths, strict=True))
        print("| " + " | ".join(padded) + " |", flush=True)
