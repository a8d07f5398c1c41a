"""Reading import files into batches: every physical line is a row, a rejection or blank."""

from __future__ import annotations

import codecs
import csv
import datetime
import gzip
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import polars as pl
import pytest

from audience_sync.exceptions import ValidationError
from audience_sync.sources import csvlines
from audience_sync.sources.rows import Rejection
from audience_sync.sources.tabular import (
    Batch,
    Description,
    ReadOptions,
    describe,
    read_batches,
)

HEADER = b"profile_id,email,plan\n"


@dataclass
class Read:
    rows: list[tuple[Any, ...]]  # cells, then _line and _end_line
    objects: list[tuple[int, Any]]
    rejections: list[Rejection]
    lines: int
    blank: int
    batches: list[Batch]

    @property
    def rejected(self) -> list[int]:
        return [r.line for r in self.rejections]


def read_path(path: Path, rows: int = 50_000, **options: Any) -> Read:
    batches = list(read_batches(path, ReadOptions(**options), rows=rows))
    for batch in batches:
        assert accounted(batch) == batch.lines
    frames = [b.frame for b in batches if b.frame is not None and b.frame.height]
    frame = pl.concat(frames) if frames else None
    result = Read(
        rows=frame.rows() if frame is not None else [],
        objects=[o for b in batches for o in b.objects],
        rejections=[r for b in batches for r in b.rejections],
        lines=sum(b.lines for b in batches),
        blank=sum(b.blank for b in batches),
        batches=batches,
    )
    # A row, like a rejection, accounts for every physical line it took.
    taken = sum(row[-1] - row[-2] + 1 for row in result.rows) + len(result.objects)
    rejected = sum((r.end_line or r.line) - r.line + 1 for r in result.rejections)
    assert taken + rejected + result.blank == result.lines
    if frame is not None:
        assert frame.schema[frame.columns[0]] == pl.String
        assert frame["_line"].dtype == pl.Int64
        assert frame["_line"].is_sorted()
    assert all(r.reason for r in result.rejections)
    return result


def accounted(batch: Batch) -> int:
    """Lines a batch accounts for: each row and rejection for every line it took, and blanks."""
    taken = len(batch.objects) + batch.blank
    if batch.frame is not None:
        taken += int((batch.frame["_end_line"] - batch.frame["_line"] + 1).sum())
    return taken + sum((r.end_line or r.line) - r.line + 1 for r in batch.rejections)


def read(data: bytes, tmp_path: Path, name: str = "f.csv", **options: Any) -> Read:
    path = tmp_path / name
    path.write_bytes(data)
    return read_path(path, **options)


def physical_lines(data: bytes) -> int:
    return data.count(b"\n") + (0 if data.endswith(b"\n") or not data else 1)


def test_plain_rows_come_out_as_in_the_file_with_their_line(tmp_path: Path) -> None:
    data = HEADER + b"P1, a@example.com ,gold\nP2,,\n"
    got = read(data, tmp_path)
    assert got.rows == [("P1", " a@example.com ", "gold", 2, 2), ("P2", "", "", 3, 3)]
    assert got.lines == 2
    assert not got.rejections
    assert got.batches[0].frame is not None
    assert got.batches[0].frame.columns == ["profile_id", "email", "plan", "_line", "_end_line"]


def test_crlf_lf_and_a_last_line_without_a_break_are_all_lines(tmp_path: Path) -> None:
    got = read(b"profile_id,plan\r\nP1,gold\r\nP2,silver\nP3,x\ry", tmp_path)
    assert got.rows == [("P1", "gold", 2, 2), ("P2", "silver", 3, 3), ("P3", "x\ry", 4, 4)]


def test_quoted_values_keep_delimiters_quotes_and_line_breaks(tmp_path: Path) -> None:
    data = HEADER + b'P1,"a,b","say ""hi"""\nP2,"two\r\nlines",gold\nP3,c,d\n'
    got = read(data, tmp_path)
    assert got.rows == [
        ("P1", "a,b", 'say "hi"', 2, 2),
        ("P2", "two\r\nlines", "gold", 3, 4),
        ("P3", "c", "d", 5, 5),
    ]


