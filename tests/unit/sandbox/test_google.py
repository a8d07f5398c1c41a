"""Google Data Manager and Google Ads API contract: the examples of docs/platforms/google.md."""

from __future__ import annotations

import base64

import httpx

from .conftest import audiences, digests, sha

DM = "/google/v1"
ADS = "/googleads/v26/customers/1234567890"
AUTH = {"Authorization": "Bearer sandbox-token"}
ADS_AUTH = {**AUTH, "developer-token": "dev"}
PROCESSED = 30 * 60 + 1  # seconds: past the sandbox's default Google processing time
EMAIL = "223ebda6f6889b1494551ba902d9d381daf2f642bae055888e96343d53e9f9c4"
PHONE = "fb4f73a6ec5fdb7077d564cdd22c3554b43ce49168550c3b12c547b78c517b30"


async def create_list(client: httpx.AsyncClient, name: str = "Buyers", **extra: object) -> str:
    body = {"displayName": name, **extra}
    response = await client.post(
        f"{DM}/accountTypes/GOOGLE_ADS/accounts/1234567890/userLists", json=body, headers=AUTH
    )
    assert response.status_code == 200, response.text
    return str(response.json()["id"])


def ingest_body(list_id: str, members: list[dict[str, object]]) -> dict[str, object]:
    return {
        "destinations": [
            {
                "operatingAccount": {"accountType": "GOOGLE_ADS", "accountId": "1234567890"},
                "loginAccount": {"accountType": "GOOGLE_ADS", "accountId": "9876543210"},
                "productDestinationId": list_id,
            }
        ],
        "encoding": "HEX",
        "consent": {"adUserData": "CONSENT_GRANTED", "adPersonalization": "CONSENT_GRANTED"},
        "termsOfService": {"customerMatchTermsOfServiceStatus": "ACCEPTED"},
        "audienceMembers": members,
    }


def remove_body(list_id: str, members: list[dict[str, object]]) -> dict[str, object]:
    """A RemoveAudienceMembersRequest: no consent, no terms (the proto has neither)."""
    body = ingest_body(list_id, members)
    del body["consent"], body["termsOfService"]
    return body


def emails(values: list[str]) -> list[dict[str, object]]:
    return [{"userData": {"userIdentifiers": [{"emailAddress": v}]}} for v in values]


async def test_the_documented_ingest_example_is_accepted(client: httpx.AsyncClient) -> None:
    list_id = await create_list(client)
    member = {
        "userData": {
            "userIdentifiers": [
                {"emailAddress": EMAIL},
                {"phoneNumber": PHONE},
                {
                    "address": {
                        "givenName": sha("john"),
                        "familyName": sha("doe"),
                        "regionCode": "US",
                        "postalCode": "94045",
                    }
                },
            ]
        }
    }
    response = await client.post(
        f"{DM}/audienceMembers:ingest", json=ingest_body(list_id, [member]), headers=AUTH
    )
    assert response.status_code == 200
    assert "requestId" in response.json()
    [held] = await audiences(client, "google")
    assert held["identifiers"] == {
        "address": [f"{sha('john')}|{sha('doe')}|US|94045"],
        "emailAddress": [EMAIL],
        "phoneNumber": [PHONE],
    }


async def test_request_status_is_processing_then_success_with_a_match_range(
    client: httpx.AsyncClient,
) -> None:
    list_id = await create_list(client)
    sent = await client.post(
        f"{DM}/audienceMembers:ingest",
        json=ingest_body(list_id, emails(digests(500))),
        headers=AUTH,
    )
    request_id = sent.json()["requestId"]

    async def status() -> dict[str, object]:
        got = await client.get(
            f"{DM}/requestStatus:retrieve", params={"requestId": request_id}, headers=AUTH
        )
        return dict(got.json()["requestStatusPerDestination"][0])

    assert (await status())["requestStatus"] == "PROCESSING"
    await client.post("/_sandbox/clock", json={"advance_seconds": 29 * 60})
    assert (await status())["requestStatus"] == "PROCESSING"  # Google: 30 min to 24 h
    await client.post("/_sandbox/clock", json={"advance_seconds": 61})
    done = await status()
    assert done["requestStatus"] == "SUCCESS"
    counts = done["audienceMembersIngestionStatus"]["userDataIngestionStatus"]  # type: ignore[index]
    assert counts["recordCount"] == "500"
    assert counts["uploadMatchRateRange"] in (
        "MATCH_RATE_RANGE_61_TO_70",
        "MATCH_RATE_RANGE_71_TO_80",
    )


