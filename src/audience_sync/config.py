"""Settings (environment prefix `AUDIENCE_SYNC_`), the credential key, and feature-flag defaults.

One `Settings` object is built at start (`load_settings()`), validated there, and passed in
explicitly; nothing deep in the code reads the environment.
"""

from __future__ import annotations

import base64
import binascii
import logging
from enum import StrEnum
from pathlib import Path
from typing import Literal

from cryptography.fernet import Fernet
from pydantic import BaseModel, Field, SecretStr, ValidationError, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from audience_sync.exceptions import ConfigurationError
from audience_sync.files import open_private, private_dir

log = logging.getLogger(__name__)

DEFAULT_PUBLIC_URL = "http://127.0.0.1:8000"  # `serve`'s default --host and --port
SECRET_KEY_FILE = "secret.key"  # noqa: S105 - a file name, not a secret
# Values people paste from examples; never acceptable as a real key.
PLACEHOLDER_SECRETS = frozenset(
    {"", "changeme", "change-me", "changethis", "secret", "please-change"}
)


class FeatureFlag(StrEnum):
    """The feature flags; each can be overridden per tenant in the database."""

    AUDIENCE_SYNC = "audience_sync"
    AUDIENCE_SYNC_META = "audience_sync_meta"
    AUDIENCE_SYNC_GOOGLE = "audience_sync_google"
    AUDIENCE_SYNC_TIKTOK = "audience_sync_tiktok"
    AUDIENCE_SYNC_SNAPCHAT = "audience_sync_snapchat"
    AUDIENCE_EXPORT = "audience_export"


class FeatureFlags(BaseModel):
    """The operator's flags, e.g. `AUDIENCE_SYNC_FEATURE_FLAGS__AUDIENCE_EXPORT=false`.

    A flag the operator turns off is off for every tenant, whatever a tenant's override says;
    one left at its default (or turned on) is a default each tenant may override."""

    audience_sync: bool = True
    audience_sync_meta: bool = True
    audience_sync_google: bool = True
    audience_sync_tiktok: bool = True
    audience_sync_snapchat: bool = True
    audience_export: bool = True

    def as_dict(self) -> dict[FeatureFlag, bool]:
        return {flag: bool(getattr(self, flag.value)) for flag in FeatureFlag}

    def set_by_operator(self) -> frozenset[FeatureFlag]:
        """The flags the operator set (environment or code), as opposed to left at default."""
        return frozenset(FeatureFlag(name) for name in self.model_fields_set)

    def operator_off(self) -> frozenset[FeatureFlag]:
        """The flags the operator turned off: a ceiling no tenant override lifts. A flag only
        defaulting to off (none today) would stay the tenants' to turn on."""
        return frozenset(f for f in self.set_by_operator() if not getattr(self, f.value))


