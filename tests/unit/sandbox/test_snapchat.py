"""Snapchat Marketing API contract: docs/platforms/snapchat.md's examples against the sandbox."""

from __future__ import annotations

import httpx

from .conftest import audiences, digests

BASE = "/snapchat/v1"
AUTH = {"Authorization": "Bearer sandbox-token"}
ACCOUNT = "8adc3db7-8148-4fbf-999c-8d2266369d74"


async def create(client: httpx.AsyncClient) -> str:
    body = {
        "segments": [
            {
                "name": "all the sams in the world",
                "description": "all the sams in the world",
                "source_type": "FIRST_PARTY",
                "retention_in_days": 180,
                "ad_account_id": ACCOUNT,
            }
        ]
    }
    response = await client.post(f"{BASE}/adaccounts/{ACCOUNT}/segments", json=body, headers=AUTH)
    segment = response.json()["segments"][0]
    assert segment["sub_request_status"] == "SUCCESS"
    assert segment["segment"]["status"] == "PENDING"
    assert segment["segment"]["upload_status"] == "NO_UPLOAD"
    return str(segment["segment"]["id"])


def users(schema: str, ids: list[str]) -> dict[str, object]:
    return {"users": [{"schema": [schema], "data": [[i] for i in ids]}]}


async def test_the_documented_add_example_uploads_users(client: httpx.AsyncClient) -> None:
    segment_id = await create(client)
    body = users(
        "EMAIL_SHA256", ["938758751f5af66652a118e26503af824404bc13acd1cb7642ddff99916f0e1c"]
    )
    response = await client.post(f"{BASE}/segments/{segment_id}/users", json=body, headers=AUTH)
    assert response.json()["users"][0]["user"] == {"number_uploaded_users": 1}
    [held] = await audiences(client, "snapchat")
    assert held["identifiers"] == {"EMAIL_SHA256": [body["users"][0]["data"][0][0]]}  # type: ignore[index]


async def test_size_and_statuses_move_from_processing_to_ready(client: httpx.AsyncClient) -> None:
    segment_id = await create(client)
    await client.post(
        f"{BASE}/segments/{segment_id}/users",
        json=users("PHONE_SHA256", digests(2000)),
        headers=AUTH,
    )
    got = (await client.get(f"{BASE}/segments/{segment_id}", headers=AUTH)).json()["segments"][0][
        "segment"
    ]
    assert (got["upload_status"], got["targetable_status"]) == ("PROCESSING", "NOT_READY")
    await client.post("/_sandbox/clock", json={"advance_seconds": 61})
    got = (await client.get(f"{BASE}/segments/{segment_id}", headers=AUTH)).json()["segments"][0][
        "segment"
    ]
    [held] = await audiences(client, "snapchat")
    assert got["approximate_number_users"] == held["matched"]
    assert (got["upload_status"], got["targetable_status"], got["status"]) == (
        "COMPLETE",
        "READY",
        "ACTIVE",
    )


async def test_remove_and_remove_all(client: httpx.AsyncClient) -> None:
    segment_id = await create(client)
    ids = digests(3)
    await client.post(
        f"{BASE}/segments/{segment_id}/users", json=users("EMAIL_SHA256", ids), headers=AUTH
    )
    body = {"users": [{"id": segment_id, "schema": ["EMAIL_SHA256"], "data": [[ids[0]]]}]}
    await client.request("DELETE", f"{BASE}/segments/{segment_id}/users", json=body, headers=AUTH)
    [held] = await audiences(client, "snapchat")
    assert held["identifiers"] == {"EMAIL_SHA256": sorted(ids[1:])}
    cleared = await client.delete(f"{BASE}/segments/{segment_id}/all_users", headers=AUTH)
    assert cleared.json()["segments"][0]["segment"]["approximate_number_users"] == 0
    assert (await audiences(client, "snapchat"))[0]["size"] == 0


async def test_two_schemas_in_one_request_are_refused(client: httpx.AsyncClient) -> None:
    segment_id = await create(client)
    body = {"users": [{"schema": ["EMAIL_SHA256", "PHONE_SHA256"], "data": [digests(2)]}]}
    response = await client.post(f"{BASE}/segments/{segment_id}/users", json=body, headers=AUTH)
    assert response.status_code == 400
    assert response.json()["request_status"] == "ERROR"