async def test_members_with_denied_consent_make_a_partial_success(
    client: httpx.AsyncClient,
) -> None:
    list_id = await create_list(client)
    members = emails(digests(2))
    members[0]["consent"] = {"adUserData": "CONSENT_DENIED"}
    sent = await client.post(
        f"{DM}/audienceMembers:ingest", json=ingest_body(list_id, members), headers=AUTH
    )
    await client.post("/_sandbox/clock", json={"advance_seconds": PROCESSED})
    got = await client.get(
        f"{DM}/requestStatus:retrieve", params={"requestId": sent.json()["requestId"]}, headers=AUTH
    )
    assert got.json()["requestStatusPerDestination"][0]["requestStatus"] == "PARTIAL_SUCCESS"
    [held] = await audiences(client, "google")
    assert held["size"] == 1


async def status_of(client: httpx.AsyncClient, request_id: str) -> dict[str, object]:
    got = await client.get(
        f"{DM}/requestStatus:retrieve", params={"requestId": request_id}, headers=AUTH
    )
    return dict(got.json()["requestStatusPerDestination"][0])


async def test_error_counts_show_only_once_the_request_has_ended(
    client: httpx.AsyncClient,
) -> None:
    list_id = await create_list(client)
    members = emails(digests(2))
    members[0]["consent"] = {"adUserData": "CONSENT_DENIED"}
    sent = await client.post(
        f"{DM}/audienceMembers:ingest", json=ingest_body(list_id, members), headers=AUTH
    )
    processing = await status_of(client, sent.json()["requestId"])
    assert processing["requestStatus"] == "PROCESSING"
    assert "errorInfo" not in processing
    await client.post("/_sandbox/clock", json={"advance_seconds": PROCESSED})
    done = await status_of(client, sent.json()["requestId"])
    assert done["errorInfo"] == {
        "errorCounts": [{"recordCount": "1", "reason": "PROCESSING_ERROR_REASON_DENIED_CONSENT"}]
    }


async def test_a_set_outcome_fails_a_request_with_no_error_counts(
    client: httpx.AsyncClient,
) -> None:
    await client.post("/_sandbox/google/outcomes", json={"failed": True})
    list_id = await create_list(client)
    sent = await client.post(
        f"{DM}/audienceMembers:ingest", json=ingest_body(list_id, emails(digests(3))), headers=AUTH
    )
    await client.post("/_sandbox/clock", json={"advance_seconds": PROCESSED})
    done = await status_of(client, sent.json()["requestId"])
    assert done["requestStatus"] == "FAILED"
    assert "errorInfo" not in done
    again = await client.post(
        f"{DM}/audienceMembers:ingest", json=ingest_body(list_id, emails(digests(3))), headers=AUTH
    )
    await client.post("/_sandbox/clock", json={"advance_seconds": PROCESSED})
    assert (await status_of(client, again.json()["requestId"]))["requestStatus"] == "SUCCESS"


