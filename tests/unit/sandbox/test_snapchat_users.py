"""Snapchat's `users` batch is checked and encoded at once when every item is valid; whatever
it accepts that way must give the rows the item by item loop gives, and anything else must
fall to that loop and its error. The matched-users count is made in bulk too."""

from __future__ import annotations

import json
from collections import Counter
from typing import Any

import pytest

from audience_sync.sandbox import snapchat
from audience_sync.sandbox.dialect import SandboxError
from audience_sync.sandbox.members import MemberStore
from audience_sync.sandbox.snapchat import SNAP_KEYS, matched_users
from audience_sync.sandbox.state import Audience

from .conftest import digests, sha

VALID = [[d] for d in digests(40)]


def _body(data: list[Any], schema: str = "EMAIL_SHA256") -> dict[str, Any]:
    return {"users": [{"schema": [schema], "data": data}]}


BODIES = [
    _body(VALID),
    _body([[d[0].upper()] for d in VALID], "PHONE_SHA256"),
    _body(VALID + VALID[:5], "MOBILE_AD_ID_SHA256"),
    {"users": [{"schema": ["EMAIL_SHA256"], "data": VALID[:5]}] * 2},
    _body([*VALID, [sha("x")[:63]]]),
    _body([*VALID, [sha("x")[:62] + " a"]]),
    _body([*VALID, [sha("x")[:62] + "\n"]]),
    _body([*VALID, ["g" * 64]]),
    _body([*VALID, [5]]),
    _body([*VALID, []]),
    _body([*VALID, [sha("x"), sha("y")]]),
    _body([*VALID, sha("x")]),
    _body([*VALID, None]),
]


def _outcome(body: dict[str, Any]) -> Any:
    try:
        return snapchat._users(body)
    except SandboxError as exc:
        answer = json.loads(bytes(exc.response.body))
        return answer["error_code"], answer["debug_message"]


@pytest.mark.parametrize("body", BODIES)
def test_the_bulk_users_parse_gives_what_the_item_by_item_loop_gives(
    body: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    bulk = _outcome(body)
    monkeypatch.setattr(snapchat, "_rows_if_all_valid", lambda *args: None)
    assert bulk == _outcome(body)


@pytest.mark.parametrize("rate", [0.0, 0.4, 1.0])
def test_matched_users_counts_the_key_with_the_most_matches(rate: float) -> None:
    members = MemberStore(SNAP_KEYS, rate)
    keys = ("EMAIL_SHA256", "PHONE_SHA256", "MOBILE_AD_ID_SHA256")
    rows = [SNAP_KEYS.encode([(keys[i % 3 // 2], d)]) for i, d in enumerate(digests(900))]
    members.add(rows, 1.0)
    members.add_outside(7)
    audience = Audience("snapchat", "1", "A", "acc", members, 1.0, 1.0)
    found: Counter[str] = Counter()
    for row in members:
        if members.row_matches(row):
            found.update(spec.name for spec, _ in SNAP_KEYS.decode(row))
    assert matched_users(audience) == 7 + max(found.values(), default=0)
