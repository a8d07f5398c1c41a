"""Settings: defaults, environment prefix, production refusal, the development key."""

from __future__ import annotations

from pathlib import Path

import pytest
from cryptography.fernet import Fernet

from audience_sync.config import FeatureFlag, Settings, load_settings, secret_keys
from audience_sync.exceptions import ConfigurationError
from audience_sync.store.db import make_engine


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)  # no stray .env file
    for name in [
        "AUDIENCE_SYNC_SECRET_KEY",
        "AUDIENCE_SYNC_ENVIRONMENT",
        "AUDIENCE_SYNC_DATABASE_URL",
        "AUDIENCE_SYNC_MAX_BATCH_SIZE",
    ]:
        monkeypatch.delenv(name, raising=False)


def test_defaults_match_the_spec() -> None:
    settings = Settings()
    assert settings.max_batch_size == 10_000
    assert settings.max_concurrent_syncs == 5
    assert settings.min_interval_hours == 1
    assert settings.default_interval_hours == 24
    assert settings.meta_base_url == "https://graph.facebook.com/v26.0"
    assert settings.google_base_url == "https://datamanager.googleapis.com/v1"
    assert settings.google_ads_base_url == "https://googleads.googleapis.com/v26"
    assert settings.tiktok_base_url == "https://business-api.tiktok.com/open_api/v1.3"
    assert settings.snapchat_base_url == "https://adsapi.snapchat.com/v1"
    assert settings.effective_database_url == "sqlite:///var/audience_sync.db"
    assert all(settings.feature_flags.as_dict().values())


def test_settings_come_from_prefixed_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AUDIENCE_SYNC_MAX_BATCH_SIZE", "500")
    monkeypatch.setenv("AUDIENCE_SYNC_DATABASE_URL", "postgresql://db/x")
    monkeypatch.setenv("AUDIENCE_SYNC_FEATURE_FLAGS__AUDIENCE_EXPORT", "false")
    settings = Settings()
    assert settings.max_batch_size == 500
    assert settings.effective_database_url == "postgresql://db/x"
    assert settings.feature_flags.as_dict()[FeatureFlag.AUDIENCE_EXPORT] is False
    assert settings.feature_flags.as_dict()[FeatureFlag.AUDIENCE_SYNC_META] is True


def test_an_invalid_value_is_a_configuration_error_that_names_it() -> None:
    with pytest.raises(ConfigurationError, match="AUDIENCE_SYNC_MAX_BATCH_SIZE: Input should"):
        load_settings(max_batch_size=0)


def test_an_invalid_value_is_never_quoted_back(monkeypatch: pytest.MonkeyPatch) -> None:
    # A value can be a secret: a password in a URL, a token pasted in the wrong variable.
    monkeypatch.setenv("AUDIENCE_SYNC_PUBLIC_URL", "ftp://user:hunter2@example.com")
    monkeypatch.setenv("AUDIENCE_SYNC_DATABASE_POOL_SIZE", "hunter3")
    with pytest.raises(ConfigurationError) as raised:
        load_settings()
    message = str(raised.value)
    assert "AUDIENCE_SYNC_PUBLIC_URL: String should match pattern" in message
    assert "AUDIENCE_SYNC_DATABASE_POOL_SIZE: Input should be a valid integer" in message
    assert "hunter" not in message


def test_a_database_url_with_a_bad_port_is_a_configuration_error() -> None:
    with pytest.raises(ConfigurationError, match="its port is not a number") as raised:
        make_engine("postgresql://user:hunter2@db:notaport/x")
    assert "hunter2" not in str(raised.value)


@pytest.mark.parametrize("key", [None, "changeme", "", "secret"])
def test_production_refuses_to_start_without_a_real_key(key: str | None) -> None:
    with pytest.raises(ConfigurationError, match="SECRET_KEY"):
        load_settings(environment="production", secret_key=key)


def test_production_refuses_a_key_that_is_not_a_fernet_key() -> None:
    with pytest.raises(ConfigurationError, match="not a Fernet key"):
        load_settings(environment="production", secret_key="x" * 40)


def test_production_accepts_a_real_key_and_rotation_list() -> None:
    new, old = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    settings = load_settings(environment="production", secret_key=f"{new},{old}")
    assert secret_keys(settings) == [new.encode(), old.encode()]


def test_development_generates_a_key_once_with_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    settings = load_settings(var_dir=tmp_path / "var")
    first = secret_keys(settings)
    assert "generated a development key" in caplog.text
    assert (tmp_path / "var" / "secret.key").stat().st_mode & 0o777 == 0o600
    caplog.clear()
    assert secret_keys(settings) == first
    assert "generated" not in caplog.text


def test_only_flags_the_operator_turned_off_are_a_ceiling(monkeypatch: pytest.MonkeyPatch) -> None:
    assert Settings().feature_flags.operator_off() == frozenset()
    monkeypatch.setenv("AUDIENCE_SYNC_FEATURE_FLAGS__AUDIENCE_EXPORT", "false")
    monkeypatch.setenv("AUDIENCE_SYNC_FEATURE_FLAGS__AUDIENCE_SYNC_META", "true")
    flags = Settings().feature_flags
    assert flags.operator_off() == {FeatureFlag.AUDIENCE_EXPORT}
    assert flags.set_by_operator() == {FeatureFlag.AUDIENCE_EXPORT, FeatureFlag.AUDIENCE_SYNC_META}


def test_the_public_url_defaults_to_serves_address_and_must_be_a_url() -> None:
    assert Settings().effective_public_url == "http://127.0.0.1:8000"
    assert Settings(public_url="https://a.example/x/").effective_public_url == "https://a.example/x"
    with pytest.raises(ConfigurationError, match="AUDIENCE_SYNC_PUBLIC_URL"):
        load_settings(public_url="javascript:alert(1)")
