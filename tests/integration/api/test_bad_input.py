"""Bad values through the API: a 4xx naming the field (never the value), never a 500, good rows
kept. Issue 17, findings 5 and 6; on SQLite and PostgreSQL (NUL is only fatal on PostgreSQL)."""

from __future__ import annotations

import json
import logging
from typing import Any

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from audience_sync.sources import rows
from audience_sync.store.db import transaction
from audience_sync.store.tables import Profile

from .conftest import Api, Tenant, connection_body

JSON = {"Content-Type": "application/json"}


async def post_raw(api: Api, url: str, text: str, method: str = "POST") -> httpx.Response:
    """`text` sent as it is: a JSON escape such as "\\ud800" reaches the server unencoded."""
    headers = {**api.tenant.headers, **JSON}
    return await api.client.request(method, url, content=text.encode(), headers=headers)


def stored(factory: sessionmaker[Session], tenant: Tenant) -> list[str]:
    with transaction(factory) as session:
        found = session.scalars(select(Profile.profile_id).where(Profile.tenant_id == tenant.id))
        return sorted(found)


def assert_refused_field(response: httpx.Response, field: str) -> None:
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert error["code"] == "validation_error"
    assert field in error["message"]
    # Ours, or pydantic's own for a surrogate in a length-checked string: the field, no value.
    assert any(
        words in error["message"]
        for words in (
            "NUL characters or lone surrogates",
            "unable to parse raw data as a unicode",
            "an ad account id holds only",  # `domain.accounts`: the id goes into URL paths
        )
    ), error["message"]


BAD_ROWS: list[tuple[str, str]] = [
    ('{"profile_id":"X1","email":"\\ud800"}', "email is not valid Unicode"),
    ('{"profile_id":"X2","plan":"go\\u0000ld"}', "trait 'plan' contains a NUL character"),
    ('{"profile_id":"X3","city":"Pa\\u0000ris"}', "city contains a NUL character"),
    ('{"profile_id":"X4","n":%s}' % ("9" * 500), "trait 'n' holds a number longer than 100"),
    ('{"profile_id":"X5","n":%s}' % ("[" * 50 + "]" * 50), "trait 'n' is nested deeper than 32"),
    ('{"profile_id":"X6","score":NaN}', "trait 'score' holds a number that is not finite"),
    ('{"profile_id":"X7","\\udc00":"v"}', "a column name is not valid Unicode"),
]


def good(number: int) -> str:
    return json.dumps({"profile_id": f"G{number}", "email": f"g{number}@example.com"})


async def test_a_batch_keeps_its_good_rows_and_reports_each_bad_one_by_index(
    client: httpx.AsyncClient, alice: Tenant, factory: sessionmaker[Session]
) -> None:
    api = Api(client, alice)
    rows = [good(0)]
    for number, (bad, _reason) in enumerate(BAD_ROWS, start=1):
        rows += [bad, good(number)]
    text = '{"profiles":[' + ",".join(rows) + "]}"
    response = await post_raw(api, "/api/v1/profiles:batch", text)
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["created"], body["rejected"]) == (len(BAD_ROWS) + 1, len(BAD_ROWS))
    assert [e["index"] for e in body["errors"]] == [2 * n - 1 for n in range(1, len(BAD_ROWS) + 1)]
    for error, (_bad, reason) in zip(body["errors"], BAD_ROWS, strict=True):
        assert reason in error["reason"]
    assert stored(factory, alice) == sorted(f"G{n}" for n in range(len(BAD_ROWS) + 1))


async def test_a_good_row_and_a_lone_surrogate_row_store_the_good_one(
    client: httpx.AsyncClient, alice: Tenant, factory: sessionmaker[Session]
) -> None:
    """The finding as reported: a 500 and the good row lost."""
    api = Api(client, alice)
    text = '{"profiles":[{"profile_id":"G"},{"profile_id":"B","first_name":"\\ud800"}]}'
    response = await post_raw(api, "/api/v1/profiles:batch", text)
    assert response.status_code == 200, response.text
    reason = "first_name is not valid Unicode (it holds a lone surrogate such as \\ud800)"
    assert response.json()["errors"] == [{"index": 1, "reason": reason}]
    assert stored(factory, alice) == ["G"]


@pytest.mark.parametrize("value", ["\\ud800", "a\\u0000b"])
@pytest.mark.parametrize("side", ["add", "remove"])
async def test_members_with_a_bad_profile_id_are_a_422_naming_it(
    client: httpx.AsyncClient, alice: Tenant, value: str, side: str
) -> None:
    api = Api(client, alice)
    segment_id = await api.segment(profiles=2)
    url = f"/api/v1/segments/{segment_id}/members"
    response = await post_raw(api, url, f'{{"{side}":["P0","{value}"]}}')
    assert_refused_field(response, f"body.{side}.1")
    after = await api.call("GET", f"/api/v1/segments/{segment_id}")
    assert after.json()["member_count"] == 2  # nothing was done


