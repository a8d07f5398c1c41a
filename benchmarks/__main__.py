"""Run the registered benchmarks: `python -m benchmarks [--only NAME] [--rows N] [--repeat R]`."""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import platform
import sys
import time

import benchmarks
from benchmarks import GROUP_OF, GROUPS, REGISTRY, BenchOptions, selected


def main(argv: list[str] | None = None) -> int:
    defaults = BenchOptions()
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    parser.add_argument(
        "--only",
        action="append",
        help="run only this benchmark, or this group: default, scale (repeatable)",
    )
    parser.add_argument(
        "--rows", type=int, help="values or members per case (default: each benchmark's own)"
    )
    parser.add_argument(
        "--repeat", type=int, help="timed runs per case, median reported (default: its own)"
    )
    parser.add_argument("--stream-rows", type=int, default=defaults.stream_rows)
    parser.add_argument(
        "--platform", action="append", help="sync benchmarks: only this platform (repeatable)"
    )
    parser.add_argument(
        "--segments", type=int, default=defaults.segments, help="workers: segments (×4 platforms)"
    )
    parser.add_argument(
        "--max-members",
        type=int,
        default=defaults.max_members,
        help="workers: the largest segment's members (sizes log-uniform from 1,000)",
    )
    parser.add_argument(
        "--workers",
        type=int,
        action="append",
        help="workers: run with this many worker processes (repeatable; default 1, 2, 4)",
    )
    parser.add_argument(
        "--scale-rows", type=int, default=defaults.scale_rows, help="sync-10m: the large size"
    )
    parser.add_argument(
        "--scale-base", type=int, default=defaults.scale_base, help="sync-10m: the baseline size"
    )
    parser.add_argument(
        "--scale-database",
        action="append",
        choices=("sqlite", "postgresql"),
        help="sync-10m: only this database (repeatable; default both)",
    )
    parser.add_argument("--list", action="store_true", help="list the benchmarks and stop")
    args = parser.parse_args(argv)

    for module in pkgutil.iter_modules(benchmarks.__path__):
        if module.name.startswith("bench_"):
            importlib.import_module(f"benchmarks.{module.name}")
    if args.list:
        print("\n".join(f"{name}  ({GROUP_OF[name]})" for name in sorted(REGISTRY)))
        return 0
    unknown = set(args.only or ()) - set(REGISTRY) - set(GROUPS)
    if unknown:
        parser.error(f"unknown benchmark(s): {', '.join(sorted(unknown))}")

    options = BenchOptions(
        rows=args.rows,
        repeat=args.repeat,
        stream_rows=args.stream_rows,
        platforms=tuple(args.platform or ()),
        segments=args.segments,
        max_members=args.max_members,
        worker_counts=tuple(args.workers or defaults.worker_counts),
        scale_rows=args.scale_rows,
        scale_base=args.scale_base,
        scale_databases=tuple(args.scale_database or defaults.scale_databases),
    )
    print(f"# make bench — Python {platform.python_version()} on {platform.machine()}, {_cpus()}")
    for name in selected(args.only):
        started = time.perf_counter()
        print(f"\n## {name}\n")
        REGISTRY[name](options)
        print(f"\n({name}: {time.perf_counter() - started:.0f} s)")
    return 0


def _cpus() -> str:
    try:
        import psutil

        return f"{psutil.cpu_count()} cores, load average {psutil.getloadavg()[0]:.1f} at start"
    except ImportError:  # psutil is a dev dependency
        return "cores unknown"


if __name__ == "__main__":
    sys.exit(main())
