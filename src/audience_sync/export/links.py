"""Signed, expiring download links (pure: no database, no settings).

A link carries the export's id, its expiry (Unix seconds) and an HMAC-SHA256 of both, keyed
from the credential key(s) — the first key signs, every key verifies, so rotating
`AUDIENCE_SYNC_SECRET_KEY` keeps links issued before the rotation working until they expire.
"""

from __future__ import annotations

import hashlib
import hmac
import uuid
from datetime import datetime, timedelta
from enum import StrEnum

# Keys are derived per purpose: a link signature never doubles as a credential-encryption key.
PURPOSE = b"audience-sync export link v1\x00"
LONGEST = timedelta(days=1)  # no link lives longer; the service passes its own, shorter bound


class LinkCheck(StrEnum):
    VALID = "valid"
    EXPIRED = "expired"
    TAMPERED = "tampered"


def _signature(key: bytes, export_id: uuid.UUID, expires: int) -> str:
    derived = hmac.new(key, PURPOSE, hashlib.sha256).digest()
    message = f"{export_id}:{expires}".encode()
    return hmac.new(derived, message, hashlib.sha256).hexdigest()


def sign(keys: list[bytes], export_id: uuid.UUID, expires_at: datetime) -> tuple[int, str]:
    """`(expires, signature)` for the link's query string."""
    expires = int(expires_at.timestamp())
    return expires, _signature(keys[0], export_id, expires)


def check(
    keys: list[bytes],
    export_id: uuid.UUID,
    expires: int,
    signature: str,
    now: datetime,
    longest: timedelta = LONGEST,
) -> LinkCheck:
    """Tampered (no key signed exactly this, or an expiry further than `longest` from now: no
    link is issued for longer), expired, or valid — in that order.

    `expires` is compared as a number: any integer a client sends is a valid comparison, where
    turning it into a datetime overflows past the year 9999."""
    # Compared as bytes: compare_digest refuses non-ASCII str, and a link can carry anything.
    given = signature.encode("utf-8", "surrogatepass")
    if not any(
        hmac.compare_digest(_signature(key, export_id, expires).encode(), given) for key in keys
    ):
        return LinkCheck.TAMPERED
    if expires > now.timestamp() + longest.total_seconds():
        return LinkCheck.TAMPERED
    if expires <= now.timestamp():
        return LinkCheck.EXPIRED
    return LinkCheck.VALID
