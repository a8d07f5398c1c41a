"""Meta Marketing API contract: the examples of docs/platforms/meta.md against the sandbox."""

from __future__ import annotations

import json

import httpx

from .conftest import audiences, digests, sha

BASE = "/meta/v26.0"
AUTH = {"access_token": "sandbox-token"}


async def create(client: httpx.AsyncClient, name: str = "My new Custom Audience") -> str:
    # The documented curl: multipart form, every value JSON-encoded.
    files = {
        "name": (None, json.dumps(name)),
        "subtype": (None, '"CUSTOM"'),
        "description": (None, '"People who purchased on my website"'),
        "customer_file_source": (None, '"USER_PROVIDED_ONLY"'),
        "audience_labels": (None, '["HIGH_VALUE_CUSTOMERS"]'),
        "access_token": (None, "sandbox-token"),
    }
    response = await client.post(f"{BASE}/act_123/customaudiences", files=files)
    assert response.status_code == 200, response.text
    return str(response.json()["id"])


async def add(client: httpx.AsyncClient, audience: str, payload: object, **extra: object):
    data = {"payload": json.dumps(payload), **{k: json.dumps(v) for k, v in extra.items()}}
    return await client.post(f"{BASE}/{audience}/users", data={**data, **AUTH})


async def test_the_documented_create_curl_returns_an_id(client: httpx.AsyncClient) -> None:
    audience_id = await create(client)
    got = await client.get(f"{BASE}/{audience_id}", params={**AUTH, "fields": "name,subtype"})
    assert got.json() == {"id": audience_id, "name": "My new Custom Audience", "subtype": "CUSTOM"}


async def test_single_key_hashes_are_added_and_counted(client: httpx.AsyncClient) -> None:
    audience_id = await create(client)
    hashes = digests(3)
    response = await add(client, audience_id, {"schema": "EMAIL_SHA256", "data": hashes})
    body = response.json()
    assert body["audience_id"] == audience_id
    assert body["num_received"] == 3
    assert body["num_invalid_entries"] == 0
    [held] = await audiences(client, "meta")
    assert held["identifiers"] == {"EMAIL": sorted(hashes)}
    assert held["ad_account_id"] == "act_123"


async def test_multi_key_rows_count_each_key_under_its_own_name(client: httpx.AsyncClient) -> None:
    audience_id = await create(client)
    payload = {
        "schema": ["EXTERN_ID", "EMAIL", "FN", "MADID"],
        "is_raw": True,
        "data": [["abc123def", sha("a@b.co"), sha("mary"), ""], ["", "", sha("john"), "ab-12"]],
    }
    response = await add(client, audience_id, payload)
    assert response.json()["num_invalid_entries"] == 0
    [held] = await audiences(client, "meta")
    assert held["identifiers"] == {
        "EMAIL": [sha("a@b.co")],
        "EXTERN_ID": ["abc123def"],
        "FN": sorted([sha("mary"), sha("john")]),
        "MADID": ["ab-12"],
    }
    assert held["size"] == 2


async def test_a_malformed_digest_is_counted_in_num_invalid_entries(
    client: httpx.AsyncClient,
) -> None:
    audience_id = await create(client)
    response = await add(client, audience_id, {"schema": "EMAIL_SHA256", "data": [sha("x"), "abc"]})
    body = response.json()
    assert body["num_invalid_entries"] == 1
    assert "1" in body["invalid_entry_samples"]


async def test_a_batch_whose_digests_are_all_not_64_hex_is_rejected_with_code_100(
    client: httpx.AsyncClient,
) -> None:
    audience_id = await create(client)
    response = await add(client, audience_id, {"schema": "EMAIL_SHA256", "data": ["x" * 63]})
    assert response.status_code == 400
    assert response.json()["error"]["code"] == 100


