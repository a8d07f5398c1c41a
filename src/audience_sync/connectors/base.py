"""`BaseAudienceConnector`: the spec's six operations, batching, isolation of bad records, results.

A platform connector is a small subclass. It declares `CAPABILITIES` as data and implements the
hooks: how to authenticate (`auth_headers`), how the platform words errors (`translate`), how
users become wire records (`prepare`), how one batch is sent (`send_batch`), and the
create / delete / info calls. The base owns everything else: the effective batch size, splitting
any input so no request exceeds it, one schema per batch where the platform needs that
(`group_of`), splitting a batch the platform refused for invalid records in halves until the
bad records are isolated, and adding the batches up into one `AudienceSyncResult`. Retries, rate
limits and token refresh live in the shared HTTP layer (`connectors.http`).
"""

from __future__ import annotations

import asyncio
from abc import ABC, abstractmethod
from collections import Counter
from collections.abc import Hashable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, ClassVar, overload

import httpx
import polars as pl

from audience_sync.config import Settings
from audience_sync.connectors.access import AccessCheck, AdAccount, NotSupportedError, Reason
from audience_sync.connectors.columnar import RecordFrame, RecordShape, record_frame
from audience_sync.connectors.http import (
    Clock,
    Credentials,
    HttpClient,
    RateLimit,
    RateLimiters,
    RetryPolicy,
    Sleep,
)
from audience_sync.domain.models import (
    AudienceConfig,
    AudienceSyncResult,
    AudienceUser,
)
from audience_sync.exceptions import AudienceSyncError, InvalidRecordsError


class Operation(StrEnum):
    """What an upload does to the audience's members."""

    ADD = "add"
    REMOVE = "remove"
    REPLACE = "replace"


@dataclass(frozen=True, slots=True)
class Capabilities:
    """What a platform can do, as data (the sync engine and the docs read it)."""

    batch_limit: int  # records per request the platform accepts
    rate_limit: RateLimit | None  # client-side budget per access token
    refreshes_tokens: bool  # an OAuth refresh grant exists
    # No replace call, nor a way to drop members not named: the sync engine replaces by the
    # difference from its confirmed snapshot (`replace_audience` is refused).
    replace_by_difference: bool = False


class FrameRecords(Sequence[tuple[Any, ...]]):
    """Wire records kept as the rows of a Polars frame: a record is made a Python tuple only
    when it is read, and a slice (a batch) is the frame's slice, copying nothing. Made by a
    connector's `prepared_from_texts`, whose `send_batch` reads its batches' columns
    (`column`): a million Snapchat records as tuples cost ~1.4 s of GIL-held time on the
    thread that prepares the next chunk while this one is sent."""

    __slots__ = ("frame",)

    def __init__(self, frame: pl.DataFrame) -> None:
        self.frame = frame

    def __len__(self) -> int:
        return self.frame.height

    @overload
    def __getitem__(self, index: int) -> tuple[Any, ...]: ...

    @overload
    def __getitem__(self, index: slice) -> FrameRecords: ...

    def __getitem__(self, index: int | slice) -> tuple[Any, ...] | FrameRecords:
        if isinstance(index, slice):
            start, stop, step = index.indices(self.frame.height)
            if step == 1:
                return FrameRecords(self.frame.slice(start, max(stop - start, 0)))
            return FrameRecords(self.frame[index])
        return self.frame.row(index)

    def __setitem__(self, index: int, record: Sequence[Any]) -> None:
        """Replace one record (tests spoil one this way)."""
        position = pl.Series([index if index >= 0 else index + self.frame.height])
        self.frame = self.frame.with_columns(
            self.frame[name].scatter(position, value)
            for name, value in zip(self.frame.columns, record, strict=True)
        )

    def __iter__(self) -> Iterator[tuple[Any, ...]]:
        return self.frame.iter_rows()

    def column(self, name: str) -> pl.Series:
        return self.frame[name]


@dataclass
class Prepared:
    """Users turned into wire records: `owners[i]` is the user index of `records[i]`."""

    users: int
    # A list of the connector's records, or the same records in columns (`FrameRecords`).
    records: list[Any] | FrameRecords = field(default_factory=list)
    owners: list[int] = field(default_factory=list)
    dropped: Counter[str] = field(default_factory=Counter)
    schema: tuple[str, ...] = ()  # the wire keys of positional records (Meta, TikTok rows)
    # Set when the records lie in runs of one group each (`group_of`): each run's start, stop.
    runs: list[tuple[int, int]] | None = None

    def add(self, record: Any, owner: int) -> None:
        if isinstance(self.records, FrameRecords):
            raise TypeError("records in columns are made whole, never added one by one")
        self.records.append(record)
        self.owners.append(owner)