def test_an_unbalanced_quote_costs_its_own_line_only(tmp_path: Path) -> None:
    data = HEADER + b'P1,"oops,gold\nP2,b,gold\nP3,c,gold\n'
    got = read(data, tmp_path)
    assert [r[0] for r in got.rows] == ["P2", "P3"]
    assert got.rejections == [Rejection(2, "unbalanced quote (a quoted value is never closed)", 2)]


def test_an_open_quote_never_takes_lines_that_are_rows_on_their_own(tmp_path: Path) -> None:
    # Lines 2-4 would make one well-formed row of three columns; line 3 is a row on its own.
    data = HEADER + b'P1,"oops,gold\nP2,b,gold\nP3,c",gold\n'
    got = read(data, tmp_path)
    assert [r[:2] for r in got.rows] == [("P2", "b"), ("P3", 'c"')]
    assert got.rejected == [2]


def test_an_open_quote_at_the_end_of_the_file_is_rejected(tmp_path: Path) -> None:
    got = read(HEADER + b'P1,a,gold\nP2,"never\nclosed\n', tmp_path)
    assert [r[0] for r in got.rows] == ["P1"]
    assert got.rejected == [3, 4]  # line 4 alone has the wrong number of columns


def test_a_broken_quote_after_a_closing_quote_rejects_the_line(tmp_path: Path) -> None:
    got = read(HEADER + b'P1,"a"b,gold\nP2,b,gold\n', tmp_path)
    assert got.rejected == [2]
    assert "closing quote" in got.rejections[0].reason
    assert [r[0] for r in got.rows] == ["P2"]


def test_wrong_column_counts_say_what_was_found(tmp_path: Path) -> None:
    got = read(HEADER + b'P1,a,b,c\nP2,a\nP3,"x",y,z\n', tmp_path)
    assert [r.reason for r in got.rejections] == [
        "expected 3 columns, found 4 — is a value with a ',' missing its quotes?",
        "expected 3 columns, found 2",
        "expected 3 columns, found 4 — is a value with a ',' missing its quotes?",
    ]


def test_nul_and_invalid_utf8_reject_their_line_only(tmp_path: Path) -> None:
    got = read(HEADER + b"P1,a\x00,gold\nP2,\xff,gold\nP3,c,gold\n", tmp_path)
    assert [r[0] for r in got.rows] == ["P3"]
    assert [r.reason for r in got.rejections] == [
        "contains a NUL byte",
        "not valid UTF-8; if the file is in another encoding, pass --encoding, "
        "e.g. --encoding cp1252",
    ]


def test_blank_lines_and_rows_of_empty_cells_are_counted_blank(tmp_path: Path) -> None:
    got = read(HEADER + b"\n  \r\n, ,\nP1,a,b\n\n", tmp_path)
    assert got.blank == 4
    assert got.lines == 5
    assert [r[0] for r in got.rows] == ["P1"]


def test_a_blank_line_inside_a_quoted_value_belongs_to_the_value(tmp_path: Path) -> None:
    got = read(HEADER + b'P1,"para\n\nend",gold\n', tmp_path)
    assert got.rows == [("P1", "para\n\nend", "gold", 2, 4)]


@pytest.mark.parametrize("delimiter", [";", "\t", "|", ","])
def test_the_delimiter_is_detected(delimiter: str, tmp_path: Path) -> None:
    d = delimiter.encode()
    data = b"profile_id" + d + b"email" + d + b"note\nP1" + d + b"a" + d + b"x y\n"
    got = read(data, tmp_path)
    assert got.rows == [("P1", "a", "x y", 2, 2)]
    assert describe(tmp_path / "f.csv", ReadOptions()).delimiter == delimiter


def test_detection_prefers_the_delimiter_the_rows_agree_with(tmp_path: Path) -> None:
    # The header alone splits on both; only ';' splits every row the same way.
    data = b"profile_id;e,mail;plan\nP1;a;b\nP2;c;d\n"
    assert read(data, tmp_path).rows == [("P1", "a", "b", 2, 2), ("P2", "c", "d", 3, 3)]


@pytest.mark.parametrize("asked", ["tab", "\\t", "\t"])
def test_an_asked_delimiter_wins(asked: str, tmp_path: Path) -> None:
    data = b"profile_id\tplan,tier\nP1\tgold,x\n"
    assert read(data, tmp_path, delimiter=asked).rows == [("P1", "gold,x", 2, 2)]


