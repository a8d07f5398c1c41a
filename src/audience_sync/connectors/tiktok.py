"""TikTok custom audiences (API for Business v1.3): segment mapping, file `REPLACE`, return codes.

Contract: shared/platforms/tiktok.md §3.3 (endpoints), §3.5 (limits), §3.6 (return codes).
TikTok answers errors with HTTP 200: the envelope's `code` decides, never the status alone.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from typing import Any

import httpx
import polars as pl

from audience_sync.config import Settings
from audience_sync.connectors.base import (
    BaseAudienceConnector,
    Batch,
    BatchOutcome,
    Capabilities,
    Operation,
    Prepared,
)
from audience_sync.connectors.http import RateLimit
from audience_sync.connectors.records import hash_users
from audience_sync.domain.models import AudienceConfig, AudienceSyncResult, AudienceUser
from audience_sync.domain.models import SyncPlatform as P
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
from audience_sync.identifiers import Field, tiktok_mobile_id_schema

SCHEMA = ("EMAIL_SHA256", "PHONE_SHA256", "IDFA_SHA256", "AAID_SHA256")
MIN_AUDIENCE = 1_000  # update operations fail below 1,000 members (tiktok.md §3.3)
FILES_PER_UPDATE = 49  # `file_paths`: fewer than 50 recommended (§3.3 B)

# Return codes (§3.6).
_RATE = {40100, 40133, 40016, 40132}
_AUTH = {40102, 40104, 40105}
_RECORD_MARKERS = ("batch_data[", "Line ")  # how the refusal names an entry [INFER]


class TikTokAudienceConnector(BaseAudienceConnector):
    PLATFORM_NAME = "tiktok"
    BATCH_SIZE = 10_000
    CAPABILITIES = Capabilities(
        batch_limit=10_000,  # not documented for segment/mapping: an assumption (§3.5)
        identifier_keys=SCHEMA,
        native_replace=True,
        rate_limit=RateLimit(requests=10, per_seconds=1),  # QPS figure not documented [INFER]
        refreshes_tokens=False,  # tokens do not expire unless revoked (§3.2)
        min_replace_size=MIN_AUDIENCE,
    )

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
        if code == 40002:
            if text.startswith(_RECORD_MARKERS):
                return InvalidRecordsError(message, **kwargs)
            return ValidationError(message, **kwargs)
        if code == 40007:
            return NotFoundError(message, **kwargs)
        if code == 50000 or 51000 <= code < 52000:
            return PlatformServerError(message, **kwargs)
        return PlatformRequestError(message, **kwargs)

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
        hashed = hash_users(users, P.TIKTOK, fields, default_region=region)
        prepared = Prepared(users=len(users), dropped=hashed.dropped)
        for i in range(len(users)):
            ids = hashed.of(Field.MOBILE_ID, i)
            kinds = hashed.mobile_kinds[i] if hashed.mobile_kinds else []
            columns = [hashed.of(Field.EMAIL, i), hashed.of(Field.PHONE, i), [], []]
            for digest, kind in zip(ids, kinds, strict=True):
                schema = tiktok_mobile_id_schema(kind.value if kind else None)
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
        from audience_sync.connectors.columnar import rows_by_key, text_pairs  # imports us

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
        if op is Operation.REPLACE:
            return await self._upload_file(audience_id, batch, used, state)
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

    async def _upload_file(
        self, audience_id: str, batch: Batch, used: list[int], state: Any
    ) -> BatchOutcome:
        """One customer file (`MULTIPLE_TYPES`: a header of id types, then one user a line)."""
        lines = [",".join(SCHEMA[j] for j in used)]
        lines += [",".join(row[j] or "" for j in used) for row in batch.records]
        content = ("\n".join(lines) + "\n").encode()
        body = await self.http.request(
            "POST",
            "dmp/custom_audience/file/upload/",
            data={
                "advertiser_id": self._advertiser(audience_id),
                "calculate_type": "MULTIPLE_TYPES",
                "file_signature": hashlib.md5(content).hexdigest(),  # noqa: S324 - TikTok's
            },
            files={"file": (f"audience-{audience_id}-{batch.index}.csv", content, "text/csv")},
            audience_id=audience_id,
            batch=batch.index,
        )
        state["paths"].append(body["data"]["file_path"])
        return BatchOutcome(received=len(batch.records), request_id=body.get("request_id"))

    async def begin(self, op: Operation, audience_id: str, prepared: Prepared, batches: int) -> Any:
        return {"paths": []}

    async def finish(
        self, op: Operation, audience_id: str, state: Any, result: AudienceSyncResult
    ) -> None:
        if op is not Operation.REPLACE:
            return
        paths: list[str] = state["paths"]
        for start in range(0, len(paths), FILES_PER_UPDATE):
            # The first update replaces; the rest of a large list is appended to it.
            body = await self.http.request(
                "POST",
                "dmp/custom_audience/update/",
                json={
                    "advertiser_id": self._advertiser(audience_id),
                    "custom_audience_id": audience_id,
                    "action": "REPLACE" if start == 0 else "APPEND",
                    "file_paths": paths[start : start + FILES_PER_UPDATE],
                },
                idempotent=start > 0,  # a second REPLACE the same day is refused
                audience_id=audience_id,
            )
            result.request_ids.append(str(body.get("request_id")))

    async def replace_audience(
        self, audience_id: str, users: Sequence[AudienceUser]
    ) -> AudienceSyncResult:
        prepared = self.prepare(users)
        if len(set(prepared.records)) < MIN_AUDIENCE:
            raise ValidationError(
                f"TikTok refuses a REPLACE that leaves fewer than {MIN_AUDIENCE:,} members; "
                "sync the difference with add and remove instead",
                platform=self.PLATFORM_NAME,
                audience_id=audience_id,
            )
        result = await self.upload(Operation.REPLACE, audience_id, prepared)
        result.details["replace"] = "file_replace"
        return result

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
