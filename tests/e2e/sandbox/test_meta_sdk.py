"""Meta's official client, `facebook-business`, unchanged, against the sandbox over a socket.

The SDK builds every URL from its session's `GRAPH` (`FacebookSession.GRAPH`, a class default of
`https://graph.facebook.com` that an instance may override): pointing it at the sandbox's
`/meta` prefix is the whole set-up. `FacebookAdsApi.init` is not used: it also installs the
SDK's crash reporter, which posts to graph.facebook.com.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest

from audience_sync.identifiers import hash_identifier
from audience_sync.testing import sandbox_server

facebook_business = pytest.importorskip(
    "facebook_business", reason="facebook-business is a dev dependency"
)
from facebook_business.adobjects.adaccount import AdAccount  # noqa: E402
from facebook_business.adobjects.customaudience import CustomAudience  # noqa: E402
from facebook_business.api import FacebookAdsApi  # noqa: E402
from facebook_business.exceptions import FacebookRequestError  # noqa: E402
from facebook_business.session import FacebookSession  # noqa: E402

TOKEN = "sandbox-token"
VERSION = "v26.0"


@pytest.fixture(scope="module")
def base_url() -> Iterator[str]:
    with sandbox_server() as url:
        yield url


@pytest.fixture
def control(base_url: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=base_url, timeout=5) as client:
        client.post("/_sandbox/reset")
        yield client


class Sdk:
    """The SDK's api object on the sandbox, and every URL it requested."""

    def __init__(self, base_url: str, token: str) -> None:
        session = FacebookSession(access_token=token, timeout=10)
        session.GRAPH = f"{base_url}/meta"
        session.requests.trust_env = False  # no proxy from the environment: loopback only
        self.urls: list[str] = []
        session.requests.hooks["response"].append(self._seen)
        self.api = FacebookAdsApi(session, api_version=VERSION)

    def _seen(self, response: Any, *args: Any, **kwargs: Any) -> None:
        self.urls.append(str(response.url))

    def hosts(self) -> set[str]:
        return {urlsplit(url).hostname or "" for url in self.urls}


@pytest.fixture
def sdk(base_url: str, control: httpx.Client) -> Sdk:
    return Sdk(base_url, TOKEN)


def _create(sdk: Sdk) -> CustomAudience:
    return AdAccount("act_42", api=sdk.api).create_custom_audience(
        params={
            CustomAudience.Field.name: "SDK buyers",
            CustomAudience.Field.subtype: CustomAudience.Subtype.custom,
            CustomAudience.Field.customer_file_source: "USER_PROVIDED_ONLY",
        }
    )


def test_the_sdk_creates_an_audience_on_the_sandbox(sdk: Sdk) -> None:
    audience = _create(sdk)
    assert audience[CustomAudience.Field.id]
    assert sdk.hosts() == {"127.0.0.1"}


def test_the_sdk_reads_an_audience_through_its_trailing_slash_path(sdk: Sdk) -> None:
    audience_id = _create(sdk)[CustomAudience.Field.id]
    read = CustomAudience(audience_id, api=sdk.api).api_get(
        fields=[CustomAudience.Field.name, CustomAudience.Field.approximate_count_lower_bound]
    )
    assert read[CustomAudience.Field.name] == "SDK buyers"
    assert read[CustomAudience.Field.approximate_count_lower_bound] == 0
    assert sdk.urls[-1].split("?")[0].endswith(f"/meta/{VERSION}/{audience_id}/")


def test_the_sdk_adds_and_removes_users_with_its_own_hashing(
    sdk: Sdk, control: httpx.Client
) -> None:
    audience = CustomAudience(_create(sdk)[CustomAudience.Field.id], api=sdk.api)
    keys = [
        CustomAudience.Schema.MultiKeySchema.email,
        CustomAudience.Schema.MultiKeySchema.fn,
        CustomAudience.Schema.MultiKeySchema.ln,
    ]
    people = [
        ["Ann@Example.com", "Mary Ann", "O'Brien"],
        ["bob@example.com", "Bob", "Smith-Jones"],
    ]
    added = audience.add_users(keys, people, is_raw=True).json()
    assert (added["num_received"], added["num_invalid_entries"]) == (2, 0)

    [held] = control.get("/_sandbox/audiences").json()
    # What the SDK hashed is what Audience Sync sends for the same people.
    assert sorted(held["identifiers"]["EMAIL"]) == sorted(
        hash_identifier(email, "email", "meta") for email, _, _ in people
    )
    assert sorted(held["identifiers"]["FN"]) == sorted(
        hash_identifier(first, "first_name", "meta") for _, first, _ in people
    )
    assert sorted(held["identifiers"]["LN"]) == sorted(
        hash_identifier(last, "last_name", "meta") for _, _, last in people
    )

    removed = audience.remove_users(keys, people[:1], is_raw=True).json()
    assert removed["num_received"] == 1
    [held] = control.get("/_sandbox/audiences").json()
    assert held["identifiers"]["EMAIL"] == [hash_identifier("bob@example.com", "email", "meta")]
    assert sdk.hosts() == {"127.0.0.1"}


def test_a_bad_token_is_the_sdks_request_error_with_code_190(
    base_url: str, control: httpx.Client
) -> None:
    audience_id = _create(Sdk(base_url, TOKEN))[CustomAudience.Field.id]
    stranger = Sdk(base_url, "not-a-token")
    with pytest.raises(FacebookRequestError) as caught:
        CustomAudience(audience_id, api=stranger.api).api_get(fields=[CustomAudience.Field.name])
    assert caught.value.api_error_code() == 190
    assert caught.value.http_status() == 400
    assert stranger.hosts() == {"127.0.0.1"}


def test_the_sdk_deletes_an_audience_through_its_trailing_slash_path(
    sdk: Sdk, control: httpx.Client
) -> None:
    audience = CustomAudience(_create(sdk)[CustomAudience.Field.id], api=sdk.api)
    audience.api_delete()
    assert control.get("/_sandbox/audiences").json() == []


@pytest.mark.parametrize(
    ("code", "subcode", "transient"), [(613, 1487742, True), (368, None, False)]
)
def test_the_sdk_reads_an_injected_graph_error_as_its_own_request_error(
    sdk: Sdk, control: httpx.Client, code: int, subcode: int | None, transient: bool
) -> None:
    audience = CustomAudience(_create(sdk)[CustomAudience.Field.id], api=sdk.api)
    fault = {"kind": "platform_error", "platform": "meta", "path": "/users$", "code": code}
    control.post("/_sandbox/faults", json=fault)
    with pytest.raises(FacebookRequestError) as caught:
        audience.add_users(CustomAudience.Schema.email_hash, ["a@example.com"])
    error = caught.value
    assert (error.api_error_code(), error.api_error_subcode()) == (code, subcode)
    assert error.api_transient_error() is transient
    assert error.api_error_type() == "OAuthException"