@pytest.mark.parametrize("field", ["name", "description"])
@pytest.mark.parametrize("value", ["\\ud800", "a\\u0000b"])
async def test_a_segments_name_or_description_with_a_bad_character_is_a_422(
    client: httpx.AsyncClient, alice: Tenant, field: str, value: str
) -> None:
    api = Api(client, alice)
    body = {"name": "VIP", field: "PLACEHOLDER"}
    text = json.dumps(body).replace("PLACEHOLDER", value)
    assert_refused_field(await post_raw(api, "/api/v1/segments", text), f"body.{field}")


# A NUL, a lone surrogate, a control character (the fuzz test's: a 500 from httpx.InvalidURL
# when the sync built the URL), and what would change which platform resource a path names.
@pytest.mark.parametrize(
    "value",
    ["\\ud800", "12\\u000034", "act_\\u0019x", "act_1/../me", "act 1", "act_1?x=1", "a#b"],
)
async def test_an_ad_account_id_with_a_bad_character_is_a_422(
    client: httpx.AsyncClient, alice: Tenant, value: str
) -> None:
    api = Api(client, alice)
    body: dict[str, Any] = connection_body("meta")
    body["ad_account_id"] = "PLACEHOLDER"
    text = json.dumps(body).replace("PLACEHOLDER", value)
    response = await post_raw(api, "/api/v1/connections/meta", text, method="PUT")
    assert_refused_field(response, "body.ad_account_id")
    segment_id = await api.segment(profiles=1)
    await api.connect("meta")
    audience = {
        "segment_id": segment_id,
        "platform": "meta",
        "platform_audience_name": "VIP",
        "ad_account_id": "PLACEHOLDER",
        "sync_now": False,
    }
    text = json.dumps(audience).replace("PLACEHOLDER", value)
    assert_refused_field(await post_raw(api, "/api/v1/audiences", text), "body.ad_account_id")


async def test_a_token_with_a_lone_surrogate_is_a_422_not_a_500(
    client: httpx.AsyncClient, alice: Tenant
) -> None:
    api = Api(client, alice)
    body = connection_body("meta")
    body["credentials"]["access_token"] = "PLACEHOLDER"
    text = json.dumps(body).replace("PLACEHOLDER", "tok\\ud800en")
    response = await post_raw(api, "/api/v1/connections/meta", text, method="PUT")
    assert_refused_field(response, "body.credentials.access_token")


async def test_audience_options_and_a_base_url_with_a_nul_are_a_422(
    client: httpx.AsyncClient, alice: Tenant
) -> None:
    """Both were a 500 on PostgreSQL (stored as JSON / text)."""
    api = Api(client, alice)
    segment_id = await api.segment(profiles=1)
    await api.connect("meta")
    audience = {
        "segment_id": segment_id,
        "platform": "meta",
        "platform_audience_name": "VIP",
        "ad_account_id": "1234567890",
        "sync_now": False,
        "options": {"note": "PLACEHOLDER"},
    }
    text = json.dumps(audience).replace("PLACEHOLDER", "a\\u0000b")
    response = await post_raw(api, "/api/v1/audiences", text)
    assert response.status_code == 422, response.text
    assert "body.options: Value error, a value contains a NUL character" in response.text
    connection = connection_body("meta")
    connection["base_url"] = connection["base_url"] + "PLACEHOLDER"
    text = json.dumps(connection).replace("PLACEHOLDER", "\\u0000")
    response = await post_raw(api, "/api/v1/connections/meta", text, method="PUT")
    assert_refused_field(response, "body.base_url")


CANARIES = ("leakcanary-123@example.com", "Leakcanaryville", "LC-4242", "tok-leakcanary-9f3a")


def canary_row(number: int) -> dict[str, object]:
    return {
        "profile_id": f"G{number}",
        "email": CANARIES[0],
        "first_name": "Leakcanary",
        "city": CANARIES[1],
        "zip": CANARIES[2],
        "token": CANARIES[3],
    }


async def test_a_failing_batch_shows_no_customer_data_in_the_answer_or_the_log(
    client: httpx.AsyncClient,
    alice: Tenant,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The reader's checks off: the database refuses the bad rows; the answer and the log name
    the rows by index and the error by type, never a value of any row."""
    caplog.set_level(logging.DEBUG)
    monkeypatch.setattr(rows, "value_problem", lambda value: None)
    monkeypatch.setattr(rows, "BAD_TEXT", rows.re.compile("(?!)"))
    body = {"profiles": [canary_row(1), {"profile_id": "B", "note": "\ud800"}, canary_row(2)]}
    text_body = json.dumps(body)  # ASCII: the surrogate travels as the escape "\ud800"
    response = await client.post(
        "/api/v1/profiles:batch",
        content=text_body.encode(),
        headers={**alice.headers, "Content-Type": "application/json"},
    )
    assert response.status_code == 200, response.text
    assert response.json()["rejected"] == 1
    assert [c for c in CANARIES if c in response.text or c in caplog.text] == []
