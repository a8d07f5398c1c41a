"""Reading an import CSV (`sources.tabular.read_batches`) against Polars' own `read_csv`.

Three files of the same rows: as `generate-profiles` writes them (no quotes; the file the import
benchmark reads, `benchmarks.generated`), every value quoted, and one line in 100 with a quoted
value. The baseline is `pl.read_csv(path, infer_schema=False)`,
which reads the file but accounts for no line and stops at the first broken one.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import polars as pl

from audience_sync.sources.tabular import ReadOptions, read_batches
from benchmarks import BenchOptions, Table, median_seconds, register
from benchmarks.generated import profiles_csv


def _variants(plain: Path, folder: Path) -> dict[str, Path]:
    """The three files: `plain` as generated, then its rows with every value quoted, and with
    the last value of one line in 100 holding a delimiter (so quoted), written by Polars from
    `plain` (generating the rows again in Python took ~16 s a file)."""
    frame = pl.read_csv(plain, infer_schema=False)  # empty cells: null, written back empty
    last = frame.columns[-1]
    noted = pl.when(pl.int_range(pl.len()) % 100 == 0).then(pl.col(last) + ", noted")
    files = {
        "plain": plain,
        "every value quoted": folder / "quoted.csv",
        "1 line in 100 quoted": folder / "noted.csv",
    }
    frame.write_csv(files["every value quoted"], quote_style="always")
    frame.with_columns(noted.otherwise(pl.col(last))).write_csv(files["1 line in 100 quoted"])
    return files


def _read(path: Path) -> int:
    return sum(batch.lines for batch in read_batches(path, ReadOptions()))


def _baseline(path: Path) -> int:
    return pl.read_csv(path, infer_schema=False).height


@register("reader")
def bench_reader(options: BenchOptions) -> None:
    rows, repeat = options.rows_or(1_000_000), options.repeat_or(3)
    table = Table(["file", "rows", "MB", "pl.read_csv s", "read_batches s", "ratio"], [22])
    with tempfile.TemporaryDirectory() as folder:
        for name, path in _variants(profiles_csv(rows), Path(folder)).items():
            size = path.stat().st_size / 1e6
            baseline = median_seconds(lambda p=path: _baseline(p), repeat)
            ours = median_seconds(lambda p=path: _read(p), repeat)
            table.row(
                [name, f"{rows:,}", f"{size:.0f}", f"{baseline:.2f}", f"{ours:.2f}",
                 f"{ours / baseline:.1f}x"]
            )  # fmt: skip
