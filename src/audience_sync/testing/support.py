"""What the conformance suite needs besides its tests: users, expected wire values, fake time.

`expected_identifiers` is the simple reference: it calls `hash_identifier` value by value, apart
from the connectors' bulk path, so the suite proves the two agree on what the platform holds.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import httpx
import uvicorn

from audience_sync.connectors.tiktok import mobile_id_schema
from audience_sync.domain.models import AudienceUser, IdentifierType, MobileIdKind, UserIdentifier
from audience_sync.identifiers import Field, hash_identifier, normalize_country
from audience_sync.sandbox import SandboxSettings, create_app

SANDBOX_URL = "http://sandbox"
PREFIXES = {
    "meta": "/meta/v26.0",
    "google": "/google/v1",
    "googleads": "/googleads/v26",
    "tiktok": "/tiktok/open_api/v1.3",
    "snapchat": "/snapchat/v1",
}
"""The sandbox prefix of each API family."""

UPLOAD_PATHS = {
    "meta": r"/users(replace)?$",
    "google": r"audienceMembers:(ingest|remove)$",
    "googleads": r":addOperations$",
    "tiktok": r"segment/mapping/$",
    "snapchat": r"/users$",
}
"""A regex matching the member-upload calls of each family (for faults and the request log)."""


class FakeTime:
    """A clock that only moves when something sleeps: tests never really wait."""

    def __init__(self) -> None:
        self.now = 1_000.0
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def make_users(start: int, stop: int) -> list[AudienceUser]:
    """Users `start..stop-1`: a messy email each; some a phone, a mobile id, name and address."""
    users = []
    for i in range(start, stop):
        identifiers = [UserIdentifier(IdentifierType.EMAIL, f"  Person.{i}@Example.COM ")]
        if i % 3 == 0:
            identifiers.append(UserIdentifier(IdentifierType.PHONE, f"(650) 555-{i % 10_000:04d}"))
        if i % 4 == 1:
            kind = MobileIdKind.IDFA if i % 8 == 1 else MobileIdKind.GAID
            maid = f"{i:08X}-AAAA-4BBB-8CCC-{i:012X}"
            identifiers.append(UserIdentifier(IdentifierType.MOBILE_ID, maid, kind=kind))
        named = i % 5 == 2
        users.append(
            AudienceUser(
                profile_id=f"p{i}",
                identifiers=tuple(identifiers),
                first_name="Mary-Jane" if named else None,
                last_name=f"O'Brien {i % 7}" if named else None,
                country="US" if named else None,
                zip_code="94045-1234" if named else None,
            )
        )
    return users


def _phone(user: AudienceUser, ident: UserIdentifier) -> tuple[str, str]:
    """A phone as the profile holds it: its stored E.164, else the raw value in its country."""
    country = normalize_country(user.country) if user.country else None
    return ident.e164 or ident.value, (country or "us").upper()


def sent_value(user: AudienceUser, ident: UserIdentifier, platform: str) -> str | None:
    """What the platform holds for one of the user's identifiers (phones dialled in the
    profile's country), by the reference rules."""
    return _ident(user, ident, platform)


def _ident(user: AudienceUser, ident: UserIdentifier, platform: str) -> str | None:
    if ident.type is IdentifierType.PHONE:
        value, region = _phone(user, ident)
        target = "google" if platform == "googleads" else platform
        return hash_identifier(value, ident.type, target, region=region)
    return _sent(ident.value, ident.type, platform)


def _sent(value: str | None, field: Field | IdentifierType, platform: str) -> str | None:
    return hash_identifier(value, field, "google" if platform == "googleads" else platform)


def _meta(user: AudienceUser, held: dict[str, set[str]]) -> None:
    keys = {"EMAIL": Field.EMAIL, "PHONE": Field.PHONE, "MADID": Field.MOBILE_ID}
    found = False
    for key, field in keys.items():
        for ident in user.identifiers:
            if ident.type.value == field.value and (v := _ident(user, ident, "meta")):
                held.setdefault(key, set()).add(v)
                found = True
    extra = {"FN": user.first_name, "LN": user.last_name, "COUNTRY": user.country}
    extra["ZIP"] = user.zip_code
    for key, value in extra.items():
        field = {"FN": Field.FIRST_NAME, "LN": Field.LAST_NAME, "COUNTRY": Field.COUNTRY}.get(
            key, Field.ZIP
        )
        if found and (v := _sent(value, field, "meta")):
            held.setdefault(key, set()).add(v)


