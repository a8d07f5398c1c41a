"""What is particular to each platform, beyond the conformance suite."""

from __future__ import annotations

import hashlib
import hmac
import json
import time as wall
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from audience_sync.config import Settings
from audience_sync.connectors import (
    Credentials,
    GoogleAdsAudienceConnector,
    GoogleAudienceConnector,
    MetaAudienceConnector,
    SnapchatAudienceConnector,
    TikTokAudienceConnector,
    connector_for,
)
from audience_sync.connectors.base import BaseAudienceConnector
from audience_sync.connectors.http import RateLimiters
from audience_sync.domain.models import (
    AudienceConfig,
    AudienceUser,
    IdentifierType,
    MobileIdKind,
    UserIdentifier,
)
from audience_sync.exceptions import (
    AudienceSyncError,
    AuthExpiredError,
    InvalidRecordsError,
    NotFoundError,
    PlatformRequestError,
    PlatformServerError,
    RateLimitError,
    ValidationError,
)
from audience_sync.sandbox import SandboxSettings, create_app
from audience_sync.testing import PREFIXES, SANDBOX_URL, FakeTime, held_identifiers, make_users

TOKEN = Credentials(access_token="sandbox-token", developer_token="dev")


def build(
    cls: type[BaseAudienceConnector],
    app: FastAPI,
    family: str,
    *,
    credentials: Credentials = TOKEN,
    **kwargs: Any,
) -> BaseAudienceConnector:
    time = kwargs.pop("time", FakeTime())
    kwargs.setdefault("sleep", time.sleep)
    kwargs.setdefault("clock", time.clock)
    return cls(
        kwargs.pop("settings", Settings()),
        credentials,
        ad_account_id="42",
        base_url=SANDBOX_URL + PREFIXES[family],
        transport=httpx.ASGITransport(app=app),
        limiters=RateLimiters(),
        **kwargs,
    )


def email(address: str) -> AudienceUser:
    return AudienceUser(address, (UserIdentifier(IdentifierType.EMAIL, address),))


# --- registry and batching ------------------------------------------------------------------


def test_the_registry_builds_each_platform_and_google_ads_on_request() -> None:
    settings = Settings()
    kinds = {
        "meta": MetaAudienceConnector,
        "google": GoogleAudienceConnector,
        "tiktok": TikTokAudienceConnector,
        "snapchat": SnapchatAudienceConnector,
    }
    for platform, cls in kinds.items():
        assert type(connector_for(platform, settings, TOKEN)) is cls
    ads = connector_for("google", settings, TOKEN, options={"google_api": "ads"})
    assert type(ads) is GoogleAdsAudienceConnector


def test_the_effective_batch_is_the_smaller_of_the_platform_limit_and_the_setting() -> None:
    assert connector_for("snapchat", Settings(), TOKEN).batch_size == 10_000
    big = Settings(max_batch_size=500_000)
    assert connector_for("snapchat", big, TOKEN).batch_size == 100_000
    assert connector_for("meta", big, TOKEN).batch_size == 10_000


# --- Meta -----------------------------------------------------------------------------------


async def test_meta_signs_every_call_with_appsecret_proof() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json={"id": "7"})

    credentials = Credentials(access_token="tok", app_secret="shh")
    meta = MetaAudienceConnector(
        Settings(), credentials, transport=httpx.MockTransport(handler), limiters=RateLimiters()
    )
    await meta.create(AudienceConfig(name="B", ad_account_id="act_1"))
    await meta.delete("7")
    proof = hmac.new(b"shh", b"tok", hashlib.sha256).hexdigest()
    assert f"appsecret_proof={proof}".encode() in seen[0].content
    assert seen[1].url.params["appsecret_proof"] == proof
    assert seen[0].url.path.endswith("/act_1/customaudiences")
    assert "tok" not in str(seen[0].url)  # the token travels in a header only
    await meta.aclose()


