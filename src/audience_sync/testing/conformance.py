"""The connector conformance suite: small named tests every connector passes against its sandbox.

A platform's test module is a line or two:

    class TestMetaConformance(ConnectorConformance):
        platform = "meta"

(`options = {"google_api": "ads"}` with `platform = "google"` runs it on the Ads API path.)
Each test gets a fresh in-process sandbox (httpx ASGI transport) with its rate budgets lifted,
and connectors whose sleeps and clock are fake, so nothing really waits. After every test that
adds members, the sandbox's member set is compared exactly with the expected wire values.
"""

from __future__ import annotations

import logging
import re
from collections.abc import AsyncIterator, Callable
from typing import Any, ClassVar

import httpx
import pytest
from fastapi import FastAPI

from audience_sync.config import Settings
from audience_sync.connectors import (
    BaseAudienceConnector,
    Credentials,
    Operation,
    connector_class,
)
from audience_sync.connectors.http import RateLimiters, RetryPolicy
from audience_sync.connectors.processing import ProcessingConnector
from audience_sync.domain.models import (
    AudienceConfig,
    AudienceUser,
    IdentifierType,
    UserIdentifier,
)
from audience_sync.exceptions import (
    AudienceSyncError,
    AuthExpiredError,
    PlatformServerError,
    ValidationError,
)
from audience_sync.sandbox import SandboxSettings, create_app
from audience_sync.sandbox.settings import SANDBOX_REFRESH_TOKEN, SANDBOX_TOKEN
from audience_sync.testing.support import (
    PREFIXES,
    SANDBOX_URL,
    UPLOAD_PATHS,
    FakeTime,
    expected_identifiers,
    held_identifiers,
    make_users,
)

Make = Callable[..., BaseAudienceConnector]
ACCOUNT = "1234567890"
_HEX64 = re.compile(r"[0-9a-f]{64}")


