"""The import benchmark's memory figure is the importing process's own peak, whatever the
parent held when it started the case."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[3]))  # the repository: `benchmarks`

from benchmarks.bench_import import own_peak_mb

REPOSITORY = Path(__file__).resolve().parents[3]

READ_PEAK = "from benchmarks.bench_import import own_peak_mb; print(own_peak_mb())"


def test_a_cases_peak_is_not_its_parents() -> None:
    # `make bench` runs the import after the identifiers benchmark, its process then ~930 MB:
    # `getrusage`'s `ru_maxrss` carried that into every case across `exec` (each case read
    # 930 MB, the floor's too), and the 500 MB target read "NOT MET" for none of its own doing.
    held = bytearray(400 * 1024 * 1024)  # resident: written below
    held[::4096] = b"x" * len(range(0, len(held), 4096))
    assert own_peak_mb() >= 400
    child = subprocess.run(
        [sys.executable, "-c", READ_PEAK],
        capture_output=True,
        text=True,
        check=True,
        cwd=REPOSITORY,
    )
    assert float(child.stdout) < 300
    del held