async def test_meta_uses_one_session_across_the_batches_of_an_operation(
    sandbox: FastAPI, control: httpx.AsyncClient
) -> None:
    meta = build(MetaAudienceConnector, sandbox, "meta", settings=Settings(max_batch_size=4))
    audience_id = await meta.create(AudienceConfig(name="B", ad_account_id="act_42"))
    result = await meta.add_users(audience_id, make_users(0, 10))
    assert result.details["batches"] == [4, 4, 2]
    sessions = await control.get(
        f"/meta/v26.0/{audience_id}/sessions", params={"access_token": "sandbox-token"}
    )
    [session] = sessions.json()["data"]
    assert session["num_received"] == 10
    assert session["stage"] == "finished"
    await meta.aclose()


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        ({"code": 190, "error_subcode": 463}, AuthExpiredError),
        ({"code": 80003}, RateLimitError),
        ({"code": 17, "error_subcode": 2446079}, RateLimitError),
        ({"code": 2, "is_transient": True}, PlatformServerError),
        ({"code": 100, "error_subcode": 33}, NotFoundError),
        ({"code": 100}, ValidationError),
        ({"code": 2650, "error_subcode": 1870147}, ValidationError),
    ],
)
def test_meta_errors_follow_the_error_table(error: dict[str, Any], expected: type) -> None:
    meta = MetaAudienceConnector(Settings(), TOKEN)
    found = meta.translate(400, {"error": {"message": "m", **error}}, httpx.Headers())
    assert type(found) is expected


# --- TikTok ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("code", "message", "expected"),
    [
        (40100, "Requests made too frequently.", RateLimitError),
        (40102, "Access token has expired.", AuthExpiredError),
        (40002, "custom_audience_name: 1 to 128 characters.", ValidationError),
        (40007, "Custom audience 1 does not exist.", NotFoundError),
        (51065, "System error.", PlatformServerError),
        # The rest of the SDK's table (tiktok_code.py, NumericErrorCodes).
        (40000, "Invalid params.", ValidationError),
        (40001, "No permission to operate this audience.", PlatformRequestError),
        (40016, "Frequency control.", RateLimitError),
        (40132, "Request frequency limited.", RateLimitError),
        (40104, "Access token is null.", AuthExpiredError),
        (40105, "Access token is incorrect or has been revoked.", AuthExpiredError),
        (40114, "Advertiser logged out.", AuthExpiredError),
        (40202, "Write conflict.", PlatformServerError),
        (40300, "Advertiser does not exist.", NotFoundError),
        (50002, "System timeout.", PlatformServerError),
        (40400, "Unknown API.", PlatformRequestError),
        (40002, "batch_data[3]: EMAIL_SHA256 id is not a valid hash.", InvalidRecordsError),
    ],
)
def test_tiktok_http_200_with_a_non_zero_code_is_an_error(
    code: int, message: str, expected: type
) -> None:
    tiktok = TikTokAudienceConnector(Settings(), TOKEN)
    body = {"code": code, "message": message, "data": {}}
    assert type(tiktok.translate(200, body, httpx.Headers())) is expected
    assert tiktok.translate(200, {"code": 0, "message": "OK"}, httpx.Headers()) is None


async def test_tiktok_refuses_a_replace_before_sending_anything(
    sandbox: FastAPI, control: httpx.AsyncClient
) -> None:
    # Its audiences are segment-API ones, which TikTok's file REPLACE does not take: the sync
    # engine replaces them by difference instead.
    tiktok = build(TikTokAudienceConnector, sandbox, "tiktok")
    assert tiktok.CAPABILITIES.replace_by_difference
    audience_id = await tiktok.create(AudienceConfig(name="B", ad_account_id="42"))
    with pytest.raises(ValidationError, match="--operation replace"):
        await tiktok.replace_audience(audience_id, make_users(0, 1_200))
    log = (await control.get("/_sandbox/requests", params={"platform": "tiktok"})).json()
    assert [e["path"].rsplit("/v1.3/", 1)[1] for e in log] == ["segment/audience/"]
    await tiktok.aclose()


