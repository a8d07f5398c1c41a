"""Segments, their members, and `POST /profiles:batch`."""

from __future__ import annotations

import httpx

from .conftest import Api, Tenant, profile_rows


async def test_a_segment_is_created_listed_and_read(
    client: httpx.AsyncClient, alice: Tenant
) -> None:
    api = Api(client, alice)
    made = await api.call("POST", "/api/v1/segments", json={"name": "VIP", "description": "Best"})
    assert made.status_code == 201
    segment = made.json()
    assert segment["name"] == "VIP"
    assert segment["description"] == "Best"
    assert segment["member_count"] == 0
    assert segment["is_active"] is True
    listed = (await api.call("GET", "/api/v1/segments")).json()
    assert [s["id"] for s in listed] == [segment["id"]]
    assert (await api.call("GET", f"/api/v1/segments/{segment['id']}")).json() == segment


async def test_a_second_segment_with_the_same_name_is_a_conflict(
    client: httpx.AsyncClient, alice: Tenant
) -> None:
    api = Api(client, alice)
    await api.call("POST", "/api/v1/segments", json={"name": "VIP"})
    again = await api.call("POST", "/api/v1/segments", json={"name": "VIP"})
    assert again.status_code == 409
    assert again.json()["error"]["code"] == "segment_exists"


async def test_the_same_segment_name_is_fine_in_another_tenant(
    client: httpx.AsyncClient, alice: Tenant, bob: Tenant
) -> None:
    assert (
        await Api(client, alice).call("POST", "/api/v1/segments", json={"name": "VIP"})
    ).status_code == 201
    assert (
        await Api(client, bob).call("POST", "/api/v1/segments", json={"name": "VIP"})
    ).status_code == 201


async def test_members_are_added_and_removed_by_profile_id(
    client: httpx.AsyncClient, alice: Tenant
) -> None:
    api = Api(client, alice)
    segment_id = await api.segment("All", profiles=5)
    other = (await api.call("POST", "/api/v1/segments", json={"name": "Some"})).json()["id"]
    url = f"/api/v1/segments/{other}/members"
    added = await api.call("POST", url, json={"add": ["P1", "P2", "P3", "P1", "nobody"]})
    assert added.status_code == 200
    assert added.json() == {
        "added": 3,
        "removed": 0,
        "unknown_profile_ids": ["nobody"],
        "member_count": 3,
    }
    again = (await api.call("POST", url, json={"add": ["P1"], "remove": ["P2", "P3"]})).json()
    assert again == {"added": 0, "removed": 2, "unknown_profile_ids": [], "member_count": 1}
    whole = (await api.call("GET", f"/api/v1/segments/{segment_id}")).json()
    assert whole["member_count"] == 5


async def test_profiles_batch_keeps_good_rows_and_reports_bad_ones(
    client: httpx.AsyncClient, alice: Tenant
) -> None:
    api = Api(client, alice)
    rows = [
        *profile_rows(2),
        {"email": "no-id@example.com"},
        {"profile_id": "P9", "email": ["a@x.com", "b@y.com"], "first_name": ["A", "B"]},
        "not an object",
        {"profile_id": "P10", "phone": "+44 20 7946 0958", "loyalty": "gold"},
    ]
    response = await api.call("POST", "/api/v1/profiles:batch", json={"profiles": rows})
    assert response.status_code == 200
    assert response.json() == {
        "created": 3,
        "updated": 0,
        "unchanged": 0,
        "rejected": 3,
        "errors": [
            {"index": 2, "reason": "missing profile_id"},
            {"index": 3, "reason": "first_name must be a single value, not a list"},
            {"index": 4, "reason": "expected a JSON object, found str"},
        ],
        "warnings": [],
    }
    assert "no-id@example.com" not in response.text


async def test_profiles_batch_is_an_upsert(client: httpx.AsyncClient, alice: Tenant) -> None:
    api = Api(client, alice)
    url = "/api/v1/profiles:batch"
    await api.call("POST", url, json={"profiles": profile_rows(3)})
    changed = profile_rows(3)
    changed[0]["email"] = "new@example.com"
    again = (await api.call("POST", url, json={"profiles": changed})).json()
    assert (again["created"], again["updated"], again["unchanged"]) == (0, 1, 2)


async def test_profiles_batch_can_fill_a_segment(client: httpx.AsyncClient, alice: Tenant) -> None:
    api = Api(client, alice)
    segment_id = await api.segment("VIP", profiles=4)
    segment = (await api.call("GET", f"/api/v1/segments/{segment_id}")).json()
    assert segment["member_count"] == 4


async def test_profiles_batch_limits_its_size(client: httpx.AsyncClient, alice: Tenant) -> None:
    api = Api(client, alice)
    too_many = await api.call(
        "POST", "/api/v1/profiles:batch", json={"profiles": profile_rows(1001)}
    )
    assert too_many.status_code == 422
    assert too_many.json()["error"]["details"]["errors"][0]["field"] == "body.profiles"
    empty = await api.call("POST", "/api/v1/profiles:batch", json={"profiles": []})
    assert empty.status_code == 422
