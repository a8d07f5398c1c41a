"""The compiled SQLite column reader reads what Python's sqlite3 module reads."""

from __future__ import annotations

import sqlite3
import tempfile
import uuid
from pathlib import Path
from types import ModuleType

import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import create_engine

from audience_sync.sources.columns import ColumnReader, reader_for, sqlite_path

SCHEMA = {"n": pl.Int64, "a": pl.String, "b": pl.String}
ODD = ['O"Brien \\ back', "tab\there", "é ü 漢字 🙂", "0042", "", "null", "[1,2]", "\x01", "a\x00b"]


def table(path: Path, rows: list[tuple[object, ...]]) -> None:
    with sqlite3.connect(path) as connection:
        connection.execute("CREATE TABLE t (n INTEGER, a VARCHAR(10), b TEXT)")
        connection.executemany("INSERT INTO t VALUES (?, ?, ?)", rows)


def read(module: ModuleType, path: Path, sql: str, params: tuple[object, ...] = ()) -> list:
    reader = ColumnReader(module, str(path))
    try:
        return reader.frame(sql, params, SCHEMA).rows()
    finally:
        reader.close()


def test_values_nulls_and_text_arrive_as_sqlite3_reads_them(
    sqlite_columns: ModuleType, tmp_path: Path
) -> None:
    rows: list[tuple[object, ...]] = [
        (i if i % 5 else None, ODD[i % len(ODD)] if i % 3 else None, ODD[(i + 4) % len(ODD)])
        for i in range(50)
    ]
    rows += [(-(2**63), "x", None), (2**63 - 1, None, None)]
    table(tmp_path / "t.db", rows)
    assert read(sqlite_columns, tmp_path / "t.db", "SELECT n, a, b FROM t ORDER BY rowid") == rows


def test_parameters_empty_results_and_numbers_in_text_columns(
    sqlite_columns: ModuleType, tmp_path: Path
) -> None:
    path = tmp_path / "t.db"
    table(path, [(1, "one", "x"), (2, "two", "y"), (3, "three", "z")])
    with sqlite3.connect(path) as connection:
        connection.execute("INSERT INTO t (n, a, b) VALUES (4, 42, 1.5)")  # SQLite's typing
    sql = "SELECT n, a, b FROM t WHERE n >= ? AND a != ? ORDER BY n"
    got = read(sqlite_columns, path, sql, (2, "three"))
    assert got == [(2, "two", "y"), (4, "42", "1.5")]
    assert read(sqlite_columns, path, "SELECT n, a, b FROM t WHERE n > ?", (99,)) == []
    some = uuid.uuid4()
    assert read(sqlite_columns, path, "SELECT 1, ?, NULL", (some,)) == [(1, some.hex, None)]


TEXT = st.text(st.characters(exclude_categories=("Cs",)))  # UTF-8 can carry any other


def test_any_text_reads_back(sqlite_columns: ModuleType) -> None:
    @settings(max_examples=60, deadline=None)
    @given(st.lists(st.tuples(st.integers(-(2**63), 2**63 - 1), TEXT, st.none() | TEXT)))
    def check(rows: list[tuple[int, str, str | None]]) -> None:
        with tempfile.TemporaryDirectory() as folder:
            path = Path(folder) / "t.db"
            table(path, rows)
            assert read(sqlite_columns, path, "SELECT n, a, b FROM t ORDER BY rowid") == rows

    check()


def test_errors_say_what_is_wrong(sqlite_columns: ModuleType, tmp_path: Path) -> None:
    path = tmp_path / "t.db"
    table(path, [(1, "one", "x")])
    reader = ColumnReader(sqlite_columns, str(path))
    try:
        with pytest.raises(ValueError, match="cannot prepare the query: no such table"):
            reader.frame("SELECT n, a, b FROM nowhere", (), SCHEMA)
        with pytest.raises(TypeError, match=r"column 2 \(a\): a value is not of kind 'i'"):
            reader.frame("SELECT n, a FROM t", (), {"n": pl.Int64, "a": pl.Int64})
        with pytest.raises(TypeError, match=r"column 2 \(x'00'\): a value is not of kind 't'"):
            reader.frame("SELECT n, x'00', b FROM t", (), SCHEMA)
        with pytest.raises(ValueError, match="one 'i' or 't' for each of the 3 columns"):
            sqlite_columns.query(reader.db, "SELECT n, a, b FROM t", (), "it")
        with pytest.raises(TypeError, match="parameter 1: int, str or None, not float"):
            reader.frame("SELECT n, a, b FROM t WHERE n = ?", (1.5,), SCHEMA)
        with pytest.raises(OSError, match="the query failed: attempt to write a readonly"):
            sqlite_columns.query(reader.db, "INSERT INTO t VALUES (2, 'b', 'c')", (), "")
    finally:
        reader.close()
    with pytest.raises(ValueError, match="closed"):
        sqlite_columns.query(reader.db, "SELECT 1", (), "i")
    with pytest.raises(OSError, match="cannot open the SQLite database"):
        sqlite_columns.open(str(tmp_path / "missing" / "t.db"), 10)


def test_used_only_on_sqlite_files(tmp_path: Path) -> None:
    assert sqlite_path(create_engine(f"sqlite:///{tmp_path}/a.db")) == f"{tmp_path}/a.db"
    assert sqlite_path(create_engine("sqlite://")) is None
    assert sqlite_path(create_engine("sqlite:///:memory:")) is None
    assert sqlite_path(create_engine("sqlite:///file:x?uri=true")) is None
    with reader_for(create_engine("sqlite://")) as reader:
        assert reader is None


def test_a_file_it_cannot_open_is_read_through_the_driver(
    sqlite_columns: ModuleType, tmp_path: Path
) -> None:
    del sqlite_columns  # built: it is the open that fails
    with reader_for(create_engine(f"sqlite:///{tmp_path}/missing/a.db")) as reader:
        assert reader is None
    table(tmp_path / "t.db", [(1, "a", "b")])
    with reader_for(create_engine(f"sqlite:///{tmp_path}/t.db")) as reader:
        assert reader is not None
        assert reader.frame("SELECT n, a, b FROM t", (), SCHEMA).rows() == [(1, "a", "b")]


def test_the_library_check_refuses_another_sqlite(sqlite_columns: ModuleType) -> None:
    import _sqlite3

    assert sqlite_columns.same_library(_sqlite3.__file__)
    assert not sqlite_columns.same_library(sqlite_columns.__file__.replace("_columns", "_nothing"))
    # A loaded module that does not use SQLite at all.
    from audience_sync.identifiers import bulk

    if bulk._DIGEST is not None:
        assert not sqlite_columns.same_library(bulk._DIGEST.__file__)
