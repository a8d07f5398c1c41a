"""What members allow, on the wire: Google consent and Meta Limited Data Use, read back from the
sandbox (`/_sandbox/audiences`, `data_use`)."""

from __future__ import annotations

import hashlib
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from audience_sync.config import Settings
from audience_sync.connectors import Credentials, GoogleAudienceConnector, MetaAudienceConnector
from audience_sync.connectors.base import BaseAudienceConnector
from audience_sync.connectors.http import RateLimiters
from audience_sync.domain.models import AudienceConfig, AudienceUser, IdentifierType
from audience_sync.domain.models import UserIdentifier as Id
from audience_sync.exceptions import ValidationError
from audience_sync.testing import PREFIXES, SANDBOX_URL, FakeTime
from audience_sync.testing.support import sandbox_audiences

TOKEN = Credentials(access_token="sandbox-token")
GRANTED = {"adUserData": "CONSENT_GRANTED", "adPersonalization": "CONSENT_GRANTED"}


def build(
    cls: type[BaseAudienceConnector], app: FastAPI, family: str, **options: Any
) -> BaseAudienceConnector:
    time = FakeTime()
    if family == "google":  # uploads need the Customer Match terms recorded on the connection
        options.setdefault("connection", {"customer_match_terms_accepted": True})
    return cls(
        Settings(),
        TOKEN,
        ad_account_id="42",
        options=options,
        base_url=SANDBOX_URL + PREFIXES[family],
        transport=httpx.ASGITransport(app=app),
        limiters=RateLimiters(),
        sleep=time.sleep,
        clock=time.clock,
    )


def user(address: str, **allows: str) -> AudienceUser:
    return AudienceUser(address, (Id(IdentifierType.EMAIL, address),), **allows)