async def test_tiktok_maps_1000_users_a_call_unless_configured(
    sandbox: FastAPI, control: httpx.AsyncClient
) -> None:
    tiktok = build(TikTokAudienceConnector, sandbox, "tiktok")
    assert tiktok.batch_size == 1_000
    result = await tiktok.create_audience(
        AudienceConfig(name="B", ad_account_id="42"), make_users(0, 2_500)
    )
    assert result.details["batches"] == [1_000, 1_000, 500]
    await tiktok.aclose()
    small = TikTokAudienceConnector(Settings(tiktok_mapping_batch_size=300), TOKEN)
    assert small.batch_size == 300
    await small.aclose()


async def test_tiktok_sends_a_gaid_as_aaid_and_an_idfa_as_idfa(
    sandbox: FastAPI, control: httpx.AsyncClient
) -> None:
    tiktok = build(TikTokAudienceConnector, sandbox, "tiktok")
    audience_id = await tiktok.create(AudienceConfig(name="B", ad_account_id="42"))
    gaid, idfa = "6D92078A-8246-4BA4-AE5B-76104861E7DC", "0F3A2B18-9C4D-4E7F-B8E2-17D3A1E69B25"
    users = [
        AudienceUser("g", (UserIdentifier(IdentifierType.MOBILE_ID, gaid, MobileIdKind.GAID),)),
        AudienceUser("i", (UserIdentifier(IdentifierType.MOBILE_ID, idfa, MobileIdKind.IDFA),)),
    ]
    await tiktok.add_users(audience_id, users)
    held = await held_identifiers(control, "tiktok", audience_id)
    sha = hashlib.sha256
    assert held == {
        "AAID_SHA256": [sha(gaid.lower().encode()).hexdigest()],
        "IDFA_SHA256": [sha(idfa.lower().encode()).hexdigest()],
    }
    await tiktok.aclose()


# --- Snapchat -------------------------------------------------------------------------------


PERMISSION = {
    "request_status": "ERROR",
    "request_id": "98e2a602",
    "debug_message": "Caller does not have permission",
    "display_message": "We're sorry, but the requested resource is not available at this time",
    "error_code": "E3002",
}  # rudder-transformer's recorded answer (snapchat_custom_audience/network.ts)


@pytest.mark.parametrize(
    ("status", "body", "expected", "words"),
    [
        (401, None, AuthExpiredError, "Snapchat answered HTTP 401"),  # the bare `unauthorized`
        (403, PERMISSION, PlatformRequestError, "no permission on this ad account"),
        (429, None, RateLimitError, "HTTP 429"),
        (503, None, PlatformServerError, "HTTP 503"),
        (404, {"request_status": "ERROR", "debug_message": "gone"}, NotFoundError, "gone"),
        (
            200,
            {
                "request_status": "SUCCESS",
                "users": [{"sub_request_status": "ERROR", "sub_request_error_reason": "bad"}],
            },
            PlatformRequestError,
            "bad",
        ),
    ],
)
def test_snapchat_errors_follow_the_status_and_the_envelope(
    status: int, body: Any, expected: type, words: str
) -> None:
    snap = SnapchatAudienceConnector(Settings(), TOKEN)
    found = snap.translate(status, body, httpx.Headers())
    assert type(found) is expected
    assert found is not None
    assert words in found.message
    assert not found.message.endswith(": ")


async def test_snapchat_sends_one_schema_a_request_without_duplicates() -> None:
    bodies: list[dict[str, Any]] = []

    def handler(request: httpx.Request) -> httpx.Response:
        bodies.append(json.loads(request.content))
        return httpx.Response(200, json={"request_status": "SUCCESS", "users": [{}]})

    snap = SnapchatAudienceConnector(
        Settings(), TOKEN, transport=httpx.MockTransport(handler), limiters=RateLimiters()
    )
    phone = UserIdentifier(IdentifierType.PHONE, "+16505551212")
    users = [email("a@example.com"), email("A@Example.com "), AudienceUser("p", (phone,))]
    await snap.add_users("9", users)
    schemas = [body["users"][0]["schema"] for body in bodies]
    assert schemas == [["EMAIL_SHA256"], ["PHONE_SHA256"]]
    assert len(bodies[0]["users"][0]["data"]) == 1  # the two spellings are one address
    await snap.aclose()


