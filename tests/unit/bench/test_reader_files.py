"""The reader benchmark's three files hold the same rows as the generated CSV they come from."""

from __future__ import annotations

import csv
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[3]))  # the repository: `benchmarks`

from benchmarks.bench_reader import _variants
from benchmarks.generated import profiles_csv


def rows_of(path: Path) -> list[list[str]]:
    with path.open(newline="", encoding="utf-8") as handle:
        return list(csv.reader(handle))


def test_the_variants_hold_the_generated_rows(tmp_path: Path) -> None:
    plain = profiles_csv(300)
    assert profiles_csv(300) == plain  # written once
    files = _variants(plain, tmp_path)
    original = rows_of(plain)
    assert len(original) == 301  # the header and the rows
    quoted = files["every value quoted"]
    assert rows_of(quoted) == original
    assert all(line.startswith('"') for line in quoted.read_text().splitlines())
    noted = rows_of(files["1 line in 100 quoted"])
    assert [row[-1] for row in noted[1::100]] == [f"{row[-1]}, noted" for row in original[1::100]]
    assert [row[:-1] for row in noted] == [row[:-1] for row in original]
    assert noted[2] == original[2]
