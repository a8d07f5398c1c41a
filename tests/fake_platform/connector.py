"""The fake platform's connector: one record a value (`email_sha256` or `phone_sha256`), sent
in batches to `audiences/{id}/members:add` or `:remove`, replaced with `:replace`."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import httpx

from audience_sync.config import Settings
from audience_sync.connectors.base import (
    BaseAudienceConnector,
    Batch,
    BatchOutcome,
    Capabilities,
    Operation,
    Prepared,
)
from audience_sync.connectors.records import hash_users
from audience_sync.domain.models import AudienceConfig, AudienceSyncResult, AudienceUser
from audience_sync.exceptions import (
    AudienceSyncError,
    AuthExpiredError,
    InvalidRecordsError,
    ValidationError,
    platform_error_for_status,
)

from .records import KEYS, NAME, FakeShape

BASE_URL = "https://api.fake.invalid/v1"  # never called: the tests give the emulator's


class FakeAudienceConnector(BaseAudienceConnector):
    PLATFORM_NAME = NAME
    RECORD_SHAPE = FakeShape()
    CAPABILITIES = Capabilities(
        batch_limit=5_000,
        rate_limit=None,
        refreshes_tokens=False,
    )

    @classmethod
    def default_base_url(cls, settings: Settings) -> str:
        return BASE_URL

    def translate(self, status: int, body: Any, headers: httpx.Headers) -> AudienceSyncError | None:
        """The error table: `{"error": code, "message": text, "index": i}`."""
        if status < 400:
            return None
        error = body if isinstance(body, dict) else {}
        message = f"Fake error {error.get('error')}: {error.get('message', '')}"
        if status == 401:
            return AuthExpiredError(message, status_code=status)
        if error.get("error") == "invalid_record":
            return InvalidRecordsError(message, status_code=status)
        if status == 400:
            return ValidationError(message, status_code=status)
        return platform_error_for_status(status, message)

    def prepare(self, users: Sequence[AudienceUser]) -> Prepared:
        hashed = hash_users(users, NAME, list(KEYS), default_region=self.default_region)
        prepared = Prepared(users=len(users), dropped=hashed.dropped)
        for i in range(len(users)):
            records = [(key, v) for name, key in KEYS.items() for v in hashed.of(name, i)]
            if not records:
                prepared.dropped["no_usable_identifier"] += 1
            for record in records:
                prepared.add(record, i)
        return prepared

    def record_pairs(self, prepared: Prepared, record: Any) -> list[tuple[str, str]]:
        key, value = record
        return [(key, value)]

    def prepared_from_records(self, records: Sequence[Sequence[tuple[str, str]]]) -> Prepared:
        prepared = Prepared(users=len(records))
        for i, pairs in enumerate(records):
            for key, value in pairs:
                prepared.add((key, value), i)
        return prepared

    async def begin(self, op: Operation, audience_id: str, prepared: Prepared, batches: int) -> Any:
        return {"replaced": False}

    async def send_batch(
        self, op: Operation, audience_id: str, batch: Batch, state: Any
    ) -> BatchOutcome:
        verb = "remove" if op is Operation.REMOVE else "add"
        if op is Operation.REPLACE and not state["replaced"]:
            verb = "replace"  # the first request that lands replaces, the others add
        body = await self.http.request(
            "POST",
            f"audiences/{audience_id}/members:{verb}",
            json={"records": [{"key": k, "value": v} for k, v in batch.records]},
            audience_id=audience_id,
            batch=batch.index,
        )
        state["replaced"] = True
        return BatchOutcome(received=(body or {}).get("received"))

    async def replace_audience(
        self, audience_id: str, users: Sequence[AudienceUser]
    ) -> AudienceSyncResult:
        """The first request replaces the members, the others add."""
        prepared = self.prepare(users)
        return await self.upload(Operation.REPLACE, audience_id, prepared)

    async def create(self, config: AudienceConfig) -> str:
        body = await self.http.request(
            "POST", "audiences", json={"name": config.name}, idempotent=False
        )
        return str(body["id"])

    async def delete(self, audience_id: str) -> None:
        await self.http.request("DELETE", f"audiences/{audience_id}", audience_id=audience_id)

    async def info(self, audience_id: str) -> dict[str, Any]:
        body = await self.http.request("GET", f"audiences/{audience_id}", audience_id=audience_id)
        return {
            "id": str(body["id"]),
            "name": body.get("name"),
            "size": body.get("size"),
            "status": "ready",
            "ready": True,
            "platform": body,
        }