async def test_an_unknown_schema_key_is_rejected_with_code_100(client: httpx.AsyncClient) -> None:
    audience_id = await create(client)
    response = await add(
        client, audience_id, {"schema": ["EMAIL", "SHOE_SIZE"], "data": [["", "9"]]}
    )
    error = response.json()["error"]
    assert error["code"] == 100
    assert "SHOE_SIZE" in error["message"]
    assert {"type", "fbtrace_id"} <= error.keys()


async def test_more_than_10000_users_in_one_request_is_rejected(client: httpx.AsyncClient) -> None:
    audience_id = await create(client)
    response = await add(client, audience_id, {"schema": "EMAIL_SHA256", "data": digests(10_001)})
    assert response.json()["error"]["code"] == 100


async def test_delete_users_removes_exactly_those_rows(client: httpx.AsyncClient) -> None:
    audience_id = await create(client)
    hashes = digests(4)
    await add(client, audience_id, {"schema": "EMAIL_SHA256", "data": hashes})
    payload = json.dumps({"schema": "EMAIL_SHA256", "data": hashes[:2]})
    response = await client.request(
        "DELETE", f"{BASE}/{audience_id}/users", params={**AUTH, "payload": payload}
    )
    assert response.json()["num_received"] == 2
    [held] = await audiences(client, "meta")
    assert held["identifiers"] == {"EMAIL": sorted(hashes[2:])}


async def test_a_missing_token_is_refused_with_code_190(client: httpx.AsyncClient) -> None:
    response = await client.post(f"{BASE}/act_1/customaudiences", data={"name": "x"})
    assert response.status_code == 400
    assert response.json()["error"]["code"] == 190


async def test_an_expired_token_is_refused_with_code_190_subcode_463(
    client: httpx.AsyncClient,
) -> None:
    issued = await client.post("/_sandbox/tokens", json={"platform": "meta", "ttl_seconds": 5})
    token = issued.json()["access_token"]
    assert (
        await client.get(f"{BASE}/act_1/customaudiences", params={"access_token": token})
    ).status_code == 200
    await client.post("/_sandbox/clock", json={"advance_seconds": 6})
    response = await client.get(f"{BASE}/act_1/customaudiences", params={"access_token": token})
    assert response.json()["error"]["code"] == 190
    assert response.json()["error"]["error_subcode"] == 463


async def test_a_replace_session_swaps_members_on_the_last_batch(client: httpx.AsyncClient) -> None:
    audience_id = await create(client)
    old, new = digests(3, "old"), digests(4, "new")
    await add(client, audience_id, {"schema": "EMAIL_SHA256", "data": old})

    async def batch(seq: int, data: list[str], last: bool) -> httpx.Response:
        session = {"session_id": 77, "batch_seq": seq, "last_batch_flag": last}
        return await client.post(
            f"{BASE}/{audience_id}/usersreplace",
            data={
                **AUTH,
                "payload": json.dumps({"schema": "EMAIL_SHA256", "data": data}),
                "session": json.dumps(session),
            },
        )

    assert (await batch(1, new[:2], False)).json()["session_id"] == "77"
    [held] = await audiences(client, "meta")
    assert held["identifiers"] == {"EMAIL": sorted(old)}, "nothing changes before the last batch"
    blocked = await add(client, audience_id, {"schema": "EMAIL_SHA256", "data": new})
    assert blocked.json()["error"]["code"] == 2650
    await batch(2, new[2:], True)
    [held] = await audiences(client, "meta")
    assert held["identifiers"] == {"EMAIL": sorted(new)}
    sessions = await client.get(f"{BASE}/{audience_id}/sessions", params={**AUTH, "session_id": 77})
    [session] = sessions.json()["data"]
    assert session["num_received"] == 4
    assert session["stage"] == "finished"


async def test_a_replace_that_does_not_start_at_batch_seq_1_fails_with_1870147(
    client: httpx.AsyncClient,
) -> None:
    audience_id = await create(client)
    response = await client.post(
        f"{BASE}/{audience_id}/usersreplace",
        json={
            **AUTH,
            "payload": {"schema": "EMAIL_SHA256", "data": digests(1)},
            "session": {"session_id": 5, "batch_seq": 2, "last_batch_flag": True},
        },
    )
    error = response.json()["error"]
    assert (error["code"], error["error_subcode"]) == (2650, 1870147)


