"""Request and response bodies. Responses carry every field of the audience and job models."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    AliasChoices,
    BaseModel,
    ConfigDict,
    Field,
    GetJsonSchemaHandler,
    PlainSerializer,
    PlainValidator,
    SecretStr,
    field_validator,
)
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import CoreSchema, PydanticCustomError

from audience_sync.connectors.registry import platform_names, platforms
from audience_sync.domain.accounts import ad_account_problem
from audience_sync.domain.data_use import data_use_settings
from audience_sync.domain.models import (
    SyncOperation,
    SyncPlatform,
    SyncStatus,
    TriggeredBy,
)
from audience_sync.domain.platforms import platform_key
from audience_sync.exceptions import UnknownPlatformError
from audience_sync.services.audiences import NewAudience
from audience_sync.sources.rows import BAD_TEXT, value_problem

Interval = Literal[1, 6, 12, 24, 168]
MAX_IDS = 10_000
MAX_BATCH_PROFILES = 1_000


def _storable(value: str) -> str:
    """Refuse text no database stores: PostgreSQL refuses NUL, and a lone surrogate (the JSON
    escape "\\ud800") cannot be encoded at all; either was a 500. The message never quotes the
    value (the 422 names the field, `errors.py`)."""
    if BAD_TEXT.search(value):
        raise ValueError("must not contain NUL characters or lone surrogates (invalid Unicode)")
    return value


def _storable_secret(value: SecretStr) -> SecretStr:
    _storable(value.get_secret_value())
    return value


def _ad_account(value: str) -> str:
    if (problem := ad_account_problem(value)) is not None:
        raise ValueError(problem)
    return value


def _platform(value: object) -> SyncPlatform:
    """A registered platform's key; any other value is the 422 an enum gives."""
    try:
        return platform_key(value)
    except UnknownPlatformError:
        names = [f"'{name}'" for name in platform_names()]
        expected = f"{', '.join(names[:-1])} or {names[-1]}" if len(names) > 1 else names[0]
        raise PydanticCustomError(
            "enum", "Input should be {expected}", {"expected": expected}
        ) from None