def corrupt(record: Any) -> Any:
    """The record with its first SHA-256 digest made malformed (what a platform refuses)."""
    done = [False]

    def walk(value: Any) -> Any:
        if isinstance(value, str) and not done[0] and _HEX64.fullmatch(value):
            done[0] = True
            return "not-a-digest"
        if isinstance(value, dict):
            return {k: walk(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return type(value)(walk(v) for v in value)
        return value

    return walk(record)


class ConnectorConformance:
    """Subclass with `platform` (and optionally `options`) set; every test runs on it."""

    platform: ClassVar[str]
    options: ClassVar[dict[str, Any]] = {}

    @property
    def family(self) -> str:
        """The sandbox API family (Google's Ads API answers apart from its Data Manager API)."""
        return "googleads" if self.options.get("google_api") == "ads" else self.platform

    # --- fixtures ---------------------------------------------------------------------------

    @pytest.fixture
    def sandbox(self) -> FastAPI:
        # The interface, not Google's processing time: one Ads job may run right after another
        # on the same list (with 30 minutes of processing it would be CONCURRENT_MODIFICATION).
        return create_app(SandboxSettings(processing_seconds=0, google_processing_seconds=0))

    @pytest.fixture
    async def control(self, sandbox: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
        transport = httpx.ASGITransport(app=sandbox)
        async with httpx.AsyncClient(transport=transport, base_url=SANDBOX_URL) as client:
            for family in PREFIXES:  # fake time cannot refill the sandbox's real-time budgets
                await client.put("/_sandbox/rate_limits", json={"family": family, "limit": None})
            yield client

    @pytest.fixture
    def time(self) -> FakeTime:
        return FakeTime()

    @pytest.fixture
    async def make(self, sandbox: FastAPI, time: FakeTime) -> AsyncIterator[Make]:
        made: list[BaseAudienceConnector] = []

        def build(
            *, max_batch_size: int = 10_000, token: str = SANDBOX_TOKEN, **kwargs: Any
        ) -> BaseAudienceConnector:
            credentials = kwargs.pop("credentials", None) or self.credentials(token)
            cls = connector_class(self.platform, self.options)
            connector = cls(
                Settings(max_batch_size=max_batch_size),
                credentials,
                ad_account_id=ACCOUNT,
                options=self.options,
                base_url=SANDBOX_URL + PREFIXES[self.family],  # `register_family` adds one
                transport=httpx.ASGITransport(app=sandbox),
                sleep=time.sleep,
                clock=time.clock,
                limiters=RateLimiters(),
                poll_interval=0.5,
                poll_timeout=30,
                **kwargs,
            )
            made.append(connector)
            return connector

        yield build
        for connector in made:
            await connector.aclose()

    def credentials(self, token: str, refresh_token: str = SANDBOX_REFRESH_TOKEN) -> Credentials:
        return Credentials(
            access_token=token,
            refresh_token=refresh_token,
            client_id="suite-client",
            client_secret="suite-client-secret",  # noqa: S106 - a test value
            app_secret="suite-app-secret",  # noqa: S106
            developer_token="suite-developer-token",  # noqa: S106
        )

    # --- helpers ----------------------------------------------------------------------------

    async def create(self, connector: BaseAudienceConnector, users: list[AudienceUser]) -> str:
        config = AudienceConfig(name="Buyers", ad_account_id=ACCOUNT, options=self.options)
        result = await connector.create_audience(config, users)
        assert result.platform_audience_id
        return result.platform_audience_id

    async def assert_holds(
        self, control: httpx.AsyncClient, audience_id: str, users: list[AudienceUser]
    ) -> None:
        held = await held_identifiers(control, self.family, audience_id)
        assert held == expected_identifiers(self.family, users)

    async def fault(self, control: httpx.AsyncClient, kind: str, **options: Any) -> None:
        body = {"kind": kind, "platform": self.family, "path": UPLOAD_PATHS[self.family]}
        answer = await control.post("/_sandbox/faults", json={**body, **options})
        assert answer.status_code == 201, answer.text

    async def uploads(self, control: httpx.AsyncClient) -> list[dict[str, Any]]:
        log = await control.get("/_sandbox/requests", params={"platform": self.family})
        pattern = re.compile(UPLOAD_PATHS[self.family])
        return [e for e in log.json() if pattern.search(e["path"])]

    # --- the suite --------------------------------------------------------------------------

    async def test_create_then_add_then_info_shows_the_members(
        self, make: Make, control: httpx.AsyncClient
    ) -> None:
        connector = make()
        audience_id = await self.create(connector, make_users(0, 40))
        added = await connector.add_users(audience_id, make_users(40, 60))
        assert (added.sent, added.accepted, added.failed) == (20, 20, 0)
        await self.assert_holds(control, audience_id, make_users(0, 60))
        info = await connector.get_audience_info(audience_id)
        [held] = [
            a
            for a in (await control.get("/_sandbox/audiences?identifiers=false")).json()
            if a["audience_id"] == audience_id
        ]
        assert info["size"] == held["matched"]

    async def test_remove_takes_out_exactly_those_members(
        self, make: Make, control: httpx.AsyncClient
    ) -> None:
        connector = make()
        audience_id = await self.create(connector, make_users(0, 30))
        removed = await connector.remove_users(audience_id, make_users(10, 20))
        assert removed.accepted == 10
        await self.assert_holds(control, audience_id, make_users(0, 10) + make_users(20, 30))

    async def test_records_rebuilt_from_their_pairs_remove_exactly_those_members(
        self, make: Make, control: httpx.AsyncClient
    ) -> None:
        # The sync engine keeps each sent record as (key, value) pairs in its snapshot and
        # sends them back to remove a departed member, whose profile may be gone by then.
        connector = make()
        audience_id = await self.create(connector, make_users(0, 30))
        prepared = await connector.records_for(audience_id, make_users(10, 20))
        pairs = [connector.record_pairs(prepared, record) for record in prepared.records]
        rebuilt = connector.prepared_from_records(pairs)
        assert [connector.record_pairs(rebuilt, r) for r in rebuilt.records] == pairs
        await connector.upload(Operation.REMOVE, audience_id, rebuilt)
        await self.assert_holds(control, audience_id, make_users(0, 10) + make_users(20, 30))

    async def test_replace_leaves_exactly_the_new_members(
        self, make: Make, control: httpx.AsyncClient
    ) -> None:
        connector = make()
        audience_id = await self.create(connector, make_users(0, 1_200))  # TikTok: ≥ 1,000
        replaced = await connector.replace_audience(audience_id, make_users(600, 1_800))
        assert replaced.accepted == 1_200
        as_of = replaced.details.get("remove_all_as_of")
        if as_of and isinstance(connector, ProcessingConnector):
            # Google's second half, sent by the confirmation step once the ingest is processed.
            await connector.remove_all_as_of(audience_id, as_of)
        await self.assert_holds(control, audience_id, make_users(600, 1_800))

    async def test_delete_removes_the_audience(
        self, make: Make, control: httpx.AsyncClient
    ) -> None:
        connector = make()
        audience_id = await self.create(connector, make_users(0, 5))
        result = await connector.delete_audience(audience_id)
        assert result.success
        left = (await control.get("/_sandbox/audiences?identifiers=false")).json()
        assert audience_id not in [a["audience_id"] for a in left]

    async def test_batches_never_exceed_the_limit(
        self, make: Make, control: httpx.AsyncClient
    ) -> None:
        connector = make(max_batch_size=7)
        assert connector.batch_size == 7
        audience_id = await self.create(connector, [])
        result = await connector.add_users(audience_id, make_users(0, 30))
        sizes = result.details["batches"]
        assert max(sizes) <= 7
        assert sum(sizes) == result.details["records"]
        assert len(await self.uploads(control)) == len(sizes)
        await self.assert_holds(control, audience_id, make_users(0, 30))

    async def test_a_429_is_retried_after_retry_after(
        self, make: Make, control: httpx.AsyncClient, time: FakeTime
    ) -> None:
        connector = make()
        audience_id = await self.create(connector, [])
        await self.fault(control, "rate_limit", retry_after=7)
        result = await connector.add_users(audience_id, make_users(0, 10))
        assert result.accepted == 10
        assert 7 in time.sleeps
        await self.assert_holds(control, audience_id, make_users(0, 10))

    async def test_a_5xx_then_success_lands_the_batch(
        self, make: Make, control: httpx.AsyncClient, time: FakeTime
    ) -> None:
        connector = make()
        audience_id = await self.create(connector, [])
        await self.fault(control, "server_error", status=503, count=2)
        result = await connector.add_users(audience_id, make_users(0, 10))
        assert result.accepted == 10
        assert len(time.sleeps) >= 2  # backed off before each retry
        await self.assert_holds(control, audience_id, make_users(0, 10))

    async def test_a_timeout_then_success_lands_the_batch_once(
        self, make: Make, control: httpx.AsyncClient
    ) -> None:
        connector = make(timeout=0.2)
        audience_id = await self.create(connector, [])
        await self.fault(control, "timeout", delay_seconds=1.0)  # processed, answer held back
        result = await connector.add_users(audience_id, make_users(0, 10))
        assert result.accepted == 10
        assert len(await self.uploads(control)) == len(result.details["batches"]) + 1
        await self.assert_holds(control, audience_id, make_users(0, 10))

    async def test_an_expired_token_is_refreshed_or_fails_for_good(
        self, make: Make, control: httpx.AsyncClient
    ) -> None:
        connector = make()
        audience_id = await self.create(connector, [])
        await self.fault(control, "expired_token")
        if connector.CAPABILITIES.refreshes_tokens:
            result = await connector.add_users(audience_id, make_users(0, 10))
            assert result.accepted == 10
            assert connector.http.tokens.token != SANDBOX_TOKEN  # a refreshed token
            await self.assert_holds(control, audience_id, make_users(0, 10))
        else:
            with pytest.raises(AuthExpiredError) as caught:
                await connector.add_users(audience_id, make_users(0, 10))
            assert not caught.value.retryable
            assert len(await self.uploads(control)) == 1  # never retried

    async def test_a_validation_error_is_final_and_carries_the_platform_message(
        self, make: Make, control: httpx.AsyncClient
    ) -> None:
        connector = make()
        with pytest.raises(ValidationError) as caught:
            await connector.create_audience(AudienceConfig(name="", ad_account_id=ACCOUNT))
        assert not caught.value.retryable
        assert caught.value.platform is not None
        assert "name" in str(caught.value).lower()  # the platform's own words
        log = (await control.get("/_sandbox/requests", params={"platform": self.family})).json()
        assert len(log) == 1

    async def test_resending_a_confirmed_batch_changes_nothing(
        self, make: Make, control: httpx.AsyncClient
    ) -> None:
        connector = make()
        users = make_users(0, 25)
        audience_id = await self.create(connector, users)
        before = await held_identifiers(control, self.family, audience_id)
        again = await connector.add_users(audience_id, users)
        assert again.accepted == 25
        assert await held_identifiers(control, self.family, audience_id) == before
        await self.assert_holds(control, audience_id, users)

    async def test_an_unusable_identifier_fails_only_its_member(
        self, make: Make, control: httpx.AsyncClient
    ) -> None:
        connector = make()
        audience_id = await self.create(connector, [])
        bad = AudienceUser("bad", (UserIdentifier(IdentifierType.EMAIL, "not an email"),))
        users = make_users(0, 10)
        result = await connector.add_users(audience_id, [*users[:5], bad, *users[5:]])
        assert (result.sent, result.accepted, result.failed) == (11, 10, 1)
        assert result.details["failed_users"] == [5]
        await self.assert_holds(control, audience_id, users)

    async def test_one_record_the_platform_refuses_does_not_sink_the_others(
        self, make: Make, control: httpx.AsyncClient
    ) -> None:
        connector = make()
        audience_id = await self.create(connector, [])
        users = make_users(0, 20)
        victim = 4  # an email-only user: its one record is its whole membership
        original = connector.records_for

        async def corrupted(audience: str, given: Any) -> Any:
            prepared = await original(audience, given)
            spot = prepared.owners.index(victim)
            prepared.records[spot] = corrupt(prepared.records[spot])
            return prepared

        connector.records_for = corrupted  # type: ignore[method-assign,assignment]
        result = await connector.add_users(audience_id, users)
        assert (result.accepted, result.failed) == (19, 1)
        assert result.details["failed_users"] == [victim]
        await self.assert_holds(control, audience_id, users[:victim] + users[victim + 1 :])

    async def test_no_token_or_raw_identifier_in_any_error_or_log(
        self, make: Make, control: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
    ) -> None:
        caplog.set_level(logging.DEBUG)
        issued = await control.post(
            "/_sandbox/tokens",
            json={"platform": "google" if self.family == "googleads" else self.platform},
        )
        token = issued.json()["access_token"]
        credentials = self.credentials(token, "suite-revoked-refresh-token")
        connector = make(credentials=credentials, retry=RetryPolicy(attempts=2))
        users = make_users(0, 12)
        texts: list[str] = []
        audience_id = await self.create(connector, [])
        for kind, expected in (
            ("expired_token", AuthExpiredError),
            ("server_error", PlatformServerError),
        ):
            await self.fault(control, kind, count=None)
            with pytest.raises(expected) as caught:
                await connector.add_users(audience_id, users)
            texts += self.texts_of(caught.value)
            await control.delete("/_sandbox/faults")
        with pytest.raises(ValidationError) as invalid:
            await connector.create_audience(AudienceConfig(name="", ad_account_id=ACCOUNT))
        texts += [*self.texts_of(invalid.value), caplog.text]
        secrets = [token, "suite-client-secret", "suite-app-secret", "suite-revoked-refresh"]
        raw = [i.value.strip() for u in users for i in u.identifiers]
        raw += [v.lower() for v in raw] + [v.upper() for v in raw]
        for text in texts:
            assert not [s for s in secrets if s in text]
            assert not [v for v in raw if v in text]

    @staticmethod
    def texts_of(error: AudienceSyncError) -> list[str]:
        return [str(error), repr(error), repr(error.details), repr(error.__cause__)]