def test_an_unusable_delimiter_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="one ASCII character"):
        read(HEADER, tmp_path, delimiter="::")


def test_boms_are_dropped_and_utf16_is_decoded(tmp_path: Path) -> None:
    text = "profile_id,city\nP1,Zürich\r\nP2,東京\n"
    for data in (
        codecs.BOM_UTF8 + text.encode(),
        codecs.BOM_UTF16_LE + text.encode("utf-16-le"),
        codecs.BOM_UTF16_BE + text.encode("utf-16-be"),
    ):
        got = read(data, tmp_path)
        assert got.rows == [("P1", "Zürich", 2, 2), ("P2", "東京", 3, 3)]


def test_a_named_encoding_is_transcoded(tmp_path: Path) -> None:
    data = "profile_id,city\nP1,Sète\nP2,Köln\n".encode("cp1252")
    got = read(data, tmp_path, encoding="cp1252")
    assert got.rows == [("P1", "Sète", 2, 2), ("P2", "Köln", 3, 3)]
    assert describe(tmp_path / "f.csv", ReadOptions(encoding="cp1252")).encoding == "cp1252"
    plain = read(data, tmp_path)  # without --encoding: the lines say what to do
    assert "--encoding cp1252" in plain.rejections[0].reason
    assert plain.lines == 2


def test_bytes_the_named_encoding_cannot_decode_reject_their_line(tmp_path: Path) -> None:
    got = read(b"profile_id,city\nP1,a\x81b\nP2,c\n", tmp_path, encoding="cp1252")
    assert got.rejections == [
        Rejection(2, "holds bytes that are not valid cp1252; check --encoding", 2)
    ]
    assert got.rows == [("P2", "c", 3, 3)]


def test_an_unknown_encoding_says_what_to_pass(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="cp1252, latin-1"):
        read(HEADER, tmp_path, encoding="klingon")


def test_the_header_is_trimmed_lowercased_and_mapped(tmp_path: Path) -> None:
    data = b" Customer ID ,E-Mail,Plan\nP1,a,b\n"
    got = read(data, tmp_path, mapping={"profile_id": "customer id", "email": " e-mail"})
    assert got.batches[0].frame is not None
    assert got.batches[0].frame.columns[:3] == ["profile_id", "email", "plan"]


def test_a_mapped_column_missing_names_it_and_lists_the_columns(tmp_path: Path) -> None:
    with pytest.raises(ValidationError) as caught:
        read(HEADER, tmp_path, mapping={"email": "E-Mail"})
    assert "'E-Mail'" in str(caught.value)
    assert "'profile_id', 'email', 'plan'" in str(caught.value)


def test_repeated_columns_after_mapping_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="repeats columns"):
        read(b"profile_id,email,mail\n", tmp_path, mapping={"email": "mail"})


def test_a_missing_profile_id_suggests_the_delimiter(tmp_path: Path) -> None:
    with pytest.raises(ValidationError) as caught:
        read(b"profile_id:email;phone\nP1:a;b\n", tmp_path, delimiter=",")
    assert "is the delimiter ';'? use --delimiter ';'" in str(caught.value)


def test_a_missing_profile_id_suggests_map_and_shows_names_printably(tmp_path: Path) -> None:
    with pytest.raises(ValidationError) as caught:
        read(b"id,na\x1bme," + b"x" * 80 + b"\n", tmp_path)
    message = str(caught.value)
    assert "--map profile_id=<column>" in message
    assert "'na\\x1bme'" in message
    assert "\x1b" not in message
    assert "x" * 50 not in message


def test_a_header_that_is_not_text_or_is_missing_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="header is not valid text"):
        read(b"profile_id,pl\xffan\nP1,a\n", tmp_path)
    with pytest.raises(ValidationError, match="is empty"):
        read(b"", tmp_path)
    with pytest.raises(ValidationError, match="is empty"):
        read(b"\nprofile_id\n", tmp_path)


def test_batches_are_in_file_order_and_a_quoted_row_may_cross_them(tmp_path: Path) -> None:
    rows = [b"P%d,a,gold\n" % n for n in range(300)]
    rows[150] = b'P150,"multi\n' + b"line\n" * 20 + b'end",gold\n'
    data = HEADER + b"".join(rows)
    got = read(data, tmp_path, rows=7)
    assert len(got.batches) > 5
    assert [r[0] for r in got.rows] == [f"P{n}" for n in range(300)]
    multi = got.rows[150]
    assert multi[1] == "multi\n" + "line\n" * 20 + "end"
    assert multi[3:] == (152, 173)
    assert got.lines == physical_lines(data) - 1


