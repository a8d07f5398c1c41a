"""Google's official Data Manager client (`google-ads-datamanager`, REST) against the sandbox.

The client sends every enum as its number (`$alt=json;enum-encoding=int`): the emulator is held
to a client no one here wrote, over a real socket, with a static token and no network.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator

import httpx
import pytest
from google.ads import datamanager_v1 as dm
from google.api_core import exceptions
from google.auth.exceptions import RefreshError
from google.oauth2.credentials import Credentials

from audience_sync.testing import sandbox_server

ACCOUNT = "1234567890"
MANAGER = "9876543210"
PARENT = f"accountTypes/GOOGLE_ADS/accounts/{ACCOUNT}"
LOGIN = ("login-account", f"accountTypes/GOOGLE_ADS/accounts/{MANAGER}")
GOOGLE_ADS = dm.ProductAccount.AccountType.GOOGLE_ADS


@pytest.fixture(scope="module")
def base_url() -> Iterator[str]:
    with sandbox_server() as url:
        yield url


@pytest.fixture
def sandbox(base_url: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=base_url, timeout=5) as c:
        c.post("/_sandbox/reset")
        yield c


def options(base_url: str) -> dict[str, str]:
    return {"api_endpoint": f"{base_url}/google"}


def lists_client(base_url: str, token: str = "sandbox-token") -> dm.UserListServiceClient:
    return dm.UserListServiceClient(
        credentials=Credentials(token=token), transport="rest", client_options=options(base_url)
    )


def ingestion_client(base_url: str, token: str = "sandbox-token") -> dm.IngestionServiceClient:
    return dm.IngestionServiceClient(
        credentials=Credentials(token=token), transport="rest", client_options=options(base_url)
    )


def contact_list(name: str) -> dm.UserList:
    return dm.UserList(
        display_name=name,
        ingested_user_list_info=dm.IngestedUserListInfo(
            upload_key_types=[dm.IngestedUserListInfo.UploadKeyType.CONTACT_ID],
            contact_id_info=dm.ContactIdInfo(
                data_source_type=dm.DataSourceType.DATA_SOURCE_TYPE_FIRST_PARTY
            ),
        ),
    )


def destination(list_id: int, login: str | None = None) -> dm.Destination:
    found = dm.Destination(
        operating_account=dm.ProductAccount(account_type=GOOGLE_ADS, account_id=ACCOUNT),
        product_destination_id=str(list_id),
    )
    if login:
        found.login_account = dm.ProductAccount(account_type=GOOGLE_ADS, account_id=login)
    return found


def members(*emails: str) -> list[dm.AudienceMember]:
    digests = [hashlib.sha256(e.encode()).hexdigest() for e in emails]
    return [
        dm.AudienceMember(
            user_data=dm.UserData(user_identifiers=[dm.UserIdentifier(email_address=d)])
        )
        for d in digests
    ]


ACCEPTED = dm.TermsOfService(
    customer_match_terms_of_service_status=dm.TermsOfServiceStatus.ACCEPTED
)


def test_the_official_client_creates_fills_reads_and_empties_a_list(
    base_url: str, sandbox: httpx.Client
) -> None:
    lists, ingestion = lists_client(base_url), ingestion_client(base_url)
    made = lists.create_user_list(parent=PARENT, user_list=contact_list("SDK buyers"))
    assert made.display_name == "SDK buyers"
    added = ingestion.ingest_audience_members(
        request=dm.IngestAudienceMembersRequest(
            destinations=[destination(made.id)],
            audience_members=members("a@example.com", "b@example.com"),
            encoding=dm.Encoding.HEX,
            terms_of_service=ACCEPTED,
        )
    )
    assert added.request_id
    status = ingestion.retrieve_request_status(
        request=dm.RetrieveRequestStatusRequest(request_id=added.request_id)
    )
    [per_destination] = status.request_status_per_destination
    assert per_destination.request_status.name == "SUCCESS"
    read = lists.get_user_list(name=f"{PARENT}/userLists/{made.id}")
    assert read.ingested_user_list_info.upload_key_types[0].name == "CONTACT_ID"
    [held] = sandbox.get("/_sandbox/audiences", params={"platform": "google"}).json()
    assert held["size"] == 2
    removed = ingestion.remove_audience_members(
        request=dm.RemoveAudienceMembersRequest(
            destinations=[destination(made.id)],
            audience_members=members("a@example.com"),
            encoding=dm.Encoding.HEX,
        )
    )
    assert removed.request_id
    [held] = sandbox.get("/_sandbox/audiences", params={"platform": "google"}).json()
    assert held["size"] == 1
    # The client sent numbers, not names: the emulator read them all.
    [logged] = sandbox.get("/_sandbox/requests", params={"platform": "google", "limit": 1}).json()
    assert "enum-encoding%3Dint" in logged["query"] or "enum-encoding=int" in logged["query"]


def test_the_official_client_is_refused_an_ingest_without_the_terms(
    base_url: str, sandbox: httpx.Client
) -> None:
    made = lists_client(base_url).create_user_list(parent=PARENT, user_list=contact_list("L"))
    with pytest.raises(exceptions.BadRequest, match="TERMS_AND_CONDITIONS_NOT_SIGNED"):
        ingestion_client(base_url).ingest_audience_members(
            request=dm.IngestAudienceMembersRequest(
                destinations=[destination(made.id)],
                audience_members=members("a@example.com"),
                encoding=dm.Encoding.HEX,
            )
        )


def refreshing(base_url: str, refresh_token: str) -> Credentials:
    """An expired access token with a refresh token for the sandbox's token endpoint."""
    return Credentials(
        token="not-a-token",
        refresh_token=refresh_token,
        token_uri=f"{base_url}/google/token",
        client_id="client",
        client_secret="secret",
    )