@dataclass(frozen=True, slots=True)
class Batch:
    """One request's records. `index` counts requests within the operation, from 0."""

    index: int
    records: Sequence[Any]  # a slice of `Prepared.records`
    last: bool


@dataclass
class BatchOutcome:
    """What the platform said of one batch: refused positions and its own figures."""

    failed: list[int] = field(default_factory=list)  # positions in `Batch.records`
    received: int | None = None
    invalid: int | None = None
    request_id: str | None = None


class _Tally:
    """Adds batch outcomes up, user by user (a user with any accepted record is accepted)."""

    def __init__(self, prepared: Prepared) -> None:
        self.prepared = prepared
        self.ok: set[int] = set()  # users with an accepted record
        self.result = AudienceSyncResult(success=True, sent=prepared.users)
        self.sizes: list[int] = []
        self.rejected = 0

    def accept(self, owners: Sequence[int], outcome: BatchOutcome) -> None:
        failed = set(outcome.failed)
        if failed:
            self.ok.update(o for i, o in enumerate(owners) if i not in failed)
        else:  # the usual batch: every owner, without a Python step a record
            self.ok.update(owners)
        self.rejected += len(failed)
        self.sizes.append(len(owners))
        r = self.result
        if outcome.received is not None:
            r.platform_received = (r.platform_received or 0) + outcome.received
        if outcome.invalid is not None:
            r.platform_invalid = (r.platform_invalid or 0) + outcome.invalid
        if outcome.request_id:
            r.request_ids.append(outcome.request_id)

    def reject(self, error: InvalidRecordsError) -> None:
        self.rejected += 1
        self.sizes.append(1)
        self.result.errors.append(error.message)

    def finish(self, audience_id: str, *, partial: bool = False) -> AudienceSyncResult:
        """The result; `failed_users` (or, cut short, `accepted_users`) are input positions."""
        r = self.result
        r.platform_audience_id = audience_id
        r.accepted = len(self.ok)
        r.failed = r.sent - r.accepted
        r.details.update(
            records=len(self.prepared.records),
            batches=self.sizes,
            rejected_records=self.rejected,
            dropped=dict(self.prepared.dropped),
        )
        if partial:
            r.details["accepted_users"] = sorted(self.ok)
        else:
            r.details["failed_users"] = sorted(set(range(r.sent)) - self.ok)
        return r


