"""Google Customer Match over the Data Manager API v1 (the default Google path).

Contract: docs/platforms/google.md §2.3a (endpoints), §2.4 (identifiers), §2.5 (limits),
§2.6 (errors). A list holds one key type: contact info (email, phone, address) or mobile ids
(with the app id), chosen at creation by `options["list_type"]` (`contact` | `mobile`).

The connection's settings come in `options["connection"]`: `login_account_id` (a manager
account the credentials' user belongs to, sent with every call that takes it) and
`customer_match_terms_accepted` (the user's acceptance of the Customer Match terms, required
before any upload).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

import httpx
import polars as pl

from audience_sync.config import Settings
from audience_sync.connectors.access import (
    AccessCheck,
    AdAccount,
    NotSupportedError,
    passed,
    verdict,
)
from audience_sync.connectors.base import (
    BaseAudienceConnector,
    Batch,
    BatchOutcome,
    Capabilities,
    Operation,
    Prepared,
)
from audience_sync.connectors.columnar import text_pairs
from audience_sync.connectors.google.errors import (
    TERMS_ADVICE,
    TERMS_URL,
    google_error,
    google_token_url,
    percent_to_fraction,
    status_check,
)
from audience_sync.connectors.google.records import (
    ADDRESS_FIELDS,
    CONTACT_FIELDS,
    CONTACT_KEYS,
    MAX_IDENTIFIERS,
    GoogleShape,
)
from audience_sync.connectors.http import RateLimit
from audience_sync.connectors.processing import RequestCheck
from audience_sync.connectors.records import hash_users
from audience_sync.domain.data_use import (
    CONSENT_FIELDS,
    audience_consent,
    is_denied,
    member_consent,
    wire_consent,
)
from audience_sync.domain.models import AudienceConfig, AudienceSyncResult, AudienceUser
from audience_sync.exceptions import (
    AudienceSyncError,
    NotFoundError,
    ValidationError,
)
from audience_sync.identifiers import Field

# OAuth scopes [SEEN: docs/platforms/google.md; googleapis Data Manager client AUTH_SCOPES].
DATA_MANAGER_SCOPE = "https://www.googleapis.com/auth/datamanager"
ADS_SCOPE = "https://www.googleapis.com/auth/adwords"
SCOPE_REASON = "ACCESS_TOKEN_SCOPE_INSUFFICIENT"  # 403 PERMISSION_DENIED's detail reason
EXPIRED_REASONS = {"ACCESS_TOKEN_EXPIRED", "OAUTH_TOKEN_EXPIRED"}
ADDRESS_PARTS = ("givenName", "familyName", "regionCode", "postalCode")
CONSENT_KEYS = frozenset(CONSENT_FIELDS.values())  # a member's own consent, in its record


def own_consent(user: AudienceUser) -> dict[str, str | None]:
    """The consent a user's profile gives, by column (None: unspecified)."""
    return {column: getattr(user, column) for column in CONSENT_FIELDS}


