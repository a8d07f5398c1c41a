"""`parse_members` takes a batch of plain `userData` members in one lean pass; whatever it
accepts that way must give exactly what the member by member parse gives, labels included,
and anything else must fall to that parse."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from audience_sync.sandbox import google_members
from audience_sync.sandbox.google_members import (
    MemberProblemError,
    ParsedMembers,
    parse_members,
    row_label,
)

from .conftest import sha


def _member(i: int) -> dict[str, Any]:
    idents: list[dict[str, Any]] = [
        {
            "address": {
                "givenName": sha(f"g{i}") if i % 2 else sha(f"g{i}").upper(),
                "familyName": sha(f"f{i}").upper(),
                "regionCode": ("US", "FR", "DE")[i % 3],
                "postalCode": f"{94000 + i}",
            }
        },
        {"emailAddress": sha(f"e{i}")},
    ]
    if i % 4:
        idents.append({"phoneNumber": sha(f"p{i}")})
    if i % 5 == 0:
        idents.append({"emailAddress": sha(f"w{i}").upper()})  # a second email, after
    return {"userData": {"userIdentifiers": idents}}


VALID = [_member(i) for i in range(40)]


def _with(change: Any) -> list[Any]:
    members = copy.deepcopy(VALID)
    change(members)
    return members


def _set(path: tuple[Any, ...], value: Any) -> Any:
    def change(members: list[Any]) -> None:
        node = members
        for key in path[:-1]:
            node = node[key]
        node[path[-1]] = value

    return change


IDENTS = (7, "userData", "userIdentifiers")
CASES: list[tuple[list[Any], Any, Any]] = [
    (VALID, "HEX", None),
    (VALID + VALID[:3], "HEX", None),
    (
        VALID,
        "HEX",
        {"adUserData": "CONSENT_GRANTED", "adPersonalization": "CONSENT_STATUS_UNSPECIFIED"},
    ),
    (VALID, "HEX", {"adUserData": "CONSENT_DENIED"}),
    (VALID, "BASE64", None),
    (VALID, None, None),
    ([{"userData": {"userIdentifiers": [{"emailAddress": sha("x")}]}}], "HEX", None),
    (_with(_set((*IDENTS, 1, "emailAddress"), sha("x")[:63])), "HEX", None),
    (_with(_set((*IDENTS, 1, "emailAddress"), sha("x")[:62] + " a")), "HEX", None),
    (_with(_set((*IDENTS, 1, "emailAddress"), "")), "HEX", None),
    (_with(_set((*IDENTS, 1, "emailAddress"), 5)), "HEX", None),
    (_with(_set((*IDENTS, 0, "address", "regionCode"), "us")), "HEX", None),
    (_with(_set((*IDENTS, 0, "address", "regionCode"), "USA")), "HEX", None),
    (_with(_set((*IDENTS, 0, "address", "regionCode"), "ÜS")), "HEX", None),
    (_with(_set((*IDENTS, 0, "address", "postalCode"), "")), "HEX", None),
    (_with(_set((*IDENTS, 0, "address", "postalCode"), "x" * 41)), "HEX", None),
    (_with(_set((*IDENTS, 0, "address", "postalCode"), "€" * 40)), "HEX", None),
    (_with(_set((*IDENTS, 0, "address", "givenName"), None)), "HEX", None),
    (_with(_set((*IDENTS, 0, "address", "postalCode"), "\ud800")), "HEX", None),
    (  # a bad digest first, then a postal code UTF-8 cannot encode: still the 400
        _with(
            lambda ms: (
                _set((3, "userData", "userIdentifiers", 1, "emailAddress"), "x")(ms),
                _set((*IDENTS, 0, "address", "postalCode"), "\ud800")(ms),
            )
        ),
        "HEX",
        None,
    ),
    (_with(_set((*IDENTS, 0, "address"), "x")), "HEX", None),
    (_with(_set((*IDENTS, 1), {"emailAddress": sha("a"), "phoneNumber": sha("b")})), "HEX", None),
    (_with(_set((*IDENTS, 1), {"foo": 1})), "HEX", None),
    (_with(_set(IDENTS, [{"emailAddress": sha("a")}] * 11)), "HEX", None),
    (_with(_set(IDENTS, [])), "HEX", None),
    (_with(_set((7, "consent"), {"adUserData": "CONSENT_DENIED"})), "HEX", None),
    (_with(_set((7,), {"mobileData": {"mobileIds": ["m1"]}})), "HEX", None),
    (_with(_set((7,), {"userData": "x"})), "HEX", None),
    (_with(_set((7,), "x")), "HEX", None),
]


def _outcome(members: list[Any], encoding: Any, consent: Any, ingest: bool) -> Any:
    try:
        parsed = parse_members(members, encoding, consent, ingest=ingest)
    except MemberProblemError as problem:
        return problem.violations
    except ValueError as exc:  # an address `encode` refuses: a 500, either way
        return type(exc).__name__
    return parsed, parsed.row_labels()


def _plain(outcome: Any) -> Any:
    if isinstance(outcome, tuple) and isinstance(outcome[0], ParsedMembers):
        parsed, labels = outcome
        return {**vars(parsed), "labels": labels}
    return outcome


@pytest.mark.parametrize("ingest", [True, False])
@pytest.mark.parametrize(("members", "encoding", "consent"), CASES)
def test_the_lean_parse_gives_what_the_member_by_member_parse_gives(
    members: list[Any], encoding: Any, consent: Any, ingest: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    lean = _plain(_outcome(members, encoding, consent, ingest))
    monkeypatch.setattr(google_members, "_if_all_plain", lambda *args: None)
    assert lean == _plain(_outcome(members, encoding, consent, ingest))


def test_plain_members_take_the_lean_path_with_each_rows_label() -> None:
    parsed = google_members._if_all_plain(VALID, "HEX", None, True)
    assert parsed is not None
    assert parsed.labels == [row_label(row) for row in parsed.rows]
