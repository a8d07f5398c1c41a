"""Credential encryption at rest (Fernet, with key rotation through MultiFernet)."""

from __future__ import annotations

import json
from typing import Any

from cryptography.fernet import Fernet, InvalidToken, MultiFernet

from audience_sync.exceptions import ConfigurationError

HINT_MIN_LENGTH = 16  # shorter secrets show no characters at all
PLAIN_FIELDS = frozenset({"login_customer_id"})  # not secrets: shown as they are


def credential_hints(credentials: dict[str, Any]) -> dict[str, str]:
    """A hint per credential to tell them apart: the last four characters of a long secret."""
    return {
        name: str(value)
        if name in PLAIN_FIELDS
        else "****" + (str(value)[-4:] if len(str(value)) >= HINT_MIN_LENGTH else "")
        for name, value in sorted(credentials.items())
        if value
    }


class CredentialCipher:
    """Encrypts a connection's credentials; the first key encrypts, every key decrypts."""

    def __init__(self, keys: list[bytes]) -> None:
        if not keys:
            raise ConfigurationError("No credential encryption key configured.")
        self._fernet = MultiFernet([Fernet(key) for key in keys])

    def encrypt(self, credentials: dict[str, Any]) -> str:
        return self._fernet.encrypt(json.dumps(credentials, sort_keys=True).encode()).decode()

    def decrypt(self, token: str) -> dict[str, Any]:
        try:
            plain = self._fernet.decrypt(token.encode())
        except InvalidToken as exc:
            raise ConfigurationError(
                "Stored credentials cannot be decrypted with the configured keys; was "
                "AUDIENCE_SYNC_SECRET_KEY changed without keeping the old key after a comma?"
            ) from exc
        data: dict[str, Any] = json.loads(plain)
        return data

    def rotate(self, token: str) -> str:
        """Re-encrypt under the newest key (run after adding a key in front of the list)."""
        return self._fernet.rotate(token.encode()).decode()