def test_a_gzipped_file_is_read(tmp_path: Path) -> None:
    path = tmp_path / "f.csv.gz"
    path.write_bytes(gzip.compress(HEADER + b"P1,a,b\n"))
    assert read_path(path).rows == [("P1", "a", "b", 2, 2)]


def test_bytes_read_are_reported(tmp_path: Path) -> None:
    data = HEADER + b"P1,a,b\n" * 1000
    path = tmp_path / "f.csv"
    path.write_bytes(data)
    seen: list[int] = []
    list(read_batches(path, ReadOptions(), rows=10, on_bytes=seen.append))
    assert sum(seen) == len(data)


def test_the_format_comes_from_the_extension_or_is_asked(tmp_path: Path) -> None:
    (tmp_path / "f.tsv").write_bytes(b"profile_id\tplan\nP1\tgold\n")
    assert describe(tmp_path / "f.tsv", ReadOptions()) == Description(
        "csv", "UTF-8", "\t", ("profile_id", "plan")
    )
    with pytest.raises(ValidationError, match="--format"):
        describe(tmp_path / "f.xlsx", ReadOptions())


def test_json_lines_count_every_line(tmp_path: Path) -> None:
    data = b'{"profile_id": "P1"}\n\n{oops\n[1]\n' + b'"' + b"x" * 1_000_001 + b'"\n\xff\n'
    got = read(data, tmp_path, name="f.jsonl")
    assert got.objects == [(1, {"profile_id": "P1"}), (4, [1])]
    assert got.blank == 1
    assert got.lines == 6
    reasons = {r.line: r.reason for r in got.rejections}
    assert reasons[3].startswith("malformed JSON")
    assert reasons[5] == "line longer than 1000000 bytes"
    assert reasons[6].startswith("not valid UTF-8")


def test_json_lines_in_utf16_are_decoded(tmp_path: Path) -> None:
    data = codecs.BOM_UTF16_LE + '{"city": "Köln"}\n'.encode("utf-16-le")
    assert read(data, tmp_path, name="f.ndjson").objects == [(1, {"city": "Köln"})]


def test_parquet_columns_come_out_as_text(tmp_path: Path) -> None:
    path = tmp_path / "f.parquet"
    pl.DataFrame(
        {
            " Customer ": ["P1", "P2", "P3"],
            "emails": [["a@x.com", "b@x.com"], [], None],
            "born": [datetime.date(1990, 1, 2), None, None],
            "ltv": [1.5, 2.0, None],
            "vip": [True, False, None],
            "n": [1, 2, 3],
        }
    ).write_parquet(path, row_group_size=1)
    got = read_path(path, rows=2, mapping={"profile_id": "customer"})
    assert got.rows == [
        ("P1", "a@x.com;b@x.com", "1990-01-02", "1.5", "true", "1", 2, 2),
        ("P2", "", None, "2.0", "false", "2", 3, 3),
        ("P3", None, None, None, None, "3", 4, 4),
    ]
    assert len(got.batches) == 2
    assert describe(path, ReadOptions(mapping={"profile_id": "customer"})).columns[0] == (
        "profile_id"
    )


def test_parquet_without_profile_id_says_how_to_map(tmp_path: Path) -> None:
    path = tmp_path / "f.parquet"
    pl.DataFrame({"id": ["P1"]}).write_parquet(path)
    with pytest.raises(ValidationError, match="--map profile_id="):
        read_path(path)


def test_a_file_that_is_not_parquet_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "f.parquet"
    path.write_bytes(HEADER)
    with pytest.raises(ValidationError, match="not a readable Parquet file"):
        read_path(path)


PROFILE_HEADER = (
    b"profile_id,email,phone,mobile_id,external_id,mobile_id_kind,first_name,last_name,city,"
    b"state,zip,country,date_of_birth,gender,plan,lifetime_value\n"
)


