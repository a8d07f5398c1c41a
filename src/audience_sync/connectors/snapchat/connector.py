"""Snapchat Customer Lists (Marketing API v1): one schema per request, remove-all then re-add.

Endpoints, limits and the error table: docs/connectors.md (Snapchat).
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from itertools import accumulate
from typing import Any
from urllib.parse import urlsplit

import httpx
import polars as pl

from audience_sync.config import Settings
from audience_sync.connectors.access import AccessCheck, AdAccount, passed, verdict
from audience_sync.connectors.base import (
    BaseAudienceConnector,
    Batch,
    BatchOutcome,
    Capabilities,
    FrameRecords,
    Operation,
    Prepared,
)
from audience_sync.connectors.columnar import single_pairs, text_pairs
from audience_sync.connectors.http import RateLimit
from audience_sync.connectors.records import hash_users
from audience_sync.connectors.snapchat.records import SCHEMAS, SnapchatShape
from audience_sync.domain.models import AudienceConfig, AudienceSyncResult, AudienceUser
from audience_sync.exceptions import (
    AudienceSyncError,
    InvalidRecordsError,
    PlatformRequestError,
    ValidationError,
    platform_error_for_status,
)

TOKEN_URL = "https://accounts.snapchat.com/login/oauth2/access_token"  # noqa: S105
DEFAULT_RETENTION_DAYS = 9999  # lifetime (docs/platforms/snapchat.md §4.3)


def _failed_entry(envelope: dict[str, Any]) -> dict[str, Any] | None:
    """The first entry of a batch answer (`users`, `segments`) whose `sub_request_status` is
    ERROR: Snap answers each entry of a request so [SEEN: customer-lists page's examples show
    `sub_request_status`]; an entry's failure under a SUCCESS request is our guess. [INFER]"""
    for name in ("users", "segments"):
        entries = envelope.get(name)
        for entry in entries if isinstance(entries, list) else []:
            if isinstance(entry, dict) and str(entry.get("sub_request_status")).upper() == "ERROR":
                return entry
    return None


def snapchat_token_url(base_url: str) -> str:
    """Snap's token host, or the sandbox's token path when the API is the sandbox's."""
    parts = urlsplit(base_url)
    if parts.path.startswith("/snapchat/"):
        return f"{parts.scheme}://{parts.netloc}/snapchat/login/oauth2/access_token"
    return TOKEN_URL


