"""TikTok API for Business contract: docs/platforms/tiktok.md's examples against the sandbox."""

from __future__ import annotations

import hashlib
import json

import httpx

from .conftest import audiences, digests

BASE = "/tiktok/open_api/v1.3"
AUTH = {"Access-Token": "sandbox-token"}


async def segment(client: httpx.AsyncClient) -> str:
    body = {"advertiser_id": "123", "custom_audience_name": "Buyers", "action": "create"}
    response = await client.post(f"{BASE}/segment/audience/", json=body, headers=AUTH)
    assert response.status_code == 200
    assert response.json()["code"] == 0
    return str(response.json()["data"]["audience_id"])


async def mapping(client: httpx.AsyncClient, audience_id: str, action: str, ids: list[str]):
    body = {
        "advertiser_ids": ["123"],
        "action": action,
        "id_schema": ["EMAIL_SHA256"],
        "batch_data": [[{"id": i, "audience_ids": [audience_id]}] for i in ids],
    }
    return await client.post(f"{BASE}/segment/mapping/", json=body, headers=AUTH)


async def upload(
    client: httpx.AsyncClient, ids: list[str], calculate_type: str = "EMAIL_SHA256"
) -> str:
    content = "\n".join(ids).encode()
    response = await client.post(
        f"{BASE}/dmp/custom_audience/file/upload/",
        data={
            "advertiser_id": "123",
            "calculate_type": calculate_type,
            "file_signature": hashlib.md5(content).hexdigest(),
        },
        files={"file": ("ids.csv", content, "text/csv")},
        headers=AUTH,
    )
    assert response.json()["code"] == 0, response.text
    return str(response.json()["data"]["file_path"])


async def file_audience(client: httpx.AsyncClient, ids: list[str]) -> str:
    body = {
        "advertiser_id": "123",
        "custom_audience_name": "File",
        "calculate_type": "EMAIL_SHA256",
        "file_paths": [await upload(client, ids)],
        "retention_in_days": 180,
    }
    response = await client.post(f"{BASE}/dmp/custom_audience/create/", json=body, headers=AUTH)
    data = response.json()["data"]
    assert data["custom_audience_id"] == data["audience_id"]
    return str(data["custom_audience_id"])


async def update(client: httpx.AsyncClient, audience_id: str, action: str, ids: list[str]):
    body = {
        "advertiser_id": "123",
        "custom_audience_id": audience_id,
        "action": action,
        "file_paths": [await upload(client, ids)],
    }
    return await client.post(f"{BASE}/dmp/custom_audience/update/", json=body, headers=AUTH)


async def test_the_documented_mapping_example_adds_users_to_the_audience(
    client: httpx.AsyncClient,
) -> None:
    audience_id = await segment(client)
    email, idfa = digests(2)
    body = {
        "advertiser_ids": ["123"],
        "action": "add",
        "id_schema": ["EMAIL_SHA256", "IDFA_SHA256"],
        "batch_data": [
            [
                {"id": email, "audience_ids": [audience_id]},
                {"id": idfa, "audience_ids": [audience_id]},
            ],
            [{"id": digests(3)[2], "audience_ids": [audience_id]}, {}],
        ],
    }
    response = await client.post(f"{BASE}/segment/mapping/", json=body, headers=AUTH)
    assert response.json()["code"] == 0
    [held] = await audiences(client, "tiktok")
    assert held["identifiers"] == {
        "EMAIL_SHA256": sorted([email, digests(3)[2]]),
        "IDFA_SHA256": [idfa],
    }
    assert held["size"] == 2


async def test_mapping_delete_removes_users(client: httpx.AsyncClient) -> None:
    audience_id = await segment(client)
    ids = digests(3)
    await mapping(client, audience_id, "add", ids)
    await mapping(client, audience_id, "delete", ids[:1])
    [held] = await audiences(client, "tiktok")
    assert held["identifiers"] == {"EMAIL_SHA256": sorted(ids[1:])}


async def test_a_digest_that_is_not_64_hex_is_code_40002_in_an_http_200(
    client: httpx.AsyncClient,
) -> None:
    audience_id = await segment(client)
    response = await mapping(client, audience_id, "add", ["abc"])
    assert response.status_code == 200
    assert response.json()["code"] == 40002


async def test_an_unknown_id_schema_is_code_40002(client: httpx.AsyncClient) -> None:
    body = {"advertiser_ids": ["123"], "action": "add", "id_schema": ["GAID"], "batch_data": [[{}]]}
    response = await client.post(f"{BASE}/segment/mapping/", json=body, headers=AUTH)
    assert response.json()["code"] == 40002


async def test_more_than_10000_users_per_mapping_is_code_40002(client: httpx.AsyncClient) -> None:
    audience_id = await segment(client)
    response = await mapping(client, audience_id, "add", digests(10_001))
    assert response.json()["code"] == 40002