async def test_snapchat_segments_default_to_lifetime_retention(sandbox: FastAPI) -> None:
    snap = build(SnapchatAudienceConnector, sandbox, "snapchat")
    audience_id = await snap.create(AudienceConfig(name="B", ad_account_id="42"))
    info = await snap.get_audience_info(audience_id)
    assert info["platform"]["retention_in_days"] == 9999
    await snap.aclose()


async def test_our_rate_limiter_keeps_snapchat_under_its_budget_in_real_time(
    sandbox: FastAPI, control: httpx.AsyncClient
) -> None:
    snap = SnapchatAudienceConnector(
        Settings(max_batch_size=1),
        TOKEN,
        base_url=SANDBOX_URL + PREFIXES["snapchat"],
        transport=httpx.ASGITransport(app=sandbox),
        limiters=RateLimiters(),
    )  # real sleep and clock; the sandbox keeps its 10 requests/s budget
    audience_id = await snap.create(AudienceConfig(name="B", ad_account_id="42"))
    started = wall.monotonic()
    result = await snap.add_users(audience_id, [email(f"u{i}@example.com") for i in range(14)])
    assert result.accepted == 14
    assert wall.monotonic() - started >= 0.5  # 15 calls: a burst of 9, then 9 a second
    log = (await control.get("/_sandbox/requests", params={"platform": "snapchat"})).json()
    assert [e for e in log if e["status"] == 429] == []
    await snap.aclose()


# --- Google ---------------------------------------------------------------------------------

ACCEPTED = {"connection": {"customer_match_terms_accepted": True}}


async def google_log(control: httpx.AsyncClient) -> list[dict[str, Any]]:
    return list((await control.get("/_sandbox/requests?platform=google")).json())


async def test_google_refuses_to_upload_before_the_connection_accepts_the_terms(
    sandbox: FastAPI, control: httpx.AsyncClient
) -> None:
    accepted = build(GoogleAudienceConnector, sandbox, "google", options=ACCEPTED)
    audience_id = await accepted.create(AudienceConfig(name="B", ad_account_id="42"))
    google = build(GoogleAudienceConnector, sandbox, "google")
    for attempt in (
        google.add_users(audience_id, make_users(0, 3)),
        google.replace_audience(audience_id, make_users(0, 3)),
        google.create(AudienceConfig(name="C", ad_account_id="42")),
    ):
        with pytest.raises(ValidationError, match="--accept-customer-match-terms"):
            await attempt
    assert [e["path"].rsplit("/", 1)[-1] for e in await google_log(control)] == ["userLists"]
    removed = await google.remove_users(audience_id, make_users(0, 3))  # removes need none
    assert removed.success
    await google.aclose()
    await accepted.aclose()


async def test_google_sends_the_terms_accepted_with_every_upload(sandbox: FastAPI) -> None:
    seen: list[Any] = []
    google = build(GoogleAudienceConnector, sandbox, "google", options=ACCEPTED)
    audience_id = await google.create(AudienceConfig(name="B", ad_account_id="42"))
    sent = google.http.request

    async def spy(method: str, path: str, **kwargs: Any) -> Any:
        if path.startswith("audienceMembers:"):
            seen.append((path, kwargs.get("json", {}).get("termsOfService")))
        return await sent(method, path, **kwargs)

    google.http.request = spy  # type: ignore[method-assign]
    await google.add_users(audience_id, make_users(0, 3))
    await google.remove_users(audience_id, make_users(0, 1))
    accepted = {"customerMatchTermsOfServiceStatus": "ACCEPTED"}
    assert seen == [("audienceMembers:ingest", accepted), ("audienceMembers:remove", None)]
    await google.aclose()