async def test_size_bounds_follow_the_matched_share(client: httpx.AsyncClient) -> None:
    audience_id = await create(client)
    await add(client, audience_id, {"schema": "EMAIL_SHA256", "data": digests(2000)})
    [held] = await audiences(client, "meta")
    fields = "approximate_count_lower_bound,approximate_count_upper_bound,operation_status"
    got = (await client.get(f"{BASE}/{audience_id}", params={**AUTH, "fields": fields})).json()
    assert got["approximate_count_lower_bound"] == held["matched"]
    assert got["approximate_count_upper_bound"] >= held["matched"]
    assert 0.6 < int(held["matched"]) / 2000 < 0.8  # default match rate 0.7
    assert got["operation_status"]["code"] == 200


async def test_the_removed_approximate_count_field_is_an_error(client: httpx.AsyncClient) -> None:
    audience_id = await create(client)
    got = await client.get(f"{BASE}/{audience_id}", params={**AUTH, "fields": "approximate_count"})
    assert got.json()["error"]["code"] == 100


async def test_list_and_delete(client: httpx.AsyncClient) -> None:
    first, second = await create(client, "a"), await create(client, "b")
    listed = await client.get(f"{BASE}/act_123/customaudiences", params={**AUTH, "fields": "name"})
    assert [a["name"] for a in listed.json()["data"]] == ["a", "b"]
    deleted = await client.delete(f"{BASE}/{first}", params=AUTH)
    assert deleted.json() == {"success": True}
    missing = await client.get(f"{BASE}/{first}", params=AUTH)
    assert missing.json()["error"]["error_subcode"] == 33
    assert second


async def test_the_ad_account_budget_answers_80003(client: httpx.AsyncClient) -> None:
    await client.put(
        "/_sandbox/rate_limits",
        json={"family": "meta", "limit": {"requests": 2, "per_seconds": 3600}},
    )
    for _ in range(2):
        ok = await client.get(f"{BASE}/act_9/customaudiences", params=AUTH)
        assert ok.status_code == 200
        assert "X-Business-Use-Case-Usage" in ok.headers
    limited = await client.get(f"{BASE}/act_9/customaudiences", params=AUTH)
    assert limited.json()["error"]["code"] == 80003
    assert limited.json()["error"]["is_transient"] is True


async def test_an_expired_version_answers_2635(client: httpx.AsyncClient) -> None:
    response = await client.get("/meta/v18.0/act_1/customaudiences", params=AUTH)
    assert response.json()["error"]["code"] == 2635


async def test_a_long_lived_token_exchange_issues_a_working_token(
    client: httpx.AsyncClient,
) -> None:
    response = await client.get(
        f"{BASE}/oauth/access_token",
        params={
            "grant_type": "fb_exchange_token",
            "client_id": "1",
            "client_secret": "s",
            "fb_exchange_token": "sandbox-token",
        },
    )
    token = response.json()["access_token"]
    ok = await client.get(f"{BASE}/act_1/customaudiences", params={"access_token": token})
    assert ok.status_code == 200


async def test_listing_pages_with_cursors(client: httpx.AsyncClient) -> None:
    ids = [await create(client, f"a{i}") for i in range(3)]
    first = await client.get(f"{BASE}/act_123/customaudiences", params={**AUTH, "limit": 2})
    body = first.json()
    assert [a["id"] for a in body["data"]] == ids[:2]
    assert "next" in body["paging"]
    after = body["paging"]["cursors"]["after"]
    rest = await client.get(
        f"{BASE}/act_123/customaudiences", params={**AUTH, "limit": 2, "after": after}
    )
    assert [a["id"] for a in rest.json()["data"]] == ids[2:]