async def test_warnings_come_as_warning_info_and_field_warnings(
    client: httpx.AsyncClient,
) -> None:
    field_warning = {"reason": "WARNING_REASON_UNSPECIFIED", "field": "audience_members[0]"}
    rule = {
        "warnings": {"PROCESSING_WARNING_REASON_INTERNAL_ERROR": 2},
        "field_warnings": [field_warning],
    }
    await client.post("/_sandbox/google/outcomes", json=rule)
    list_id = await create_list(client)
    sent = await client.post(
        f"{DM}/audienceMembers:ingest", json=ingest_body(list_id, emails(digests(3))), headers=AUTH
    )
    assert sent.json()["fieldWarnings"] == [field_warning]
    await client.post("/_sandbox/clock", json={"advance_seconds": PROCESSED})
    done = await status_of(client, sent.json()["requestId"])
    assert done["requestStatus"] == "SUCCESS"
    assert done["warningInfo"] == {
        "warningCounts": [
            {"recordCount": "2", "reason": "PROCESSING_WARNING_REASON_INTERNAL_ERROR"}
        ]
    }


async def test_base64_digests_are_stored_as_hex(client: httpx.AsyncClient) -> None:
    list_id = await create_list(client)
    body = ingest_body(list_id, emails(["Ij69pvaImxSUVRupAtnTgdry9kK64FWIjpY0PVPp+cQ="]))
    body["encoding"] = "BASE64"
    await client.post(f"{DM}/audienceMembers:ingest", json=body, headers=AUTH)
    [held] = await audiences(client, "google")
    assert held["identifiers"] == {"emailAddress": [EMAIL]}
    assert base64.b64decode("Ij69pvaImxSUVRupAtnTgdry9kK64FWIjpY0PVPp+cQ=").hex() == EMAIL


async def test_a_digest_that_is_not_64_hex_is_invalid_sha256_format(
    client: httpx.AsyncClient,
) -> None:
    list_id = await create_list(client)
    response = await client.post(
        f"{DM}/audienceMembers:ingest", json=ingest_body(list_id, emails(["ab" * 31])), headers=AUTH
    )
    error = response.json()["error"]
    assert response.status_code == 400
    assert error["status"] == "INVALID_ARGUMENT"
    assert error["details"][0]["reason"] == "INVALID_SHA256_FORMAT"
    assert await audiences(client, "google") != []
    assert (await audiences(client, "google"))[0]["size"] == 0


async def test_mixed_key_types_in_one_request_are_rejected(client: httpx.AsyncClient) -> None:
    list_id = await create_list(client)
    members = [
        *emails(digests(1)),
        {"mobileData": {"mobileIds": ["AB12CD34-5678-90EF-ABCD-1234567890AB"]}},
    ]
    response = await client.post(
        f"{DM}/audienceMembers:ingest", json=ingest_body(list_id, members), headers=AUTH
    )
    assert response.json()["error"]["details"][0]["reason"] == "MULTIPLE_DATA_TYPES_NOT_ALLOWED"


async def test_a_contact_list_refuses_mobile_ids_later(client: httpx.AsyncClient) -> None:
    list_id = await create_list(client)
    await client.post(
        f"{DM}/audienceMembers:ingest", json=ingest_body(list_id, emails(digests(1))), headers=AUTH
    )
    mobile = [{"mobileData": {"mobileIds": ["AB12CD34-5678-90EF-ABCD-1234567890AB"]}}]
    response = await client.post(
        f"{DM}/audienceMembers:ingest", json=ingest_body(list_id, mobile), headers=AUTH
    )
    assert response.json()["error"]["details"][0]["reason"] == "MULTIPLE_DATA_TYPES_NOT_ALLOWED"


async def test_more_than_10000_members_is_too_many(client: httpx.AsyncClient) -> None:
    list_id = await create_list(client)
    body = ingest_body(list_id, emails(digests(10_001)))
    response = await client.post(f"{DM}/audienceMembers:ingest", json=body, headers=AUTH)
    assert response.json()["error"]["details"][0]["reason"] == "TOO_MANY_AUDIENCE_MEMBERS"


