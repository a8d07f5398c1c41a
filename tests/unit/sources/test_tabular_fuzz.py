"""Fuzzing the CSV reader: valid files, corrupted at random, must keep every line accounted for
and every row that was not touched exactly as written (issue 18: a broken row never takes the
rows after it). Bounded (max_examples, no deadline) so `make test` stays fast."""

from __future__ import annotations

import re
import tempfile
from dataclasses import dataclass
from pathlib import Path

import polars as pl
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from audience_sync.sources.rows import Rejection
from audience_sync.sources.tabular import ReadOptions, read_batches

FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
CELLS = st.text(st.sampled_from(list('ab é,;|\t"\n\r')), max_size=6)
CORRUPTIONS = ("quote", "open", "close", "truncate", "delimiter", "nul", "invalid", "unquote")


@dataclass
class Written:
    """A row as written: its cells, its bytes, and whether the fuzzer touched it."""

    cells: list[str]
    data: bytes
    touched: bool = False

    @property
    def lines(self) -> int:
        return self.data.count(b"\n")


def encode(cells: list[str], delimiter: str, ending: str, quote_all: bool = False) -> bytes:
    """RFC 4180: a value with the delimiter, a quote, CR or LF is quoted (Python's writer leaves a
    lone CR bare when the line ending is LF, which makes the file ambiguous)."""
    special = (delimiter, '"', "\r", "\n")
    quoted = [
        '"' + cell.replace('"', '""') + '"'
        if quote_all or any(c in cell for c in special)
        else cell
        for cell in cells
    ]
    return (delimiter.join(quoted) + ending).encode()


def corrupt(data: bytes, kind: str, at: int, delimiter: str) -> bytes:
    body, ending = (data[:-2], data[-2:]) if data.endswith(b"\r\n") else (data[:-1], data[-1:])
    at %= len(body) + 1
    if kind == "truncate":
        return body[:at] + ending
    if kind in ("open", "close"):  # a quote opening or closing a value at a delimiter
        d = delimiter.encode()
        parts = body.split(d)
        k = at % len(parts)
        if kind == "open":
            parts[k] = b'"' + parts[k]
        else:
            parts[k] += b'"'
        return d.join(parts) + ending
    if kind == "unquote":
        return body.replace(b'"', b"", 1) + ending if b'"' in body else body + b'"' + ending
    insert = {"quote": b'"', "delimiter": delimiter.encode(), "nul": b"\x00", "invalid": b"\xff"}
    return body[:at] + insert[kind] + body[at:] + ending


@st.composite
def files(draw: st.DrawFn) -> tuple[str, list[Written]]:
    delimiter = draw(st.sampled_from([",", ";", "\t", "|"]))
    width = draw(st.integers(min_value=2, max_value=5))
    count = draw(st.integers(min_value=1, max_value=25))
    written = []
    for number in range(count):
        cells = [f"R{number}", *draw(st.lists(CELLS, min_size=width - 1, max_size=width - 1))]
        ending = draw(st.sampled_from(["\n", "\r\n"]))
        written.append(Written(cells, encode(cells, delimiter, ending, draw(st.booleans()))))
    broken = draw(st.dictionaries(st.integers(0, count - 1), st.sampled_from(CORRUPTIONS)))
    for index, kind in broken.items():
        at = draw(st.integers(min_value=0, max_value=200))
        written[index] = Written([], corrupt(written[index].data, kind, at, delimiter), True)
    header = ["profile_id", *(f"c{k}" for k in range(1, width))]
    return delimiter, [Written(header, encode(header, delimiter, "\n")), *written]


def strict_row(text: str, delimiter: str, width: int) -> bool:
    """A line that is an RFC 4180 row of `width` values by itself (the reference, kept simple)."""
    d = re.escape(delimiter)
    field = f'(?:"(?:[^"]|"")*"|[^"{d}]*)'
    pattern = field + f"{d}{field}" * (width - 1)
    return re.fullmatch(pattern, text.removesuffix("\r")) is not None


