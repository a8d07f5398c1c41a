"""The sandbox over a real socket: uvicorn in a thread, httpx clients, real timeouts and drops."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator

import httpx
import pytest

from audience_sync.testing import sandbox_server


@pytest.fixture(scope="module")
def base_url() -> Iterator[str]:
    with sandbox_server() as url:
        yield url


@pytest.fixture
def client(base_url: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=base_url, timeout=5) as c:
        c.post("/_sandbox/reset")
        yield c


def test_a_meta_audience_is_created_filled_and_read_over_http(client: httpx.Client) -> None:
    created = client.post(
        "/meta/v26.0/act_42/customaudiences",
        files={"name": (None, '"Buyers"'), "access_token": (None, "sandbox-token")},
    )
    audience_id = created.json()["id"]
    digest = hashlib.sha256(b"a@example.com").hexdigest()
    added = client.post(
        f"/meta/v26.0/{audience_id}/users",
        data={
            "access_token": "sandbox-token",
            "payload": f'{{"schema":"EMAIL_SHA256","data":["{digest}"]}}',
        },
    )
    assert added.json()["num_received"] == 1
    [held] = client.get("/_sandbox/audiences").json()
    assert held["identifiers"] == {"EMAIL": [digest]}


def test_a_timeout_fault_makes_a_real_client_time_out(client: httpx.Client) -> None:
    client.post(
        "/_sandbox/faults", json={"kind": "timeout", "platform": "snapchat", "delay_seconds": 1}
    )
    with pytest.raises(httpx.ReadTimeout):
        client.get(
            "/snapchat/v1/adaccounts/a/segments",
            headers={"Authorization": "Bearer sandbox-token"},
            timeout=0.2,
        )


def test_a_dropped_connection_is_a_protocol_error_for_the_client(client: httpx.Client) -> None:
    client.post("/_sandbox/faults", json={"kind": "drop_connection", "platform": "tiktok"})
    with pytest.raises(httpx.RemoteProtocolError):
        client.get(
            "/tiktok/open_api/v1.3/dmp/custom_audience/list/",
            headers={"Access-Token": "sandbox-token"},
        )
    ok = client.get(
        "/tiktok/open_api/v1.3/dmp/custom_audience/list/",
        params={"advertiser_id": "1"},
        headers={"Access-Token": "sandbox-token"},
    )
    assert ok.json()["code"] == 0


def test_a_google_request_status_reaches_success(client: httpx.Client) -> None:
    auth = {"Authorization": "Bearer sandbox-token"}
    created = client.post(
        "/google/v1/accountTypes/GOOGLE_ADS/accounts/1/userLists",
        json={"displayName": "L"},
        headers=auth,
    )
    body = {
        "destinations": [
            {
                "operatingAccount": {"accountType": "GOOGLE_ADS", "accountId": "1"},
                "productDestinationId": created.json()["id"],
            }
        ],
        "encoding": "HEX",
        "termsOfService": {"customerMatchTermsOfServiceStatus": "ACCEPTED"},
        "audienceMembers": [{"userData": {"userIdentifiers": [{"emailAddress": "a" * 64}]}}],
    }
    request_id = client.post("/google/v1/audienceMembers:ingest", json=body, headers=auth).json()[
        "requestId"
    ]
    status = client.get(
        "/google/v1/requestStatus:retrieve", params={"requestId": request_id}, headers=auth
    )
    assert status.json()["requestStatusPerDestination"][0]["requestStatus"] == "SUCCESS"
