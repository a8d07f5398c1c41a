"""The Segments page: sizes, members added in the last 7 days, the audiences using a segment;
an export with its options and its download link; CSRF, tenant isolation, escaping."""

from __future__ import annotations

import html
import json
import re
import uuid
from datetime import timedelta

import httpx
import pytest
from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from audience_sync.store.db import transaction
from audience_sync.store.tables import SegmentMember
from audience_sync.store.types import utcnow

from ..conftest import Api, Tenant
from .conftest import Browser

# The recent-members query runs on both engines; the rest on SQLite.
SQLITE = pytest.mark.parametrize("engine", ["sqlite"], indirect=True)


def row_of(page: str, segment_id: str) -> str:
    found = re.search(
        rf'<tr data-testid="segment-row" data-segment-id="{segment_id}">.*?</tr>', page, re.S
    )
    assert found is not None, segment_id
    return found.group(0)


def cells(row: str) -> list[str]:
    return [
        re.sub(r"<[^>]+>", "", c).strip() for c in re.findall(r"<td[^>]*>(.*?)</td>", row, re.S)
    ]


def download_link(page: str) -> str:
    found = re.search(r'<a href="([^"]+)" data-testid="download-link"', page)
    assert found is not None, "no download link"
    return html.unescape(found.group(1))


async def test_each_segment_shows_its_size_recent_members_and_audiences(
    client: httpx.AsyncClient,
    alice: Tenant,
    alice_browser: Browser,
    factory: sessionmaker[Session],
) -> None:
    api = Api(client, alice)
    vip = await api.segment("VIP", profiles=12)
    await api.segment("Lapsed", profiles=4)
    await api.connect("meta")
    await api.audience(vip, sync_now=False, platform_audience_name="VIP on Meta")
    with transaction(factory) as session:  # 5 of VIP's members joined long ago
        old = session.scalars(
            select(SegmentMember.profile_pk)
            .where(SegmentMember.segment_id == uuid.UUID(vip))
            .limit(5)
        ).all()
        session.execute(
            update(SegmentMember)
            .where(SegmentMember.profile_pk.in_(old), SegmentMember.segment_id == uuid.UUID(vip))
            .values(added_at=utcnow() - timedelta(days=30))
        )
    page = (await alice_browser.get("/segments")).text
    assert page.count('data-testid="segment-row"') == 2
    row = row_of(page, vip)
    assert "VIP" in row
    members, recent, used_by, _ = cells(row)
    assert members == "12"
    assert recent == "7"
    assert "VIP on Meta" in used_by
    assert f'data-testid="export-{vip}"' in row


@SQLITE
async def test_an_export_gives_a_download_link_that_returns_the_file(
    client: httpx.AsyncClient, alice: Tenant, alice_browser: Browser
) -> None:
    segment = await Api(client, alice).segment("VIP", profiles=6)
    done = await alice_browser.post(
        f"/segments/{segment}/export",
        {"format": "json", "identifier_types": "email", "include_traits": "on"},
    )
    assert done.status_code == 200, done.text
    assert "Exported 6 profiles" in done.text
    assert "not hashed" in done.text
    link = download_link(done.text)
    assert link.startswith("/exports/")
    file = await alice_browser.client.get(link)  # the signed link needs no session either
    assert file.status_code == 200
    assert file.headers["content-type"].startswith("application/json")
    rows = (
        json.loads(file.text)
        if file.text.lstrip().startswith("[")
        else [json.loads(line) for line in file.text.splitlines() if line]
    )
    assert len(rows) == 6
    assert "Person.0@Example.COM" in file.text  # not hashed, as asked
    bare = httpx.AsyncClient(transport=alice_browser.client._transport, base_url="http://dash")
    async with bare:
        assert (await bare.get(link)).status_code == 200
        assert (await bare.get(link.replace("signature=", "signature=0"))).status_code == 403


@SQLITE
async def test_a_hashed_csv_export_by_default(
    client: httpx.AsyncClient, alice: Tenant, alice_browser: Browser
) -> None:
    segment = await Api(client, alice).segment("VIP", profiles=3)
    done = await alice_browser.post(
        f"/segments/{segment}/export",
        {
            "format": "csv",
            "identifier_types": ["email", "phone"],  # type: ignore[dict-item]
            "hash_identifiers": "on",
            "platform": "google",
        },
    )
    assert "hashed, google normalization" in done.text
    file = await alice_browser.client.get(download_link(done.text))
    assert file.status_code == 200
    assert file.headers["content-type"].startswith("text/csv")
    assert "example.com" not in file.text.lower()


@SQLITE
async def test_an_export_without_identifier_types_is_refused_beside_them(
    client: httpx.AsyncClient, alice: Tenant, alice_browser: Browser
) -> None:
    segment = await Api(client, alice).segment("VIP", profiles=2)
    refused = await alice_browser.post(f"/segments/{segment}/export", {"format": "csv"})
    assert refused.status_code == 422
    row = row_of(refused.text, segment)
    assert f'id="export-{segment}-identifier_types-error"' in row
    assert "Choose at least one identifier type." in row
    assert "<details open>" in row
    assert 'data-testid="download-link"' not in refused.text


@SQLITE
async def test_an_export_the_flags_forbid_says_why(
    client: httpx.AsyncClient, alice: Tenant, alice_browser: Browser
) -> None:
    api = Api(client, alice)
    segment = await api.segment("VIP", profiles=2)
    await api.call("PUT", "/api/v1/feature-flags", json={"flags": {"audience_export": False}})
    refused = await alice_browser.post(
        f"/segments/{segment}/export", {"format": "csv", "identifier_types": "email"}
    )
    assert refused.status_code == 422
    assert "audience_export" in refused.text
    assert 'data-testid="download-link"' not in refused.text


@SQLITE
async def test_csrf_another_tenant_and_escaping(
    client: httpx.AsyncClient, alice: Tenant, bob: Tenant, alice_browser: Browser
) -> None:
    theirs = await Api(client, bob).segment("Bob's list", profiles=2)
    await Api(client, alice).segment("<script>alert(1)</script>", profiles=2)
    page = (await alice_browser.get("/segments")).text
    assert theirs not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "<script>alert(1)</script>" not in page
    form = {"format": "csv", "identifier_types": "email"}
    assert (await alice_browser.post(f"/segments/{theirs}/export", form)).status_code == 404
    mine = re.search(r'data-segment-id="([^"]+)"', page)
    assert mine is not None
    forged = await alice_browser.client.post(f"/segments/{mine.group(1)}/export", data=form)
    assert forged.status_code == 403