async def test_a_missing_token_is_an_auth_code_in_an_http_200(client: httpx.AsyncClient) -> None:
    response = await client.post(f"{BASE}/segment/audience/", json={})
    assert response.status_code == 200
    assert response.json()["code"] == 40104
    bad = await client.post(f"{BASE}/segment/audience/", json={}, headers={"Access-Token": "nope"})
    assert bad.json()["code"] == 40105


async def test_file_audiences_report_cover_num(client: httpx.AsyncClient) -> None:
    audience_id = await file_audience(client, digests(1200))
    got = await client.get(
        f"{BASE}/dmp/custom_audience/get/",
        params={"advertiser_id": "123", "custom_audience_ids": json.dumps([audience_id])},
        headers=AUTH,
    )
    details = got.json()["data"]["list"][0]["audience_details"]
    [held] = await audiences(client, "tiktok")
    assert details["cover_num"] == held["matched"]
    assert held["size"] == 1200
    listed = await client.get(
        f"{BASE}/dmp/custom_audience/list/", params={"advertiser_id": "123"}, headers=AUTH
    )
    assert listed.json()["data"]["page_info"]["total_number"] == 1


async def test_replace_swaps_members_once_a_day(client: httpx.AsyncClient) -> None:
    audience_id = await file_audience(client, digests(1000, "old"))
    new = digests(1100, "new")
    assert (await update(client, audience_id, "REPLACE", new)).json()["code"] == 0
    [held] = await audiences(client, "tiktok")
    assert held["identifiers"] == {"EMAIL_SHA256": sorted(new)}
    again = await update(client, audience_id, "REPLACE", new)
    assert again.json()["code"] == 40002
    assert "once a day" in again.json()["message"]
    await client.post("/_sandbox/clock", json={"advance_seconds": 86_400})
    assert (await update(client, audience_id, "REPLACE", digests(1000, "x"))).json()["code"] == 0


async def test_an_update_leaving_fewer_than_1000_members_fails(client: httpx.AsyncClient) -> None:
    ids = digests(1050)
    audience_id = await file_audience(client, ids)
    response = await update(client, audience_id, "REMOVE", ids[:100])
    assert response.json()["code"] == 40002
    [held] = await audiences(client, "tiktok")
    assert held["size"] == 1050, "a refused update changes nothing"
    assert (await update(client, audience_id, "APPEND", digests(5, "more"))).json()["code"] == 0


async def test_a_file_whose_signature_is_wrong_is_refused(client: httpx.AsyncClient) -> None:
    response = await client.post(
        f"{BASE}/dmp/custom_audience/file/upload/",
        data={"advertiser_id": "123", "calculate_type": "EMAIL_SHA256", "file_signature": "0" * 32},
        files={"file": ("ids.csv", b"abc", "text/csv")},
        headers=AUTH,
    )
    assert response.json()["code"] == 40002


async def test_delete_removes_file_audiences(client: httpx.AsyncClient) -> None:
    audience_id = await file_audience(client, digests(10))
    body = {"advertiser_id": "123", "custom_audience_ids": [audience_id]}
    assert (
        await client.post(f"{BASE}/dmp/custom_audience/delete/", json=body, headers=AUTH)
    ).json()["code"] == 0
    assert await audiences(client, "tiktok") == []


async def test_too_many_requests_is_code_40100_in_an_http_200(client: httpx.AsyncClient) -> None:
    await client.put(
        "/_sandbox/rate_limits",
        json={"family": "tiktok", "limit": {"requests": 1, "per_seconds": 1}},
    )
    params = {"advertiser_id": "123"}
    await client.get(f"{BASE}/dmp/custom_audience/list/", params=params, headers=AUTH)
    limited = await client.get(f"{BASE}/dmp/custom_audience/list/", params=params, headers=AUTH)
    assert limited.status_code == 200
    assert limited.json()["code"] == 40100


async def test_the_auth_code_exchange_issues_a_working_token(client: httpx.AsyncClient) -> None:
    # The code comes from the authorization page now (tests/unit/sandbox/test_oauth.py covers
    # the refusals); a made-up one is refused.
    allowed = await client.post(
        "/tiktok/portal/auth",
        data={
            "app_id": "sandbox-tiktok-app",
            "redirect_uri": "http://127.0.0.1:8000/callback",
            "state": "s",
            "decision": "allow",
        },
    )
    auth_code = httpx.URL(allowed.headers["location"]).params["auth_code"]
    app = {"app_id": "sandbox-tiktok-app", "secret": "sandbox-tiktok-secret"}
    made_up = await client.post(f"{BASE}/oauth2/access_token/", json={**app, "auth_code": "c"})
    assert made_up.json()["code"] == 40002
    response = await client.post(
        f"{BASE}/oauth2/access_token/", json={**app, "auth_code": auth_code}
    )
    token = response.json()["data"]["access_token"]
    listed = await client.get(
        f"{BASE}/dmp/custom_audience/list/",
        params={"advertiser_id": "1"},
        headers={"Access-Token": token},
    )
    assert listed.json()["code"] == 0