async def test_google_reaches_a_managed_account_through_the_connections_login_account(
    sandbox: FastAPI, control: httpx.AsyncClient
) -> None:
    await control.put("/_sandbox/google/managers/42", json={"manager_id": "99"})
    without = build(GoogleAudienceConnector, sandbox, "google", options=ACCEPTED)
    with pytest.raises(AudienceSyncError) as refused:
        await without.create(AudienceConfig(name="B", ad_account_id="42"))
    assert refused.value.status_code == 403
    managed = {"connection": {**ACCEPTED["connection"], "login_account_id": "99"}}
    google = build(GoogleAudienceConnector, sandbox, "google", options=managed)
    audience_id = await google.create(AudienceConfig(name="B", ad_account_id="42"))
    await google.add_users(audience_id, make_users(0, 4))
    await google.remove_users(audience_id, make_users(0, 1))
    await google.replace_audience(audience_id, make_users(5, 7))
    assert (await google.get_audience_info(audience_id))["id"] == audience_id
    await google.delete_audience(audience_id)
    statuses = [e["status"] for e in await google_log(control)]
    assert statuses[0] == 403
    assert set(statuses[1:]) == {200}
    await google.aclose()
    await without.aclose()


async def test_a_google_run_adds_and_removes_without_reading_the_list(
    sandbox: FastAPI, control: httpx.AsyncClient
) -> None:
    google = build(GoogleAudienceConnector, sandbox, "google", options=ACCEPTED)
    audience_id = await google.create(AudienceConfig(name="B", ad_account_id="42"))
    later = build(GoogleAudienceConnector, sandbox, "google", options=ACCEPTED)  # a later run
    await later.add_users(audience_id, make_users(0, 4))
    await later.remove_users(audience_id, make_users(0, 2))
    reads = [
        e for e in await google_log(control) if e["method"] == "GET" and "userLists" in e["path"]
    ]
    assert reads == []
    await google.aclose()
    await later.aclose()


async def test_google_mobile_id_lists_get_raw_uppercase_ids_with_the_app_id(
    sandbox: FastAPI, control: httpx.AsyncClient
) -> None:
    options = {"list_type": "mobile", "app_id": "com.example.app", **ACCEPTED}
    google = build(GoogleAudienceConnector, sandbox, "google", options=options)
    audience_id = await google.create(AudienceConfig(name="Apps", ad_account_id="42"))
    maid = "6d92078a-8246-4ba4-ae5b-76104861e7dc"
    user = AudienceUser("m", (UserIdentifier(IdentifierType.MOBILE_ID, maid),))
    # A later run: the audience's options (kept as created) say what the list holds.
    fresh = build(GoogleAudienceConnector, sandbox, "google", options=options)
    await fresh.add_users(audience_id, [user, email("a@example.com")])
    assert await held_identifiers(control, "google", audience_id) == {"mobileId": [maid.upper()]}
    info = await fresh.get_audience_info(audience_id)
    assert info["platform"]["ingestedUserListInfo"]["mobileIdInfo"]["appId"] == "com.example.app"
    await google.aclose()
    await fresh.aclose()


async def status_reads(control: httpx.AsyncClient) -> int:
    log = (await control.get("/_sandbox/requests?platform=google")).json()
    return sum(1 for e in log if "requestStatus:retrieve" in e["path"])


async def test_a_google_upload_ends_at_acceptance_without_reading_its_status(
    sandbox: FastAPI, control: httpx.AsyncClient
) -> None:
    google = build(GoogleAudienceConnector, sandbox, "google", options=ACCEPTED)
    audience_id = await google.create(AudienceConfig(name="B", ad_account_id="42"))
    result = await google.add_users(audience_id, make_users(0, 5))
    assert result.accepted == 5
    assert result.details["requests_pending"] == 1
    assert await status_reads(control) == 0  # processing takes 30 minutes: nobody waits
    await google.aclose()