class _PlatformNames:
    """The JSON schema of a platform: a string among the registered names, read when the
    OpenAPI document is made (so a platform registered at start-up is in it)."""

    def __get_pydantic_json_schema__(
        self, schema: CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        return {"type": "string", "enum": list(platform_names()), "title": "Platform"}


# A platform in a request or a response: its name, one of the registered platforms'.
Platform = Annotated[
    SyncPlatform,
    PlainValidator(_platform),
    PlainSerializer(lambda key: key.value, return_type=str),
    _PlatformNames(),
]
# Every free-text field of a request body: a bad value is a 422 naming the field, never a 500.
Text = Annotated[str, AfterValidator(_storable)]
# An ad account id goes into platform URL paths (`domain.accounts`).
AdAccountId = Annotated[str, AfterValidator(_ad_account)]
SecretText = Annotated[SecretStr, AfterValidator(_storable_secret)]


class Strict(BaseModel):
    """Request bodies refuse unknown fields, so a typo is an error rather than silently ignored."""

    model_config = ConfigDict(extra="forbid")


# --- segments and profiles ----------------------------------------------------------------


class SegmentIn(Strict):
    name: Text = Field(min_length=1, max_length=255)
    description: Text | None = Field(None, max_length=10_000)


class SegmentOut(BaseModel):
    id: uuid.UUID
    name: str
    description: str | None
    is_active: bool
    member_count: int


class MembersIn(Strict):
    """Profiles to add to and remove from the segment, by the customer's own profile ids."""

    add: list[Text] = Field(default_factory=list, max_length=MAX_IDS)
    remove: list[Text] = Field(default_factory=list, max_length=MAX_IDS)


class MembersOut(BaseModel):
    added: int = Field(description="Profiles that joined (already members are not counted).")
    removed: int
    unknown_profile_ids: list[str] = Field(
        description="Ids in `add` with no profile in this tenant; nothing was done for them."
    )
    member_count: int


class ProfilesBatchIn(Strict):
    profiles: list[Any] = Field(
        min_length=1,
        max_length=MAX_BATCH_PROFILES,
        description=(
            "Rows with the fields of an import row (docs/import.md): `profile_id` (required), "
            "`email`, `phone`, `mobile_id`, `mobile_id_kind`, `external_id`, `first_name`, "
            "`last_name`, `city`, `state`, `zip`, `country`, `date_of_birth`, `gender`; any "
            "other field is a trait. A row is the profile's whole current state."
        ),
    )
    segment_id: uuid.UUID | None = Field(None, description="Also add every good row here.")


class RowError(BaseModel):
    index: int = Field(description="Position of the row in `profiles`, from 0.")
    reason: str


class ImportWarning(BaseModel):
    """Values kept or dropped that the sender should know about (an unknown country, a date of
    birth no platform can use); counted, never a rejection."""

    field: str
    reason: str
    value: str | None = Field(None, description="The value, only for fields that identify no one.")
    count: int


class ProfilesBatchOut(BaseModel):
    created: int
    updated: int
    unchanged: int
    rejected: int
    errors: list[RowError]
    warnings: list[ImportWarning] = []


# --- connections --------------------------------------------------------------------------


class CredentialsIn(Strict):
    access_token: SecretText = Field(min_length=1, max_length=4096)
    refresh_token: SecretText | None = Field(None, max_length=4096)
    client_id: SecretText | None = Field(None, max_length=4096)
    client_secret: SecretText | None = Field(None, max_length=4096)
    app_secret: SecretText | None = Field(None, max_length=4096)
    developer_token: SecretText | None = Field(None, max_length=4096)
    login_customer_id: Text | None = Field(None, max_length=64)

    def plain(self) -> dict[str, str]:
        """The values to encrypt (only here do secrets leave their SecretStr)."""
        out: dict[str, str] = {}
        for name in type(self).model_fields:
            value = getattr(self, name)
            if isinstance(value, SecretStr):
                value = value.get_secret_value()
            if value:
                out[name] = value
        return out


# The platform each connection setting belongs to (`PlatformSpec.connection_settings`).
SETTING_PLATFORMS = {
    name: spec.key for spec in platforms() for name in sorted(spec.connection_settings)
}
DATA_USE_SETTINGS = ("consent_ad_user_data", "consent_ad_personalization", "limited_data_use")


class ConnectionSettingsIn(Strict):
    """Non-secret settings; each one given replaces the stored one (`null` removes it), the
    others stay as they are."""

    login_account_id: str | None = Field(
        None,
        pattern=r"^[0-9][0-9-]{0,31}$",
        description="Google: the manager account the calls go through (dashes allowed).",
    )
    customer_match_terms_accepted: bool | None = Field(
        None,
        description="Google: the account accepts the Customer Match terms "
        "(https://support.google.com/adspolicy/answer/6299717); required to upload.",
    )

    # Defaults for members who say nothing themselves (docs/connectors.md).
    consent_ad_user_data: Literal["granted", "denied", "unspecified"] | None = Field(
        None, description="Google: ad user data consent of members without their own."
    )
    consent_ad_personalization: Literal["granted", "denied", "unspecified"] | None = Field(
        None, description="Google: ad personalization consent of members without their own."
    )
    limited_data_use: Literal["off", "geolocate", "california"] | None = Field(
        None, description="Meta: Limited Data Use of members without their own."
    )

    def changes(self) -> dict[str, Any]:
        """The settings given, as stored (`None` removes a key; `false` and `unspecified` are
        stored as absent)."""
        given = self.model_dump(exclude_unset=True)
        given.update(
            data_use_settings(**{k: v for k, v in given.items() if k in DATA_USE_SETTINGS})
        )
        if given.get("login_account_id"):
            given["login_account_id"] = given["login_account_id"].replace("-", "")
        if given.get("customer_match_terms_accepted") is False:
            given["customer_match_terms_accepted"] = None
        return given


class ConnectionIn(Strict):
    ad_account_id: AdAccountId = Field(min_length=1, max_length=128)
    credentials: CredentialsIn
    settings: ConnectionSettingsIn | None = Field(
        None, description="Per-connection settings; each applies to one platform."
    )
    base_url: Text | None = Field(
        None,
        max_length=500,
        pattern=r"^https?://",
        description="API base URL (e.g. the sandbox's); refused unless the operator allows "
        "per-connection addresses (AUDIENCE_SYNC_ALLOW_CONNECTION_BASE_URL).",
    )


class ConnectionTestOut(BaseModel):
    ok: bool
    reason: str = Field(
        description="`ok`, `bad_token`, `expired`, `missing_scope`, `unknown_ad_account`, "
        "`refused`, `unreachable` or `not_supported`."
    )
    message: str = Field(description="What the test found, in plain words; never a token.")
    account_name: str | None = None


class ConnectionOut(BaseModel):
    platform: Platform
    ad_account_id: str
    status: str = Field(
        description="`connected`, or `needs_reconnect` after an auth failure, a refused token "
        "refresh, or once a token that cannot be renewed has expired."
    )
    status_message: str | None
    token_expires_at: datetime | None = Field(
        None, description="When the stored access token expires (null: unknown or never)."
    )
    expires_in_days: int | None = Field(
        None,
        description="Whole days left for a token nothing renews (Meta's long-lived token); "
        "null when the service refreshes the token itself or the expiry is unknown.",
    )
    base_url: str | None
    credentials: dict[str, str] = Field(
        description="Each stored credential's name with a masked hint; never a secret."
    )
    settings: dict[str, Any] = Field(
        default_factory=dict, description="The connection's non-secret settings."
    )
    scopes: list[str] | None = Field(
        None, description="The scopes or permissions the platform granted (None: not known)."
    )
    updated_at: datetime
    test: ConnectionTestOut | None = Field(
        None, description="PUT only: what the connection test found with the new credentials."
    )


class AdAccountOut(BaseModel):
    id: str = Field(description="As a connection's `ad_account_id` takes it.")
    name: str | None = None


class AuthorizeOut(BaseModel):
    authorization_url: str = Field(description="Open it in a browser to sign in and allow.")


# --- audiences and jobs -------------------------------------------------------------------


class AudienceIn(Strict):
    segment_id: uuid.UUID
    platform: Platform
    platform_audience_name: Text = Field(min_length=1, max_length=255)
    ad_account_id: AdAccountId = Field(min_length=1, max_length=128)
    description: Text | None = Field(None, max_length=10_000)
    auto_sync: bool = True
    sync_interval_hours: Interval | None = Field(
        None, description="1, 6, 12, 24 or 168; default AUDIENCE_SYNC_DEFAULT_INTERVAL_HOURS."
    )
    options: dict[str, Any] = Field(
        default_factory=dict,
        description="Platform options (docs/sync.md), e.g. Google `consent`, `identifier_types`.",
    )
    sync_now: bool = Field(True, description="Queue the first (create) sync at once.")

    @field_validator("options")
    @classmethod
    def _storable_options(cls, options: dict[str, Any]) -> dict[str, Any]:
        """Stored as JSON: a NUL (PostgreSQL refuses it), a lone surrogate, NaN or a value
        nested too deep is a 422, not a 500."""
        problem = value_problem(options)
        if problem is not None:
            raise ValueError(f"a value {problem}")
        return options

    def new_audience(self) -> NewAudience:
        """What `services.audiences.create` is given (the API's route and the dashboard's form)."""
        return NewAudience(
            segment_id=self.segment_id,
            platform=self.platform,
            name=self.platform_audience_name,
            ad_account_id=self.ad_account_id,
            description=self.description,
            auto_sync=self.auto_sync,
            interval_hours=self.sync_interval_hours,
            options=self.options,
        )


class AudiencePatch(Strict):
    description: Text | None = Field(None, max_length=10_000)
    auto_sync: bool | None = None
    sync_interval_hours: Interval | None = None


class AudienceOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    tenant_id: int
    segment_id: uuid.UUID
    platform: Platform
    platform_audience_id: str | None
    platform_audience_name: str
    ad_account_id: str
    description: str | None
    auto_sync: bool
    sync_interval_hours: int
    next_sync_at: datetime | None
    is_active: bool
    last_sync_at: datetime | None
    last_sync_status: SyncStatus | None
    last_sync_error: str | None
    platform_size: int | None
    matched_size: int | None
    match_rate: float | None
    options: dict[str, Any] = Field(validation_alias=AliasChoices("config", "options"))
    created_at: datetime
    updated_at: datetime


class JobProgressOut(BaseModel):
    """A job's live progress (`services.jobs.progress_of`)."""

    model_config = ConfigDict(from_attributes=True)

    phase: str = Field(
        description=(
            "`reading` (members prepared), `planning`, `uploading` (adds sent), `removing` "
            "(removals sent), `finishing`; after the job completed, `confirming` while the "
            "platform processes the requests (Google)."
        )
    )
    done: int
    total: int | None = Field(description="None when unknown.")
    unit: str | None = Field(
        description="What done and total count: `members`, `records` or `requests`; "
        "None when the phase counts nothing."
    )
    started_at: datetime = Field(description="When the phase began.")
    updated_at: datetime = Field(description="When the worker last wrote it.")
    rate_per_second: float | None = Field(description="done ÷ seconds since the phase began.")
    eta_seconds: int | None = Field(
        description="(total − done) ÷ rate, while the job is live and both are known."
    )


class JobOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    tenant_id: int
    platform_audience_id: uuid.UUID
    operation: SyncOperation
    status: SyncStatus
    profiles_sent: int
    profiles_added: int
    profiles_removed: int
    profiles_failed: int
    profiles_refreshed: int = Field(
        0,
        description="Members re-sent only to keep them on the platform before their membership "
        "lifetime ends (`details.figures.refreshed`; docs/freshness.md).",
    )
    match_rate: float | None
    started_at: datetime | None
    completed_at: datetime | None
    duration_ms: int | None
    error_message: str | None
    triggered_by: TriggeredBy
    triggered_by_user_id: int | None
    dry_run: bool
    attempt: int
    next_retry_at: datetime | None
    cancel_requested: bool
    created_at: datetime
    details: dict[str, Any] = Field(
        description="Plan, dropped values by reason, member counts (never an identifier)."
    )
    confirmation: str = Field(
        "none",
        description=(
            "What the platform made of the accepted requests, learnt after the job ended "
            "(Google): `none` (nothing to confirm), `processing`, `confirmed`, `failed`. "
            "The figures of processing are in `details.confirmation`."
        ),
    )
    confirmation_next_at: datetime | None = Field(
        None, description="When the scheduler reads the requests' statuses next."
    )
    confirmation_checks: int = Field(0, description="Status reads so far (ticks that read).")
    progress: JobProgressOut | None = Field(
        None,
        description="Live progress, written by the worker about once a second; None before "
        "the job first reports (queued).",
    )


class AudienceCreated(AudienceOut):
    sync_job: JobOut | None = Field(None, description="The first sync, when `sync_now`.")


class SyncIn(Strict):
    operation: SyncOperation = SyncOperation.UPDATE
    dry_run: bool = False
    force: bool = Field(False, description="Pass the guard rails (mass removal, empty replace).")


class HealthOut(BaseModel):
    platform_size: int | None
    matched_size: int | None
    match_rate: float | None
    sync_success_rate: float | None = Field(
        description="Completed ÷ (completed + failed) real syncs ended in the last 30 days."
    )
    syncs_30d: int


# --- feature flags ------------------------------------------------------------------------
