"""No customer data in what users see when rows fail: CLI output, logs, API answers.

Issue 17, finding 6: a NUL in one row's trait on PostgreSQL printed a traceback quoting the SQL
parameters, i.e. other customers' names, cities and postcodes of the same chunk. These tests
plant distinctive values in the good rows of a failing chunk and scan every output for them. On
SQLite and PostgreSQL (`engine`).
"""

from __future__ import annotations

import json
import logging
import traceback
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, text
from sqlalchemy.exc import SQLAlchemyError
from tests.integration.test_cli import Invoke, cli_on
from typer.testing import Result

from audience_sync import cli
from audience_sync.cli import cdp
from audience_sync.sources import rows

CANARIES = ("leakcanary-123@example.com", "Leakcanaryville", "LC-4242", "tok-leakcanary-9f3a")


def canary_row(number: int) -> dict[str, object]:
    return {
        "profile_id": f"G{number}",
        "email": CANARIES[0],
        "first_name": "Leakcanary",
        "city": CANARIES[1],
        "zip": CANARIES[2],
        "token": CANARIES[3],
    }


BAD = [
    {"profile_id": "B1", "note": "a\x00b", "city": CANARIES[1]},
    {"profile_id": "B2", "note": "\ud800", "zip": CANARIES[2]},
    {
        "profile_id": "B3",
        "note": [[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[["x"]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]],
    },
]


def leaks(*outputs: str) -> list[str]:
    return [c for c in CANARIES for out in outputs if c.lower() in out.lower()]


def shown(result: Result) -> str:
    """Everything a user of the command would see, a traceback included."""
    seen = result.stdout + result.stderr
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        seen += "".join(traceback.format_exception(result.exception))
    return seen


@pytest.fixture
def invoke(engine: Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Invoke]:
    with cli_on(engine.url.render_as_string(hide_password=False), tmp_path, monkeypatch) as run:
        assert run("db", "upgrade").exit_code == 0
        # The next command configures logging again, onto its own captured stderr: the log
        # lines a user would see are then in `result.stderr` too.
        cli.context().engine.dispose()
        cli.context.cache_clear()
        yield run


def failing_chunk(path: Path) -> Path:
    lines = [canary_row(1), *BAD, canary_row(2)]
    path.write_text("\n".join(json.dumps(line) for line in lines) + "\n")
    return path


@pytest.mark.parametrize("checks", ["on", "off"])
def test_a_failing_chunk_shows_no_customer_data_in_the_cli_or_its_log(
    invoke: Invoke,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    checks: str,
) -> None:
    """`off`: the reader's value checks disabled, so the database itself refuses the rows."""
    caplog.set_level(logging.DEBUG)
    if checks == "off":
        monkeypatch.setattr(rows, "value_problem", lambda value: None)
        monkeypatch.setattr(rows, "BAD_TEXT", rows.re.compile("(?!)"))
    path = failing_chunk(tmp_path / "chunk.jsonl")
    rejects = tmp_path / "rejects.csv"
    result = invoke("import", "profiles", str(path), "--rejects", str(rejects))
    seen = shown(result)
    assert leaks(seen, caplog.text, rejects.read_text()) == []
    assert "Traceback" not in seen
    # With the checks off, what each database stores (SQLite: a NUL, both: deep values) is kept.
    summary = "2 rows imported" if checks == "on" else "rows imported"
    assert summary in result.stdout, seen
    assert result.exit_code == 1, seen


def test_an_unexpected_error_prints_its_type_never_its_message(
    invoke: Invoke,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    tmp_path: Path,
) -> None:
    caplog.set_level(logging.DEBUG)

    def explode(*args: object, **kwargs: object) -> None:
        raise UnicodeEncodeError("utf-8", f"{CANARIES[0]} {CANARIES[1]}", 0, 1, CANARIES[2])

    monkeypatch.setattr(cdp, "import_profiles", explode)
    result = invoke("import", "profiles", str(failing_chunk(tmp_path / "x.jsonl")))
    seen = shown(result)
    assert leaks(seen, caplog.text) == []
    assert "Traceback" not in seen
    assert "unexpected UnicodeEncodeError" in result.stderr
    assert result.exit_code == 2


def test_a_database_error_never_quotes_its_parameters(
    invoke: Invoke,
    engine: Engine,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    tmp_path: Path,
) -> None:
    """The engine hides SQL parameters (`hide_parameters`): not in the error, not in the CLI."""
    caplog.set_level(logging.DEBUG)
    statement = text("SELECT :email, :city FROM no_such_table")
    params = {"email": CANARIES[0], "city": CANARIES[1]}
    with pytest.raises(SQLAlchemyError) as raised, engine.connect() as connection:
        connection.execute(statement, params)
    assert leaks(str(raised.value)) == []

    def query(*args: object, **kwargs: object) -> None:
        with cdp.context().engine.connect() as connection:
            connection.execute(statement, params)

    monkeypatch.setattr(cdp, "import_profiles", query)
    result = invoke("import", "profiles", str(failing_chunk(tmp_path / "x.jsonl")))
    seen = shown(result)
    assert leaks(seen, caplog.text) == []
    assert "Database error" in result.stderr
    assert result.exit_code == 2