async def test_google_leaves_out_every_member_of_an_audience_whose_consent_is_denied(
    sandbox: FastAPI, control: httpx.AsyncClient
) -> None:
    denied = {
        "consent": {"adUserData": "CONSENT_DENIED", "adPersonalization": "CONSENT_DENIED"},
        **ACCEPTED,
    }
    google = build(GoogleAudienceConnector, sandbox, "google", options=denied)
    audience_id = await google.create(AudienceConfig(name="B", ad_account_id="42"))
    result = await google.add_users(audience_id, make_users(0, 5))
    assert (result.accepted, result.failed, result.platform_invalid) == (0, 5, None)
    assert result.details["dropped"] == {"consent_denied": 5}
    log = (await control.get("/_sandbox/requests?platform=google")).json()
    assert not any(e["path"].endswith(":ingest") for e in log)
    await google.aclose()


async def test_a_google_request_failed_without_error_counts_is_a_failure(
    sandbox: FastAPI, control: httpx.AsyncClient
) -> None:
    await control.post("/_sandbox/google/outcomes", json={"failed": True})
    google = build(GoogleAudienceConnector, sandbox, "google", options=ACCEPTED)
    audience_id = await google.create(AudienceConfig(name="B", ad_account_id="42"))
    result = await google.add_users(audience_id, make_users(0, 5))
    await control.post("/_sandbox/clock", json={"advance_seconds": 30 * 60})
    check = await google.check_request(result.request_ids[0], audience_id)
    assert (check.done, check.failed, check.refused) == (True, True, 0)
    await google.aclose()


async def test_google_warnings_are_surfaced_from_the_answer_and_the_status(
    sandbox: FastAPI, control: httpx.AsyncClient
) -> None:
    rule = {
        "warnings": {"PROCESSING_WARNING_REASON_INTERNAL_ERROR": 2},
        "field_warnings": [{"reason": "WARNING_REASON_UNSPECIFIED", "field": "x"}],
    }
    await control.post("/_sandbox/google/outcomes", json=rule)
    google = build(GoogleAudienceConnector, sandbox, "google", options=ACCEPTED)
    audience_id = await google.create(AudienceConfig(name="B", ad_account_id="42"))
    result = await google.add_users(audience_id, make_users(0, 5))
    assert result.details["field_warnings"] == {"WARNING_REASON_UNSPECIFIED": 1}
    await control.post("/_sandbox/clock", json={"advance_seconds": 30 * 60})
    check = await google.check_request(result.request_ids[0], audience_id)
    assert (check.status, check.warnings) == (
        "SUCCESS",
        {"PROCESSING_WARNING_REASON_INTERNAL_ERROR": 2},
    )
    assert check.match_range is not None
    await google.aclose()


async def test_a_google_replace_leaves_its_remove_all_to_the_confirmation(
    sandbox: FastAPI, control: httpx.AsyncClient
) -> None:
    google = build(GoogleAudienceConnector, sandbox, "google", options=ACCEPTED)
    audience_id = await google.create(AudienceConfig(name="B", ad_account_id="42"))
    await google.add_users(audience_id, make_users(0, 4))
    await control.post("/_sandbox/clock", json={"advance_seconds": 60})
    result = await google.replace_audience(audience_id, make_users(2, 6))
    assert "remove_all_as_of" in result.details
    before = await held_identifiers(control, "google", audience_id)
    assert len(before["emailAddress"]) == 6  # the old members stay until the removeAll
    log = (await control.get("/_sandbox/requests?platform=google")).json()
    assert not any("removeAll" in e["path"] for e in log)
    assert await status_reads(control) == 0
    await control.post("/_sandbox/clock", json={"advance_seconds": 30 * 60})
    assert await google.remove_all_as_of(audience_id, result.details["remove_all_as_of"])
    held = await held_identifiers(control, "google", audience_id)
    assert len(held["emailAddress"]) == 4  # users 2..5: those added before the replace went
    await google.aclose()


