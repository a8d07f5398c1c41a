"""TikTok custom audiences (API for Business v1.3): segment-API audiences, `segment/mapping`.

Audiences are made with `segment/audience` (partner audiences) and their members added and
deleted with `segment/mapping`. TikTok's only replace, a customer-file `REPLACE`, works on
Customer File audiences alone, so these audiences have no replace: the sync engine replaces
them by difference (`Capabilities.replace_by_difference`, docs/connectors.md). TikTok answers
errors with HTTP 200: the envelope's `code` decides, never the status alone (docs/connectors.md).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

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
from audience_sync.connectors.columnar import rows_by_key, text_pairs
from audience_sync.connectors.http import RateLimit
from audience_sync.connectors.records import hash_users
from audience_sync.connectors.tiktok.records import SCHEMA, TikTokShape, mobile_id_schema
from audience_sync.domain.models import AudienceConfig, AudienceSyncResult, AudienceUser
from audience_sync.exceptions import (
    AudienceSyncError,
    AuthExpiredError,
    InvalidRecordsError,
    NotFoundError,
    PlatformRequestError,
    PlatformServerError,
    RateLimitError,
    ValidationError,
    platform_error_for_status,
)
from audience_sync.identifiers import Field

# Return codes, from TikTok's SDK (tiktok/tiktok-business-api-sdk:
# python_sdk/business_api_client/tiktok_business/tiktok_code.py, `NumericErrorCodes`) [SEEN].
# Which of them a retry can cure is ours [INFER], after their names.
_RATE = {
    40016,  # ERROR_CODE_BIZ_FC_ERROR (a frequency-control refusal)
    40100,  # ERROR_CODE_REQUEST_TOO_FREQUENT
    40132,  # ERROR_CODE_REQUEST_FREQUENCY_LIMITED
    40133,  # advertiser-level QPS: not in the SDK, quoted by public clients [INFER]
}
_AUTH = {
    40102,  # ERROR_CODE_ACCESS_TOKEN_EXPIRE
    40104,  # ERROR_CODE_EMPTY_ACCESS_TOKEN
    40105,  # ERROR_CODE_INVALID_ACCESS_TOKEN
    40107,  # ERROR_CODE_INVALID_REFRESH_TOKEN
    40114,  # ERROR_CODE_ADVERTISER_LOGOUT
}
_PERMISSION = {
    40001,  # ERROR_CODE_PERMISSION_ERROR: the app or user may not act for this advertiser
    40003,  # ERROR_CODE_FORBIDDEN
    40113,  # ERROR_CODE_APP_FORBIDDEN
    40130,  # ERROR_CODE_SCOPE_NOT_AUTHORIZED
}
TOKEN_EXPIRED = 40102
NO_PERMISSION = 40001
_PARAMS = {40000, 40002}  # ERROR_CODE_INVALID_PARAMS, ERROR_CODE_PARAM_ERROR
_NOT_FOUND = {40007, 40300}  # ERROR_CODE_NOT_EXIST, ERROR_CODE_ADVERTISER_NOT_EXIST
_TRANSIENT = {
    40200,  # ERROR_CODE_GENERAL_TASK_ERROR
    40201,  # ERROR_CODE_TASK_NOT_READY
    40202,  # ERROR_CODE_WRITE_CONFLICT
    50000,  # ERROR_CODE_SYS_ERROR
    50002,  # ERROR_CODE_SYS_TIMEOUT
}  # and 51000-51999: internal services' errors (ERROR_CODE_RPC_ERROR, ERROR_CODE_DMP_ERROR…)
_RECORD_MARKERS = ("batch_data[",)  # how the refusal names an entry: the sandbox's [INFER]


class TikTokAudienceConnector(BaseAudienceConnector):
    PLATFORM_NAME = "tiktok"
    RECORD_SHAPE = TikTokShape()
    CAPABILITIES = Capabilities(
        # No published limit for segment/mapping; 10,000 is the sandbox's ceiling [INFER]. The
        # size sent is `AUDIENCE_SYNC_TIKTOK_MAPPING_BATCH_SIZE` (1,000), see `batch_size`.
        batch_limit=10_000,
        rate_limit=RateLimit(requests=10, per_seconds=1),  # QPS figure not documented [INFER]
        refreshes_tokens=False,  # tokens do not expire unless revoked
        replace_by_difference=True,
    )

    @property
    def batch_size(self) -> int:
        """Users per `segment/mapping` call: the TikTok setting, within the general bound."""
        limit = min(self.CAPABILITIES.batch_limit, self.settings.tiktok_mapping_batch_size)
        return min(limit, self.settings.max_batch_size)

    @classmethod
    def default_base_url(cls, settings: Settings) -> str:
        return settings.tiktok_base_url

    def auth_headers(self, token: str) -> dict[str, str]:
        return {"Access-Token": token}

    def translate(self, status: int, body: Any, headers: httpx.Headers) -> AudienceSyncError | None:
        code = body.get("code") if isinstance(body, dict) else None
        if not isinstance(code, int):
            if status < 400:
                return PlatformRequestError(f"TikTok answered HTTP {status} without a code")
            return platform_error_for_status(status, f"TikTok answered HTTP {status}")
        if code == 0 and status < 400:
            return None
        text = str(body.get("message", ""))
        message = f"TikTok error {code}: {text}"
        kwargs: dict[str, Any] = {
            "status_code": status,
            "details": {"code": code, "request_id": body.get("request_id")},
        }
        if code in _RATE:
            return RateLimitError(message, **kwargs)
        if code in _AUTH:
            return AuthExpiredError(message, **kwargs)
        if code in _PARAMS:
            if text.startswith(_RECORD_MARKERS):
                return InvalidRecordsError(message, **kwargs)
            return ValidationError(message, **kwargs)
        if code in _NOT_FOUND:
            return NotFoundError(message, **kwargs)
        if code in _TRANSIENT or 51000 <= code < 52000:
            return PlatformServerError(message, **kwargs)
        return PlatformRequestError(message, **kwargs)  # _PERMISSION and the rest: no retry

    def _advertiser(self, audience_id: str | None = None) -> str:
        if not self.ad_account_id:
            raise ValidationError(
                "TikTok calls need the advertiser id: build the connector with ad_account_id",
                platform=self.PLATFORM_NAME,
                audience_id=audience_id,
            )
        return self.ad_account_id

    def prepare(self, users: Sequence[AudienceUser]) -> Prepared:
        region = self.default_region
        fields = [Field.EMAIL, Field.PHONE, Field.MOBILE_ID]
        hashed = hash_users(users, self.PLATFORM_NAME, fields, default_region=region)
        prepared = Prepared(users=len(users), dropped=hashed.dropped)
        for i in range(len(users)):
            ids = hashed.of(Field.MOBILE_ID, i)
            kinds = hashed.mobile_kinds[i] if hashed.mobile_kinds else []
            columns = [hashed.of(Field.EMAIL, i), hashed.of(Field.PHONE, i), [], []]
            for digest, kind in zip(ids, kinds, strict=True):
                schema = mobile_id_schema(kind.value if kind else None)
                columns[SCHEMA.index(schema)].append(digest)
            rows = max(len(c) for c in columns)
            if not rows:
                prepared.dropped["no_usable_identifier"] += 1
            for k in range(rows):  # several emails: several rows sharing nothing else
                prepared.add(tuple(c[k] if k < len(c) else None for c in columns), i)
        return prepared

    def record_pairs(self, prepared: Prepared, record: Any) -> list[tuple[str, str]]:
        return [(key, value) for key, value in zip(SCHEMA, record, strict=True) if value]

    def prepared_from_records(self, records: Sequence[Sequence[tuple[str, str]]]) -> Prepared:
        prepared = Prepared(users=len(records))
        for i, pairs in enumerate(records):
            found = dict(pairs)
            prepared.add(tuple(found.get(key) for key in SCHEMA), i)
        return prepared

    def prepared_from_texts(self, texts: pl.Series) -> Prepared | None:
        """`prepared_from_records` of the records' text, in columns (a pivot to the schema)."""
        pairs = text_pairs(texts)
        if pairs is None:
            return None
        prepared = Prepared(users=len(texts))
        prepared.records = rows_by_key(pairs, SCHEMA, None)
        prepared.owners = list(range(len(texts)))
        return prepared

    async def send_batch(
        self, op: Operation, audience_id: str, batch: Batch, state: Any
    ) -> BatchOutcome:
        used = [j for j in range(len(SCHEMA)) if any(row[j] for row in batch.records)]
        targets = [audience_id]
        body = await self.http.request(
            "POST",
            "segment/mapping/",
            json={
                "advertiser_ids": [self._advertiser(audience_id)],
                "action": "add" if op is Operation.ADD else "delete",
                "id_schema": [SCHEMA[j] for j in used],
                "batch_data": [
                    [{"id": row[j], "audience_ids": targets} if row[j] else {} for j in used]
                    for row in batch.records
                ],
            },
            audience_id=audience_id,
            batch=batch.index,
        )
        return BatchOutcome(received=len(batch.records), request_id=body.get("request_id"))

    async def replace_audience(
        self, audience_id: str, users: Sequence[AudienceUser]
    ) -> AudienceSyncResult:
        """Refused: a segment-API audience has no replace, and what it holds is not readable."""
        raise ValidationError(
            "TikTok replaces only Customer File audiences, and this audience was made with the "
            "segment API; run a replace sync of the audience instead "
            "(`audience-sync audiences sync ID --operation replace`): it deletes the members it "
            "confirmed that are no longer in the segment and adds the rest",
            platform=self.PLATFORM_NAME,
            audience_id=audience_id,
        )

    async def create(self, config: AudienceConfig) -> str:
        self.ad_account_id = self.ad_account_id or config.ad_account_id
        body = await self.http.request(
            "POST",
            "segment/audience/",
            json={
                "advertiser_id": config.ad_account_id or self._advertiser(),
                "custom_audience_name": config.name,
                "action": "create",
            },
            idempotent=False,
        )
        return str(body["data"]["audience_id"])

    async def delete(self, audience_id: str) -> None:
        await self.http.request(
            "POST",
            "dmp/custom_audience/delete/",
            json={
                "advertiser_id": self._advertiser(audience_id),
                "custom_audience_ids": [audience_id],
            },
            audience_id=audience_id,
        )

    async def info(self, audience_id: str) -> dict[str, Any]:
        body = await self.http.request(
            "GET",
            "dmp/custom_audience/get/",
            params={
                "advertiser_id": self._advertiser(audience_id),
                "custom_audience_ids": json.dumps([audience_id]),
            },
            audience_id=audience_id,
        )
        details = body["data"]["list"][0]["audience_details"]
        return {
            "id": str(details.get("audience_id", audience_id)),
            "name": details.get("name"),
            "size": details.get("cover_num"),
            "status": "valid" if details.get("is_valid") else "not_valid",
            "ready": bool(details.get("is_valid")),
            "platform": details,
        }

    # --- connection test, discovery, revocation (docs/connections.md, TikTok) ---------------

    async def test_access(self) -> AccessCheck:
        """`GET advertiser/info/?advertiser_ids=["…"]`: 40102 expired, 40104/40105 bad token,
        40001 an advertiser the token may not act for."""
        advertiser = self.ad_account_id or ""
        try:
            body = await self.http.request(
                "GET", "advertiser/info/", params={"advertiser_ids": json.dumps([advertiser])}
            )
        except AudienceSyncError as exc:
            code = exc.details.get("code")
            return verdict(
                "TikTok",
                advertiser,
                exc,
                expired=code == TOKEN_EXPIRED,
                unknown_account=code == NO_PERMISSION,
            )
        rows = ((body or {}).get("data") or {}).get("list") or [{}]
        return passed("TikTok", advertiser, rows[0].get("name"))

    async def list_ad_accounts(self) -> list[AdAccount]:
        """`GET oauth2/advertiser/get/` (the advertisers that authorized the app): it takes
        the app's id and secret, stored with a connection made through OAuth."""
        app_id, secret = self.credentials.client_id, self.credentials.client_secret
        if not app_id or not secret:
            raise NotSupportedError(
                "TikTok lists advertisers only with the app's id and secret: connect through "
                "OAuth (or store client_id and client_secret with the token)."
            )
        body = await self.http.request(
            "GET", "oauth2/advertiser/get/", params={"app_id": app_id, "secret": secret}
        )
        rows = ((body or {}).get("data") or {}).get("list") or []
        return [AdAccount(str(r["advertiser_id"]), r.get("advertiser_name")) for r in rows]

    async def revoke_access(self) -> bool:
        """`POST oauth2/revoke_token/` with the app's id and secret (False without them)."""
        app_id, secret = self.credentials.client_id, self.credentials.client_secret
        if not app_id or not secret:
            return False
        body = {"app_id": app_id, "secret": secret, "access_token": self.http.tokens.token}
        await self.http.request("POST", "oauth2/revoke_token/", json=body)
        return True