class Settings(BaseSettings):
    """Every setting of the service. Environment variables carry the `AUDIENCE_SYNC_` prefix."""

    model_config = SettingsConfigDict(
        env_prefix="AUDIENCE_SYNC_",
        env_nested_delimiter="__",
        env_file=".env",
        extra="ignore",
    )

    environment: Literal["development", "test", "production"] = "development"
    var_dir: Path = Path("var")
    database_url: str = ""  # empty: a SQLite file in var_dir
    # PostgreSQL connections each process keeps open (`serve`, each worker), and how many more
    # it may open for a burst (closed again when returned). `serve` runs its routes on up to
    # 40 threads: with SQLAlchemy's default of 5 kept, a loaded API opened and closed a
    # connection (a server process) for most requests (docs/performance.md).
    database_pool_size: int = Field(20, ge=1)
    database_max_overflow: int = Field(20, ge=0)
    log_level: str = "INFO"
    # Where clients reach this service: download links are built from it, never from a
    # request's Host header (which the client chooses). Empty: `serve`'s --host/--port, else
    # DEFAULT_PUBLIC_URL.
    public_url: str = Field("", pattern=r"^(https?://[^\s?#]+)?$")

    max_batch_size: int = Field(10_000, ge=1)
    max_concurrent_syncs: int = Field(5, ge=1)
    min_interval_hours: int = Field(1, ge=1)
    default_interval_hours: int = Field(24, ge=1)
    # Job-level retries of transient failures: these delays, every one used, each a
    # scheduled retry (durable), never a sleeping worker.
    retry_delays_seconds: tuple[int, ...] = (60, 300, 900, 3600)
    # A running job whose worker has not sent a heartbeat for this long is failed and re-queued.
    job_lease_seconds: int = Field(300, ge=10)
    # A job whose lease ran out is resumed by a new job at most this many times in a row, then
    # fails for good (a sync that kills its worker every time must not be retried for ever).
    max_resumes: int = Field(3, ge=0)
    scheduler_tick_seconds: int = Field(900, ge=1)
    # `serve` stopping (SIGTERM, Ctrl-C): running syncs get this long to reach a checkpoint and
    # hand their job back; a sync still running then is killed and resumed by the lease reaper.
    shutdown_grace_seconds: int = Field(30, ge=0)
    # Requests a platform processes after the job ends (Google: 30 minutes to 24 hours) are
    # confirmed by the tick: first read this long after acceptance, then at doubling intervals
    # up to the cap; still processing after `confirmation_give_up_seconds`, the confirmation
    # fails. Each tick reads at most `confirmation_reads_per_tick` statuses (docs/sync.md).
    confirmation_first_check_seconds: int = Field(1800, ge=0)
    confirmation_max_interval_seconds: int = Field(4 * 3600, ge=1)
    confirmation_give_up_seconds: int = Field(48 * 3600, ge=1)
    confirmation_reads_per_tick: int = Field(500, ge=1)
    # The distributed mode (`audience-sync worker` / `beat`): a Celery broker, Redis
    # (`redis://host:6379/0`) or RabbitMQ (`amqp://user:password@host:5672//`). Empty: syncs run
    # in the process that serves the API (`audience-sync serve`).
    broker_url: str = ""
    celery_queue: str = "audience-sync"  # the broker queue (one per environment on a shared broker)
    # Guard rail: an update removing more than this share of the audience needs `force`.
    max_removal_share: float = Field(0.5, ge=0, le=1)
    # Freshness (docs/freshness.md): a member whose last confirmed upload is older than its
    # platform's membership lifetime less this margin is re-sent by the normal sync, spread over
    # syncs. Syncs must run at least this often for no member ever to expire. 0: no refresh.
    refresh_margin_days: int = Field(30, ge=0)

    # Fernet keys, comma-separated: the first encrypts, all decrypt (key rotation).
    secret_key: SecretStr | None = None

    meta_base_url: str = "https://graph.facebook.com/v26.0"
    google_base_url: str = "https://datamanager.googleapis.com/v1"
    google_ads_base_url: str = "https://googleads.googleapis.com/v26"
    tiktok_base_url: str = "https://business-api.tiktok.com/open_api/v1.3"
    # Users per TikTok `segment/mapping` call: TikTok publishes no limit; peers send at most
    # 1,000 rows or 1 MB a call, so do we unless told otherwise.
    tiktok_mapping_batch_size: int = Field(1_000, ge=1, le=10_000)
    snapchat_base_url: str = "https://adsapi.snapchat.com/v1"
    # A connection's own `base_url` (the sandbox, tests) is taken, from the API or the CLI, and
    # used by the connectors only when the operator allows it: otherwise a tenant could send
    # the server and its tokens to any host. Platform addresses come from the settings above.
    allow_connection_base_url: bool = False

    # OAuth apps (docs/connections.md, "How to connect"): each platform's app id and secret,
    # registered with the platform with the redirect URL `public_url + /oauth/{platform}/callback`.
    # A platform whose client id is empty offers no "Connect" button (pasting a token stays).
    meta_client_id: str = ""
    meta_client_secret: SecretStr | None = None
    google_client_id: str = ""
    google_client_secret: SecretStr | None = None
    # The Google Ads API's developer token: account discovery (`listAccessibleCustomers`)
    # needs it; stored with a connection made through OAuth. Empty: no Google discovery.
    google_developer_token: SecretStr | None = None
    tiktok_client_id: str = ""  # TikTok's `app_id`
    tiktok_client_secret: SecretStr | None = None
    snapchat_client_id: str = ""
    snapchat_client_secret: SecretStr | None = None
    # Where each platform's authorize page (opened by the browser) and token endpoint are;
    # `serve --demo` points them at the sandbox mounted at /sandbox.
    meta_authorize_url: str = "https://www.facebook.com/v26.0/dialog/oauth"
    meta_token_url: str = "https://graph.facebook.com/v26.0/oauth/access_token"  # noqa: S105
    google_authorize_url: str = "https://accounts.google.com/o/oauth2/v2/auth"
    google_token_url: str = "https://oauth2.googleapis.com/token"  # noqa: S105
    google_revoke_url: str = "https://oauth2.googleapis.com/revoke"
    tiktok_authorize_url: str = "https://business-api.tiktok.com/portal/auth"
    tiktok_token_url: str = "https://business-api.tiktok.com/open_api/v1.3/oauth2/access_token/"  # noqa: S105
    snapchat_authorize_url: str = "https://accounts.snapchat.com/login/oauth2/authorize"
    snapchat_token_url: str = "https://accounts.snapchat.com/login/oauth2/access_token"  # noqa: S105
    # How long a started OAuth flow may take before its `state` is refused.
    oauth_state_ttl_seconds: int = Field(600, ge=30)

    # Request limits, checked before any work (docs/api.md, "Limits"): the largest request body
    # `/api/v1` reads (10 MiB: a full 1,000-row `profiles:batch` or 20,000 member ids fit with
    # room to spare), and the largest `options` of an audience, as JSON.
    max_request_bytes: int = Field(10 * 1024 * 1024, ge=1024)
    max_options_bytes: int = Field(16 * 1024, ge=256)

    # Alerts by e-mail (docs/alerts.md): the SMTP server, how to secure the connection (`none`,
    # `starttls`, or `tls` from the first byte), its credentials, and the sender's address.
    smtp_host: str = ""
    smtp_port: int = Field(587, ge=1, le=65535)
    smtp_tls: Literal["none", "starttls", "tls"] = "starttls"
    smtp_username: str = ""
    smtp_password: SecretStr | None = None
    smtp_from: str = "audience-sync@localhost"
    # Alert deliveries are retried with doubling delays up to the cap, and given up (`failed`)
    # only once this long has passed since the alert was raised.
    alert_retry_cap_seconds: int = Field(3600, ge=1)
    alert_give_up_seconds: int = Field(24 * 3600, ge=60)
    # Webhooks to loopback, private or link-local addresses are refused (a tenant must not make
    # the server call its own network); allow them for a local receiver (tests, development).
    alert_allow_private_webhooks: bool = False

    feature_flags: FeatureFlags = FeatureFlags()

    @model_validator(mode="after")
    def _check(self) -> Settings:
        if self.default_interval_hours < self.min_interval_hours:
            raise ValueError(
                f"default_interval_hours ({self.default_interval_hours}) is below "
                f"min_interval_hours ({self.min_interval_hours})"
            )
        if self.environment == "production":
            raw = self.secret_key.get_secret_value() if self.secret_key else ""
            if raw.strip().lower() in PLACEHOLDER_SECRETS:
                raise ValueError(
                    "AUDIENCE_SYNC_SECRET_KEY is missing or a placeholder; production refuses to "
                    "start without a real key. Generate one with `audience-sync secret-key`."
                )
            _parse_keys(raw)
        return self

    @property
    def effective_public_url(self) -> str:
        """The base of links given to clients, without a trailing `/`."""
        return (self.public_url or DEFAULT_PUBLIC_URL).rstrip("/")

    def oauth_client(self, platform: str) -> tuple[str, str] | None:
        """The platform's OAuth app `(client id, secret)`, None when it has none configured."""
        client_id = str(getattr(self, f"{platform}_client_id", "") or "")
        secret = getattr(self, f"{platform}_client_secret", None)
        if not client_id or secret is None or not secret.get_secret_value():
            return None
        return client_id, secret.get_secret_value()

    @property
    def effective_database_url(self) -> str:
        return self.database_url or f"sqlite:///{self.var_dir / 'audience_sync.db'}"