class GoogleAudienceConnector(BaseAudienceConnector):
    PLATFORM_NAME = "google"
    RECORD_SHAPE = GoogleShape()
    CAPABILITIES = Capabilities(
        batch_limit=10_000,  # audience members per request (docs/platforms/google.md §2.5)
        rate_limit=RateLimit(requests=300, per_seconds=60),  # per Cloud project (§2.5)
        refreshes_tokens=True,
    )
    API = "Data Manager"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.key_types: dict[str, str] = {}  # list id → CONTACT_ID | MOBILE_ID

    def connection_setting(self, name: str) -> Any:
        """One of the connection's settings (`options["connection"]`), or None."""
        settings = self.options.get("connection")
        return settings.get(name) if isinstance(settings, dict) else None

    @property
    def login_account(self) -> str | None:
        """The manager account the calls go through, if any. The connection's
        `login_account_id`; credentials stored with `login_customer_id` still count."""
        found = self.connection_setting("login_account_id") or self.credentials.login_customer_id
        return str(found) if found else None

    def require_terms(self, audience_id: str | None = None) -> None:
        """Refuse to upload before the connection records the Customer Match terms accepted:
        Google requires them for every upload of user or mobile data [SEEN: googleapis/googleapis
        google/ads/datamanager/v1/terms_of_service.proto]."""
        if self.connection_setting("customer_match_terms_accepted") is not True:
            raise ValidationError(
                TERMS_ADVICE.format(url=TERMS_URL), platform="google", audience_id=audience_id
            )

    @classmethod
    def default_base_url(cls, settings: Settings) -> str:
        return settings.google_base_url

    def token_url(self, base_url: str) -> str | None:
        return google_token_url(base_url)

    def translate(self, status: int, body: Any, headers: httpx.Headers) -> AudienceSyncError | None:
        if status < 400:
            return None
        return google_error(status, body, self.API)

    def _account(self, audience_id: str | None = None) -> str:
        if not self.ad_account_id:
            raise ValidationError(
                "Google calls need the operating account: build the connector with ad_account_id",
                platform=self.PLATFORM_NAME,
                audience_id=audience_id,
            )
        return self.ad_account_id

    def _list_path(self, audience_id: str = "") -> str:
        path = f"accountTypes/GOOGLE_ADS/accounts/{self._account(audience_id)}/userLists"
        return f"{path}/{audience_id}" if audience_id else path

    def _list_headers(self) -> dict[str, str]:
        """Every user-list call takes the `login-account` header [SEEN: googleapis/googleapis
        google/ads/datamanager/v1/user_list_service.proto, "Authorization Headers"]."""
        login = self.login_account
        return {"login-account": f"accountTypes/GOOGLE_ADS/accounts/{login}"} if login else {}

    # --- members --------------------------------------------------------------------------

    async def key_type(self, audience_id: str) -> str:
        """The list's key type, as it was created: `options["list_type"]` (an audience's options
        never change after creation), or what this connector created. Never read from Google,
        so no add or remove waits on a read of the list."""
        if audience_id not in self.key_types:
            mobile = self.options.get("list_type") == "mobile"
            self.key_types[audience_id] = "MOBILE_ID" if mobile else "CONTACT_ID"
        return self.key_types[audience_id]

    async def records_for(self, audience_id: str, users: Sequence[AudienceUser]) -> Prepared:
        return self.members(users, mobile=await self.mobile_list(audience_id))

    async def mobile_list(self, audience_id: str) -> bool:
        return await self.key_type(audience_id) == "MOBILE_ID"

    def members(self, users: Sequence[AudienceUser], *, mobile: bool) -> Prepared:
        """One member a user: its identifiers (≤10), or its mobile ids for a mobile-id list,
        then its own consent if it has one. A member who denied consent is not sent."""
        region = self.default_region
        fields = [Field.MOBILE_ID] if mobile else CONTACT_FIELDS
        audience = self.audience_consent()
        consents = [member_consent(own_consent(u), audience) for u in users]
        kept = [i for i, c in enumerate(consents) if not is_denied(audience if c is None else c)]
        hashed = hash_users(
            [users[i] for i in kept], self.PLATFORM_NAME, fields, default_region=region
        )
        prepared = Prepared(users=len(users), dropped=hashed.dropped)
        if len(kept) < len(users):
            prepared.dropped["consent_denied"] += len(users) - len(kept)
        for j, i in enumerate(kept):
            identifiers = self.identifiers(hashed, j, mobile)[:MAX_IDENTIFIERS]
            if not identifiers:
                prepared.dropped["no_usable_identifier"] += 1
                continue
            consent = consents[i]
            if consent is not None:  # the member's own: sent on the member, not the request
                identifiers.append({"consent": wire_consent(consent)})
            prepared.add(identifiers, i)
        return prepared

    def audience_consent(self) -> dict[str, str | None]:
        """The consent of members without their own (`domain.data_use.audience_consent`)."""
        return audience_consent(self.options)

    def identifiers(self, hashed: Any, i: int, mobile: bool) -> list[Any]:
        if mobile:
            return list(hashed.of(Field.MOBILE_ID, i))
        found: list[Any] = [
            {key: v} for name, key in CONTACT_KEYS.items() for v in hashed.of(name, i)
        ]
        parts = [hashed.first(f, i) for f in ADDRESS_FIELDS]
        if all(parts):  # an address only with all four parts (docs/normalization.md)
            found.append({"address": dict(zip(ADDRESS_PARTS, parts, strict=True))})
        return found

    def _destination(self, audience_id: str) -> dict[str, Any]:
        account = {"accountType": "GOOGLE_ADS", "accountId": self._account(audience_id)}
        destination: dict[str, Any] = {
            "operatingAccount": account,
            "productDestinationId": audience_id,
        }
        if self.login_account:  # [SEEN: destination.proto `login_account`]
            destination["loginAccount"] = {
                "accountType": "GOOGLE_ADS",
                "accountId": self.login_account,
            }
        return destination

    async def begin(self, op: Operation, audience_id: str, prepared: Prepared, batches: int) -> Any:
        if op is not Operation.REMOVE:
            self.require_terms(audience_id)
        mobile = await self.mobile_list(audience_id)
        return {"requests": [], "mobile": mobile, "field_warnings": Counter()}

    def record_pairs(self, prepared: Prepared, record: Any) -> list[tuple[str, str]]:
        pairs: list[tuple[str, str]] = []
        for item in record:
            if isinstance(item, str):  # a mobile-id list's member is the raw id itself
                pairs.append(("mobileId", item))
                continue
            ((key, value),) = item.items()
            if key == "consent":  # the member's own consent: one pair a field
                pairs.extend(value.items())
                continue
            if key == "address":
                value = "|".join(value[part] for part in ADDRESS_PARTS)
            pairs.append((key, value))
        return pairs

    def prepared_from_records(self, records: Sequence[Sequence[tuple[str, str]]]) -> Prepared:
        prepared = Prepared(users=len(records))
        for i, pairs in enumerate(records):
            prepared.add([self.wire_item(key, value) for key, value in pairs], i)
        return prepared

    def prepared_from_texts(self, texts: pl.Series) -> Prepared | None:
        """`prepared_from_records` of the records' text, split in columns (no JSON decoding):
        the pairs come out of Polars, grouped back into their records here."""
        pairs = text_pairs(texts)
        if pairs is None:
            return None
        records: list[list[tuple[str, str]]] = [[] for _ in range(len(texts))]
        columns = (pairs[name].to_list() for name in ("i", "key", "value"))
        for i, key, value in zip(*columns, strict=True):
            records[i].append((key, value))
        return self.prepared_from_records(records)

    def wire_item(self, key: str, value: str) -> Any:
        """One identifier of a member, as `record_pairs` named it, back in wire form."""
        if key == "mobileId":
            return value
        if key in CONSENT_KEYS:
            return {"consent": {key: value}}
        if key == "address":
            return {"address": dict(zip(ADDRESS_PARTS, value.split("|"), strict=True))}
        return {key: value}

    async def send_batch(
        self, op: Operation, audience_id: str, batch: Batch, state: Any
    ) -> BatchOutcome:
        adding = op is not Operation.REMOVE
        members = [self.wire_member(record, state["mobile"], adding) for record in batch.records]
        body: dict[str, Any] = {
            "destinations": [self._destination(audience_id)],
            "audienceMembers": members,
            "encoding": "HEX",
        }
        # The audience's (or connection's) consent on the request; a member's own on the member
        # overrides it. [SEEN: googleapis google/ads/datamanager/v1/ingestion_service.proto]
        consent = wire_consent(self.audience_consent())
        if consent and adding:
            body["consent"] = consent
        if op is not Operation.REMOVE:  # accepted: `begin` refused the upload otherwise
            body["termsOfService"] = {"customerMatchTermsOfServiceStatus": "ACCEPTED"}
        verb = "remove" if op is Operation.REMOVE else "ingest"
        answer = await self.http.request(
            "POST",
            f"audienceMembers:{verb}",
            json=body,
            audience_id=audience_id,
            batch=batch.index,
        )
        request_id = str(answer.get("requestId", ""))
        state["requests"].append(request_id)
        # Row-level, non-blocking warnings (IngestAudienceMembersResponse.field_warnings):
        # counted by reason, never the field paths' values.
        warnings = [w for w in answer.get("fieldWarnings") or [] if isinstance(w, dict)]
        state["field_warnings"].update(str(w.get("reason", "UNSPECIFIED")) for w in warnings)
        return BatchOutcome(received=len(batch.records), request_id=request_id)

    @staticmethod
    def wire_member(record: Sequence[Any], mobile: bool, adding: bool) -> dict[str, Any]:
        """An `AudienceMember` of a record: its identifiers, and its own consent when adding
        (a removal carries none: [INFER] consent speaks to how data is used, not who leaves)."""
        ids: list[Any] = []
        consent: dict[str, str] = {}
        for item in record:
            if isinstance(item, dict) and "consent" in item:
                consent.update(item["consent"])
            else:
                ids.append(item)
        member: dict[str, Any] = (
            {"mobileData": {"mobileIds": ids}} if mobile else {"userData": {"userIdentifiers": ids}}
        )
        if consent and adding:
            member["consent"] = consent
        return member

    async def finish(
        self, op: Operation, audience_id: str, state: Any, result: AudienceSyncResult
    ) -> None:
        """Nothing to wait for: each request is accepted, and processed in 30 minutes to 24
        hours. Its status is read later, on Google's schedule (`check_request`)."""
        result.details["requests_pending"] = len(state["requests"])
        if state["field_warnings"]:
            result.details["field_warnings"] = dict(state["field_warnings"])

    async def check_request(self, request_id: str, audience_id: str) -> RequestCheck:
        """One `requestStatus:retrieve`: how the request stands at its (only) destination."""
        body = await self.http.request(
            "GET",
            "requestStatus:retrieve",
            params={"requestId": request_id},
            audience_id=audience_id,
        )
        statuses = body.get("requestStatusPerDestination") or [{}]
        return status_check(request_id, statuses[0])

    async def remove_all_as_of(self, audience_id: str, as_of: str) -> str | None:
        """A replace's second half: remove the members last added before `as_of`."""
        answer = await self.http.request(
            "POST",
            "audienceMembers:removeAll",
            json={"destinations": [self._destination(audience_id)], "removeAsOfTime": as_of},
            audience_id=audience_id,
        )
        return str(answer.get("requestId", ""))

    async def replace_audience(
        self, audience_id: str, users: Sequence[AudienceUser]
    ) -> AudienceSyncResult:
        # Record T and ingest the full list. Google's route then waits for every ingest request
        # to finish and removes what was last added before T ("Remove all members from an
        # audience", docs/platforms/google.md §2.3a): the confirmation step does that half
        # (`details["remove_all_as_of"]`), so no worker waits on Google's processing.
        started = datetime.now(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")
        prepared = await self.records_for(audience_id, users)
        result = await self.upload(Operation.ADD, audience_id, prepared)
        result.details["replace"] = "ingest_then_remove_all_as_of_start"
        result.details["remove_all_as_of"] = started
        return result

    # --- lists ----------------------------------------------------------------------------

    async def create(self, config: AudienceConfig) -> str:
        self.require_terms()  # no list is made for members that could never be uploaded
        self.ad_account_id = self.ad_account_id or config.ad_account_id
        options = {**self.options, **config.options}
        mobile = options.get("list_type") == "mobile"
        info: dict[str, Any] = {"uploadKeyTypes": ["MOBILE_ID" if mobile else "CONTACT_ID"]}
        if mobile:
            if not options.get("app_id"):
                raise ValidationError(
                    "A Google mobile-id list needs options['app_id']", platform="google"
                )
            info["mobileIdInfo"] = {
                "appId": options["app_id"],
                "keySpace": options.get("key_space", "IOS"),
            }
        days = int(options.get("membership_days", 540))
        body = await self.http.request(
            "POST",
            self._list_path(),
            json={
                "displayName": config.name,
                "description": config.description or "",
                "membershipDuration": f"{days * 86400}s",
                "ingestedUserListInfo": info,
            },
            headers=self._list_headers(),
            idempotent=False,
        )
        list_id = str(body["id"])
        self.key_types[list_id] = info["uploadKeyTypes"][0]
        return list_id

    async def delete(self, audience_id: str) -> None:
        await self.http.request(
            "DELETE",
            self._list_path(audience_id),
            headers=self._list_headers(),
            audience_id=audience_id,
        )
        self.key_types.pop(audience_id, None)

    async def info(self, audience_id: str) -> dict[str, Any]:
        body = await self.http.request(
            "GET",
            self._list_path(audience_id),
            headers=self._list_headers(),
            audience_id=audience_id,
        )
        sizes = body.get("sizeInfo") or {}
        contact = (body.get("ingestedUserListInfo") or {}).get("contactIdInfo") or {}
        size = sizes.get("displayNetworkMembersCount")
        return {
            "id": str(body.get("id", audience_id)),
            "name": body.get("displayName"),
            "size": int(size) if size is not None else None,
            "match_rate": percent_to_fraction(contact.get("matchRatePercentage")),
            "status": body.get("membershipStatus"),
            "ready": bool((body.get("targetNetworkInfo") or {}).get("eligibleForDisplay")),
            "platform": body,
        }

    # --- connection test, discovery, revocation (docs/connections.md, Google) ---------------

    def _ads_url(self, path: str) -> str:
        """A Google Ads API URL: this connector's own base on the Ads path, the sandbox's Ads
        API beside its Data Manager API, else the settings' Ads API."""
        parts = urlsplit(self.base_url)
        if parts.path.startswith("/googleads/") or parts.netloc.startswith("googleads."):
            return f"{self.base_url}/{path}"
        if parts.path.startswith("/google/"):
            version = self.settings.google_ads_base_url.rstrip("/").rsplit("/", 1)[-1]
            return f"{parts.scheme}://{parts.netloc}/googleads/{version}/{path}"
        return f"{self.settings.google_ads_base_url.rstrip('/')}/{path}"

    async def _accessible(self) -> list[str]:
        """`customers:listAccessibleCustomers` (needs the developer token)."""
        developer = self.credentials.developer_token
        if not developer:
            raise NotSupportedError(
                "Listing Google accounts takes the Google Ads API's developer token "
                "(AUDIENCE_SYNC_GOOGLE_DEVELOPER_TOKEN, or developer_token with the connection)."
            )
        body = await self.http.request(
            "GET",
            self._ads_url("customers:listAccessibleCustomers"),
            headers={"developer-token": developer},
        )
        names = (body or {}).get("resourceNames") or []
        return [str(name).removeprefix("customers/") for name in names]

    async def test_access(self) -> AccessCheck:
        """With a developer token: `listAccessibleCustomers`, and the connection's account
        among them. Without: the Data Manager API's user lists of the account (one page)."""
        account = self.ad_account_id or ""
        scope = ADS_SCOPE if self.credentials.developer_token else DATA_MANAGER_SCOPE
        try:
            if self.credentials.developer_token:
                reached = await self._accessible()
            else:
                params = {"pageSize": "1"}
                await self.http.request(
                    "GET", self._list_path(), params=params, headers=self._list_headers()
                )
                reached = [account]
        except AudienceSyncError as exc:
            reasons = set(exc.details.get("reasons") or ())
            return verdict(
                "Google",
                account,
                exc,
                expired=bool(reasons & EXPIRED_REASONS),
                missing_scope=scope if SCOPE_REASON in reasons else None,
            )
        if account not in reached:
            refused = NotFoundError("not among the accessible customers")
            return verdict("Google", account, refused, unknown_account=True)
        return passed("Google", account, None)

    async def list_ad_accounts(self) -> list[AdAccount]:
        return [AdAccount(customer) for customer in await self._accessible()]

    async def revoke_access(self) -> bool:
        """`POST /revoke` with the refresh token (its access tokens go with it), else the
        access token [SEEN: web-server guide, "Revoking a token"]."""
        token = self.credentials.refresh_token or self.http.tokens.token
        parts = urlsplit(self.base_url)
        url = self.settings.google_revoke_url
        if parts.path.startswith(("/google/", "/googleads/")):  # the sandbox's, beside its API
            url = f"{parts.scheme}://{parts.netloc}/google/revoke"
        await self.http.request("POST", url, data={"token": token})
        return True