async def test_remove_all_as_of_time_keeps_members_added_since(client: httpx.AsyncClient) -> None:
    list_id = await create_list(client)
    old, new = digests(3, "old"), digests(2, "new")
    await client.post(
        f"{DM}/audienceMembers:ingest", json=ingest_body(list_id, emails(old)), headers=AUTH
    )
    await client.post("/_sandbox/clock", json={"advance_seconds": 10})
    cut = await client.get(
        "/_sandbox/requests"
    )  # any call: the cut-off is "now" on the sandbox clock
    assert cut.status_code == 200
    from datetime import UTC, datetime

    state_now = client._transport.app.state.sandbox.now()  # type: ignore[attr-defined]
    as_of = datetime.fromtimestamp(state_now - 1, UTC).isoformat()
    await client.post(
        f"{DM}/audienceMembers:ingest", json=ingest_body(list_id, emails(new)), headers=AUTH
    )
    body = ingest_body(list_id, [])
    del body["audienceMembers"]
    body["removeAsOfTime"] = as_of
    response = await client.post(f"{DM}/audienceMembers:removeAll", json=body, headers=AUTH)
    assert "requestId" in response.json()
    [held] = await audiences(client, "google")
    assert held["identifiers"] == {"emailAddress": sorted(new)}


async def test_remove_takes_members_out(client: httpx.AsyncClient) -> None:
    list_id = await create_list(client)
    hashes = digests(3)
    await client.post(
        f"{DM}/audienceMembers:ingest", json=ingest_body(list_id, emails(hashes)), headers=AUTH
    )
    await client.post(
        f"{DM}/audienceMembers:remove", json=remove_body(list_id, emails(hashes[:1])), headers=AUTH
    )
    [held] = await audiences(client, "google")
    assert held["identifiers"] == {"emailAddress": sorted(hashes[1:])}


async def test_user_list_reports_size_info_and_match_rate(client: httpx.AsyncClient) -> None:
    list_id = await create_list(client)
    await client.post(
        f"{DM}/audienceMembers:ingest",
        json=ingest_body(list_id, emails(digests(1000))),
        headers=AUTH,
    )
    got = await client.get(
        f"{DM}/accountTypes/GOOGLE_ADS/accounts/1234567890/userLists/{list_id}", headers=AUTH
    )
    body = got.json()
    [held] = await audiences(client, "google")
    assert body["sizeInfo"]["displayNetworkMembersCount"] == str(held["matched"])
    rate = body["ingestedUserListInfo"]["contactIdInfo"]["matchRatePercentage"]
    assert rate == round(100 * int(held["matched"]) / 1000)


async def test_list_patch_and_delete_user_lists(client: httpx.AsyncClient) -> None:
    list_id = await create_list(client)
    base = f"{DM}/accountTypes/GOOGLE_ADS/accounts/1234567890/userLists"
    patched = await client.patch(
        f"{base}/{list_id}",
        params={"updateMask": "displayName"},
        json={"displayName": "New"},
        headers=AUTH,
    )
    assert patched.json()["displayName"] == "New"
    listed = await client.get(base, headers=AUTH)
    assert [u["id"] for u in listed.json()["userLists"]] == [list_id]
    assert (await client.delete(f"{base}/{list_id}", headers=AUTH)).json() == {}
    assert (await client.get(f"{base}/{list_id}", headers=AUTH)).status_code == 404


async def test_a_missing_token_is_401_unauthenticated(client: httpx.AsyncClient) -> None:
    response = await client.post(f"{DM}/audienceMembers:ingest", json={})
    assert response.status_code == 401
    assert response.json()["error"]["status"] == "UNAUTHENTICATED"
    assert response.json()["error"]["details"][0]["reason"] == "CREDENTIALS_MISSING"


async def test_the_refresh_grant_issues_a_token_that_works(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/google/token",
        data={
            "grant_type": "refresh_token",
            "client_id": "c",
            "client_secret": "s",
            "refresh_token": "sandbox-refresh-token",
        },
    )
    token = response.json()["access_token"]
    listed = await client.get(
        f"{DM}/accountTypes/GOOGLE_ADS/accounts/1/userLists",
        headers={"Authorization": f"Bearer {token}"},
    )
    assert listed.status_code == 200
    bad = await client.post(
        "/google/token",
        data={
            "grant_type": "refresh_token",
            "client_id": "c",
            "client_secret": "s",
            "refresh_token": "nope",
        },
    )
    assert bad.json()["error"] == "invalid_grant"


