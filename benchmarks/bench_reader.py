"""Reading an import CSV (`sources.tabular.read_batches`) against Polars' own `read_csv`.

Three files of the same rows: as `generate-profiles` writes them (no quotes), every value quoted,
and one line in 100 with a quoted value. The baseline is `pl.read_csv(path, infer_schema=False)`,
which reads the file but accounts for no line and stops at the first broken one.
"""

from __future__ import annotations

import csv
import tempfile
from pathlib import Path

import polars as pl

from audience_sync.sources.demo import generate_rows
from audience_sync.sources.tabular import ReadOptions, read_batches
from benchmarks import BenchOptions, Table, median_seconds, register


def _write(path: Path, rows: int, quoting: int, every: int = 0) -> None:
    with path.open("w", newline="", encoding="utf-8") as out:
        writer = csv.writer(out, quoting=quoting, lineterminator="\n")
        for number, row in enumerate(generate_rows(rows)):
            if number == 0:
                writer.writerow(row.keys())
            values = list(row.values())
            if every and number % every == 0:
                values[-1] = f"{values[-1]}, noted"  # a delimiter inside: quoted
            writer.writerow(values)


def _read(path: Path) -> int:
    return sum(batch.lines for batch in read_batches(path, ReadOptions()))


def _baseline(path: Path) -> int:
    return pl.read_csv(path, infer_schema=False).height


@register("reader")
def bench_reader(options: BenchOptions) -> None:
    rows, repeat = options.rows_or(1_000_000), options.repeat_or(3)
    table = Table(["file", "rows", "MB", "pl.read_csv s", "read_batches s", "ratio"], [22])
    with tempfile.TemporaryDirectory() as folder:
        files = {
            "plain": (csv.QUOTE_MINIMAL, 0),
            "every value quoted": (csv.QUOTE_ALL, 0),
            "1 line in 100 quoted": (csv.QUOTE_MINIMAL, 100),
        }
        for name, (quoting, every) in files.items():
            path = Path(folder) / "profiles.csv"
            _write(path, rows, quoting, every)
            size = path.stat().st_size / 1e6
            baseline = median_seconds(lambda p=path: _baseline(p), repeat)
            ours = median_seconds(lambda p=path: _read(p), repeat)
            table.row(
                [name, f"{rows:,}", f"{size:.0f}", f"{baseline:.2f}", f"{ours:.2f}",
                 f"{ours / baseline:.1f}x"]
            )  # fmt: skip
