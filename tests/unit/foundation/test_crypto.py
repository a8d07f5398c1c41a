"""Credentials are encrypted at rest and survive key rotation."""

from __future__ import annotations

import pytest
from cryptography.fernet import Fernet

from audience_sync.crypto import CredentialCipher
from audience_sync.exceptions import ConfigurationError


def test_credentials_round_trip_and_the_ciphertext_hides_them() -> None:
    cipher = CredentialCipher([Fernet.generate_key()])
    token = cipher.encrypt({"access_token": "EAAB-secret"})
    assert "EAAB-secret" not in token
    assert cipher.decrypt(token) == {"access_token": "EAAB-secret"}


def test_an_old_key_still_decrypts_after_rotation() -> None:
    old, new = Fernet.generate_key(), Fernet.generate_key()
    token = CredentialCipher([old]).encrypt({"t": "x"})
    rotated = CredentialCipher([new, old])
    assert rotated.decrypt(token) == {"t": "x"}
    assert CredentialCipher([new]).decrypt(rotated.rotate(token)) == {"t": "x"}


def test_a_wrong_key_says_what_to_do() -> None:
    token = CredentialCipher([Fernet.generate_key()]).encrypt({"t": "x"})
    with pytest.raises(ConfigurationError, match="old key"):
        CredentialCipher([Fernet.generate_key()]).decrypt(token)


def test_hints_show_at_most_the_last_four_characters_of_long_secrets() -> None:
    from audience_sync.crypto import credential_hints

    hints = credential_hints(
        {"access_token": "EAAB-0123456789-abcd", "app_secret": "short", "login_customer_id": "42"}
    )
    assert hints == {"access_token": "****abcd", "app_secret": "****", "login_customer_id": "42"}