async def test_data_manager_answers_429_resource_exhausted_over_its_budget(
    client: httpx.AsyncClient,
) -> None:
    await client.put(
        "/_sandbox/rate_limits",
        json={"family": "google", "limit": {"requests": 1, "per_seconds": 60}},
    )
    base = f"{DM}/accountTypes/GOOGLE_ADS/accounts/1/userLists"
    assert (await client.get(base, headers=AUTH)).status_code == 200
    limited = await client.get(base, headers=AUTH)
    assert limited.status_code == 429
    assert limited.json()["error"]["status"] == "RESOURCE_EXHAUSTED"


async def ads_list(client: httpx.AsyncClient) -> str:
    body = {
        "operations": [
            {"create": {"name": "CM", "crmBasedUserList": {"uploadKeyType": "CONTACT_INFO"}}}
        ]
    }
    response = await client.post(f"{ADS}/userLists:mutate", json=body, headers=ADS_AUTH)
    return str(response.json()["results"][0]["resourceName"])


async def ads_job(client: httpx.AsyncClient, user_list: str) -> str:
    body = {
        "job": {
            "type": "CUSTOMER_MATCH_USER_LIST",
            "customerMatchUserListMetadata": {"userList": user_list},
        }
    }
    response = await client.post(f"{ADS}/offlineUserDataJobs:create", json=body, headers=ADS_AUTH)
    return str(response.json()["resourceName"]).rsplit("/", 1)[1]


async def test_the_ads_job_flow_uploads_with_partial_failure(client: httpx.AsyncClient) -> None:
    user_list = await ads_list(client)
    job = await ads_job(client, user_list)
    ops = [{"create": {"userIdentifiers": [{"hashedEmail": h}]}} for h in digests(3)]
    ops.append({"create": {"userIdentifiers": [{"hashedEmail": "not-a-hash"}]}})
    added = await client.post(
        f"{ADS}/offlineUserDataJobs/{job}:addOperations",
        json={"enablePartialFailure": True, "operations": ops},
        headers=ADS_AUTH,
    )
    failure = added.json()["partialFailureError"]["details"][0]["errors"][0]
    assert failure["errorCode"] == {"offlineUserDataJobError": "INVALID_SHA256_FORMAT"}
    assert failure["location"]["fieldPathElements"][0]["index"] == 3
    ran = await client.post(f"{ADS}/offlineUserDataJobs/{job}:run", json={}, headers=ADS_AUTH)
    assert ran.json()["name"].endswith(job)
    resource = f"customers/1234567890/offlineUserDataJobs/{job}"
    query = (
        "SELECT offline_user_data_job.status, "
        "offline_user_data_job.operation_metadata.match_rate_range FROM offline_user_data_job "
        f"WHERE offline_user_data_job.resource_name = '{resource}'"
    )
    found = await client.post(f"{ADS}/googleAds:search", json={"query": query}, headers=ADS_AUTH)
    assert found.json()["results"][0]["offlineUserDataJob"]["status"] == "RUNNING"
    await client.post("/_sandbox/clock", json={"advance_seconds": PROCESSED})
    found = await client.post(f"{ADS}/googleAds:search", json={"query": query}, headers=ADS_AUTH)
    assert found.json()["results"][0]["offlineUserDataJob"]["status"] == "SUCCESS"
    [held] = await audiences(client, "google")
    assert held["size"] == 3