def protected(written: list[Written], delimiter: str) -> list[int]:
    """Rows that must come out exactly: untouched single-line rows; an untouched multi-line row
    unless the row before it was touched or multi-line (an open quote there may take lines that
    are not rows on their own) or one of its later lines is a row by itself (then the rule reads
    that line as a row: a stray quote must never take a good row)."""
    width = len(written[0].cells)
    kept = []
    for index in range(1, len(written)):
        row, before = written[index], written[index - 1]
        if row.touched:
            continue
        later = row.data.decode().split("\n")[1:-1]
        if row.lines == 1 or (
            (index == 1 or (not before.touched and before.lines == 1))
            and not any(strict_row(line, delimiter, width) for line in later)
        ):
            kept.append(index)
    return kept


@FUZZ
@given(
    file=files(),
    rows=st.integers(min_value=1, max_value=40),
    encoding=st.sampled_from(["utf-8", "utf-8-sig", "utf-16"]),
)
def test_corrupted_rows_never_cost_the_untouched_rows_around_them(
    file: tuple[str, list[Written]], rows: int, encoding: str
) -> None:
    delimiter, written = file
    data = b"".join(w.data for w in written)
    # Bytes that are not UTF-8 become lone surrogates in UTF-16: still one rejected line each.
    text = data.decode("utf-8", "surrogateescape")
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "f.csv"
        path.write_bytes(data if encoding == "utf-8" else text.encode(encoding, "surrogatepass"))
        batches = list(read_batches(path, ReadOptions(), rows=rows))
    frames = [b.frame for b in batches if b.frame is not None]
    frame = pl.concat(frames) if frames else None
    found = {row[-2]: row for row in frame.rows()} if frame is not None else {}
    rejections: list[Rejection] = [r for b in batches for r in b.rejections]
    total = data.count(b"\n") - 1
    assert sum(b.lines for b in batches) == total

    # Every line accounted for once: row and rejection spans are disjoint, blanks fill the rest.
    spans = [(row[-2], row[-1]) for row in found.values()]
    spans += [(r.line, r.end_line or r.line) for r in rejections]
    taken = [line for start, end in spans for line in range(start, end + 1)]
    assert len(taken) == len(set(taken))
    assert all(2 <= line <= total + 1 for line in taken)
    assert len(taken) + sum(b.blank for b in batches) == total
    assert all(r.reason for r in rejections)

    start = 2
    starts = []
    for row in written[1:]:
        starts.append(start)
        start += row.lines
    for index in protected(written, delimiter):
        row, line = written[index], starts[index - 1]
        assert found.get(line) == (*row.cells, line, line + row.lines - 1), (delimiter, line)


@FUZZ
@given(
    bad=st.lists(st.binary(max_size=30).filter(lambda b: b"\n" not in b), max_size=6),
    rows=st.integers(min_value=1, max_value=10),
)
def test_any_bytes_in_json_lines_cost_their_line_only(bad: list[bytes], rows: int) -> None:
    lines = []
    for number, raw in enumerate(bad):
        lines += [b'{"profile_id": "GOOD-%d"}' % number, raw]
    lines.append(b'{"profile_id": "GOOD-%d"}' % len(bad))
    data = b"\n".join(lines) + b"\n"
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "f.jsonl"
        path.write_bytes(data)
        batches = list(read_batches(path, ReadOptions(), rows=rows))
    objects = [o for b in batches for o in b.objects]
    rejected = [r.line for b in batches for r in b.rejections]
    assert sum(b.lines for b in batches) == len(lines)
    assert len(objects) + len(rejected) + sum(b.blank for b in batches) == len(lines)
    good = [(line, value) for line, value in objects if line % 2]
    assert good == [(2 * n + 1, {"profile_id": f"GOOD-{n}"}) for n in range(len(bad) + 1)]
