"""Exports: hashed as the platform's upload would, streamed, behind signed expiring links."""

from __future__ import annotations

import csv
import hashlib
import io
import json
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session, sessionmaker

from audience_sync.domain.models import IdentifierType, SyncPlatform
from audience_sync.export.writer import ExportSpec, write_export
from audience_sync.identifiers import hash_identifier
from audience_sync.store.db import transaction
from audience_sync.store.tables import Event, Profile
from audience_sync.sync.runner import SyncService

from .conftest import Api, Tenant, profile_rows


async def export(api: Api, segment_id: str, **options: object) -> httpx.Response:
    return await api.call("POST", f"/api/v1/segments/{segment_id}/export", json=options)


async def download(client: httpx.AsyncClient, url: str) -> httpx.Response:
    return await client.get(url)  # no API key: the link is the credential


async def test_a_hashed_csv_export_matches_the_platforms_upload(
    client: httpx.AsyncClient, alice: Tenant
) -> None:
    api = Api(client, alice)
    segment_id = await api.segment(profiles=6)
    made = await export(api, segment_id, platform="meta")
    assert made.status_code == 200, made.text
    body = made.json()
    assert set(body) == {
        "download_url",
        "expires_at",
        "profile_count",
        "file_size_bytes",
        "normalization",
    }
    assert body["normalization"] == "meta"
    assert body["profile_count"] == 6
    got = await download(client, body["download_url"])
    assert got.status_code == 200
    assert got.headers["content-type"].startswith("text/csv")
    assert len(got.content) == body["file_size_bytes"]
    rows = list(csv.DictReader(io.StringIO(got.text)))
    assert list(rows[0]) == ["profile_id", "email", "phone", "traits"]
    by_id = {row["profile_id"]: row for row in rows}
    for source in profile_rows(6):
        row = by_id[source["profile_id"]]
        assert row["email"] == hash_identifier(source["email"], "email", "meta")
        if source["phone"]:
            assert row["phone"] == hash_identifier(
                "+1" + "".join(c for c in source["phone"] if c.isdigit()), "phone", "meta"
            )
        else:
            assert row["phone"] == ""
    assert "example.com" not in got.text.lower()


async def test_a_raw_json_export_with_traits_and_events(
    client: httpx.AsyncClient, alice: Tenant, factory: sessionmaker[Session]
) -> None:
    api = Api(client, alice)
    segment_id = (await api.call("POST", "/api/v1/segments", json={"name": "S"})).json()["id"]
    rows = [
        {"profile_id": "A", "email": ["a@x.com", "b@x.com"], "tier": "gold"},
        {"profile_id": "B"},
    ]
    await api.call(
        "POST", "/api/v1/profiles:batch", json={"profiles": rows, "segment_id": segment_id}
    )
    start = datetime(2026, 1, 1, tzinfo=UTC)
    with transaction(factory) as session:
        pk = session.scalars(select(Profile.id).where(Profile.profile_id == "A")).one()
        for n in range(12):
            session.add(
                Event(
                    tenant_id=alice.id,
                    profile_pk=pk,
                    name=f"e{n}",
                    properties={"email": "secret@x.com"},
                    occurred_at=start + timedelta(hours=n),
                )
            )
    made = await export(
        api,
        segment_id,
        format="json",
        hash_identifiers=False,
        identifier_types=["email"],
        include_events=True,
    )
    got = await download(client, made.json()["download_url"])
    assert got.headers["content-type"] == "application/json"
    data = sorted(json.loads(got.text), key=lambda row: row["profile_id"])
    assert data[0]["email"] == ["a@x.com", "b@x.com"]
    assert data[0]["traits"] == {"tier": "gold"}
    assert [e["name"] for e in data[0]["events"]] == [f"e{n}" for n in range(11, 1, -1)]
    assert data[1] == {"profile_id": "B", "email": [], "traits": {}, "events": []}
    assert "secret@x.com" not in got.text


async def test_an_altered_or_expired_link_is_refused(
    client: httpx.AsyncClient, alice: Tenant, service: SyncService
) -> None:
    api = Api(client, alice)
    segment_id = await api.segment(profiles=2)
    url = (await export(api, segment_id, platform="google")).json()["download_url"]
    parts = urlsplit(url)
    query = {k: v[0] for k, v in parse_qs(parts.query).items()}
    base = f"{parts.scheme}://{parts.netloc}{parts.path}"
    later = int(query["expires"]) + 3600
    stretched = await client.get(base, params={**query, "expires": later})
    assert stretched.status_code == 403
    assert stretched.json()["error"]["code"] == "link_invalid"
    forged = await client.get(base, params={**query, "signature": "0" * 64})
    assert forged.status_code == 403
    other = await client.get(
        base.replace(parts.path.split("/")[-1], str(uuid.uuid4())), params=query
    )
    assert other.status_code == 403
    missing = await client.get(base)
    assert missing.status_code == 422
    service.clock = lambda: datetime.now(UTC) + timedelta(hours=2)
    expired = await client.get(url)
    assert expired.status_code == 410
    assert expired.json()["error"]["code"] == "link_expired"