async def test_without_partial_failure_one_bad_operation_fails_the_request(
    client: httpx.AsyncClient,
) -> None:
    job = await ads_job(client, await ads_list(client))
    ops = [{"create": {"userIdentifiers": [{"hashedEmail": "zz"}]}}]
    response = await client.post(
        f"{ADS}/offlineUserDataJobs/{job}:addOperations", json={"operations": ops}, headers=ADS_AUTH
    )
    assert response.status_code == 400


async def test_remove_all_must_come_first_in_a_job(client: httpx.AsyncClient) -> None:
    job = await ads_job(client, await ads_list(client))
    ops = [{"create": {"userIdentifiers": [{"hashedEmail": digests(1)[0]}]}}, {"removeAll": True}]
    response = await client.post(
        f"{ADS}/offlineUserDataJobs/{job}:addOperations", json={"operations": ops}, headers=ADS_AUTH
    )
    errors = response.json()["error"]["details"][0]["errors"]
    assert errors[0]["errorCode"] == {"offlineUserDataJobError": "INVALID_OPERATION_ORDER"}


async def test_two_running_jobs_on_one_list_are_a_concurrent_modification(
    client: httpx.AsyncClient,
) -> None:
    user_list = await ads_list(client)
    first, second = await ads_job(client, user_list), await ads_job(client, user_list)
    await client.post(f"{ADS}/offlineUserDataJobs/{first}:run", json={}, headers=ADS_AUTH)
    response = await client.post(
        f"{ADS}/offlineUserDataJobs/{second}:run", json={}, headers=ADS_AUTH
    )
    errors = response.json()["error"]["details"][0]["errors"]
    assert errors[0]["errorCode"] == {"databaseError": "CONCURRENT_MODIFICATION"}


async def test_the_user_list_query_reports_size_and_match_rate(client: httpx.AsyncClient) -> None:
    user_list = await ads_list(client)
    query = (
        "SELECT user_list.size_for_display, user_list.match_rate_percentage FROM user_list "
        f"WHERE user_list.resource_name = '{user_list}'"
    )
    found = await client.post(f"{ADS}/googleAds:search", json={"query": query}, headers=ADS_AUTH)
    assert found.json()["results"] == [
        {"userList": {"sizeForDisplay": "0", "matchRatePercentage": 0}}
    ]


async def test_an_expired_token_on_the_ads_api_is_oauth_token_expired(
    client: httpx.AsyncClient,
) -> None:
    await client.post("/_sandbox/faults", json={"kind": "expired_token", "platform": "googleads"})
    response = await client.post(
        f"{ADS}/userLists:mutate", json={"operations": []}, headers=ADS_AUTH
    )
    assert response.status_code == 401
    errors = response.json()["error"]["details"][0]["errors"]
    assert errors[0]["errorCode"] == {"authenticationError": "OAUTH_TOKEN_EXPIRED"}


async def test_ads_user_lists_are_removed_with_a_remove_operation(
    client: httpx.AsyncClient,
) -> None:
    user_list = await ads_list(client)
    body = {"operations": [{"remove": user_list}]}
    response = await client.post(f"{ADS}/userLists:mutate", json=body, headers=ADS_AUTH)
    assert response.json() == {"results": [{"resourceName": user_list}]}
    assert await audiences(client, "google") == []


async def test_a_mobile_id_list_refuses_contact_identifiers(client: httpx.AsyncClient) -> None:
    body = {
        "operations": [
            {
                "create": {
                    "name": "Apps",
                    "crmBasedUserList": {"uploadKeyType": "MOBILE_ADVERTISING_ID", "appId": "a"},
                }
            }
        ]
    }
    created = await client.post(f"{ADS}/userLists:mutate", json=body, headers=ADS_AUTH)
    job = await ads_job(client, created.json()["results"][0]["resourceName"])
    ops = [{"create": {"userIdentifiers": [{"hashedEmail": digests(1)[0]}]}}]
    response = await client.post(
        f"{ADS}/offlineUserDataJobs/{job}:addOperations", json={"operations": ops}, headers=ADS_AUTH
    )
    errors = response.json()["error"]["details"][0]["errors"]
    assert errors[0]["errorCode"] == {"offlineUserDataJobError": "INCOMPATIBLE_UPLOAD_KEY_TYPE"}


