"""Log forging (issue 17, finding 10): a path taken from a request never writes a line of its own,
and no control character reaches a log line raw."""

from __future__ import annotations

import logging

import httpx
import pytest
from fastapi import FastAPI

from audience_sync.log import escape_control

FORGED = "2026-12-04T22:30:00Z [info ] POST /api/v1/connections/meta 200 12 ms"


def lines_of(caplog: pytest.LogCaptureFixture, logger: str) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == logger]


@pytest.mark.parametrize("encoded", ["%0a", "%0d%0a", "%0d", "%e2%80%a8", "%c2%85"])
async def test_a_newline_in_the_path_does_not_forge_an_access_log_line(
    client: httpx.AsyncClient, caplog: pytest.LogCaptureFixture, encoded: str
) -> None:
    caplog.set_level(logging.INFO, "audience_sync.api.access")
    response = await client.get("/x" + encoded + FORGED.replace(" ", "%20"))
    assert response.status_code == 404
    [line] = lines_of(caplog, "audience_sync.api.access")
    assert len(line.splitlines()) == 1, line
    assert line.startswith("GET /x\\")
    assert line.endswith(" 404 " + line.rsplit(" 404 ", 1)[1])
    assert FORGED in line  # kept, readable, on the real line


async def test_a_nul_and_other_control_characters_are_escaped(
    client: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, "audience_sync.api.access")
    await client.get("/a%00b%1b[31mred%7f%09c")
    [line] = lines_of(caplog, "audience_sync.api.access")
    assert not any(ord(c) < 0x20 or 0x7F <= ord(c) <= 0x9F for c in line), repr(line)
    assert line.startswith("GET /a\\x00b\\x1b[31mred\\x7f\\tc 404 ")


async def test_the_unexpected_error_log_escapes_the_path_too(
    client: httpx.AsyncClient, app: FastAPI, caplog: pytest.LogCaptureFixture
) -> None:
    def boom(rest: str) -> None:
        raise RuntimeError("boom")

    app.add_api_route("/boom/{rest}", boom)
    forged = "2026-12-04T22:30:00Z [error ] disk full"  # one path segment: no slash
    response = await client.get("/boom/x%0a" + forged.replace(" ", "%20"))
    assert response.status_code == 500
    [line] = lines_of(caplog, "audience_sync.api.errors")
    first = line.splitlines()[0]  # the traceback frames follow on lines of their own
    assert first == f"unhandled RuntimeError on GET /boom/x\\n{forged}"


def test_escape_control_leaves_ordinary_text_alone() -> None:
    text = "/api/v1/segments/é-ü-日本/members"
    assert escape_control(text) == text
    assert escape_control("a\r\nb\x00c\u2029") == "a\\r\\nb\\x00c\\u2029"
