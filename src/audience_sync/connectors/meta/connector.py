"""Meta Custom Audiences (Marketing API v26.0): multi-key rows, sessions, `usersreplace`.

Contract: docs/platforms/meta.md §1.3 (endpoints), §1.4 (keys), §1.6 (error table).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Sequence
from typing import Any

import httpx
import orjson
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
from audience_sync.connectors.columnar import frame_by_key, json_string_rows, text_pairs
from audience_sync.connectors.http import RateLimit
from audience_sync.connectors.meta.records import (
    KEYS,
    LDU_KEYS,
    MetaShape,
    ldu_values,
)
from audience_sync.connectors.records import hash_users
from audience_sync.domain.data_use import ldu_location
from audience_sync.domain.models import AudienceConfig, AudienceSyncResult, AudienceUser
from audience_sync.exceptions import (
    AudienceSyncError,
    AuthExpiredError,
    NotFoundError,
    PlatformRequestError,
    PlatformServerError,
    RateLimitError,
    ValidationError,
    platform_error_for_status,
)

_IDENTIFYING = ("EMAIL", "PHONE", "MADID", "EXTERN_ID")


def _schema(present: set[str]) -> tuple[str, ...]:
    """The wire keys of these records' rows: the identifying ones first, then the others."""
    first = tuple(key for key in _IDENTIFYING if key in present)
    others = tuple(key for key in (*KEYS, *LDU_KEYS) if key in present and key not in _IDENTIFYING)
    return first + others


def wire_rows(schema: Sequence[str], rows: Sequence[Sequence[str]], op: Operation) -> Any:
    """The rows as sent: LDU cells in Meta's types; a removal sends no LDU columns ([INFER]:
    the options say how Meta may use the data, a removal matches people by identifiers)."""
    at = [k for k, key in enumerate(schema) if key in LDU_KEYS]
    if not at:
        return list(schema), rows
    if op is Operation.REMOVE:
        keep = [k for k in range(len(schema)) if k not in at]
        return [schema[k] for k in keep], [[row[k] for k in keep] for row in rows]
    kinds = {k: schema[k] for k in at}
    return list(schema), [
        [_ldu_cell(kinds[k], v) if k in kinds else v for k, v in enumerate(row)] for row in rows
    ]


def _ldu_cell(key: str, value: str) -> Any:
    if key == "DATA_PROCESSING_OPTIONS":
        return [value] if value else []
    return int(value) if value else 0


_FIELDS = [f for f in KEYS.values() if f is not None]

# The error table, by code (docs/connectors.md, "Evidence"). Throttling, retried after backing
# off: Graph's 4, 17, 341 ("wait and retry the operation", [SEEN: https://developers.facebook.com/
# docs/graph-api/guides/error-handling]), 32 (Page-level), 613/1487742 and 17/2446079 ([SEEN:
# https://developers.facebook.com/docs/marketing-api/overview/rate-limiting]) and the Business
# Use Case codes 80000-80014 (80003 custom audiences, 80004 ads management, [SEEN: reference
# error tables of custom-audience/users and custom-audience/ads]; the others [INFER] alike).
_RATE = {4, 17, 32, 341, 613, *range(80000, 80015)}
# 368, "temporarily blocked for policies violations": the guide says wait and retry, but a block
# lasts hours to days and retrying within one sync only burns calls, so it is final for this
# run and the message says why. [INFER]
POLICY_BLOCK = 368
_SERVER = {1, 2}
_AUTH = {102, 190}
EXPIRED_SUBCODE = 463  # code 190's "Session has expired" [SEEN: Graph error-handling guide]
ACCOUNT_FIELDS = "name,account_status,currency"
REQUIRED_PERMISSION = "ads_management"  # writes Custom Audiences [SEEN: docs/platforms/meta.md]
_NOT_FOUND_SUBCODES = {33}
_GONE = {1487301, 1487366}
REPLACE_RESTART_SUBCODE = 1870147  # "first batch_seq was not detected": restart at 1