def _google(user: AudienceUser, held: dict[str, set[str]], platform: str) -> None:
    for ident in user.identifiers:
        key = {"email": "emailAddress", "phone": "phoneNumber"}.get(ident.type.value)
        if key and (v := _ident(user, ident, platform)):
            held.setdefault(key, set()).add(v)
    parts = [
        _sent(user.first_name, Field.FIRST_NAME, platform),
        _sent(user.last_name, Field.LAST_NAME, platform),
        _sent(user.country, Field.COUNTRY, platform),
        _sent(user.zip_code, Field.ZIP, platform),
    ]
    if all(parts):
        held.setdefault("address", set()).add("|".join(p or "" for p in parts))


def _keyed(user: AudienceUser, held: dict[str, set[str]], platform: str) -> None:
    """TikTok's and Snapchat's keys, which differ in the mobile ids' alone."""
    for ident in user.identifiers:
        key = {"email": "EMAIL_SHA256", "phone": "PHONE_SHA256"}.get(ident.type.value)
        if ident.type is IdentifierType.MOBILE_ID:
            kind = ident.kind.value if ident.kind else None
            key = {"snapchat": "MOBILE_AD_ID_SHA256", "tiktok": mobile_id_schema(kind)}[platform]
        if key and (v := _ident(user, ident, platform)):
            held.setdefault(key, set()).add(v)


Expect = Callable[[AudienceUser, dict[str, set[str]], str], None]
"""Adds what the sandbox holds for one user, by wire key, to the dict (the family is given)."""

EXPECTED: dict[str, Expect] = {
    "meta": lambda user, held, family: _meta(user, held),
    "google": _google,
    "googleads": _google,
    "tiktok": _keyed,
    "snapchat": _keyed,
}
"""The simple reference of each family's wire values (`expected_identifiers`)."""


def register_family(name: str, prefix: str, upload_path: str, expect: Expect) -> Callable[[], None]:
    """Make an emulator family known to the suite (a test's own platform and emulator): its
    prefix, its member-upload calls, its expected wire values. Returns the undo."""
    if name in PREFIXES:
        raise ValueError(f"sandbox family {name!r} is already known")
    PREFIXES[name], UPLOAD_PATHS[name], EXPECTED[name] = prefix, upload_path, expect

    def unregister() -> None:
        for table in (PREFIXES, UPLOAD_PATHS, EXPECTED):
            table.pop(name, None)

    return unregister


def expected_identifiers(platform: str, users: Sequence[AudienceUser]) -> dict[str, list[str]]:
    """What `/_sandbox/audiences` must hold for `users` under the family's wire keys; a
    `LookupError` for a family nobody registered."""
    expect = EXPECTED.get(platform)
    if expect is None:
        raise LookupError(f"no expected wire values for sandbox family {platform!r}")
    held: dict[str, set[str]] = {}
    for user in users:
        one: dict[str, set[str]] = {}
        expect(user, one, platform)
        for key, values in one.items():
            held.setdefault(key, set()).update(values)
    return {key: sorted(values) for key, values in sorted(held.items())}


async def sandbox_audiences(client: httpx.AsyncClient, platform: str) -> list[dict[str, Any]]:
    sandbox_platform = "google" if platform == "googleads" else platform
    answer = await client.get("/_sandbox/audiences", params={"platform": sandbox_platform})
    found: list[dict[str, Any]] = answer.json()
    return found


async def held_identifiers(
    client: httpx.AsyncClient, platform: str, audience_id: str
) -> dict[str, list[str]]:
    """The identifiers the sandbox holds for one audience, by wire key."""
    for audience in await sandbox_audiences(client, platform):
        if audience["audience_id"] == audience_id:
            held: dict[str, list[str]] = audience["identifiers"]
            return held
    raise LookupError(f"the sandbox holds no {platform} audience {audience_id}")


@contextmanager
def sandbox_server(settings: SandboxSettings | None = None) -> Iterator[str]:
    """The sandbox over a real socket (uvicorn in a thread); yields its base URL. By default
    nothing takes processing time: these tests run on real time, not the sandbox's clock."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = int(sock.getsockname()[1])
    app = create_app(settings or SandboxSettings(processing_seconds=0, google_processing_seconds=0))
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if time.monotonic() > deadline:
            raise RuntimeError("the sandbox did not start")
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
