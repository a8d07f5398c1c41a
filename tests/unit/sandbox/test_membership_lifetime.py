"""Membership lifetimes in the sandbox: a Google list keeps a member its membership duration
after the member's last upload, at most 540 days (docs/freshness.md)."""

from __future__ import annotations

import httpx

from audience_sync.sandbox.members import KeyKind, KeySpace, KeySpec, MemberStore

from .conftest import audiences, digests
from .test_google import ADS, ADS_AUTH, AUTH, DM, PROCESSED, create_list, emails, ingest_body

DAY = 86400
LISTS = f"{DM}/accountTypes/GOOGLE_ADS/accounts/1234567890/userLists"


async def sizes(client: httpx.AsyncClient) -> list[tuple[int, int]]:
    found = await audiences(client, "google")
    return [(int(str(a["size"])), int(str(a["expired_members"]))) for a in found]


async def test_a_data_manager_list_refuses_more_than_540_days(client: httpx.AsyncClient) -> None:
    body = {"displayName": "Too long", "membershipDuration": f"{541 * DAY}s"}
    response = await client.post(LISTS, json=body, headers=AUTH)
    assert response.status_code == 400
    assert response.json()["error"]["status"] == "INVALID_ARGUMENT"
    await create_list(client, "Longest", membershipDuration=f"{540 * DAY}s")


async def test_an_ads_list_refuses_a_life_span_above_540(client: httpx.AsyncClient) -> None:
    def create(days: str) -> dict[str, object]:
        crm = {"uploadKeyType": "CONTACT_INFO"}
        return {"operations": [{"create": {"name": days, "membershipLifeSpan": days, **crm}}]}

    refused = await client.post(f"{ADS}/userLists:mutate", json=create("541"), headers=ADS_AUTH)
    assert refused.status_code == 400
    error = refused.json()["error"]["details"][0]["errors"][0]
    assert error["errorCode"] == {"rangeError": "TOO_HIGH"}
    taken = await client.post(f"{ADS}/userLists:mutate", json=create("540"), headers=ADS_AUTH)
    assert taken.status_code == 200, taken.text


async def test_members_expire_their_duration_after_their_last_upload(
    client: httpx.AsyncClient,
) -> None:
    list_id = await create_list(client, membershipDuration=f"{10 * DAY}s")
    first, second = digests(2)

    async def upload(values: list[str]) -> None:
        body = ingest_body(list_id, emails(values))
        response = await client.post(f"{DM}/audienceMembers:ingest", json=body, headers=AUTH)
        assert response.status_code == 200, response.text
        await client.post("/_sandbox/clock", json={"advance_seconds": PROCESSED})

    await upload([first, second])
    await client.post("/_sandbox/clock", json={"advance_seconds": 6 * DAY})
    await upload([second])  # re-uploading refreshes the membership
    assert await sizes(client) == [(2, 0)]
    await client.post("/_sandbox/clock", json={"advance_seconds": 5 * DAY})
    assert await sizes(client) == [(1, 1)]  # the first is past 10 days, the second is not
    await client.post("/_sandbox/clock", json={"advance_seconds": 6 * DAY})
    assert await sizes(client) == [(0, 2)]


def test_expiry_scans_only_once_a_member_can_be_that_old() -> None:
    store = MemberStore(KeySpace([KeySpec("EMAIL", KeyKind.SHA256)]), 1.0)
    rows = [bytes([0]) + bytes([i]) * 32 for i in range(3)]
    store.add(rows[:2], at=100.0)
    store.add(rows[2:], at=200.0)
    assert store.expire(100.0) == 0
    assert store.expire(150.0) == 2
    assert (len(store), store.matched) == (1, 1)
    store.add(rows[:1], at=300.0)
    assert store.expire(250.0) == 1
    assert list(store) == [rows[0]]