async def test_the_specs_defaults_hash_with_the_neutral_normalization_and_say_so(
    client: httpx.AsyncClient, alice: Tenant
) -> None:
    api = Api(client, alice)
    segment_id = await api.segment(profiles=4)
    made = await export(api, segment_id)  # the default export options: hashed, no platform
    assert made.status_code == 200, made.text
    body = made.json()
    assert body["normalization"] == "neutral"
    got = await download(client, body["download_url"])
    assert "neutral" in got.headers["content-disposition"]
    by_id = {row["profile_id"]: row for row in csv.DictReader(io.StringIO(got.text))}
    email = "  Person.0@Example.COM "
    assert by_id["P0"]["email"] == hashlib.sha256(b"person.0@example.com").hexdigest()
    assert by_id["P0"]["email"] == hash_identifier(email, "email", "meta")
    assert by_id["P0"]["phone"] == hashlib.sha256(b"16505550000").hexdigest()
    assert "example.com" not in got.text.lower()


@pytest.mark.parametrize(
    ("options", "normalization"),
    [({"platform": "google"}, "google"), ({"hash_identifiers": False}, "none")],
)
async def test_the_response_names_the_normalization_used(
    client: httpx.AsyncClient, alice: Tenant, options: dict[str, object], normalization: str
) -> None:
    api = Api(client, alice)
    segment_id = await api.segment(profiles=1)
    made = await export(api, segment_id, **options)
    assert made.json()["normalization"] == normalization
    got = await download(client, made.json()["download_url"])
    assert f".{normalization}.csv" in got.headers["content-disposition"]


async def test_an_unknown_identifier_type_is_refused(
    client: httpx.AsyncClient, alice: Tenant
) -> None:
    api = Api(client, alice)
    segment_id = await api.segment(profiles=1)
    unknown = await export(api, segment_id, platform="meta", identifier_types=["ssn"])
    assert unknown.status_code == 422
    assert unknown.json()["error"]["details"]["errors"][0]["field"] == "body.identifier_types.0"


async def test_the_export_flag_guards_exports(client: httpx.AsyncClient, alice: Tenant) -> None:
    api = Api(client, alice)
    segment_id = await api.segment(profiles=1)
    await api.call("PUT", "/api/v1/feature-flags", json={"flags": {"audience_export": False}})
    response = await export(api, segment_id, platform="meta")
    assert response.status_code == 403
    assert response.json()["error"]["details"] == {"flag": "audience_export"}


@pytest.mark.parametrize("fmt", ["csv", "json"])
async def test_batches_join_into_the_same_file_as_one_pass(
    client: httpx.AsyncClient, alice: Tenant, engine: Engine, tmp_path: Path, fmt: str
) -> None:
    api = Api(client, alice)
    segment_id = uuid.UUID(await api.segment(profiles=10))
    spec = ExportSpec(
        format=fmt,  # type: ignore[arg-type]
        identifier_types=(IdentifierType.EMAIL, IdentifierType.PHONE),
        hash_identifiers=True,
        platform=SyncPlatform.TIKTOK,
        include_traits=True,
        include_events=True,
    )
    small = write_export(
        engine, alice.id, segment_id, spec, tmp_path / f"small.{fmt}", batch_rows=3
    )
    whole = write_export(
        engine, alice.id, segment_id, spec, tmp_path / f"whole.{fmt}", batch_rows=1000
    )
    assert small.profile_count == whole.profile_count == 10
    assert (tmp_path / f"small.{fmt}").read_text() == (tmp_path / f"whole.{fmt}").read_text()
    if fmt == "json":
        assert len(json.loads((tmp_path / "small.json").read_text())) == 10


@pytest.mark.parametrize(
    ("fmt", "content"), [("csv", '"profile_id","email"\r\n'), ("json", "[]\n")]
)
async def test_an_empty_segment_exports_an_empty_file(
    client: httpx.AsyncClient, alice: Tenant, fmt: str, content: str
) -> None:
    api = Api(client, alice)
    segment_id = (await api.call("POST", "/api/v1/segments", json={"name": "Empty"})).json()["id"]
    made = await export(
        api,
        segment_id,
        format=fmt,
        platform="snapchat",
        identifier_types=["email"],
        include_traits=False,
    )
    assert made.json()["profile_count"] == 0
    assert (await download(client, made.json()["download_url"])).text == content


async def test_the_neutral_normalization_hashes_mobile_ids_that_meta_takes_raw(
    client: httpx.AsyncClient, alice: Tenant
) -> None:
    api = Api(client, alice)
    segment_id = (await api.call("POST", "/api/v1/segments", json={"name": "M"})).json()["id"]
    maid = "AB12CD34-5678-90EF-ABCD-1234567890AB"
    rows = [{"profile_id": "A", "mobile_id": maid}]
    await api.call(
        "POST", "/api/v1/profiles:batch", json={"profiles": rows, "segment_id": segment_id}
    )
    made = await export(api, segment_id, format="json", identifier_types=["mobile_id"])
    data = json.loads((await download(client, made.json()["download_url"])).text)
    assert data[0]["mobile_id"] == [hashlib.sha256(maid.lower().encode()).hexdigest()]