def profile_line(n: int) -> bytes:
    return (
        b"P%07d,user%d@example.com,+1 555 %04d,,CUST-%d,,Ann,Lee,Paris,,75001,FR,,F,gold,1.5\n"
        % (
            n,
            n,
            n % 10_000,
            n,
        )
    )


def test_the_issue_file_loses_exactly_its_three_broken_lines(tmp_path: Path) -> None:
    """Issue 18: an unbalanced quote on line 503 took lines 504-1554 into one value."""
    lines = [profile_line(n) for n in range(2, 2002)]  # line numbers 2..2001
    lines[503 - 2] = lines[503 - 2].replace(b",user", b',"user')  # never closed
    lines[1200 - 2] = lines[1200 - 2].replace(b"Paris", b"Paris,TX")  # 17 columns
    lines[1554 - 2] = lines[1554 - 2].replace(b",Ann,", b',"Ann" Jr,')  # text after a quote
    got = read(PROFILE_HEADER + b"".join(lines), tmp_path, rows=500)
    assert got.rejected == [503, 1200, 1554]
    assert "unbalanced quote" in got.rejections[0].reason
    assert got.rejections[1].reason.startswith("expected 16 columns, found 17")
    assert "closing quote" in got.rejections[2].reason
    assert [r[-2] for r in got.rows] == [n for n in range(2, 2002) if n not in (503, 1200, 1554)]
    assert got.rows[0][:3] == ("P0000002", "user2@example.com", "+1 555 0002")


def test_rows_read_in_bulk_and_one_by_one_agree_with_python_csv(tmp_path: Path) -> None:
    """A block of one-line rows goes to Polars (quotes and all); the same block with a line that
    is not UTF-8 goes line by line (quoted rows through `csvlines`). Both read as Python's csv."""
    values = ['a""b', "x\ry", " pad ", "semi;colon", "tab\there", "", "é"]
    body = b""
    expected = []
    for n in range(40):
        cells = [f"P{n}", values[n % len(values)], values[(n + 3) % len(values)]]
        quoted = ",".join('"' + c.replace('"', '""') + '"' if n % 2 else c for c in cells)
        if n % 2 == 0 and any(c in quoted for c in '"\r'):
            quoted = ",".join('"' + c.replace('"', '""') + '"' for c in cells)
        body += (quoted + ("\r\n" if n % 3 else "\n")).encode()
        expected.append(next(csv.reader([quoted.replace("\r", "\x00")])))
    expected = [[c.replace("\x00", "\r") for c in row] for row in expected]
    bulk = read(HEADER + body, tmp_path)
    assert [list(r[:3]) for r in bulk.rows] == expected
    broken = read(HEADER + body + b'P99,"op\xffen\n', tmp_path)
    assert broken.rows == bulk.rows
    assert broken.rejected == [42]


def test_a_line_too_long_to_hold_is_skipped_and_rejected(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(csvlines, "MAX_LINE_HELD", 4096)
    data = HEADER + b"P1,a,b\n" + b"x" * 50_000 + b"\nP2,c,d\n" + b"y" * 9_000
    got = read(data, tmp_path, rows=3)
    assert [r[0] for r in got.rows] == ["P1", "P2"]
    assert got.rejections == [
        Rejection(3, csvlines.OVERLONG_REASON, 3),
        Rejection(5, csvlines.OVERLONG_REASON, 5),
    ]
    jsonl = read(b'{"a": 1}\n' + b"z" * 50_000 + b"\n", tmp_path, name="f.jsonl", rows=1)
    assert jsonl.rejections == [Rejection(2, "line longer than 1000000 bytes", 2)]


def test_a_header_with_a_broken_quote_or_a_reserved_name_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="header \\(line 1\\) has a broken quote"):
        read(b'profile_id,"email\nP1,a\n', tmp_path)
    with pytest.raises(ValidationError, match="'_line', a name the importer keeps"):
        read(b"profile_id,_Line\nP1,a\n", tmp_path)


def test_a_file_with_carriage_returns_alone_as_line_ends_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="LF or CRLF"):
        read(b"profile_id,plan\rP1,gold\rP2,silver\r", tmp_path)


def test_a_blank_row_over_two_lines_counts_both(tmp_path: Path) -> None:
    got = read(HEADER + b'P1,a,b\n,"\n",\n', tmp_path)
    assert got.blank == 2
    assert [r[0] for r in got.rows] == ["P1"]