def sha(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


async def held(control: httpx.AsyncClient, platform: str) -> dict[str, Any]:
    [audience] = await sandbox_audiences(control, platform)
    return audience


# --- Google -----------------------------------------------------------------------------------


async def test_google_never_sends_a_member_who_denied_consent(
    sandbox: FastAPI, control: httpx.AsyncClient
) -> None:
    google = build(GoogleAudienceConnector, sandbox, "google", consent=GRANTED)
    audience_id = await google.create(AudienceConfig(name="B", ad_account_id="42"))
    users = [
        user("a@example.com"),
        user("b@example.com", consent_ad_user_data="denied"),
        user("c@example.com", consent_ad_personalization="denied"),
    ]
    result = await google.add_users(audience_id, users)
    assert result.details["dropped"] == {"consent_denied": 2}
    assert (await held(control, "google"))["identifiers"] == {
        "emailAddress": [sha("a@example.com")]
    }
    log = (await control.get("/_sandbox/requests?platform=google")).json()
    assert sum(e["path"].endswith(":ingest") for e in log) == 1
    await google.aclose()


async def test_google_sends_a_member_s_own_consent_on_the_member(
    sandbox: FastAPI, control: httpx.AsyncClient
) -> None:
    google = build(GoogleAudienceConnector, sandbox, "google")
    audience_id = await google.create(AudienceConfig(name="B", ad_account_id="42"))
    users = [user("a@example.com", consent_ad_user_data="granted"), user("b@example.com")]
    await google.add_users(audience_id, users)
    data_use = (await held(control, "google"))["data_use"]
    assert data_use == {
        f"emailAddress:{sha('a@example.com')}": {"adUserData": "CONSENT_GRANTED"},
        f"emailAddress:{sha('b@example.com')}": {},
    }
    await google.aclose()


async def test_google_fills_a_member_s_consent_from_the_audience_then_the_connection(
    sandbox: FastAPI, control: httpx.AsyncClient
) -> None:
    # The audience grants ad user data; the connection's default grants personalization.
    options = {
        "consent": {"adUserData": "CONSENT_GRANTED"},
        "consent_ad_personalization": "granted",
    }
    google = build(GoogleAudienceConnector, sandbox, "google", **options)
    audience_id = await google.create(AudienceConfig(name="B", ad_account_id="42"))
    users = [user("a@example.com", consent_ad_personalization="denied"), user("b@example.com")]
    result = await google.add_users(audience_id, users)
    assert result.details["dropped"] == {"consent_denied": 1}
    data_use = (await held(control, "google"))["data_use"]
    assert data_use == {f"emailAddress:{sha('b@example.com')}": GRANTED}
    await google.aclose()


async def test_google_takes_the_audience_consent_in_a_word_and_refuses_other_words(
    sandbox: FastAPI, control: httpx.AsyncClient
) -> None:
    google = build(GoogleAudienceConnector, sandbox, "google", consent="granted")
    audience_id = await google.create(AudienceConfig(name="B", ad_account_id="42"))
    await google.add_users(audience_id, [user("a@example.com")])
    assert list((await held(control, "google"))["data_use"].values()) == [GRANTED]
    wrong = build(GoogleAudienceConnector, sandbox, "google", consent="maybe")
    with pytest.raises(ValidationError):
        await wrong.add_users(audience_id, [user("a@example.com")])
    await google.aclose()
    await wrong.aclose()


async def test_google_removes_members_whatever_their_consent(
    sandbox: FastAPI, control: httpx.AsyncClient
) -> None:
    google = build(GoogleAudienceConnector, sandbox, "google", consent=GRANTED)
    audience_id = await google.create(AudienceConfig(name="B", ad_account_id="42"))
    mine = user("a@example.com", consent_ad_user_data="granted")
    await google.add_users(audience_id, [mine])
    result = await google.remove_users(audience_id, [mine])
    assert result.accepted == 1
    assert (await held(control, "google"))["size"] == 0
    await google.aclose()


# --- Meta -------------------------------------------------------------------------------------

LDU_OFF = {
    "DATA_PROCESSING_OPTIONS": [],
    "DATA_PROCESSING_OPTIONS_COUNTRY": 0,
    "DATA_PROCESSING_OPTIONS_STATE": 0,
}


async def test_meta_sends_limited_data_use_row_by_row(
    sandbox: FastAPI, control: httpx.AsyncClient
) -> None:
    meta = build(MetaAudienceConnector, sandbox, "meta", limited_data_use="geolocate")
    audience_id = await meta.create(AudienceConfig(name="B", ad_account_id="act_42"))
    users = [
        user("a@example.com", limited_data_use="california"),
        user("b@example.com", limited_data_use="off"),
        user("c@example.com"),
    ]
    result = await meta.add_users(audience_id, users)
    assert result.accepted == 3
    data_use = (await held(control, "meta"))["data_use"]
    assert data_use == {
        f"EMAIL:{sha('a@example.com')}": {
            "DATA_PROCESSING_OPTIONS": ["LDU"],
            "DATA_PROCESSING_OPTIONS_COUNTRY": 1,
            "DATA_PROCESSING_OPTIONS_STATE": 1000,
        },
        f"EMAIL:{sha('b@example.com')}": LDU_OFF,
        f"EMAIL:{sha('c@example.com')}": {**LDU_OFF, "DATA_PROCESSING_OPTIONS": ["LDU"]},
    }
    await meta.aclose()


async def test_meta_without_limited_data_use_sends_no_such_columns(
    sandbox: FastAPI, control: httpx.AsyncClient
) -> None:
    meta = build(MetaAudienceConnector, sandbox, "meta")
    audience_id = await meta.create(AudienceConfig(name="B", ad_account_id="act_42"))
    await meta.add_users(audience_id, [user("a@example.com"), user("b@example.com")])
    log = (await control.get("/_sandbox/requests?platform=meta")).json()
    assert (await held(control, "meta"))["data_use"] == {}
    assert all("DATA_PROCESSING" not in str(e) for e in log)
    await meta.aclose()


async def test_meta_removes_rows_sent_with_limited_data_use(
    sandbox: FastAPI, control: httpx.AsyncClient
) -> None:
    meta = build(MetaAudienceConnector, sandbox, "meta", limited_data_use="california")
    audience_id = await meta.create(AudienceConfig(name="B", ad_account_id="act_42"))
    users = [user("a@example.com"), user("b@example.com")]
    await meta.add_users(audience_id, users)
    result = await meta.remove_users(audience_id, users)
    assert result.accepted == 2
    audience = await held(control, "meta")
    assert (audience["size"], audience["data_use"]) == (0, {})
    await meta.aclose()