def load_settings(**overrides: object) -> Settings:
    """Build and validate the settings; a bad value becomes a `ConfigurationError` that says why."""
    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        raise ConfigurationError(f"Invalid settings: {invalid_settings(exc)}") from exc
    except ValueError as exc:
        raise ConfigurationError(f"Invalid settings: {exc}") from exc


def invalid_settings(error: ValidationError) -> str:
    """What is wrong, by environment variable (`AUDIENCE_SYNC_PUBLIC_URL: String should match
    pattern …`), without the values given: pydantic's own text quotes each one, and a value can
    be a secret (a key, a password in a URL)."""
    found = []
    for item in error.errors(include_url=False, include_input=False):
        where = item["loc"]
        name = f"AUDIENCE_SYNC_{str(where[0]).upper()}" if where else "settings"
        found.append(name + "".join(f"[{part}]" for part in where[1:]) + f": {item['msg']}")
    return "; ".join(found) + " (docs/configuration.md)"


def secret_keys(settings: Settings) -> list[bytes]:
    """The credential-encryption keys, newest first.

    In development and test, a missing key is generated once into `var_dir/secret.key` (with a
    warning) so a laptop works with no setup; production refuses to start without one.
    """
    if settings.secret_key is not None:
        raw = settings.secret_key.get_secret_value()
        if raw.strip().lower() not in PLACEHOLDER_SECRETS:
            return _parse_keys(raw)
    if settings.environment == "production":
        raise ConfigurationError("AUDIENCE_SYNC_SECRET_KEY is required in production.")
    path = settings.var_dir / SECRET_KEY_FILE
    if not path.exists():
        private_dir(path.parent)
        with open_private(path) as handle:  # 0600 from the start, not after the write
            handle.write(Fernet.generate_key().decode())
        log.warning(
            "No AUDIENCE_SYNC_SECRET_KEY set: generated a development key in %s. "
            "Set AUDIENCE_SYNC_SECRET_KEY before running in production.",
            path,
        )
    return _parse_keys(path.read_text())


def _parse_keys(raw: str) -> list[bytes]:
    keys = [part.strip().encode() for part in raw.split(",") if part.strip()]
    if not keys:
        raise ConfigurationError("AUDIENCE_SYNC_SECRET_KEY holds no key.")
    for position, key in enumerate(keys, start=1):
        try:
            valid = len(base64.urlsafe_b64decode(key)) == 32
        except (binascii.Error, ValueError):
            valid = False
        if not valid:
            raise ConfigurationError(
                f"AUDIENCE_SYNC_SECRET_KEY key #{position} is not a Fernet key (32 url-safe "
                "base64 bytes). Generate one with `audience-sync secret-key`."
            )
    return keys