async def test_google_ads_retries_a_concurrent_modification_until_the_other_job_ends(
    control: httpx.AsyncClient,
) -> None:
    slow = create_app(SandboxSettings(google_processing_seconds=60))
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=slow), base_url=SANDBOX_URL
    ) as slow_control:

        async def sleep(seconds: float) -> None:  # each wait moves the sandbox clock 20 s on
            await slow_control.post("/_sandbox/clock", json={"advance_seconds": seconds + 20})

        hasty = build(GoogleAdsAudienceConnector, slow, "googleads", options=ACCEPTED)
        audience_id = await hasty.create(AudienceConfig(name="B", ad_account_id="42"))
        first = await hasty.add_users(audience_id, make_users(0, 3))
        assert first.details["requests_pending"] == 1  # its job is RUNNING for 60 s
        ads = build(GoogleAdsAudienceConnector, slow, "googleads", sleep=sleep, options=ACCEPTED)
        result = await ads.add_users(audience_id, make_users(3, 6))
        assert result.accepted == 3
        log = (await slow_control.get("/_sandbox/requests?platform=googleads")).json()
        runs = [e["status"] for e in log if e["path"].endswith(":run")]
        assert runs[0] == 200
        assert 400 in runs[1:]
        assert runs[-1] == 200
        await ads.aclose()
        await hasty.aclose()


async def test_a_google_ads_upload_waits_only_for_its_own_earlier_job_on_the_list() -> None:
    slow = create_app(SandboxSettings(google_processing_seconds=60))
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=slow), base_url=SANDBOX_URL
    ) as slow_control:

        async def sleep(seconds: float) -> None:
            await slow_control.post("/_sandbox/clock", json={"advance_seconds": seconds})

        ads = build(
            GoogleAdsAudienceConnector,
            slow,
            "googleads",
            sleep=sleep,
            poll_interval=10,
            options=ACCEPTED,
        )
        audience_id = await ads.create(AudienceConfig(name="B", ad_account_id="42"))
        added = await ads.add_users(audience_id, make_users(0, 6))
        assert added.details["requests_pending"] == 1  # ran, not waited for
        removed = await ads.remove_users(audience_id, make_users(0, 2))  # a second job
        assert removed.accepted == 2
        log = (await slow_control.get("/_sandbox/requests?platform=googleads")).json()
        runs = [e["status"] for e in log if e["path"].endswith(":run")]
        assert runs == [200, 200]  # the second ran once the first had ended: no conflict
        check = await ads.check_request(removed.request_ids[0], audience_id)
        assert not check.done
        await sleep(60)
        assert (await ads.check_request(removed.request_ids[0], audience_id)).status == "SUCCESS"
        await ads.aclose()


async def test_an_upload_cut_short_reports_which_users_the_platform_already_accepted() -> None:
    calls: list[int] = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(1)
        if len(calls) == 1:
            return httpx.Response(200, json={"request_status": "SUCCESS", "users": [{}]})
        body = {"request_status": "ERROR", "debug_message": "Segment is locked", "error_code": "E1"}
        return httpx.Response(400, json=body)

    snap = SnapchatAudienceConnector(
        Settings(max_batch_size=3),
        TOKEN,
        transport=httpx.MockTransport(handler),
        limiters=RateLimiters(),
    )
    with pytest.raises(ValidationError) as caught:
        await snap.add_users("9", [email(f"u{i}@example.com") for i in range(6)])
    partial = caught.value.details["partial"]
    assert partial.details["accepted_users"] == [0, 1, 2]
    assert caught.value.batch == 1
    await snap.aclose()


def test_google_ads_sends_the_connections_login_account_as_login_customer_id() -> None:
    managed = {"connection": {"login_account_id": "99"}}
    ads = connector_for("google", Settings(), TOKEN, options={"google_api": "ads", **managed})
    assert ads.auth_headers("t")["login-customer-id"] == "99"
    legacy = Credentials(access_token="t", developer_token="d", login_customer_id="77")
    old = connector_for("google", Settings(), legacy, options={"google_api": "ads"})
    assert old.auth_headers("t")["login-customer-id"] == "77"