async def test_searching_jobs_ignores_other_customers_jobs(client: httpx.AsyncClient) -> None:
    await ads_job(client, await ads_list(client))
    other = "/googleads/v26/customers/555"
    query = "SELECT offline_user_data_job.status FROM offline_user_data_job"
    found = await client.post(f"{other}/googleAds:search", json={"query": query}, headers=ADS_AUTH)
    assert found.json()["results"] == []


async def test_a_missing_developer_token_is_refused(client: httpx.AsyncClient) -> None:
    response = await client.post(f"{ADS}/userLists:mutate", json={"operations": []}, headers=AUTH)
    assert response.status_code == 401


async def test_an_ingest_without_the_customer_match_terms_accepted_is_refused(
    client: httpx.AsyncClient,
) -> None:
    list_id = await create_list(client)
    for terms in (None, {"customerMatchTermsOfServiceStatus": "REJECTED"}):
        body = ingest_body(list_id, emails(digests(1)))
        body["termsOfService"] = terms
        response = await client.post(f"{DM}/audienceMembers:ingest", json=body, headers=AUTH)
        assert response.status_code == 400
        [info, bad] = response.json()["error"]["details"]
        assert info["reason"] == "TERMS_AND_CONDITIONS_NOT_SIGNED"
        assert bad["fieldViolations"][0]["field"].startswith("terms_of_service")
    assert (await audiences(client, "google"))[0]["size"] == 0


# --- consent -----------------------------------------------------------------------------------


async def status_once_processed(client: httpx.AsyncClient, request_id: str) -> dict[str, object]:
    await client.post("/_sandbox/clock", json={"advance_seconds": 24 * 3600})
    return await status_of(client, request_id)


async def test_a_member_who_denied_ad_personalization_is_not_used(
    client: httpx.AsyncClient,
) -> None:
    list_id = await create_list(client)
    members = emails(digests(2))
    members[0]["consent"] = {"adUserData": "CONSENT_GRANTED", "adPersonalization": "CONSENT_DENIED"}
    sent = await client.post(
        f"{DM}/audienceMembers:ingest", json=ingest_body(list_id, members), headers=AUTH
    )
    assert sent.status_code == 200, sent.text
    status = await status_once_processed(client, sent.json()["requestId"])
    assert status["requestStatus"] == "PARTIAL_SUCCESS"
    [held] = await audiences(client, "google")
    assert held["size"] == 1


async def test_a_member_s_own_consent_overrides_the_request_s(client: httpx.AsyncClient) -> None:
    list_id = await create_list(client)
    first, second = digests(2)
    members = emails([first, second])
    members[0]["consent"] = {"adUserData": "CONSENT_GRANTED"}
    body = ingest_body(list_id, members)
    body["consent"] = {"adUserData": "CONSENT_DENIED", "adPersonalization": "CONSENT_DENIED"}
    await client.post(f"{DM}/audienceMembers:ingest", json=body, headers=AUTH)
    [held] = await audiences(client, "google")
    assert held["identifiers"] == {"emailAddress": [first]}
    assert held["data_use"] == {f"emailAddress:{first}": {"adUserData": "CONSENT_GRANTED"}}


async def test_a_consent_outside_the_enum_is_invalid_argument(client: httpx.AsyncClient) -> None:
    list_id = await create_list(client)
    for consent in ("granted", {"adUserData": "GRANTED"}, {"adStorage": "CONSENT_GRANTED"}):
        body = ingest_body(list_id, emails(digests(1)))
        body["consent"] = consent
        response = await client.post(f"{DM}/audienceMembers:ingest", json=body, headers=AUTH)
        assert response.status_code == 400, consent
    members = emails(digests(1))
    members[0]["consent"] = {"adPersonalization": "DENIED"}
    response = await client.post(
        f"{DM}/audienceMembers:ingest", json=ingest_body(list_id, members), headers=AUTH
    )
    assert response.status_code == 400