async def test_segment_audiences_are_renamed_and_deleted(client: httpx.AsyncClient) -> None:
    audience_id = await segment(client)
    body = {"advertiser_id": "123", "audience_id": audience_id, "action": "update"}
    renamed = await client.post(
        f"{BASE}/segment/audience/", json={**body, "custom_audience_name": "New"}, headers=AUTH
    )
    assert renamed.json()["code"] == 0
    assert (await audiences(client, "tiktok"))[0]["name"] == "New"
    deleted = await client.post(
        f"{BASE}/segment/audience/", json={**body, "action": "delete"}, headers=AUTH
    )
    assert deleted.json()["code"] == 0
    assert await audiences(client, "tiktok") == []


async def test_a_multiple_types_file_holds_one_row_per_line(client: httpx.AsyncClient) -> None:
    email, phone = digests(2)
    lines = ["EMAIL_SHA256,PHONE_SHA256", f"{email},{phone}", f"{digests(3)[2]},"]
    path = await upload(client, lines, "MULTIPLE_TYPES")
    body = {
        "advertiser_id": "123",
        "custom_audience_name": "Multi",
        "calculate_type": "MULTIPLE_TYPES",
        "file_paths": [path],
    }
    created = await client.post(f"{BASE}/dmp/custom_audience/create/", json=body, headers=AUTH)
    assert created.json()["code"] == 0
    [held] = await audiences(client, "tiktok")
    assert held["size"] == 2
    assert held["identifiers"] == {
        "EMAIL_SHA256": sorted([email, digests(3)[2]]),
        "PHONE_SHA256": [phone],
    }


async def test_another_advertisers_audience_is_refused(client: httpx.AsyncClient) -> None:
    audience_id = await segment(client)
    body = {"advertiser_id": "999", "audience_id": audience_id, "action": "delete"}
    response = await client.post(f"{BASE}/segment/audience/", json=body, headers=AUTH)
    assert response.json()["code"] == 40001


async def test_a_file_update_on_a_segment_api_audience_is_refused(
    client: httpx.AsyncClient,
) -> None:
    audience_id = await segment(client)
    assert (await mapping(client, audience_id, "add", digests(1200))).json()["code"] == 0
    response = await update(client, audience_id, "REPLACE", digests(1100, "new"))
    assert response.json()["code"] == 40002
    assert "Customer File" in response.json()["message"]
    [held] = await audiences(client, "tiktok")
    assert held["size"] == 1200, "a refused update changes nothing"


async def test_a_file_of_another_encryption_type_is_refused(client: httpx.AsyncClient) -> None:
    audience_id = await file_audience(client, digests(1000))
    body = {
        "advertiser_id": "123",
        "custom_audience_id": audience_id,
        "action": "APPEND",
        "file_paths": [await upload(client, digests(5, "p"), "PHONE_SHA256")],
    }
    response = await client.post(f"{BASE}/dmp/custom_audience/update/", json=body, headers=AUTH)
    assert response.json()["code"] == 40002


async def test_a_file_header_naming_idfa_or_aaid_is_refused(client: httpx.AsyncClient) -> None:
    # Customer files name mobile ids MAID, MAID_MD5 or MAID_SHA256; IDFA/AAID are
    # segment-mapping id_schema names.
    for header in ("EMAIL_SHA256,IDFA_SHA256", "AAID_SHA256", "EMAIL_SHA256,NOT_A_TYPE"):
        columns = header.count(",") + 1
        content = "\n".join([header, ",".join(digests(columns))]).encode()
        response = await client.post(
            f"{BASE}/dmp/custom_audience/file/upload/",
            data={
                "advertiser_id": "123",
                "calculate_type": "MULTIPLE_TYPES",
                "file_signature": hashlib.md5(content).hexdigest(),
            },
            files={"file": ("ids.csv", content, "text/csv")},
            headers=AUTH,
        )
        assert response.json()["code"] == 40002, header
        assert "header" in response.json()["message"]


async def test_a_file_header_of_maid_sha256_is_taken(client: httpx.AsyncClient) -> None:
    email, maid = digests(2)
    path = await upload(client, ["EMAIL_SHA256,MAID_SHA256", f"{email},{maid}"], "MULTIPLE_TYPES")
    assert path


async def test_an_unknown_route_is_code_40400(client: httpx.AsyncClient) -> None:
    response = await client.post(f"{BASE}/segment/nothing/", json={}, headers=AUTH)
    assert response.json()["code"] == 40400
