"""The generated profiles CSV that the import and reader benchmarks read, written once a process.

`generate-profiles`' rows (`sources.demo.generate_rows`) as `write_profiles_csv` writes them.
Generating a million rows in Python takes ~16 s and writing them ~2 s more, longer than what
either benchmark measures on them, so `make bench` makes the file once for both.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from audience_sync.sources.demo import generate_rows, write_profiles_csv

_FOLDER = tempfile.TemporaryDirectory(prefix="bench-profiles-")  # removed when the process ends
_WRITTEN: dict[int, Path] = {}


def profiles_csv(rows: int) -> Path:
    """The CSV of `rows` generated profiles (written at the first call for that size). Read
    it, never change it: the next benchmark reads the same file."""
    if rows not in _WRITTEN:
        path = Path(_FOLDER.name) / f"profiles-{rows}.csv"
        write_profiles_csv(path, generate_rows(rows))
        _WRITTEN[rows] = path
    return _WRITTEN[rows]