async def test_a_replace_session_left_unfinished_is_abandoned(client: httpx.AsyncClient) -> None:
    audience_id = await create(client)
    old = digests(2, "old")
    await add(client, audience_id, {"schema": "EMAIL_SHA256", "data": old})
    body = {
        **AUTH,
        "payload": {"schema": "EMAIL_SHA256", "data": digests(1, "new")},
        "session": {"session_id": 9, "batch_seq": 1, "last_batch_flag": False},
    }
    await client.post(f"{BASE}/{audience_id}/usersreplace", json=body)
    await client.post("/_sandbox/clock", json={"advance_seconds": 91 * 60})
    body["session"] = {"session_id": 9, "batch_seq": 2, "last_batch_flag": True}
    late = await client.post(f"{BASE}/{audience_id}/usersreplace", json=body)
    assert late.json()["error"]["error_subcode"] == 1870147
    [held] = await audiences(client, "meta")
    assert held["identifiers"] == {"EMAIL": sorted(old)}
    added = await add(client, audience_id, {"schema": "EMAIL_SHA256", "data": digests(1, "x")})
    assert added.status_code == 200


# --- Limited Data Use --------------------------------------------------------------------------

LDU_SCHEMA = [
    "EMAIL",
    "DATA_PROCESSING_OPTIONS",
    "DATA_PROCESSING_OPTIONS_COUNTRY",
    "DATA_PROCESSING_OPTIONS_STATE",
]


async def test_rows_with_limited_data_use_are_added_and_their_options_kept(
    client: httpx.AsyncClient,
) -> None:
    audience_id = await create(client)
    first, second = digests(2)
    rows = [[first, ["LDU"], 1, 1000], [second, [], 0, 0]]
    response = await add(client, audience_id, {"schema": LDU_SCHEMA, "data": rows})
    assert response.status_code == 200, response.text
    assert response.json()["num_invalid_entries"] == 0
    [held] = await audiences(client, "meta")
    assert held["identifiers"] == {"EMAIL": sorted([first, second])}
    assert held["data_use"][f"EMAIL:{first}"] == {
        "DATA_PROCESSING_OPTIONS": ["LDU"],
        "DATA_PROCESSING_OPTIONS_COUNTRY": 1,
        "DATA_PROCESSING_OPTIONS_STATE": 1000,
    }
    assert held["data_use"][f"EMAIL:{second}"]["DATA_PROCESSING_OPTIONS"] == []


async def test_a_row_with_an_undocumented_ldu_value_is_an_invalid_entry(
    client: httpx.AsyncClient,
) -> None:
    audience_id = await create(client)
    first, second, third = digests(3)
    rows = [[first, ["LDU"], 2, 1000], [second, ["CCPA"], 0, 0], [third, ["LDU"], 0, 0]]
    response = await add(client, audience_id, {"schema": LDU_SCHEMA, "data": rows})
    body = response.json()
    assert body["num_invalid_entries"] == 2
    assert set(body["invalid_entry_samples"]) == {"0", "1"}
    [held] = await audiences(client, "meta")
    assert held["identifiers"] == {"EMAIL": [third]}


async def test_a_location_without_the_options_is_refused(client: httpx.AsyncClient) -> None:
    audience_id = await create(client)
    schema = ["EMAIL", "DATA_PROCESSING_OPTIONS_COUNTRY"]
    response = await add(client, audience_id, {"schema": schema, "data": [[digests(1)[0], 1]]})
    assert response.status_code == 400
    assert response.json()["error"]["code"] == 100


async def test_removing_a_row_forgets_its_data_processing_options(
    client: httpx.AsyncClient,
) -> None:
    audience_id = await create(client)
    [email] = digests(1)
    await add(client, audience_id, {"schema": LDU_SCHEMA, "data": [[email, ["LDU"], 0, 0]]})
    payload = json.dumps({"schema": ["EMAIL"], "data": [[email]]})
    response = await client.request(
        "DELETE", f"{BASE}/{audience_id}/users", data={"payload": payload, **AUTH}
    )
    assert response.status_code == 200, response.text
    [held] = await audiences(client, "meta")
    assert held["size"] == 0
    assert held["data_use"] == {}