class SnapchatAudienceConnector(BaseAudienceConnector):
    PLATFORM_NAME = "snapchat"
    RECORD_SHAPE = SnapchatShape()
    CAPABILITIES = Capabilities(
        batch_limit=100_000,  # identifiers per request (docs/platforms/snapchat.md §4.5)
        rate_limit=RateLimit(requests=10, per_seconds=1),  # 10 requests/s per token (§4.5)
        refreshes_tokens=True,
    )

    @classmethod
    def default_base_url(cls, settings: Settings) -> str:
        return settings.snapchat_base_url

    def token_url(self, base_url: str) -> str | None:
        return snapchat_token_url(base_url)

    def translate(self, status: int, body: Any, headers: httpx.Headers) -> AudienceSyncError | None:
        """By HTTP status, the envelope's words in the message (docs/connectors.md, Snapchat).

        Errors come as `{"request_status": "ERROR", "request_id", "debug_message",
        "display_message", "error_code"}`; a bad token as HTTP 401 with the bare text
        `unauthorized`; no permission on the ad account as HTTP 403, `E3002` [SEEN:
        rudderlabs/rudder-transformer: test/integrations/destinations/snapchat_custom_audience/
        network.ts, src/v0/destinations/snapchat_custom_audience/networkHandler.js]. Snap's
        list of `error_code`s is not public: only E3002 is read."""
        envelope = body if isinstance(body, dict) else {}
        failed = _failed_entry(envelope)
        outcome = str(envelope.get("request_status", "")).upper()
        if status < 400 and outcome != "ERROR" and failed is None:
            return None
        code = envelope.get("error_code")
        debug = str(
            envelope.get("debug_message")
            or envelope.get("display_message")
            or (failed or {}).get("sub_request_error_reason")
            or ""
        )
        if code == "E3002":
            debug = f"{debug} (the connected user has no permission on this ad account)"
        head = f"Snapchat error {code}" if code else f"Snapchat answered HTTP {status}"
        message = f"{head}: {debug}" if debug else head
        kwargs: dict[str, Any] = {
            "details": {"error_code": code, "request_id": envelope.get("request_id")},
        }
        if status == 400:
            # The batch is all-or-nothing; the sandbox names the refused entry as `data[i]`,
            # Snap's own wording is not in our sources. [INFER]
            if debug.startswith("data["):
                return InvalidRecordsError(message, status_code=status, **kwargs)
            return ValidationError(message, status_code=status, **kwargs)
        if status < 400:  # an ERROR in a 2xx, or a failed entry: never taken for success [INFER]
            return PlatformRequestError(message, status_code=status, **kwargs)
        return platform_error_for_status(status, message, **kwargs)

    def prepare(self, users: Sequence[AudienceUser]) -> Prepared:
        region = self.default_region
        hashed = hash_users(users, self.PLATFORM_NAME, list(SCHEMAS), default_region=region)
        prepared = Prepared(users=len(users), dropped=hashed.dropped)
        for i in range(len(users)):
            found = False
            for name, schema in SCHEMAS.items():
                for digest in hashed.of(name, i):
                    prepared.add((schema, digest), i)
                    found = True
            if not found:
                prepared.dropped["no_usable_identifier"] += 1
        return prepared

    def group_of(self, record: Any) -> Hashable:
        schema: str = record[0]
        return schema  # one schema per request (§4.3)

    def record_pairs(self, prepared: Prepared, record: Any) -> list[tuple[str, str]]:
        schema, digest = record
        return [(schema, digest)]

    def prepared_from_records(self, records: Sequence[Sequence[tuple[str, str]]]) -> Prepared:
        prepared = Prepared(users=len(records))
        for i, pairs in enumerate(records):
            for pair in pairs:
                prepared.add(tuple(pair), i)
        return prepared

    def prepared_from_texts(self, texts: pl.Series) -> Prepared | None:
        """`prepared_from_records` of the records' text, in columns: a record per pair."""
        pairs = single_pairs(texts)
        if pairs is None:
            pairs = text_pairs(texts)
        if pairs is None:
            return None
        # In runs of one schema each (`Prepared.runs`), schemas in order of first appearance:
        # the batches are slices, the very batches `plan` makes of the records in text order.
        runs = pairs.group_by("key", maintain_order=True).agg(pl.len()).rows()
        rank = {key: position for position, (key, _) in enumerate(runs)}
        order = pl.col("key").replace_strict(rank, return_dtype=pl.Int64)
        pairs = pairs.sort(order, maintain_order=True)
        stops = list(accumulate(count for _, count in runs))
        prepared = Prepared(users=len(texts))
        prepared.records = FrameRecords(pairs.select("key", "value"))
        prepared.owners = pairs["i"].cast(pl.Int64).to_list()
        prepared.runs = [(stop - n, stop) for (_, n), stop in zip(runs, stops, strict=True)]
        return prepared

    async def send_batch(
        self, op: Operation, audience_id: str, batch: Batch, state: Any
    ) -> BatchOutcome:
        schema = batch.records[0][0]
        unique = _distinct_digests(batch.records)
        entry: dict[str, Any] = {"schema": [schema], "data": [[d] for d in unique]}
        if op is Operation.REMOVE:
            entry["id"] = audience_id
        body = await self.http.request(
            "DELETE" if op is Operation.REMOVE else "POST",
            f"segments/{audience_id}/users",
            json={"users": [entry]},
            audience_id=audience_id,
            batch=batch.index,
        )
        users = body.get("users") or [{}]
        uploaded = (users[0].get("user") or {}).get("number_uploaded_users")
        return BatchOutcome(received=uploaded, request_id=body.get("request_id"))

    async def replace_audience(
        self, audience_id: str, users: Sequence[AudienceUser]
    ) -> AudienceSyncResult:
        # No atomic replace (§4.3): remove all users, then add the new list.
        prepared = self.prepare(users)
        await self.http.request(
            "DELETE", f"segments/{audience_id}/all_users", audience_id=audience_id
        )
        result = await self.upload(Operation.ADD, audience_id, prepared)
        result.details["replace"] = "remove_all_then_add"
        return result

    async def create(self, config: AudienceConfig) -> str:
        account = config.ad_account_id or self.ad_account_id or ""
        retention = int(config.options.get("retention_in_days", DEFAULT_RETENTION_DAYS))
        segment = {
            "name": config.name,
            "description": config.description or config.name,
            "source_type": "FIRST_PARTY",
            "retention_in_days": retention,
            "ad_account_id": account,
        }
        body = await self.http.request(
            "POST", f"adaccounts/{account}/segments", json={"segments": [segment]}, idempotent=False
        )
        return str(body["segments"][0]["segment"]["id"])

    async def delete(self, audience_id: str) -> None:
        await self.http.request("DELETE", f"segments/{audience_id}", audience_id=audience_id)

    async def info(self, audience_id: str) -> dict[str, Any]:
        body = await self.http.request("GET", f"segments/{audience_id}", audience_id=audience_id)
        segment = body["segments"][0]["segment"]
        return {
            "id": str(segment.get("id", audience_id)),
            "name": segment.get("name"),
            "size": segment.get("approximate_number_users"),
            "status": segment.get("upload_status"),
            "ready": segment.get("targetable_status") == "READY",
            "platform": segment,
        }

    # --- connection test, discovery (docs/connections.md, Snapchat; no revocation) -----------

    async def test_access(self) -> AccessCheck:
        """`GET /adaccounts/{id}`: 401 a refused token (Snap words expiry and invalidity
        alike: the stored expiry tells them apart), 404 an account the token cannot reach."""
        account = self.ad_account_id or ""
        try:
            body = await self.http.request("GET", f"adaccounts/{account}")
        except AudienceSyncError as exc:
            return verdict("Snapchat", account, exc)
        rows = (body or {}).get("adaccounts") or [{}]
        return passed("Snapchat", account, (rows[0].get("adaccount") or {}).get("name"))

    async def list_ad_accounts(self) -> list[AdAccount]:
        """`GET /me/organizations?with_ad_accounts=true`: every organization's ad accounts."""
        body = await self.http.request(
            "GET", "me/organizations", params={"with_ad_accounts": "true"}
        )
        found: list[AdAccount] = []
        for row in (body or {}).get("organizations", []):
            for account in (row.get("organization") or {}).get("ad_accounts", []):
                found.append(AdAccount(str(account["id"]), account.get("name")))
        return found


def _distinct_digests(records: Sequence[tuple[str, str]]) -> list[str]:
    """The records' digests, each once, in order (a batch sends no duplicates)."""
    if isinstance(records, FrameRecords):
        return records.column("value").unique(maintain_order=True).to_list()
    return list(dict.fromkeys(digest for _, digest in records))