async def test_a_digest_that_is_not_64_hex_fails_the_whole_batch(client: httpx.AsyncClient) -> None:
    segment_id = await create(client)
    body = users("EMAIL_SHA256", [*digests(2), "nothex"])
    response = await client.post(f"{BASE}/segments/{segment_id}/users", json=body, headers=AUTH)
    assert response.status_code == 400
    assert "error_code" in response.json()
    assert (await audiences(client, "snapchat"))[0]["size"] == 0


async def test_more_than_100000_identifiers_is_refused(client: httpx.AsyncClient) -> None:
    segment_id = await create(client)
    body = users("EMAIL_SHA256", ["a" * 64] * 100_001)
    response = await client.post(f"{BASE}/segments/{segment_id}/users", json=body, headers=AUTH)
    assert response.status_code == 400


async def test_an_expired_token_is_401(client: httpx.AsyncClient) -> None:
    issued = await client.post(
        "/_sandbox/tokens", json={"platform": "snapchat", "ttl_seconds": 1800}
    )
    headers = {"Authorization": f"Bearer {issued.json()['access_token']}"}
    assert (
        await client.get(f"{BASE}/adaccounts/{ACCOUNT}/segments", headers=headers)
    ).status_code == 200
    await client.post("/_sandbox/clock", json={"advance_seconds": 1800})
    response = await client.get(f"{BASE}/adaccounts/{ACCOUNT}/segments", headers=headers)
    assert response.status_code == 401
    assert response.text == "unauthorized"
    refreshed = await client.post(
        "/snapchat/login/oauth2/access_token",
        data={
            "grant_type": "refresh_token",
            "client_id": "c",
            "client_secret": "s",
            "refresh_token": issued.json()["refresh_token"],
        },
    )
    headers = {"Authorization": f"Bearer {refreshed.json()['access_token']}"}
    assert (
        await client.get(f"{BASE}/adaccounts/{ACCOUNT}/segments", headers=headers)
    ).status_code == 200


async def test_more_than_10_requests_a_second_per_token_is_429(client: httpx.AsyncClient) -> None:
    statuses = [
        (await client.get(f"{BASE}/adaccounts/{ACCOUNT}/segments", headers=AUTH)).status_code
        for _ in range(11)
    ]
    assert statuses[:10] == [200] * 10
    assert statuses[10] == 429


async def test_update_list_and_delete_segments(client: httpx.AsyncClient) -> None:
    segment_id = await create(client)
    body = {"segments": [{"id": segment_id, "name": "renamed", "retention_in_days": 30}]}
    updated = await client.put(f"{BASE}/adaccounts/{ACCOUNT}/segments", json=body, headers=AUTH)
    assert updated.json()["segments"][0]["segment"]["name"] == "renamed"
    listed = await client.get(f"{BASE}/adaccounts/{ACCOUNT}/segments", headers=AUTH)
    assert [s["segment"]["id"] for s in listed.json()["segments"]] == [segment_id]
    deleted = await client.delete(f"{BASE}/segments/{segment_id}", headers=AUTH)
    assert deleted.json()["segments"] == []
    assert (await client.get(f"{BASE}/segments/{segment_id}", headers=AUTH)).status_code == 404


async def test_the_size_counts_matched_users_not_identifiers(client: httpx.AsyncClient) -> None:
    # 1,500 people, each uploaded by email and by phone: Snap finds 1,500 Snapchatters.
    segment_id = await create(client)
    for schema, prefix in (("EMAIL_SHA256", "e"), ("PHONE_SHA256", "p")):
        body = users(schema, digests(1500, prefix))
        await client.post(f"{BASE}/segments/{segment_id}/users", json=body, headers=AUTH)
    await client.patch(f"/_sandbox/audiences/snapchat/{segment_id}", json={"match_rate": 1.0})
    await client.post("/_sandbox/clock", json={"advance_seconds": 61})
    answer = await client.get(f"{BASE}/segments/{segment_id}", headers=AUTH)
    got = answer.json()["segments"][0]["segment"]
    assert got["approximate_number_users"] == 1500
    assert got["targetable_status"] == "READY"