class BaseAudienceConnector(ABC):
    """The connector interface of the spec, over one shared HTTP layer.

    Build one with `connectors.connector_for(...)` (or the class directly), use it as an async
    context manager (or call `aclose()`), and call the six operations. Every operation returns an
    `AudienceSyncResult` in users (`sent`, `accepted`, `failed`) and the platform's own figures,
    except `get_audience_info` (a dict); `details["failed_users"]` lists the positions (in the
    given `users`) of the users not accepted. Errors are our tree; a failure in the middle of an
    upload carries the result so far in `error.details["partial"]`, whose
    `details["accepted_users"]` are the positions the platform accepted before it.
    """

    PLATFORM_NAME: ClassVar[str]
    CAPABILITIES: ClassVar[Capabilities]
    RECORD_SHAPE: ClassVar[RecordShape]  # its records in columns (`connectors.columnar`)

    def __init__(
        self,
        settings: Settings,
        credentials: Credentials,
        *,
        ad_account_id: str | None = None,
        options: Mapping[str, Any] | None = None,
        base_url: str | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        retry: RetryPolicy | None = None,
        timeout: float = 60.0,
        sleep: Sleep | None = None,
        clock: Clock | None = None,
        limiters: RateLimiters | None = None,
        poll_interval: float = 2.0,
        poll_timeout: float = 900.0,
    ) -> None:
        self.settings = settings
        self.credentials = credentials
        self.ad_account_id = ad_account_id
        self.options: dict[str, Any] = dict(options or {})
        self.sleep: Sleep = sleep or asyncio.sleep
        self.poll_interval = poll_interval
        self.poll_timeout = poll_timeout
        url = (base_url or self.default_base_url(settings)).rstrip("/")
        self.base_url = url
        self.http = HttpClient(
            platform=self.PLATFORM_NAME,
            base_url=url,
            credentials=credentials,
            auth_headers=self.auth_headers,
            translate=self.translate,
            rate_limit=self.CAPABILITIES.rate_limit,
            token_url=self.token_url(url),
            retry=retry,
            timeout=timeout,
            transport=transport,
            sleep=self.sleep,
            clock=clock,
            limiters=limiters,
        )

    @property
    def batch_size(self) -> int:
        """Records per request: `min(platform limit, AUDIENCE_SYNC_MAX_BATCH_SIZE)`."""
        return min(self.CAPABILITIES.batch_limit, self.settings.max_batch_size)

    async def __aenter__(self) -> BaseAudienceConnector:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self.http.aclose()

    # --- the spec's six operations --------------------------------------------------------

    async def create_audience(
        self, config: AudienceConfig, users: Sequence[AudienceUser] = ()
    ) -> AudienceSyncResult:
        """Create the audience, then add `users`; the id is in `platform_audience_id`."""
        audience_id = await self.create(config)
        if not users:
            return AudienceSyncResult(success=True, platform_audience_id=audience_id)
        return await self.add_users(audience_id, users)

    async def add_users(
        self, audience_id: str, users: Sequence[AudienceUser]
    ) -> AudienceSyncResult:
        prepared = await self.records_for(audience_id, users)
        return await self.upload(Operation.ADD, audience_id, prepared)

    async def remove_users(
        self, audience_id: str, users: Sequence[AudienceUser]
    ) -> AudienceSyncResult:
        prepared = await self.records_for(audience_id, users)
        return await self.upload(Operation.REMOVE, audience_id, prepared)

    @abstractmethod
    async def replace_audience(
        self, audience_id: str, users: Sequence[AudienceUser]
    ) -> AudienceSyncResult:
        """Make `users` the audience's only members (natively where the platform can)."""

    async def delete_audience(self, audience_id: str) -> AudienceSyncResult:
        await self.delete(audience_id)
        return AudienceSyncResult(success=True, platform_audience_id=audience_id)

    async def get_audience_info(self, audience_id: str) -> dict[str, Any]:
        """`id`, `name`, `size` (the platform's matched count or lower bound), `status`,
        `ready`, plus the platform's own fields under `platform`."""
        return await self.info(audience_id)

    # --- connection test, discovery, revocation (docs/connections.md) ---------------------

    async def test_access(self) -> AccessCheck:
        """One cheap documented read with the credentials on the connection's ad account: ok,
        or why not (`connectors.access.Reason`). Never raises for a refusal."""
        return AccessCheck(
            Reason.NOT_SUPPORTED, f"{self.PLATFORM_NAME} has no connection test here."
        )

    async def list_ad_accounts(self) -> list[AdAccount]:
        """The ad accounts the token reaches; `NotSupportedError` where the platform has no
        such read (or the connector does not make it); our error tree for a refusal."""
        raise NotSupportedError(f"{self.PLATFORM_NAME} cannot list ad accounts here.")

    async def revoke_access(self) -> bool:
        """Revoke the token at the platform; False where the platform has no revocation."""
        return False

    # --- hooks a platform implements -------------------------------------------------------

    @classmethod
    @abstractmethod
    def default_base_url(cls, settings: Settings) -> str: ...

    def token_url(self, base_url: str) -> str | None:
        """The OAuth token endpoint for the refresh grant (None: the platform has none)."""
        return None

    def auth_headers(self, token: str) -> dict[str, str]:
        """How a call carries the access token: an OAuth 2.0 bearer token (RFC 6750), as Meta,
        Google and Snapchat take it; a platform that differs (TikTok) overrides this."""
        return {"Authorization": f"Bearer {token}"}

    @abstractmethod
    def translate(self, status: int, body: Any, headers: httpx.Headers) -> AudienceSyncError | None:
        """The platform's answer as our error (per its error table), None for success."""

    def prepare(self, users: Sequence[AudienceUser]) -> Prepared:
        """Normalize, hash and shape `users` into wire records (see `connectors.records`)."""
        raise NotImplementedError

    async def records_for(self, audience_id: str, users: Sequence[AudienceUser]) -> Prepared:
        """`prepare`, for platforms whose records depend on the audience (Google key types)."""
        return self.prepare(users)

    async def record_frame(
        self,
        audience_id: str,
        profiles: pl.DataFrame,
        identifiers: pl.DataFrame,
        allowed: frozenset[str],
    ) -> RecordFrame:
        """`records_for` in columns, for the sync engine: each record's canonical text (what
        `record_pairs` gives, as `sync.plan.record_text` writes it) by owner, from the member
        frames of `sources.members`, by its `RECORD_SHAPE` (see
        `connectors.columnar`)."""
        return record_frame(
            self.RECORD_SHAPE,
            profiles,
            identifiers,
            allowed,
            region=self.default_region,
            mobile_list=await self.mobile_list(audience_id),
            options=self.options,
        )

    async def mobile_list(self, audience_id: str) -> bool:
        """Whether the audience takes mobile ids only (a Google mobile-id list)."""
        return False

    @property
    def default_region(self) -> str:
        """Where a phone stored without E.164 is dialled when its profile has no country."""
        return str(self.options.get("default_region", "US"))

    def group_of(self, record: Any) -> Hashable:
        """Records of different groups never share a request (Snapchat: one schema each)."""
        return None

    @property
    def grouped(self) -> bool:
        """Whether this connector has groups (its own `group_of`)."""
        return type(self).group_of is not BaseAudienceConnector.group_of

    def record_pairs(self, prepared: Prepared, record: Any) -> list[tuple[str, str]]:
        """A wire record as `(key, value)` pairs: what the sync engine stores in its snapshot."""
        raise NotImplementedError

    def prepared_from_texts(self, texts: pl.Series) -> Prepared | None:
        """`prepared_from_records` straight from the records' canonical text, where a platform
        does it faster in columns; None: decode each record and call `prepared_from_records`."""
        return None

    def prepared_from_records(self, records: Sequence[Sequence[tuple[str, str]]]) -> Prepared:
        """The inverse of `record_pairs`: records from a snapshot, ready for `upload` (record i
        is owned by "user" i). How a departed member's rows are sent back to be removed."""
        raise NotImplementedError

    @abstractmethod
    async def send_batch(
        self, op: Operation, audience_id: str, batch: Batch, state: Any
    ) -> BatchOutcome: ...

    async def begin(self, op: Operation, audience_id: str, prepared: Prepared, batches: int) -> Any:
        """Open what spans the batches of one upload (a Meta session, a Google Ads job)."""
        return None

    async def finish(  # noqa: B027 - optional hook, a no-op by default
        self, op: Operation, audience_id: str, state: Any, result: AudienceSyncResult
    ) -> None:
        """Close it (run a job, poll statuses), adding what the platform reports to `result`."""

    @abstractmethod
    async def create(self, config: AudienceConfig) -> str: ...

    @abstractmethod
    async def delete(self, audience_id: str) -> None: ...

    @abstractmethod
    async def info(self, audience_id: str) -> dict[str, Any]: ...

    # --- the engine -----------------------------------------------------------------------

    def plan(self, prepared: Prepared) -> list[tuple[Sequence[Any], list[int]]]:
        """Split records into batches of at most `batch_size`, one group per batch. Sliced
        without a look at each record when there are no groups, or the records lie in runs of
        one (`Prepared.runs`): a million records took ~0.8 s record by record."""
        size = self.batch_size
        if self.grouped and prepared.runs is None:
            return [
                (records[i : i + size], owners[i : i + size])
                for records, owners in self._groups(prepared)
                for i in range(0, len(records), size)
            ]
        runs = prepared.runs or [(0, len(prepared.records))]
        records, owners = prepared.records, prepared.owners
        return [
            (records[i : min(i + size, stop)], owners[i : min(i + size, stop)])
            for start, stop in runs
            for i in range(start, stop, size)
        ]

    def _groups(self, prepared: Prepared) -> list[tuple[Sequence[Any], list[int]]]:
        groups: dict[Hashable, tuple[list[Any], list[int]]] = {}
        for record, owner in zip(prepared.records, prepared.owners, strict=True):
            records, owners = groups.setdefault(self.group_of(record), ([], []))
            records.append(record)
            owners.append(owner)
        return list(groups.values())

    async def upload(
        self, op: Operation, audience_id: str, prepared: Prepared
    ) -> AudienceSyncResult:
        """Send every record in batches and add the outcomes up."""
        tally = _Tally(prepared)
        batches = self.plan(prepared)
        try:
            state = await self.begin(op, audience_id, prepared, len(batches))
            for index, (records, owners) in enumerate(batches):
                last = index == len(batches) - 1
                await self._isolate(op, audience_id, index, records, owners, last, state, tally)
            result = tally.finish(audience_id)
            await self.finish(op, audience_id, state, result)
        except AudienceSyncError as exc:
            exc.details.setdefault("partial", tally.finish(audience_id, partial=True))
            raise
        return result

    async def _isolate(
        self,
        op: Operation,
        audience_id: str,
        index: int,
        records: Sequence[Any],
        owners: list[int],
        last: bool,
        state: Any,
        tally: _Tally,
    ) -> None:
        """Send a batch; when refused for invalid records, send each half, down to one record."""
        try:
            outcome = await self.send_batch(op, audience_id, Batch(index, records, last), state)
        except InvalidRecordsError as exc:
            if len(records) == 1:
                tally.reject(exc)
                return
            mid = len(records) // 2
            await self._isolate(
                op, audience_id, index, records[:mid], owners[:mid], False, state, tally
            )
            await self._isolate(
                op, audience_id, index, records[mid:], owners[mid:], last, state, tally
            )
            return
        tally.accept(owners, outcome)

    async def poll(self, check: Any, what: str) -> Any:
        """Call `check()` every `poll_interval` until it returns non-None or time runs out."""
        waited = 0.0
        while True:
            found = await check()
            if found is not None or waited >= self.poll_timeout:
                return found
            await self.sleep(self.poll_interval)
            waited += self.poll_interval