async def test_a_removal_takes_neither_terms_of_service_nor_consent(
    client: httpx.AsyncClient,
) -> None:
    list_id = await create_list(client)
    body = ingest_body(list_id, emails(digests(1)))
    del body["termsOfService"]
    response = await client.post(f"{DM}/audienceMembers:remove", json=body, headers=AUTH)
    assert response.status_code == 400
    del body["consent"]
    response = await client.post(f"{DM}/audienceMembers:remove", json=body, headers=AUTH)
    assert response.status_code == 200, response.text


async def test_enums_sent_as_numbers_are_read_as_their_names(client: httpx.AsyncClient) -> None:
    created = await client.post(
        f"{DM}/accountTypes/GOOGLE_ADS/accounts/1234567890/userLists",
        params={"$alt": "json;enum-encoding=int"},
        json={"displayName": "Numbers", "ingestedUserListInfo": {"uploadKeyTypes": [1]}},
        headers=AUTH,
    )
    assert created.status_code == 200, created.text
    assert created.json()["ingestedUserListInfo"]["uploadKeyTypes"] == ["CONTACT_ID"]
    body = ingest_body(created.json()["id"], emails(digests(2)))
    body["encoding"] = 1
    body["termsOfService"] = {"customerMatchTermsOfServiceStatus": 1}
    body["consent"] = {"adUserData": 1, "adPersonalization": 1}
    for destination in body["destinations"]:  # type: ignore[attr-defined]
        destination["operatingAccount"]["accountType"] = 1
        destination["loginAccount"]["accountType"] = 1
    response = await client.post(f"{DM}/audienceMembers:ingest", json=body, headers=AUTH)
    assert response.status_code == 200, response.text
    assert (await audiences(client, "google"))[0]["size"] == 2


async def manage(client: httpx.AsyncClient, account: str, manager: str) -> None:
    response = await client.put(
        f"/_sandbox/google/managers/{account}", json={"manager_id": manager}
    )
    assert response.status_code == 200


async def test_a_managed_account_is_reached_only_through_its_manager(
    client: httpx.AsyncClient,
) -> None:
    list_id = await create_list(client)
    await manage(client, "1234567890", "9876543210")
    path = f"{DM}/accountTypes/GOOGLE_ADS/accounts/1234567890/userLists/{list_id}"
    refused = await client.get(path, headers=AUTH)
    assert refused.status_code == 403
    assert refused.json()["error"]["details"][0]["reason"] == "PERMISSION_DENIED"
    login = {"login-account": "accountTypes/GOOGLE_ADS/accounts/9876543210"}
    assert (await client.get(path, headers={**AUTH, **login})).status_code == 200
    wrong = {"login-account": "accountTypes/GOOGLE_ADS/accounts/555"}
    assert (await client.get(path, headers={**AUTH, **wrong})).status_code == 403
    body = ingest_body(list_id, emails(digests(1)))
    ok = await client.post(f"{DM}/audienceMembers:ingest", json=body, headers=AUTH)
    assert ok.status_code == 200  # ingest_body names the manager as loginAccount
    for destination in body["destinations"]:  # type: ignore[attr-defined]
        del destination["loginAccount"]
    for verb in ("ingest", "remove", "removeAll"):
        response = await client.post(f"{DM}/audienceMembers:{verb}", json=body, headers=AUTH)
        assert response.status_code == 403, verb


async def test_a_managers_own_manager_may_operate_the_account(client: httpx.AsyncClient) -> None:
    list_id = await create_list(client)
    await manage(client, "1234567890", "111")
    await manage(client, "111", "9876543210")
    body = ingest_body(list_id, emails(digests(1)))
    response = await client.post(f"{DM}/audienceMembers:ingest", json=body, headers=AUTH)
    assert response.status_code == 200
