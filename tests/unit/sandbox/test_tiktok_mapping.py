"""`segment/mapping` checks and encodes a batch aimed at one audience column by column;
whatever it accepts that way must give exactly the rows the user by user loop gives, and
anything else must fall to that loop and its first error."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest

from audience_sync.sandbox import tiktok
from audience_sync.sandbox.dialect import SandboxError

from .conftest import sha

SCHEMA = ["EMAIL_SHA256", "PHONE_SHA256", "IDFA_MD5", "AAID_SHA256"]
AIM = ["7400000000000000001"]


def _user(i: int) -> list[Any]:
    return [
        {"id": sha(f"e{i}"), "audience_ids": AIM},
        {"id": sha(f"p{i}").upper(), "audience_ids": AIM} if i % 3 else {},
        {"id": sha(f"i{i}")[:32], "audience_ids": AIM} if i % 2 else {},
        {"id": sha(f"a{i}"), "audience_ids": AIM} if i % 5 else {},
    ]


VALID = [_user(i) for i in range(30)]


def _with(user: int, column: int, cell: Any) -> list[Any]:
    users = copy.deepcopy(VALID)
    users[user][column] = cell
    return users


CASES: list[tuple[list[str], list[Any]]] = [
    (SCHEMA, VALID),
    (SCHEMA[::-1], [u[::-1] for u in VALID]),
    (SCHEMA, VALID + VALID[:4]),
    (["EMAIL_SHA256", "EMAIL_SHA256"], [[u[0], u[0]] for u in VALID]),
    (SCHEMA, _with(4, 0, {"id": sha("x")[:63], "audience_ids": AIM})),
    (SCHEMA, _with(4, 0, {"id": sha("x")[:62] + " a", "audience_ids": AIM})),
    (SCHEMA, _with(4, 2, {"id": sha("x"), "audience_ids": AIM})),  # 64 hex for an MD5 key
    (SCHEMA, _with(4, 0, {"id": 5, "audience_ids": AIM})),
    (SCHEMA, _with(4, 0, {"id": None, "audience_ids": AIM})),
    (SCHEMA, _with(4, 0, {"audience_ids": AIM, "other": 1})),
    (SCHEMA, _with(4, 0, {"id": sha("x"), "other": 1})),
    (SCHEMA, _with(4, 0, {"id": sha("x"), "audience_ids": AIM, "other": 1})),
    (SCHEMA, _with(4, 0, {"id": sha("x"), "audience_ids": []})),
    (SCHEMA, _with(4, 0, {"id": sha("x"), "audience_ids": "x"})),
    (SCHEMA, _with(4, 0, {"id": sha("x"), "audience_ids": ["7400000000000000002"]})),
    (SCHEMA, _with(4, 0, {"id": sha("x"), "audience_ids": [*AIM, "7400000000000000002"]})),
    (SCHEMA, _with(4, 0, {"id": sha("x"), "audience_ids": [7400000000000000001]})),
    (SCHEMA, _with(4, 0, "x")),
    (SCHEMA, _with(4, 0, None)),
    (SCHEMA, [*VALID, [{}, {}, {}, {}]]),
    (SCHEMA, [*VALID, VALID[0][:3]]),
    (SCHEMA, [*VALID, "x"]),
    (SCHEMA, [[{}, {}, {}, {}]]),
    (
        ["AAID_SHA256"],
        [[{"id": sha("y"), "audience_ids": [1]}], [{"id": sha("z"), "audience_ids": [1.0]}]],
    ),
]


def _outcome(schema: list[str], users: list[Any]) -> Any:
    fast = tiktok._if_one_plain_audience(schema, users)
    if fast is not None:
        return fast
    try:
        return tiktok._rows_by_audience(schema, users)
    except SandboxError as exc:
        body = json.loads(bytes(exc.response.body))
        return body["code"], body["message"]


@pytest.mark.parametrize(("schema", "users"), CASES)
def test_the_bulk_mapping_gives_what_the_user_by_user_loop_gives(
    schema: list[str], users: list[Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    bulk = _outcome(schema, users)
    monkeypatch.setattr(tiktok, "_if_one_plain_audience", lambda *args: None)
    assert bulk == _outcome(schema, users)


def test_a_batch_aimed_at_one_audience_takes_the_bulk_path() -> None:
    rows = tiktok._if_one_plain_audience(SCHEMA, VALID)
    assert rows is not None
    assert list(rows) == AIM
    assert len(rows[AIM[0]]) == len(VALID)
