"""`parse_payload` checks and encodes an all-valid payload column by column; whatever it
accepts that way must give exactly what the row by row parse gives, and anything else must
fall to that parse."""

from __future__ import annotations

import json
from typing import Any

import pytest

from audience_sync.sandbox import meta_graph
from audience_sync.sandbox.dialect import SandboxError
from audience_sync.sandbox.meta_graph import Upload, parse_payload

from .conftest import digests, sha

SCHEMA = ["EMAIL", "PHONE", "MADID", "EXTERN_ID", "FN", "LN", "ZIP", "COUNTRY"]


def _row(i: int) -> list[Any]:
    return [
        sha(f"e{i}"),
        sha(f"p{i}") if i % 4 else "",
        f"{i:08X}-AAAA" if i % 3 else "",
        f"CUST-{i}" if i % 5 else "",
        sha("mary"),
        sha(f"smith{i % 7}").upper(),
        sha("94000"),
        sha("us"),
    ]


VALID = [_row(i) for i in range(60)]


def _with(row: int, column: int, value: Any) -> list[Any]:
    data = [list(r) for r in VALID]
    data[row][column] = value
    return data


PAYLOADS: list[dict[str, Any]] = [
    {"schema": SCHEMA, "data": VALID},
    {"schema": SCHEMA[::-1], "data": [r[::-1] for r in VALID]},
    {"schema": SCHEMA, "data": VALID + VALID[:5]},
    {"schema": "EMAIL_SHA256", "data": digests(30)},
    {"schema": "EMAIL_SHA256", "data": [*digests(5), ""]},
    {"schema": "PHONE_SHA256", "data": [d.upper() for d in digests(5)]},
    {"schema": ["EMAIL_SHA256"], "data": [[d] for d in digests(5)]},
    {"schema": "MOBILE_ADVERTISER_ID", "data": ["", "abc", "é" * 100]},
    {"schema": "MOBILE_ADVERTISER_ID", "data": ["abc", "x" * 256]},
    {"schema": "MOBILE_ADVERTISER_ID", "data": ["abc", "\ud800"]},
    {"schema": ["MADID", "EXTERN_ID"], "data": [["a", ""], ["", "b"], ["é" * 85, "c"]]},
    {"schema": ["EMAIL", "MADID"], "data": [[d, ""] for d in digests(5)] + [["", ""]]},
    {"schema": ["EMAIL", "DATA_PROCESSING_OPTIONS"], "data": [[d, ["LDU"]] for d in digests(3)]},
    {"schema": SCHEMA, "data": _with(3, 0, sha("x")[:63])},
    {"schema": SCHEMA, "data": _with(3, 0, sha("x")[:62] + " a")},
    {"schema": SCHEMA, "data": _with(3, 1, 5)},
    {"schema": SCHEMA, "data": _with(3, 2, None)},
    {"schema": SCHEMA, "data": _with(3, 3, "x" * 256)},
    {"schema": SCHEMA, "data": _with(3, 4, "g" * 64)},
    {"schema": SCHEMA, "data": [*VALID, [""] * len(SCHEMA)]},
    {"schema": SCHEMA, "data": [*VALID, VALID[0][:-1]]},
    {"schema": SCHEMA, "data": [*VALID, "x"]},
    {"schema": SCHEMA, "data": [[""] * len(SCHEMA)]},
]


def _outcome(payload: dict[str, Any]) -> Upload | tuple[int, Any]:
    try:
        return parse_payload(payload)
    except SandboxError as exc:
        body = json.loads(bytes(exc.response.body))
        body["error"].pop("fbtrace_id")
        return exc.response.status_code, body
    except ValueError as exc:  # e.g. a value UTF-8 cannot encode: a 500, either way
        return 500, type(exc).__name__


@pytest.mark.parametrize("payload", PAYLOADS)
def test_the_bulk_parse_gives_what_the_row_by_row_parse_gives(
    payload: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    bulk = _outcome(payload)
    monkeypatch.setattr(meta_graph, "_rows_if_all_valid", lambda *args: None)
    assert bulk == _outcome(payload)


def test_an_all_valid_payload_takes_the_bulk_path() -> None:
    rows = meta_graph._rows_if_all_valid(SCHEMA, False, VALID)
    assert rows is not None
    assert len(rows) == len(VALID)