class MetaAudienceConnector(BaseAudienceConnector):
    PLATFORM_NAME = "meta"
    RECORD_SHAPE = MetaShape()
    CAPABILITIES = Capabilities(
        batch_limit=10_000,  # "only a maximum of 10000 at a time" (docs/platforms/meta.md §1.5)
        # Custom-audience budget, Limited tier: 5000 (+40 per audience) calls an hour (§1.5).
        rate_limit=RateLimit(requests=5000, per_seconds=3600),
        refreshes_tokens=False,  # no refresh grant; long-lived or system-user tokens (§1.2)
    )

    @classmethod
    def default_base_url(cls, settings: Settings) -> str:
        return settings.meta_base_url

    def _proof(self) -> dict[str, str]:
        """`appsecret_proof`: HMAC-SHA256 of the token keyed by the app secret
        (docs/platforms/meta.md §1.2)."""
        secret = self.credentials.app_secret
        if not secret:
            return {}
        token = self.http.tokens.token.encode()
        return {"appsecret_proof": hmac.new(secret.encode(), token, hashlib.sha256).hexdigest()}

    def translate(self, status: int, body: Any, headers: httpx.Headers) -> AudienceSyncError | None:
        error = body.get("error") if isinstance(body, dict) else None
        if status < 400 and not isinstance(error, dict):
            return None
        if not isinstance(error, dict):
            return platform_error_for_status(status, f"Meta answered HTTP {status}")
        code, sub = error.get("code"), error.get("error_subcode")
        message = f"Meta error {code}: {error.get('message', '')}".strip()
        kwargs: dict[str, Any] = {
            "status_code": status,
            "details": {"code": code, "subcode": sub, "fbtrace_id": error.get("fbtrace_id")},
        }
        if code in _RATE:
            return RateLimitError(message, **kwargs)
        if code == POLICY_BLOCK:
            return PlatformRequestError(
                "Meta has blocked this action for a policy violation (code 368); the sync will "
                "not retry it. Check the ad account's standing in Meta Business Suite (Account "
                "Quality), then sync again",
                **kwargs,
            )
        if code in _SERVER or (error.get("is_transient") and status >= 500):
            return PlatformServerError(message, **kwargs)
        if code in _AUTH:
            return AuthExpiredError(message, **kwargs)
        if (code == 100 and sub in _NOT_FOUND_SUBCODES) or sub in _GONE:
            return NotFoundError(message, **kwargs)
        if code == 10 or (isinstance(code, int) and 200 <= code <= 299):
            return PlatformRequestError(
                f"Meta refused the request for lack of permission (code {code}): the connected "
                "user needs access to the ad account and the ads_management permission",
                **kwargs,
            )
        if code in (100, 105, 194, 2650, 2635, 2655):
            return ValidationError(message, **kwargs)
        if status >= 500:
            return PlatformServerError(message, **kwargs)
        return PlatformRequestError(message, **kwargs)

    def prepare(self, users: Sequence[AudienceUser]) -> Prepared:
        region = self.default_region
        hashed = hash_users(
            users, self.PLATFORM_NAME, _FIELDS, default_region=region, date_of_birth=True
        )
        dobs = hashed.date_of_birth
        columns: dict[str, list[list[str]]] = {}
        for key, field in KEYS.items():
            if field is not None:
                columns[key] = hashed.values[field]
            else:  # DOBY / DOBM / DOBD: one date of birth, three keys
                columns[key] = [[d[key]] if d else [] for d in dobs]
        locations = [self.ldu_location(u) for u in users]
        if any(locations):
            cells = [ldu_values(location) for location in locations]
            for k, key in enumerate(LDU_KEYS):
                columns[key] = [mine[k] for mine in cells]
        # The operation's schema: only the keys some user has a value for.
        schema = tuple(key for key, column in columns.items() if any(column))
        ids = [columns[key] for key in _IDENTIFYING if key in schema]
        extra = [columns[key] for key in schema if key not in _IDENTIFYING]
        prepared = Prepared(users=len(users), dropped=hashed.dropped)
        prepared.schema = tuple(k for k in _IDENTIFYING if k in schema) + tuple(
            k for k in schema if k not in _IDENTIFYING
        )
        for i in range(len(users)):
            mine = [column[i] for column in ids]
            rows = max((len(values) for values in mine), default=0)
            if not rows:
                prepared.dropped["no_usable_identifier"] += 1
                continue
            others = [column[i][0] if column[i] else "" for column in extra]
            # A profile with two emails becomes two rows sharing its other fields.
            for k in range(rows):
                prepared.add([v[k] if k < len(v) else "" for v in mine] + others, i)
        return prepared

    def ldu_location(self, user: AudienceUser) -> tuple[int, int] | None:
        """The user's Limited Data Use location, or None (`domain.data_use.ldu_location`)."""
        return ldu_location(user.limited_data_use, self.options)

    async def begin(self, op: Operation, audience_id: str, prepared: Prepared, batches: int) -> Any:
        # One session spans the batches of an operation (advertiser-generated int64, §1.3).
        return {
            "session_id": secrets.randbelow(2**62) + 1,
            "total": len(prepared.records),
            "schema": list(prepared.schema),
        }

    def record_pairs(self, prepared: Prepared, record: Any) -> list[tuple[str, str]]:
        return [(key, value) for key, value in zip(prepared.schema, record, strict=True) if value]

    def prepared_from_records(self, records: Sequence[Sequence[tuple[str, str]]]) -> Prepared:
        rows = [dict(pairs) for pairs in records]
        prepared = Prepared(users=len(records))
        prepared.schema = _schema({key for row in rows for key in row})
        for i, row in enumerate(rows):
            prepared.add([row.get(key, "") for key in prepared.schema], i)
        return prepared

    def prepared_from_texts(self, texts: pl.Series) -> Prepared | None:
        """`prepared_from_records` of the records' text, in columns: the pairs pivoted to a
        column a key. Meta's rows are wide: 100,000 records of ~10 keys took 1.9 s decoded
        one by one, 0.6 s so."""
        pairs = text_pairs(texts)
        if pairs is None:
            return None
        prepared = Prepared(users=len(texts))
        prepared.schema = _schema(set(pairs["key"].unique().to_list()))
        prepared.records = FrameRecords(frame_by_key(pairs, prepared.schema, ""))
        prepared.owners = list(range(len(texts)))
        return prepared

    async def send_batch(
        self, op: Operation, audience_id: str, batch: Batch, state: Any
    ) -> BatchOutcome:
        records, schema = batch.records, state["schema"]
        if isinstance(records, FrameRecords) and not set(LDU_KEYS) & set(schema):
            # Rows in columns with no LDU cell to convert: their JSON is made in Polars and
            # goes into the body as it is (`orjson.Fragment`).
            schema, rows = list(schema), orjson.Fragment(json_string_rows(records.frame))
        else:
            schema, rows = wire_rows(schema, records, op)
        payload = {"schema": schema, "is_raw": True, "data": rows}
        session = {
            "session_id": state["session_id"],
            "batch_seq": batch.index + 1,
            "last_batch_flag": batch.last,
            "estimated_num_total": state["total"],
        }
        edge = "usersreplace" if op is Operation.REPLACE else "users"
        body = await self.http.request(
            "DELETE" if op is Operation.REMOVE else "POST",
            f"{audience_id}/{edge}",
            # A JSON body, which Graph reads like form fields (docs/platforms/meta.md §1.3): it
            # encodes 10,000 rows far faster than form URL-encoding does.
            json={"payload": payload, "session": session, **self._proof()},
            audience_id=audience_id,
            batch=batch.index,
        )
        body = body if isinstance(body, dict) else {}
        samples = body.get("invalid_entry_samples") or {}
        failed = [int(k) for k in samples if str(k).isdigit() and int(k) < len(batch.records)]
        return BatchOutcome(
            failed=failed,
            received=body.get("num_received"),
            invalid=body.get("num_invalid_entries"),
        )

    async def replace_audience(
        self, audience_id: str, users: Sequence[AudienceUser]
    ) -> AudienceSyncResult:
        prepared = self.prepare(users)
        if not prepared.records:
            raise ValidationError(
                "Meta replaces with at least one member; remove users or delete the audience",
                platform=self.PLATFORM_NAME,
                audience_id=audience_id,
            )
        try:
            return await self.upload(Operation.REPLACE, audience_id, prepared)
        except ValidationError as exc:
            if exc.details.get("subcode") != REPLACE_RESTART_SUBCODE:
                raise
            # Meta lost the session's first batch: restart the whole session at batch_seq 1.
            return await self.upload(Operation.REPLACE, audience_id, prepared)

    async def create(self, config: AudienceConfig) -> str:
        account = config.ad_account_id or self.ad_account_id or ""
        account = account.removeprefix("act_")
        data = {
            "name": config.name,
            "subtype": "CUSTOM",
            "description": config.description or "",
            "customer_file_source": str(
                config.options.get("customer_file_source", "USER_PROVIDED_ONLY")
            ),
            **self._proof(),
        }
        body = await self.http.request(
            "POST", f"act_{account}/customaudiences", data=data, idempotent=False
        )
        return str(body["id"])

    async def delete(self, audience_id: str) -> None:
        await self.http.request(
            "DELETE", audience_id, params=self._proof(), audience_id=audience_id
        )

    async def info(self, audience_id: str) -> dict[str, Any]:
        fields = (
            "id,name,approximate_count_lower_bound,approximate_count_upper_bound,"
            "operation_status,delivery_status,time_updated"
        )
        body = await self.http.request(
            "GET",
            audience_id,
            params={"fields": fields, **self._proof()},
            audience_id=audience_id,
        )
        lower = body.get("approximate_count_lower_bound")
        delivery = body.get("delivery_status") or {}
        return {
            "id": str(body.get("id", audience_id)),
            "name": body.get("name"),
            "size": lower,
            "size_range": [lower, body.get("approximate_count_upper_bound")],
            "status": (body.get("operation_status") or {}).get("description"),
            "ready": delivery.get("code") == 200,
            "platform": body,
        }

    # --- connection test, discovery, revocation (docs/connections.md, Meta) -----------------

    async def test_access(self) -> AccessCheck:
        """`GET /act_{id}?fields=name,account_status,currency`, then `GET /me/permissions`
        for `ads_management` (a token without it cannot write audiences)."""
        account = (self.ad_account_id or "").removeprefix("act_")
        try:
            body = await self.http.request(
                "GET", f"act_{account}", params={"fields": ACCOUNT_FIELDS, **self._proof()}
            )
            granted = await self.http.request("GET", "me/permissions", params=self._proof())
        except AudienceSyncError as exc:
            expired = exc.details.get("subcode") == EXPIRED_SUBCODE
            return verdict("Meta", account, exc, expired=expired)
        permissions = {
            row.get("permission")
            for row in (granted or {}).get("data", [])
            if row.get("status") == "granted"
        }
        if REQUIRED_PERMISSION not in permissions:
            refused = PlatformRequestError("permission missing")
            return verdict("Meta", account, refused, missing_scope=REQUIRED_PERMISSION)
        return passed("Meta", account, (body or {}).get("name"))

    async def list_ad_accounts(self) -> list[AdAccount]:
        """`GET /me/adaccounts` (first page: the accounts a person picks from)."""
        body = await self.http.request(
            "GET", "me/adaccounts", params={"fields": "account_id,name", **self._proof()}
        )
        return [
            AdAccount(str(row.get("account_id") or row["id"]).removeprefix("act_"), row.get("name"))
            for row in (body or {}).get("data", [])
        ]

    async def revoke_access(self) -> bool:
        """`DELETE /me/permissions`: the user removes the app; every token of it stops."""
        await self.http.request("DELETE", "me/permissions", params=self._proof())
        return True
