"""Google Customer Match over the Google Ads API v26 OfflineUserDataJob flow (allowlisted only).

Selected per connection with `options["google_api"] = "ads"`. Since 2026-04 the Ads API takes
Customer Match uploads only from developer tokens already allowlisted
(docs/platforms/google.md §2.1). Flow (§2.3b): create a job per operation (adds and removes
never share one), `addOperations` with partial failure mapped back to rows, `run`, then poll
the job; a replace is one job that opens with `removeAll`. `CONCURRENT_MODIFICATION` (another
job on the list) is retried.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from audience_sync.config import Settings
from audience_sync.connectors.base import Batch, BatchOutcome, Capabilities, Operation, Prepared
from audience_sync.connectors.google.connector import CONSENT_KEYS, GoogleAudienceConnector
from audience_sync.connectors.google.errors import percent_to_fraction
from audience_sync.connectors.processing import FAILED, PROCESSING, RequestCheck
from audience_sync.domain.models import AudienceConfig, AudienceSyncResult, AudienceUser
from audience_sync.exceptions import NotFoundError, ValidationError

UPLOAD_KEY_TYPES = {"CONTACT_ID": "CONTACT_INFO", "MOBILE_ID": "MOBILE_ADVERTISING_ID"}
ADS_KEYS = {"emailAddress": "hashedEmail", "phoneNumber": "hashedPhoneNumber"}
DM_KEYS = {ads: dm for dm, ads in ADS_KEYS.items()}
ADS_ADDRESS_PARTS = ("hashedFirstName", "hashedLastName", "countryCode", "postalCode")


def gaql(fields: str, resource: str, name: str) -> str:
    """A GAQL read of one resource by name (names are ours, built from numeric ids)."""
    return f"SELECT {fields} FROM {resource} WHERE {resource}.resource_name = '{name}'"  # noqa: S608


class GoogleAdsAudienceConnector(GoogleAudienceConnector):
    """The same members and lists as the Data Manager connector, through the Ads API."""

    CAPABILITIES = Capabilities(
        # ≤100,000 identifiers per request and ≤20 per operation (§2.5): 10,000 operations of
        # at most 10 identifiers each stay within both.
        batch_limit=10_000,
        rate_limit=None,  # no per-minute figure documented for addOperations (§2.5)
        refreshes_tokens=True,
    )
    API = "Google Ads"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.running: dict[str, str] = {}  # list id → the job this connector ran last on it

    @classmethod
    def default_base_url(cls, settings: Settings) -> str:
        return settings.google_ads_base_url

    def auth_headers(self, token: str) -> dict[str, str]:
        headers = super().auth_headers(token)
        if self.credentials.developer_token:
            headers["developer-token"] = self.credentials.developer_token
        if self.login_account:
            headers["login-customer-id"] = self.login_account
        return headers

    def _customer(self, audience_id: str | None = None) -> str:
        return f"customers/{self._account(audience_id)}"

    def _list_name(self, audience_id: str) -> str:
        if not audience_id.isdigit():  # it goes into GAQL: ids are numeric, nothing else
            raise ValidationError("A Google user list id is numeric", platform="google")
        return f"{self._customer(audience_id)}/userLists/{audience_id}"

    async def _search(self, query: str, audience_id: str | None = None) -> list[dict[str, Any]]:
        body = await self.http.request(
            "POST",
            f"{self._customer(audience_id)}/googleAds:search",
            json={"query": query},
            audience_id=audience_id,
        )
        rows: list[dict[str, Any]] = body.get("results") or []
        return rows

    async def _list(self, audience_id: str) -> dict[str, Any]:
        rows = await self._search(
            gaql(
                "user_list.name, user_list.size_for_display, user_list.size_for_search, "
                "user_list.match_rate_percentage, user_list.crm_based_user_list.upload_key_type",
                "user_list",
                self._list_name(audience_id),
            ),
            audience_id,
        )
        if not rows:
            raise NotFoundError(
                "No such user list in the account", platform="google", audience_id=audience_id
            )
        found: dict[str, Any] = rows[0]["userList"]
        return found

    def identifiers(self, hashed: Any, i: int, mobile: bool) -> list[Any]:
        if mobile:
            return [{"mobileId": v} for v in super().identifiers(hashed, i, mobile)]
        found = []
        for ident in super().identifiers(hashed, i, mobile):
            ((key, value),) = ident.items()
            if key == "address":
                value = {
                    "hashedFirstName": value["givenName"],
                    "hashedLastName": value["familyName"],
                    "countryCode": value["regionCode"],
                    "postalCode": value["postalCode"],
                }
                found.append({"addressInfo": value})
            else:
                found.append({ADS_KEYS[key]: value})
        return found

    def record_pairs(self, prepared: Prepared, record: Any) -> list[tuple[str, str]]:
        # Named as the Data Manager connector names them, so both paths share one snapshot form.
        pairs: list[tuple[str, str]] = []
        for item in record:
            ((key, value),) = item.items()
            if key == "consent":  # the member's own consent, named as Data Manager names it
                pairs.extend(value.items())
            elif key == "addressInfo":
                parts = [value[part] for part in ADS_ADDRESS_PARTS]
                pairs.append(("address", "|".join(parts)))
            else:
                pairs.append((DM_KEYS.get(key, key), value))
        return pairs

    def wire_item(self, key: str, value: str) -> Any:
        if key == "mobileId":
            return {"mobileId": value}
        if key in CONSENT_KEYS:
            return {"consent": {key: value}}
        if key == "address":
            return {"addressInfo": dict(zip(ADS_ADDRESS_PARTS, value.split("|"), strict=True))}
        return {ADS_KEYS[key]: value}

    async def begin(self, op: Operation, audience_id: str, prepared: Prepared, batches: int) -> Any:
        if not batches and op is not Operation.REPLACE:
            return None
        if op is not Operation.REMOVE:
            # The Ads API has no terms field: the account accepts them in Google Ads. [INFER:
            # the same acceptance is asked of the connection before any upload, either API]
            self.require_terms(audience_id)
        metadata: dict[str, Any] = {"userList": self._list_name(audience_id)}
        if self.options.get("consent"):
            metadata["consent"] = self.options["consent"]
        body = await self.http.request(
            "POST",
            f"{self._customer(audience_id)}/offlineUserDataJobs:create",
            json={
                "job": {
                    "type": "CUSTOMER_MATCH_USER_LIST",
                    "customerMatchUserListMetadata": metadata,
                }
            },
            audience_id=audience_id,
        )
        job = str(body["resourceName"])
        if op is Operation.REPLACE:
            await self._add_operations(job, [{"removeAll": True}], audience_id, None)
        return {"job": job}

    async def _add_operations(
        self, job: str, operations: list[Any], audience_id: str, batch: int | None
    ) -> dict[str, Any]:
        body: dict[str, Any] = await self.http.request(
            "POST",
            f"{job}:addOperations",
            json={"enablePartialFailure": True, "operations": operations},
            audience_id=audience_id,
            batch=batch,
        )
        return body or {}

    async def send_batch(
        self, op: Operation, audience_id: str, batch: Batch, state: Any
    ) -> BatchOutcome:
        kind = "remove" if op is Operation.REMOVE else "create"
        # The Ads API path sends the job's consent only [INFER: member-level consent not
        # emulated here]; members who denied consent were already left out (`members`).
        operations = [
            {kind: {"userIdentifiers": [i for i in ids if "consent" not in i]}}
            for ids in batch.records
        ]
        body = await self._add_operations(state["job"], operations, audience_id, batch.index)
        failed: list[int] = []
        for detail in (body.get("partialFailureError") or {}).get("details") or []:
            for error in detail.get("errors") or []:
                path = (error.get("location") or {}).get("fieldPathElements") or []
                failed += [p["index"] for p in path if p.get("fieldName") == "operations"]
        return BatchOutcome(failed=failed, received=len(batch.records), invalid=len(failed))

    async def finish(
        self, op: Operation, audience_id: str, state: Any, result: AudienceSyncResult
    ) -> None:
        if state is None:
            return
        job = state["job"]
        # Google refuses to run a job while another on the list runs (CONCURRENT_MODIFICATION):
        # an upload after another in the same sync (adds, then removes) waits for that one.
        earlier = self.running.get(audience_id)
        if earlier is not None:
            await self.poll(lambda: self._ended(earlier, audience_id), "job")
        # Run the job and return: Google processes it in up to ~24 hours
        # (docs/platforms/google.md §2.5); its status is read later, on the confirmation step's
        # schedule (`check_request`).
        await self.http.request("POST", f"{job}:run", json={}, audience_id=audience_id)
        self.running[audience_id] = job
        result.request_ids.append(job)
        result.details["requests_pending"] = 1

    async def _ended(self, job: str, audience_id: str) -> RequestCheck | None:
        check = await self.check_request(job, audience_id)
        return check if check.done else None

    async def check_request(self, request_id: str, audience_id: str) -> RequestCheck:
        """One search of the job's status: PENDING/RUNNING read as still processing."""
        rows = await self._search(
            gaql(
                "offline_user_data_job.status, offline_user_data_job.failure_reason",
                "offline_user_data_job",
                request_id,
            ),
            audience_id,
        )
        row: dict[str, Any] = rows[0]["offlineUserDataJob"] if rows else {}
        status = str(row.get("status") or "")
        if status == "FAILED":
            reason = str(row.get("failureReason") or "UNSPECIFIED")
            return RequestCheck(request_id, FAILED, errors={reason: 0})
        return RequestCheck(request_id, status if status == "SUCCESS" else PROCESSING)

    async def remove_all_as_of(self, audience_id: str, as_of: str) -> str | None:
        """Nothing: a job's replace opens with `removeAll` and completes within the job."""
        return None

    async def replace_audience(
        self, audience_id: str, users: Sequence[AudienceUser]
    ) -> AudienceSyncResult:
        prepared = await self.records_for(audience_id, users)
        result = await self.upload(Operation.REPLACE, audience_id, prepared)
        result.details["replace"] = "job_remove_all_then_create"
        return result

    async def create(self, config: AudienceConfig) -> str:
        self.require_terms()
        self.ad_account_id = self.ad_account_id or config.ad_account_id
        options = {**self.options, **config.options}
        key_type = "MOBILE_ID" if options.get("list_type") == "mobile" else "CONTACT_ID"
        crm: dict[str, Any] = {
            "uploadKeyType": UPLOAD_KEY_TYPES[key_type],
            "dataSourceType": "FIRST_PARTY",
        }
        if key_type == "MOBILE_ID":
            crm["appId"] = options.get("app_id")
        create = {
            "name": config.name,
            "description": config.description or "",
            "membershipLifeSpan": str(options.get("membership_days", 540)),
            "crmBasedUserList": crm,
        }
        body = await self.http.request(
            "POST",
            f"{self._customer()}/userLists:mutate",
            json={"operations": [{"create": create}]},
            idempotent=False,
        )
        list_id = str(body["results"][0]["resourceName"]).rsplit("/", 1)[-1]
        self.key_types[list_id] = key_type
        return list_id

    async def delete(self, audience_id: str) -> None:
        await self.http.request(
            "POST",
            f"{self._customer(audience_id)}/userLists:mutate",
            json={"operations": [{"remove": self._list_name(audience_id)}]},
            audience_id=audience_id,
        )
        self.key_types.pop(audience_id, None)

    async def info(self, audience_id: str) -> dict[str, Any]:
        found = await self._list(audience_id)
        size = found.get("sizeForDisplay")
        return {
            "id": audience_id,
            "name": found.get("name"),
            "size": int(size) if size is not None else None,
            "match_rate": percent_to_fraction(found.get("matchRatePercentage")),
            "status": None,
            "ready": size is not None and int(size) >= 100,
            "platform": found,
        }