def test_the_official_client_refreshes_a_refused_token_at_the_sandbox(
    base_url: str, sandbox: httpx.Client
) -> None:
    credentials = refreshing(base_url, "sandbox-refresh-token")
    client = dm.UserListServiceClient(
        credentials=credentials, transport="rest", client_options=options(base_url)
    )
    assert list(client.list_user_lists(parent=PARENT)) == []
    assert credentials.token != "not-a-token"
    statuses = [r["status"] for r in sandbox.get("/_sandbox/requests").json()]
    assert statuses == [401, 200, 200]  # refused, the token grant, the retried call


def test_the_official_client_fails_on_a_revoked_refresh_token(
    base_url: str, sandbox: httpx.Client
) -> None:
    client = dm.UserListServiceClient(
        credentials=refreshing(base_url, "revoked"),
        transport="rest",
        client_options=options(base_url),
    )
    with pytest.raises(RefreshError, match="invalid_grant"):
        client.list_user_lists(parent=PARENT)


def test_the_official_client_reaches_a_managed_account_through_its_manager(
    base_url: str, sandbox: httpx.Client
) -> None:
    sandbox.put(f"/_sandbox/google/managers/{ACCOUNT}", json={"manager_id": MANAGER})
    lists, ingestion = lists_client(base_url), ingestion_client(base_url)
    with pytest.raises(exceptions.Forbidden):
        lists.create_user_list(parent=PARENT, user_list=contact_list("Managed"))
    made = lists.create_user_list(
        parent=PARENT, user_list=contact_list("Managed"), metadata=[LOGIN]
    )
    request = dm.IngestAudienceMembersRequest(
        destinations=[destination(made.id)],
        audience_members=members("a@example.com"),
        encoding=dm.Encoding.HEX,
        terms_of_service=ACCEPTED,
    )
    with pytest.raises(exceptions.Forbidden):
        ingestion.ingest_audience_members(request=request)
    request.destinations = [destination(made.id, login=MANAGER)]
    assert ingestion.ingest_audience_members(request=request).request_id
